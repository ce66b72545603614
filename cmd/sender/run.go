package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/chatwire/chatwire/pkg/app"
	"github.com/chatwire/chatwire/pkg/config"
	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/provider/interakt"
	"github.com/chatwire/chatwire/pkg/provider/netcore"
	"github.com/chatwire/chatwire/pkg/reply"
	"github.com/chatwire/chatwire/pkg/store"
)

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("unknown argument %q (usage: sender)", args[0])
	}
	cfg, err := config.LoadSender(getenv)
	if err != nil {
		return err
	}
	log := app.NewLogger(stderr, cfg.LogLevel, cfg.LogFormat, "sender")
	db, err := store.OpenMigrated(ctx, cfg.DatabaseURL, cfg.DBMaxConns, log)
	if err != nil {
		return err
	}
	defer db.Close()

	base, err := app.Boot(ctx, "sender", cfg.Common, stderr)
	if err != nil {
		return err
	}
	defer base.Close(cfg.ShutdownTimeout)

	// One transport for both providers, with as many idle connections as concurrent sends: Go's
	// default keeps two per host, which would reconnect on nearly every send.
	client := &http.Client{
		Timeout: cfg.SendTimeout + 5*time.Second, // backstop; each send has its own deadline
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout: 5 * time.Second,
			MaxIdleConns:        2 * cfg.Concurrency,
			MaxIdleConnsPerHost: cfg.Concurrency,
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   true,
		},
	}
	senders := map[string]reply.Sender{}
	if cfg.InteraktAPIKey != "" {
		senders[event.ChannelInterakt] = interakt.NewSender(cfg.InteraktAPIURL, cfg.InteraktAPIKey, client)
	} else {
		base.Log.Warn("INTERAKT_API_KEY is not set: replies to Interakt conversations will fail with \"channel interakt is not configured\"")
	}
	if cfg.NetcoreAPIKey != "" {
		senders[event.ChannelNetcore] = netcore.NewSender(cfg.NetcoreAPIURL, cfg.NetcoreAPIKey, client)
	} else {
		base.Log.Warn("NETCORE_API_KEY is not set: replies to Netcore conversations will fail with \"channel netcore is not configured\"")
	}

	l, err := app.Listen(cfg.HTTPAddr)
	if err != nil {
		return err
	}
	e := app.NewEcho(base.Log, base.Ready, store.Ready(db))

	w := reply.New(db, base.JS, base.Log, reply.Config{
		Senders: senders,
		RatePerMin: map[string]int{
			event.ChannelInterakt: cfg.InteraktRatePerMin,
			event.ChannelNetcore:  cfg.NetcoreRatePerMin,
		},
		Concurrency:   cfg.Concurrency,
		SendTimeout:   cfg.SendTimeout,
		RetryDeadline: cfg.RetryDeadline,
		RetryBase:     cfg.RetryBase,
		RetryMax:      cfg.RetryMax,
		ReconcileWait: cfg.ReconcileWait,
	})

	// The worker stops when ctx ends or it fails; the HTTP server follows.
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	werr := make(chan error, 1)
	go func() {
		err := w.Run(wctx)
		if err != nil {
			stop()
		}
		werr <- err
	}()
	base.Log.Info("sender listening", "addr", l.Addr().String(), "concurrency", cfg.Concurrency,
		"interakt_rate_per_min", cfg.InteraktRatePerMin, "netcore_rate_per_min", cfg.NetcoreRatePerMin)
	serveErr := app.Serve(wctx, l, e, cfg.ShutdownTimeout)

	// Let the sends in flight finish, within the shutdown bound, before NATS is drained.
	stop()
	select {
	case err := <-werr:
		if err != nil {
			return fmt.Errorf("reply worker: %w", err)
		}
	case <-time.After(cfg.ShutdownTimeout):
		base.Log.Warn("sends still in flight at shutdown; their commands will be redelivered and reconciled")
	}
	return serveErr
}
