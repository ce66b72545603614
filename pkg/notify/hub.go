package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/queue"
)

// TeamUnassigned receives events of conversations that have no team yet (the classifier has not
// run, or could not decide): the classifier's fallback team does the triage.
const TeamUnassigned = "general"

// effectiveTeam is the team whose agents see an event published with team t.
func effectiveTeam(t string) string {
	if t = normTeam(t); t == "" {
		return TeamUnassigned
	}
	return t
}

type connSet map[*conn]struct{}

// Hub reads the whole EVENTS stream with one ordered consumer and fans every event out to this
// replica's sockets. Replicas share nothing: each reads every event, so they scale without
// coordination.
type Hub struct {
	js  jetstream.JetStream
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	conns   connSet
	admins  connSet
	byTeam  map[string]connSet
	byRoom  map[string]connSet
	cursor  uint64  // last stream sequence fanned out
	targets []*conn // fan-out scratch, reused across events
	epoch   string
	cc      jetstream.ConsumeContext

	ready atomic.Bool
	stop  chan struct{}
	wg    sync.WaitGroup
}

func newHub(js jetstream.JetStream, cfg Config, log *slog.Logger) *Hub {
	return &Hub{
		js: js, cfg: cfg, log: log,
		conns: connSet{}, admins: connSet{}, byTeam: map[string]connSet{}, byRoom: map[string]connSet{},
		stop: make(chan struct{}),
	}
}

// epochOf names one life of the EVENTS stream: its creation time changes when it is recreated,
// and sequence numbers from another life mean nothing.
func epochOf(info *jetstream.StreamInfo) string {
	return strconv.FormatInt(info.Created.UnixNano(), 10)
}

// start reads the stream's position and consumes from just after it, so the hub's cursor and the
// first event it fans out are contiguous.
func (h *Hub) start(ctx context.Context) error {
	stream, err := h.js.Stream(ctx, queue.StreamEvents)
	if err != nil {
		return fmt.Errorf("looking up stream %s: %w", queue.StreamEvents, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("reading stream %s: %w", queue.StreamEvents, err)
	}
	if err := h.consumeFrom(ctx, stream, info); err != nil {
		return err
	}
	h.ready.Store(true)
	h.wg.Add(1)
	go h.watchEpoch()
	return nil
}

func (h *Hub) consumeFrom(ctx context.Context, stream jetstream.Stream, info *jetstream.StreamInfo) error {
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   info.State.LastSeq + 1,
	})
	if err != nil {
		return fmt.Errorf("creating ordered consumer on %s: %w", queue.StreamEvents, err)
	}
	h.mu.Lock()
	h.cursor = info.State.LastSeq
	h.epoch = epochOf(info)
	h.mu.Unlock()
	cc, err := cons.Consume(h.handle, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, jetstream.ErrNoHeartbeat) {
			h.log.Warn("events consumer", "err", err)
		}
	}))
	if err != nil {
		return fmt.Errorf("consuming %s: %w", queue.StreamEvents, err)
	}
	h.mu.Lock()
	h.cc = cc
	h.mu.Unlock()
	return nil
}

// watchEpoch notices a recreated EVENTS stream: the consumer restarts on the new stream and every
// client is told to reconnect, where its old cursor earns it a resync_required.
func (h *Hub) watchEpoch() {
	defer h.wg.Done()
	t := time.NewTicker(h.cfg.EpochCheck)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		h.checkEpoch(ctx)
		cancel()
	}
}

func (h *Hub) checkEpoch(ctx context.Context) {
	stream, err := h.js.Stream(ctx, queue.StreamEvents)
	if err != nil {
		h.log.Warn("checking events stream", "err", err)
		return
	}
	info, err := stream.Info(ctx)
	if err != nil {
		h.log.Warn("checking events stream", "err", err)
		return
	}
	h.mu.Lock()
	same := epochOf(info) == h.epoch
	cc := h.cc
	h.mu.Unlock()
	if same {
		return
	}
	h.log.Warn("events stream was recreated; restarting fan-out and closing connections", "epoch", epochOf(info))
	h.ready.Store(false)
	if cc != nil {
		cc.Stop()
	}
	if err := h.consumeFrom(ctx, stream, info); err != nil {
		h.log.Error("restarting events consumer", "err", err)
		return // not ready; retried on the next tick because the epoch still differs
	}
	h.closeAll(websocket.StatusServiceRestart, reasonReset)
	h.ready.Store(true)
}

