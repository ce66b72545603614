package config

import "time"

// Gateway is the webhook gateway's configuration.
type Gateway struct {
	Common
	InteraktWebhookSecret string        // INTERAKT_WEBHOOK_SECRET; unset = signatures not checked
	NetcoreWebhookToken   string        // NETCORE_WEBHOOK_TOKEN; unset = no token required
	NetcoreTokenHeader    string        // NETCORE_TOKEN_HEADER
	NetcoreTokenQuery     string        // NETCORE_TOKEN_QUERY
	WebhookMaxBytes       int64         // WEBHOOK_MAX_BYTES
	PublishTimeout        time.Duration // PUBLISH_TIMEOUT
}

// LoadGateway reads and validates the gateway's environment.
func LoadGateway(get Getenv) (Gateway, error) {
	l := &loader{get: get}
	c := Gateway{
		Common:                l.common(":8080"),
		InteraktWebhookSecret: l.str("INTERAKT_WEBHOOK_SECRET", ""),
		NetcoreWebhookToken:   l.str("NETCORE_WEBHOOK_TOKEN", ""),
		NetcoreTokenHeader:    l.str("NETCORE_TOKEN_HEADER", "X-Webhook-Token"),
		NetcoreTokenQuery:     l.str("NETCORE_TOKEN_QUERY", "token"),
		WebhookMaxBytes:       int64(l.integer("WEBHOOK_MAX_BYTES", 1<<20, 1024, 64<<20)),
		PublishTimeout:        l.duration("PUBLISH_TIMEOUT", 2*time.Second, 10*time.Millisecond),
	}
	return c, l.err()
}
