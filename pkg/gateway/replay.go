package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/queue"
)

// Replay results.
const (
	ReplayReplayed     = "replayed"
	ReplayStillInvalid = "still_invalid"
	ReplayDryRun       = "dry_run"
)

// ReplayResult is what happened to one raw body kept on inbound.invalid.<channel>.
type ReplayResult struct {
	Seq     uint64 `json:"seq"`
	Channel string `json:"channel"`
	Result  string `json:"result"`
	Events  int    `json:"events"`
	Invalid int    `json:"invalid_items,omitempty"` // items of a batch the parser still refuses
	Reason  string `json:"reason,omitempty"`
}

// ReplayOptions selects what Replay reads.
type ReplayOptions struct {
	Channel string // "" = every channel
	FromSeq uint64 // first INBOUND sequence to read; 0 = the oldest kept
	DryRun  bool   // parse and report, publish nothing
}

// Replay runs the current parser over the raw bodies kept on inbound.invalid.<channel>, from
// FromSeq up to the stream's last message at the start, and publishes the events it now finds
// exactly as the webhook endpoint would: same subjects, same Nats-Msg-Id. Replaying is
// idempotent: inside the duplicate window JetStream drops the copies, and after it the ingestor's
// unique index does. Items of a batch that are still not understood are counted, not published
// again: the kept body already holds them. report is called once per kept body, in order.
func (g *Gateway) Replay(ctx context.Context, js jetstream.JetStream, opt ReplayOptions, report func(ReplayResult)) error {
	subject := queue.InboundInvalidSubject("*")
	if opt.Channel != "" {
		if !event.ValidChannel(opt.Channel) {
			return fmt.Errorf("%w %q", ErrUnknownChannel, opt.Channel)
		}
		subject = queue.InboundInvalidSubject(opt.Channel)
	}
	stream, err := js.Stream(ctx, queue.StreamInbound)
	if err != nil {
		return fmt.Errorf("opening stream %s: %w", queue.StreamInbound, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("reading stream %s: %w", queue.StreamInbound, err)
	}
	last := info.State.LastSeq
	if last == 0 || opt.FromSeq > last {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverAllPolicy}
	if opt.FromSeq > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, opt.FromSeq
	}
	cons, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("reading %s: %w", subject, err)
	}
	for ctx.Err() == nil {
		m, err := cons.Next(jetstream.FetchMaxWait(time.Second))
		if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
			return nil // nothing more on the subject
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", subject, err)
		}
		meta, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("reading %s: %w", subject, err)
		}
		if meta.Sequence.Stream > last {
			return nil // published after the replay began
		}
		res, err := g.replayOne(ctx, m, meta.Sequence.Stream, opt.DryRun)
		if err != nil {
			return err
		}
		report(res)
		if meta.NumPending == 0 || meta.Sequence.Stream == last {
			return nil
		}
	}
	return ctx.Err()
}

func (g *Gateway) replayOne(ctx context.Context, m jetstream.Msg, seq uint64, dryRun bool) (ReplayResult, error) {
	channel := m.Subject()[strings.LastIndexByte(m.Subject(), '.')+1:]
	res := ReplayResult{Seq: seq, Channel: channel}
	batch, err := Normalize(channel, m.Data(), g.now())
	if err != nil {
		res.Result, res.Reason = ReplayStillInvalid, err.Error()
		return res, nil
	}
	res.Invalid = len(batch.Invalid)
	if res.Invalid > 0 && len(batch.Messages)+len(batch.Statuses) == 0 {
		res.Result, res.Reason = ReplayStillInvalid, batch.Invalid[0].Reason
		return res, nil
	}
	batch.Invalid = nil
	out, err := batch.Outgoing(func() string { return ulid.Make().String() })
	if err != nil {
		res.Result, res.Reason = ReplayStillInvalid, err.Error()
		return res, nil
	}
	res.Events = len(out)
	if dryRun {
		res.Result = ReplayDryRun
		return res, nil
	}
	if err := g.publish(ctx, channel, out); err != nil {
		return res, fmt.Errorf("replaying INBOUND seq %d: %w", seq, err)
	}
	res.Result = ReplayReplayed
	return res, nil
}
