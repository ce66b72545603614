// Package config loads each process's settings from environment variables into one struct per
// process and validates them before anything starts. Every error names the variable and says what
// is wrong, so a bad deployment fails with one readable line.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/chatwire/chatwire/pkg/store"
)

// Getenv looks a variable up; os.Getenv in production, a map in tests.
type Getenv func(string) string

// Common holds what every process reads.
type Common struct {
	NATSURL         string        // NATS_URL
	HTTPAddr        string        // HTTP_ADDR
	LogLevel        string        // LOG_LEVEL
	LogFormat       string        // LOG_FORMAT
	NATSReplicas    int           // NATS_REPLICAS
	ShutdownTimeout time.Duration // SHUTDOWN_TIMEOUT
}

// loader reads variables and collects every problem, so one start-up reports all of them.
type loader struct {
	get  Getenv
	errs []error
}

func (l *loader) fail(name, format string, args ...any) {
	l.errs = append(l.errs, fmt.Errorf("%s %s", name, fmt.Sprintf(format, args...)))
}

// err reports every problem on one line, so a failed start-up prints exactly one line.
func (l *loader) err() error {
	if len(l.errs) == 0 {
		return nil
	}
	msgs := make([]string, len(l.errs))
	for i, e := range l.errs {
		msgs[i] = e.Error()
	}
	return errors.New("config: " + strings.Join(msgs, "; "))
}

func (l *loader) str(name, def string) string {
	if v := strings.TrimSpace(l.get(name)); v != "" {
		return v
	}
	return def
}

func (l *loader) oneOf(name, def string, allowed ...string) string {
	v := strings.ToLower(l.str(name, def))
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	l.fail(name, "must be one of %s, got %q", strings.Join(allowed, ", "), v)
	return def
}

func (l *loader) integer(name string, def, min, max int) int {
	raw := l.str(name, "")
	if raw == "" {
		return def
	}
	n, err := strconv.Atoi(raw)
	if err != nil {
		l.fail(name, "must be an integer, got %q", raw)
		return def
	}
	if n < min || n > max {
		l.fail(name, "must be between %d and %d, got %d", min, max, n)
		return def
	}
	return n
}

func (l *loader) duration(name string, def, min time.Duration) time.Duration {
	raw := l.str(name, "")
	if raw == "" {
		return def
	}
	d, err := time.ParseDuration(raw)
	if err != nil {
		l.fail(name, "must be a duration such as 500ms, 5s or 2m, got %q", raw)
		return def
	}
	if d < min {
		l.fail(name, "must be at least %v, got %v", min, d)
		return def
	}
	return d
}

func (l *loader) httpURL(name, def string) string {
	v := l.str(name, def)
	if v == "" {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		l.fail(name, "must be an http:// or https:// URL, got %q", v)
	}
	return v
}

func (l *loader) databaseURL(required bool) string {
	v := l.str("DATABASE_URL", "")
	if v == "" {
		if required {
			l.fail("DATABASE_URL", "is required but not set (postgres://user:pass@host:5432/db)")
		}
		return ""
	}
	if err := store.ValidateURL(v); err != nil {
		l.fail("DATABASE_URL", "%v", err)
	}
	return v
}

func (l *loader) common(defaultAddr string) Common {
	c := Common{
		NATSURL:         l.str("NATS_URL", "nats://127.0.0.1:4222"),
		HTTPAddr:        l.str("HTTP_ADDR", defaultAddr),
		LogLevel:        l.oneOf("LOG_LEVEL", "info", "debug", "info", "warn", "error"),
		LogFormat:       l.oneOf("LOG_FORMAT", "json", "json", "text"),
		NATSReplicas:    l.integer("NATS_REPLICAS", 1, 1, 5),
		ShutdownTimeout: l.duration("SHUTDOWN_TIMEOUT", 15*time.Second, time.Second),
	}
	for _, u := range strings.Split(c.NATSURL, ",") {
		pu, err := url.Parse(strings.TrimSpace(u))
		if err != nil || pu.Host == "" || (pu.Scheme != "nats" && pu.Scheme != "tls" && pu.Scheme != "ws" && pu.Scheme != "wss") {
			l.fail("NATS_URL", "must be nats://host:port (comma-separated for a cluster), got %q", u)
		}
	}
	if !strings.Contains(c.HTTPAddr, ":") {
		l.fail("HTTP_ADDR", "must be host:port or :port, got %q", c.HTTPAddr)
	}
	return c
}
