package main

import (
	"context"
	"io"
	"os"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatwire/chatwire/pkg/app"
	"github.com/chatwire/chatwire/pkg/config"
	"github.com/chatwire/chatwire/pkg/gateway"
)

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "normalize" {
		return normalize(args[1:], os.Stdin, os.Stdout, stderr)
	}
	if len(args) > 0 && args[0] == "replay" {
		return replay(ctx, args[1:], getenv, os.Stdout, stderr)
	}
	cfg, base, js, err := boot(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer base.Close(cfg.ShutdownTimeout)
	if mp := base.NC.MaxPayload(); mp > 0 && cfg.WebhookMaxBytes > mp {
		base.Log.Warn("WEBHOOK_MAX_BYTES exceeds the NATS server's max_payload: an unparseable body that large cannot be kept and will get 503",
			"webhook_max_bytes", cfg.WebhookMaxBytes, "nats_max_payload", mp)
	}
	gw := gateway.New(base.Log, js, gateway.Config{
		InteraktSecret:     cfg.InteraktWebhookSecret,
		NetcoreToken:       cfg.NetcoreWebhookToken,
		NetcoreTokenHeader: cfg.NetcoreTokenHeader,
		NetcoreTokenQuery:  cfg.NetcoreTokenQuery,
		MaxBytes:           cfg.WebhookMaxBytes,
		PublishTimeout:     cfg.PublishTimeout,
	})
	gw.WarnUnauthenticated()
	l, err := app.Listen(cfg.HTTPAddr)
	if err != nil {
		return err
	}
	e := app.NewEcho(base.Log, base.Ready)
	gw.Register(e)
	base.Log.Info("gateway listening", "addr", l.Addr().String())
	return app.Serve(ctx, l, e, cfg.ShutdownTimeout)
}

// boot loads the gateway's configuration, connects to NATS and returns the JetStream context
// the gateway publishes through: its own, so asynchronous publishes time out with the request
// that waits for them. The server and `gateway replay` share it.
func boot(ctx context.Context, getenv func(string) string, stderr io.Writer) (config.Gateway, *app.Base, jetstream.JetStream, error) {
	cfg, err := config.LoadGateway(getenv)
	if err != nil {
		return cfg, nil, nil, err
	}
	base, err := app.Boot(ctx, "gateway", cfg.Common, stderr)
	if err != nil {
		return cfg, nil, nil, err
	}
	js, err := gateway.NewJetStream(base.NC, cfg.PublishTimeout, 4096)
	if err != nil {
		base.Close(cfg.ShutdownTimeout)
		return cfg, nil, nil, err
	}
	return cfg, base, js, nil
}
