package config

import (
	"strings"
	"time"
)

// Sender is the reply sender's configuration. Provider credentials are optional: a channel
// without them fails its replies with a clear reason while the other keeps working.
type Sender struct {
	Common
	DatabaseURL        string        // DATABASE_URL
	DBMaxConns         int           // DB_MAX_CONNS
	InteraktAPIURL     string        // INTERAKT_API_URL
	InteraktAPIKey     string        // INTERAKT_API_KEY
	NetcoreAPIURL      string        // NETCORE_API_URL (base URL; a value ending in /api/v2/message/ is accepted)
	NetcoreAPIKey      string        // NETCORE_API_KEY
	InteraktRatePerMin int           // INTERAKT_RATE_PER_MIN (0 = unlimited)
	NetcoreRatePerMin  int           // NETCORE_RATE_PER_MIN (0 = unlimited)
	SendTimeout        time.Duration // SEND_TIMEOUT
	RetryDeadline      time.Duration // SEND_RETRY_DEADLINE
	RetryBase          time.Duration // SEND_RETRY_BASE
	RetryMax           time.Duration // SEND_RETRY_MAX
	ReconcileWait      time.Duration // SEND_RECONCILE_WAIT
	Concurrency        int           // SEND_CONCURRENCY
}

// LoadSender reads and validates the sender's environment.
func LoadSender(get Getenv) (Sender, error) {
	l := &loader{get: get}
	c := Sender{
		Common:             l.common(":8083"),
		DatabaseURL:        l.databaseURL(true),
		DBMaxConns:         l.integer("DB_MAX_CONNS", 16, 1, 1000),
		InteraktAPIURL:     l.httpURL("INTERAKT_API_URL", "https://api.interakt.ai"),
		InteraktAPIKey:     l.str("INTERAKT_API_KEY", ""),
		NetcoreAPIURL:      l.httpURL("NETCORE_API_URL", "https://waapi.pepipost.com"),
		NetcoreAPIKey:      l.str("NETCORE_API_KEY", ""),
		InteraktRatePerMin: l.integer("INTERAKT_RATE_PER_MIN", 0, 0, 1_000_000),
		NetcoreRatePerMin:  l.integer("NETCORE_RATE_PER_MIN", 0, 0, 1_000_000),
		SendTimeout:        l.duration("SEND_TIMEOUT", 10*time.Second, 10*time.Millisecond),
		RetryDeadline:      l.duration("SEND_RETRY_DEADLINE", 10*time.Minute, time.Second),
		RetryBase:          l.duration("SEND_RETRY_BASE", time.Second, time.Millisecond),
		RetryMax:           l.duration("SEND_RETRY_MAX", time.Minute, time.Millisecond),
		ReconcileWait:      l.duration("SEND_RECONCILE_WAIT", time.Minute, 100*time.Millisecond),
		Concurrency:        l.integer("SEND_CONCURRENCY", 64, 1, 4096),
	}
	if c.RetryMax < c.RetryBase {
		l.fail("SEND_RETRY_MAX", "must be at least SEND_RETRY_BASE (%v), got %v", c.RetryBase, c.RetryMax)
	}
	// The original system's setting held the full send path; keep accepting it.
	c.NetcoreAPIURL = strings.TrimSuffix(strings.TrimSuffix(c.NetcoreAPIURL, "/"), "/api/v2/message")
	c.InteraktAPIURL = strings.TrimSuffix(c.InteraktAPIURL, "/")
	return c, l.err()
}
