package config

import (
	"crypto/rsa"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Notifier is the WebSocket notifier's configuration.
type Notifier struct {
	Common
	DatabaseURL      string         // DATABASE_URL (optional: the REST API needs it)
	JWTSecret        string         // JWT_SECRET (HS256)
	JWTPublicKey     string         // JWT_PUBLIC_KEY (RS256 PEM, or a path to a PEM file)
	RSAPublicKey     *rsa.PublicKey // parsed JWT_PUBLIC_KEY
	AllowedOrigins   []string       // ALLOWED_ORIGINS, comma-separated
	SendQueue        int            // WS_SEND_QUEUE
	PingInterval     time.Duration  // WS_PING_INTERVAL
	IdleTimeout      time.Duration  // WS_IDLE_TIMEOUT
	WriteTimeout     time.Duration  // WS_WRITE_TIMEOUT
	ResumeGrace      time.Duration  // WS_RESUME_GRACE
	ResumeMax        int            // WS_RESUME_MAX
	FirstMessageAuth bool           // WS_FIRST_MESSAGE_AUTH
}

// LoadNotifier reads and validates the notifier's environment.
func LoadNotifier(get Getenv) (Notifier, error) {
	l := &loader{get: get}
	c := Notifier{
		Common:           l.common(":8081"),
		DatabaseURL:      l.databaseURL(false),
		JWTSecret:        l.str("JWT_SECRET", ""),
		JWTPublicKey:     l.str("JWT_PUBLIC_KEY", ""),
		SendQueue:        l.integer("WS_SEND_QUEUE", 256, 1, 100000),
		PingInterval:     l.duration("WS_PING_INTERVAL", 25*time.Second, 100*time.Millisecond),
		IdleTimeout:      l.duration("WS_IDLE_TIMEOUT", 75*time.Second, 100*time.Millisecond),
		WriteTimeout:     l.duration("WS_WRITE_TIMEOUT", 10*time.Second, 100*time.Millisecond),
		ResumeGrace:      l.duration("WS_RESUME_GRACE", time.Second, 10*time.Millisecond),
		ResumeMax:        l.integer("WS_RESUME_MAX", 20000, 1, 10000000),
		FirstMessageAuth: l.oneOf("WS_FIRST_MESSAGE_AUTH", "false", "true", "false") == "true",
	}
	for _, o := range strings.Split(l.str("ALLOWED_ORIGINS", ""), ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		if o != "*" {
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" {
				l.fail("ALLOWED_ORIGINS", "entries must look like https://app.example.com or https://*.example.com, got %q", o)
				continue
			}
		}
		c.AllowedOrigins = append(c.AllowedOrigins, o)
	}
	if c.IdleTimeout <= c.PingInterval {
		l.fail("WS_IDLE_TIMEOUT", "must be longer than WS_PING_INTERVAL (%v), got %v", c.PingInterval, c.IdleTimeout)
	}
	switch {
	case c.JWTSecret == "" && c.JWTPublicKey == "":
		l.fail("JWT_SECRET", "or JWT_PUBLIC_KEY is required: agents' tokens cannot be verified without one")
	case c.JWTSecret != "" && c.JWTPublicKey != "":
		l.fail("JWT_SECRET", "and JWT_PUBLIC_KEY are both set: choose HS256 (JWT_SECRET) or RS256 (JWT_PUBLIC_KEY)")
	case c.JWTSecret != "" && len(c.JWTSecret) < 32:
		l.fail("JWT_SECRET", "must be at least 32 bytes for HS256, got %d", len(c.JWTSecret))
	case c.JWTPublicKey != "":
		c.RSAPublicKey = l.rsaPublicKey("JWT_PUBLIC_KEY", c.JWTPublicKey)
	}
	return c, l.err()
}

// rsaPublicKey accepts the PEM itself (newlines may be written as \n, as env files often do) or
// the path of a PEM file.
func (l *loader) rsaPublicKey(name, v string) *rsa.PublicKey {
	pem := strings.ReplaceAll(v, `\n`, "\n")
	if !strings.Contains(pem, "-----BEGIN") {
		b, err := os.ReadFile(v)
		if err != nil {
			l.fail(name, "must be an RSA public key in PEM or the path of a PEM file: %v", err)
			return nil
		}
		pem = string(b)
	}
	k, err := jwt.ParseRSAPublicKeyFromPEM([]byte(pem))
	if err != nil {
		l.fail(name, "is not an RSA public key in PEM: %v", err)
		return nil
	}
	return k
}
