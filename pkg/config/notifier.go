package config

import (
	"strings"
	"time"
)

// Notifier is the WebSocket notifier's configuration.
type Notifier struct {
	Common
	DatabaseURL    string        // DATABASE_URL (optional: the REST API needs it)
	JWTSecret      string        // JWT_SECRET (HS256)
	JWTPublicKey   string        // JWT_PUBLIC_KEY (RS256 PEM)
	AllowedOrigins []string      // ALLOWED_ORIGINS, comma-separated
	SendQueue      int           // WS_SEND_QUEUE
	PingInterval   time.Duration // WS_PING_INTERVAL
	IdleTimeout    time.Duration // WS_IDLE_TIMEOUT
}

// LoadNotifier reads and validates the notifier's environment.
func LoadNotifier(get Getenv) (Notifier, error) {
	l := &loader{get: get}
	c := Notifier{
		Common:       l.common(":8081"),
		DatabaseURL:  l.databaseURL(false),
		JWTSecret:    l.str("JWT_SECRET", ""),
		JWTPublicKey: l.str("JWT_PUBLIC_KEY", ""),
		SendQueue:    l.integer("WS_SEND_QUEUE", 256, 1, 100000),
		PingInterval: l.duration("WS_PING_INTERVAL", 25*time.Second, 100*time.Millisecond),
		IdleTimeout:  l.duration("WS_IDLE_TIMEOUT", 75*time.Second, 100*time.Millisecond),
	}
	for _, o := range strings.Split(l.str("ALLOWED_ORIGINS", ""), ",") {
		if o = strings.TrimSpace(o); o != "" {
			c.AllowedOrigins = append(c.AllowedOrigins, o)
		}
	}
	switch {
	case c.JWTSecret == "" && c.JWTPublicKey == "":
		l.fail("JWT_SECRET", "or JWT_PUBLIC_KEY is required: agents' tokens cannot be verified without one")
	case c.JWTSecret != "" && c.JWTPublicKey != "":
		l.fail("JWT_SECRET", "and JWT_PUBLIC_KEY are both set: choose HS256 (JWT_SECRET) or RS256 (JWT_PUBLIC_KEY)")
	case c.JWTSecret != "" && len(c.JWTSecret) < 32:
		l.fail("JWT_SECRET", "must be at least 32 bytes for HS256, got %d", len(c.JWTSecret))
	}
	return c, l.err()
}
