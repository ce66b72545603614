package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/gateway"
)

// normalizeLine is one JSON line of `gateway normalize`: an event exactly as the server would
// publish it (minus the id it assigns), an invalid item, or an ignored one.
type normalizeLine struct {
	Kind       string          `json:"kind"`
	Subject    string          `json:"subject,omitempty"`
	MsgID      string          `json:"nats_msg_id,omitempty"`
	Event      json.RawMessage `json:"event,omitempty"`
	ExternalID string          `json:"external_id,omitempty"`
	Reason     string          `json:"reason,omitempty"`
}

// normalize runs the parser the server uses on one webhook body (a file or stdin) and prints the
// normalized events as JSON lines. It fails when the body, or any item of a batch, is not
// understood, so an operator can check a body from inbound.invalid.<channel> against a fixed build.
func normalize(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gateway normalize", flag.ContinueOnError)
	fs.SetOutput(stderr)
	channel := fs.String("channel", "", "provider that sent the body: interakt or netcore")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gateway normalize --channel interakt|netcore [file]")
		fmt.Fprintln(stderr, "Reads one webhook body from file (or stdin) and prints the normalized events as JSON lines.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("normalize: %w", err)
	}
	if *channel == "" {
		fs.Usage()
		return errors.New("normalize: --channel is required (interakt or netcore)")
	}
	if !event.ValidChannel(*channel) {
		return fmt.Errorf("normalize: --channel must be interakt or netcore, got %q", *channel)
	}
	if fs.NArg() > 1 {
		return errors.New("normalize: at most one file")
	}
	in, name := stdin, "stdin"
	if fs.NArg() == 1 && fs.Arg(0) != "-" {
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			return fmt.Errorf("normalize: %w", err)
		}
		defer f.Close()
		in, name = f, fs.Arg(0)
	}
	body, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("normalize: reading %s: %w", name, err)
	}
	batch, err := gateway.Normalize(*channel, body, time.Now())
	if errors.Is(err, gateway.ErrUnknownChannel) {
		return fmt.Errorf("normalize: --channel: %w", err)
	}
	if err != nil {
		return fmt.Errorf("normalize: %s is not a %s webhook chatwire understands: %w", name, *channel, err)
	}
	out, err := batch.Outgoing(nil)
	if err != nil {
		return fmt.Errorf("normalize: %w", err)
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	invalid := 0
	for _, o := range out {
		line := normalizeLine{Kind: o.Kind, Subject: o.Subject, MsgID: o.MsgID, Event: o.Event, Reason: o.Reason}
		if o.Kind == gateway.KindInvalid {
			invalid++
		}
		if err := enc.Encode(line); err != nil {
			return fmt.Errorf("normalize: writing: %w", err)
		}
	}
	for _, ig := range batch.Ignored {
		if err := enc.Encode(normalizeLine{Kind: "ignored", ExternalID: ig.ExternalID, Reason: ig.Reason}); err != nil {
			return fmt.Errorf("normalize: writing: %w", err)
		}
	}
	if invalid > 0 {
		return fmt.Errorf("normalize: %d item(s) of %s not understood (printed with kind \"invalid\")", invalid, name)
	}
	return nil
}
