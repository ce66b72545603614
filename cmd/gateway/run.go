package main

import (
	"context"
	"io"

	"github.com/chatwire/chatwire/pkg/app"
	"github.com/chatwire/chatwire/pkg/config"
)

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := config.LoadGateway(getenv)
	if err != nil {
		return err
	}
	base, err := app.Boot(ctx, "gateway", cfg.Common, stderr)
	if err != nil {
		return err
	}
	defer base.Close(cfg.ShutdownTimeout)
	l, err := app.Listen(cfg.HTTPAddr)
	if err != nil {
		return err
	}
	e := app.NewEcho(base.Log, base.Ready)
	base.Log.Info("gateway listening", "addr", l.Addr().String())
	return app.Serve(ctx, l, e, cfg.ShutdownTimeout)
}
