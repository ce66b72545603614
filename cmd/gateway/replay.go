package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/chatwire/chatwire/pkg/gateway"
)

// replay implements `gateway replay`: after a parser fix, publish what the bodies kept on
// inbound.invalid.<channel> now contain. One JSON line per kept body on stdout, a summary on
// stderr.
func replay(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gateway replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	channel := fs.String("channel", "", "only this channel's bodies (interakt or netcore); default all")
	from := fs.Uint64("from-seq", 0, "first INBOUND stream sequence to read; default the oldest kept")
	dry := fs.Bool("dry-run", false, "parse and report, publish nothing")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gateway replay [--channel interakt|netcore] [--from-seq N] [--dry-run]")
		fmt.Fprintln(stderr, "Re-parses the raw bodies kept on inbound.invalid.<channel> and publishes the events the current parser finds.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	cfg, base, js, err := boot(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer base.Close(cfg.ShutdownTimeout)
	gw := gateway.New(base.Log, js, gateway.Config{PublishTimeout: cfg.PublishTimeout, MaxBytes: cfg.WebhookMaxBytes})
	enc := json.NewEncoder(stdout)
	counts := map[string]int{}
	events := 0
	err = gw.Replay(ctx, base.JS, gateway.ReplayOptions{Channel: *channel, FromSeq: *from, DryRun: *dry},
		func(r gateway.ReplayResult) {
			counts[r.Result]++
			events += r.Events
			_ = enc.Encode(r)
		})
	fmt.Fprintf(stderr, "replay: %d replayed, %d still invalid, %d dry-run, %d events\n",
		counts[gateway.ReplayReplayed], counts[gateway.ReplayStillInvalid], counts[gateway.ReplayDryRun], events)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	return nil
}
