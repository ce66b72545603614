package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatwire/chatwire/pkg/config"
	"github.com/chatwire/chatwire/pkg/queue"
)

// Base is what every process holds once started: its logger and its JetStream connection with
// the topology declared.
type Base struct {
	Log *slog.Logger
	NC  *nats.Conn
	JS  jetstream.JetStream
}

// Boot builds the logger, connects to NATS and declares the JetStream topology.
func Boot(ctx context.Context, process string, c config.Common, logOut io.Writer) (*Base, error) {
	log := NewLogger(logOut, c.LogLevel, c.LogFormat, process)
	nc, js, err := queue.Connect(ctx, c.NATSURL, "chatwire-"+process, log)
	if err != nil {
		return nil, err
	}
	tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	topo := queue.DefaultTopology()
	topo.Replicas = c.NATSReplicas
	if err := topo.Ensure(tctx, js); err != nil {
		nc.Close()
		return nil, fmt.Errorf("NATS_URL: %w", err)
	}
	return &Base{Log: log, NC: nc, JS: js}, nil
}

// Ready is a ReadyFunc: JetStream answers.
func (b *Base) Ready(ctx context.Context) error { return queue.Ready(ctx, b.NC, b.JS) }

// Close drains the NATS connection within timeout.
func (b *Base) Close(timeout time.Duration) {
	done := make(chan struct{})
	b.NC.SetClosedHandler(func(*nats.Conn) { close(done) })
	if err := b.NC.Drain(); err != nil {
		b.NC.Close()
		return
	}
	select {
	case <-done:
	case <-time.After(timeout):
		b.NC.Close()
	}
}

// Main runs a process's run function under a context cancelled by SIGINT or SIGTERM, and exits
// non-zero with one line on error.
func Main(process string, run func(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", process, err)
		os.Exit(1)
	}
}
