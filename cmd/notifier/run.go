package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/labstack/echo/v4"

	"github.com/chatwire/chatwire/pkg/agentapi"
	"github.com/chatwire/chatwire/pkg/app"
	"github.com/chatwire/chatwire/pkg/config"
	"github.com/chatwire/chatwire/pkg/notify"
	"github.com/chatwire/chatwire/pkg/store"
)

// apiDBConns is the agent REST API's Postgres pool: its statements are short single-row or
// single-page reads and writes.
const apiDBConns = 8

// apiUnavailable is the 503 answer of /api/* when the notifier runs without a database.
const apiUnavailable = "DATABASE_URL is not configured: this notifier serves the WebSocket only, not the agent REST API"

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "token" {
		return mintToken(args[1:], getenv, os.Stdout, stderr)
	}
	cfg, err := config.LoadNotifier(getenv)
	if err != nil {
		return err
	}
	// The REST API is optional: without a database the WebSocket still runs and /api answers 503.
	// A configured but unreachable database fails start-up, before NATS, as in the sender.
	var db *sqlx.DB
	if cfg.DatabaseURL != "" {
		if db, err = store.Open(ctx, cfg.DatabaseURL, apiDBConns); err != nil {
			return err
		}
		defer db.Close()
	}
	base, err := app.Boot(ctx, "notifier", cfg.Common, stderr)
	if err != nil {
		return err
	}
	defer base.Close(cfg.ShutdownTimeout)

	verifier, err := newVerifier(cfg)
	if err != nil {
		return err
	}
	if len(cfg.AllowedOrigins) == 0 {
		base.Log.Warn("ALLOWED_ORIGINS is empty: browsers can connect only from the notifier's own host")
	}
	var api *agentapi.API
	if db != nil {
		api, err = agentapi.New(db, base.JS, agentapi.Config{Verifier: verifier, AllowedOrigins: cfg.AllowedOrigins}, base.Log)
		if err != nil {
			return err
		}
	} else {
		base.Log.Warn("DATABASE_URL is not set: the agent REST API (/api) answers 503; the WebSocket works")
	}
	ws, err := notify.NewServer(ctx, base.JS, notify.Config{
		Verifier:         verifier,
		AllowedOrigins:   cfg.AllowedOrigins,
		FirstMessageAuth: cfg.FirstMessageAuth,
		SendQueue:        cfg.SendQueue,
		PingInterval:     cfg.PingInterval,
		IdleTimeout:      cfg.IdleTimeout,
		WriteTimeout:     cfg.WriteTimeout,
		ResumeGrace:      cfg.ResumeGrace,
		ResumeMax:        cfg.ResumeMax,
	}, base.Log)
	if err != nil {
		return err
	}

	l, err := app.Listen(cfg.HTTPAddr)
	if err != nil {
		ws.Shutdown(context.Background())
		return err
	}
	e := app.NewEcho(base.Log, base.Ready, ws.Ready)
	e.GET("/ws", echo.WrapHandler(ws))
	if api != nil {
		api.Mount(e)
	} else {
		agentapi.MountUnavailable(e, apiUnavailable)
	}
	base.Log.Info("notifier listening", "addr", l.Addr().String())
	serveErr := app.Serve(ctx, l, e, cfg.ShutdownTimeout)
	// HTTP shutdown does not touch hijacked connections: close the sockets with 1001 so agents
	// reconnect to another replica and resume.
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	ws.Shutdown(sctx)
	cancel()
	return serveErr
}

func newVerifier(cfg config.Notifier) (*notify.Verifier, error) {
	if cfg.RSAPublicKey != nil {
		v, err := notify.NewRS256Verifier(cfg.RSAPublicKey)
		if err != nil {
			return nil, fmt.Errorf("JWT_PUBLIC_KEY: %w", err)
		}
		return v, nil
	}
	v, err := notify.NewHS256Verifier([]byte(cfg.JWTSecret))
	if err != nil {
		return nil, fmt.Errorf("JWT_SECRET: %w", err)
	}
	return v, nil
}

// mintToken implements `notifier token`: a development HS256 token signed with JWT_SECRET.
func mintToken(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("notifier token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sub := fs.String("sub", "", "agent id (required)")
	name := fs.String("name", "", "agent display name")
	teams := fs.String("teams", "", "comma-separated team names, e.g. support,sales")
	role := fs.String("role", notify.RoleAgent, "agent or admin")
	ttl := fs.Duration("ttl", 12*time.Hour, "validity")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: JWT_SECRET=… notifier token --sub agent-1 [--name Asha] [--teams support,sales] [--role agent|admin] [--ttl 12h]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("token: %w", err)
	}
	secret := strings.TrimSpace(getenv("JWT_SECRET"))
	if secret == "" {
		return errors.New("token: JWT_SECRET is required (dev tokens are HS256; RS256 tokens come from your identity provider)")
	}
	var list []string
	for _, t := range strings.Split(*teams, ",") {
		if t = strings.TrimSpace(t); t != "" {
			list = append(list, t)
		}
	}
	tok, err := notify.MintHS256([]byte(secret), *sub, *name, list, *role, *ttl)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}
