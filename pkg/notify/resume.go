package notify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/queue"
)

// Why a resume point cannot be honoured; sent to the client in resync_required.
const (
	resyncEpoch   = "epoch changed: the event stream was recreated"
	resyncExpired = "events after after_seq are no longer retained"
	resyncFuture  = "after_seq is beyond the stream: it belongs to another epoch"
	resyncTooFar  = "too many events since after_seq: reload over REST"
	resyncFailed  = "replay failed: reload over REST"
)

var errClosed = errors.New("connection closed")

// resume replays what the client missed and then lets live frames through.
//
// The seam: the connection was registered with the hub at liveAfter and has been paused since, so
// every visible live event with a higher sequence is held. Replay covers (after, liveAfter] from
// the stream; the held frames follow, minus any at or below the client's cursor. Nothing is
// missed and nothing is sent twice. A resume that arrives after live frames already flowed
// (past the handshake grace) still misses and duplicates nothing, but the replayed frames then
// arrive after some newer ones.
func (c *conn) resume(m ClientMessage) {
	if c.resumed {
		c.sendJSON(errorFrame{Event: EventError, Error: "resume is accepted once per connection, as its first message"})
		return
	}
	c.resumed = true
	c.mu.Lock()
	c.paused, c.replaying = true, true
	liveAfter := c.liveAfter
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), c.hub.cfg.ReplayTimeout)
	n, last, reason, err := c.hub.replay(ctx, c, m.AfterSeq, m.Epoch, liveAfter)
	cancel()
	if errors.Is(err, errClosed) {
		return
	}
	if err != nil {
		mResumes.WithLabelValues("error").Inc()
		c.hub.log.Warn("replay failed", "conn", c.id, "agent", c.agent.ID, "after_seq", m.AfterSeq, "err", err)
		reason = resyncFailed
	} else if reason != "" {
		mResumes.WithLabelValues("resync").Inc()
	}
	if reason != "" {
		c.sendJSON(resyncFrame{Event: event.EventResyncRequired, Epoch: c.hub.currentEpoch(), Seq: liveAfter, Reason: reason})
	} else {
		mResumes.WithLabelValues("replayed").Inc()
		c.mu.Lock()
		c.minSeq = m.AfterSeq
		c.mu.Unlock()
		c.sendJSON(ackFrame{Event: EventAck, Type: MsgResume, Replayed: &n, Seq: max(m.AfterSeq, liveAfter, last)})
	}
	c.release(true)
}

// replay sends the events in (after, liveAfter] that c may see, in order. It returns how many it
// sent and the last sequence read, or a resync reason when the resume point is gone.
func (h *Hub) replay(ctx context.Context, c *conn, after uint64, epoch string, liveAfter uint64) (n int, last uint64, reason string, err error) {
	if epoch != "" && epoch != h.currentEpoch() {
		return 0, 0, resyncEpoch, nil
	}
	stream, err := h.js.Stream(ctx, queue.StreamEvents)
	if err != nil {
		return 0, 0, "", fmt.Errorf("looking up stream: %w", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, 0, "", fmt.Errorf("reading stream state: %w", err)
	}
	switch {
	case after > info.State.LastSeq:
		return 0, 0, resyncFuture, nil
	case after >= liveAfter:
		return 0, 0, "", nil // this replica is behind the client; live frames at or below after are dropped
	case info.State.FirstSeq > after+1:
		return 0, 0, resyncExpired, nil
	case liveAfter-after > uint64(h.cfg.ResumeMax):
		return 0, 0, resyncTooFar, nil
	}
	rooms := h.roomsOf(c)
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       after + 1,
		InactiveThreshold: time.Minute,
	})
	if err != nil {
		return 0, 0, "", fmt.Errorf("creating replay consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(min(512, int(liveAfter-after)+1)))
	if err != nil {
		return 0, 0, "", fmt.Errorf("reading replay: %w", err)
	}
	defer func() {
		it.Stop()
		// Ordered consumers are otherwise left to expire on the server; a reconnect storm would
		// pile thousands of them up.
		if info := cons.CachedInfo(); info != nil {
			go func() {
				dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = h.js.DeleteConsumer(dctx, queue.StreamEvents, info.Name)
			}()
		}
	}()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return n, last, "", fmt.Errorf("reading replay after seq %d: %w", last, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return n, last, "", fmt.Errorf("replayed message metadata: %w", err)
		}
		seq := meta.Sequence.Stream
		if seq > liveAfter {
			return n, last, "", nil
		}
		last = seq
		ev, derr := event.Decode[event.AgentEvent](msg.Data())
		if derr == nil && c.visible(ev.Team, ev.ConversationID, rooms) {
			data, jerr := encodeEvent(&ev, seq)
			if jerr == nil {
				if !c.send(newFrame(seq, data, time.Time{})) {
					return n, last, "", errClosed
				}
				n++
				mReplayed.Inc()
			}
		}
		if seq == liveAfter || meta.NumPending == 0 {
			return n, last, "", nil
		}
	}
}