// handle fans one stream message out. Ordered consumers need no ack.
func (h *Hub) handle(msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		h.log.Warn("event without metadata", "err", err)
		return
	}
	seq := meta.Sequence.Stream
	mEventsReceived.Inc()
	var f *frame
	ev, err := event.Decode[event.AgentEvent](msg.Data())
	if err == nil {
		var data []byte
		if data, err = encodeEvent(&ev, seq); err == nil {
			f = newFrame(seq, data, meta.Timestamp)
		}
	}
	if err != nil {
		mEventsInvalid.Inc()
		h.log.Warn("skipping undecodable event", "seq", seq, "subject", msg.Subject(), "err", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if seq <= h.cursor {
		return
	}
	if f != nil {
		h.fanoutLocked(ev.Team, ev.ConversationID, f)
	}
	h.cursor = seq
}

// fanoutLocked delivers f to every connection allowed to see it: admins, the event's team, and
// whoever joined the conversation's room. Each connection gets it once.
func (h *Hub) fanoutLocked(team, conv string, f *frame) {
	eff := effectiveTeam(team)
	targets := h.targets[:0]
	for c := range h.admins {
		targets = append(targets, c)
	}
	members := h.byTeam[eff]
	for c := range members {
		targets = append(targets, c)
	}
	for c := range h.byRoom[conv] {
		if _, inTeam := members[c]; !inTeam && !c.agent.Admin {
			targets = append(targets, c)
		}
	}
	deliverAll(targets, f)
	clear(targets) // keep the capacity, not the connections
	h.targets = targets[:0]
}

// fanoutBlock is how many connections a fan-out worker claims at a time, and how many sockets
// share one fan-out latency observation at most.
const fanoutBlock = 64

// deliverAll delivers f to targets on up to GOMAXPROCS goroutines (the socket writes dominate the
// cost) and returns when every target has it written or queued, so events stay in order. Frames
// written directly are counted per block of up to fanoutBlock sockets, and the block's fan-out
// latency is observed once, when its last write finished.
func deliverAll(targets []*conn, f *frame) {
	var next atomic.Int64
	work := func() {
		for {
			end := int(next.Add(fanoutBlock))
			start := end - fanoutBlock
			if start >= len(targets) {
				return
			}
			written := 0
			for _, c := range targets[start:min(end, len(targets))] {
				if c.deliver(f) {
					written++
				}
			}
			if written > 0 {
				mEventsDelivered.Add(float64(written))
				if !f.stored.IsZero() {
					mFanoutLatency.Observe(time.Since(f.stored).Seconds())
				}
			}
		}
	}
	workers := min(runtime.GOMAXPROCS(0), (len(targets)+fanoutBlock-1)/fanoutBlock)
	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
}

// register adds c to the fan-out and queues its hello. From here on every visible event after
// c.liveAfter reaches c (held until the handshake ends).
func (h *Hub) register(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.conns[c] = struct{}{}
	if c.agent.Admin {
		h.admins[c] = struct{}{}
	} else {
		for _, t := range c.agent.Teams {
			set := h.byTeam[t]
			if set == nil {
				set = connSet{}
				h.byTeam[t] = set
			}
			set[c] = struct{}{}
		}
	}
	mConnections.Inc()
	c.mu.Lock()
	c.liveAfter = h.cursor
	c.pushLocked(newFrame(0, mustJSON(helloFrame{Event: event.EventHello, Epoch: h.epoch, Seq: h.cursor}), time.Time{}))
	c.mu.Unlock()
}

func (h *Hub) unregister(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.conns[c]; !ok {
		return
	}
	delete(h.conns, c)
	delete(h.admins, c)
	for _, t := range c.agent.Teams {
		if set := h.byTeam[t]; set != nil {
			delete(set, c)
			if len(set) == 0 {
				delete(h.byTeam, t)
			}
		}
	}
	for conv := range c.rooms {
		h.leaveLocked(c, conv)
	}
	mConnections.Dec()
}

var errTooManyRooms = errors.New("too many joined conversations")

func (h *Hub) join(c *conn, conv string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := c.rooms[conv]; ok {
		return nil
	}
	if len(c.rooms) >= h.cfg.MaxRooms {
		return fmt.Errorf("%w: at most %d", errTooManyRooms, h.cfg.MaxRooms)
	}
	if c.rooms == nil {
		c.rooms = map[string]struct{}{}
	}
	c.rooms[conv] = struct{}{}
	set := h.byRoom[conv]
	if set == nil {
		set = connSet{}
		h.byRoom[conv] = set
	}
	set[c] = struct{}{}
	return nil
}

func (h *Hub) leave(c *conn, conv string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.leaveLocked(c, conv)
}

func (h *Hub) leaveLocked(c *conn, conv string) {
	delete(c.rooms, conv)
	if len(c.rooms) == 0 {
		c.rooms = nil
	}
	if set := h.byRoom[conv]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(h.byRoom, conv)
		}
	}
}

// roomsOf copies c's rooms, for a replay running outside hub.mu.
func (h *Hub) roomsOf(c *conn) map[string]struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]struct{}, len(c.rooms))
	for k := range c.rooms {
		out[k] = struct{}{}
	}
	return out
}

func (h *Hub) currentEpoch() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.epoch
}

// position returns the last stream sequence fanned out.
func (h *Hub) position() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cursor
}

// count returns the number of registered connections.
func (h *Hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// closeAll closes every connection with code and reason.
func (h *Hub) closeAll(code websocket.StatusCode, reason string) []*conn {
	h.mu.Lock()
	all := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		all = append(all, c)
	}
	h.mu.Unlock()
	for _, c := range all {
		c.close(code, reason)
	}
	return all
}

// shutdown stops the fan-out and closes every connection, waiting up to ctx for the close
// handshakes.
func (h *Hub) shutdown(ctx context.Context) {
	h.ready.Store(false)
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	h.mu.Lock()
	cc := h.cc
	h.mu.Unlock()
	if cc != nil {
		cc.Stop()
	}
	for _, c := range h.closeAll(websocket.StatusGoingAway, reasonShutdown) {
		select {
		case <-c.done:
		case <-ctx.Done():
			return
		}
	}
	h.wg.Wait()
}
