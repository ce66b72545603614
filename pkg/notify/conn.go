package notify

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// frame is one text frame ready to write. Live event frames are encoded once, WebSocket header
// included, and the same bytes are written to every connection that receives them.
type frame struct {
	seq    uint64    // stream sequence of an event; 0 for control frames
	wire   []byte    // the whole WebSocket text frame: header and JSON
	stored time.Time // when the event was stored in EVENTS, for the fan-out latency histogram
}

// newFrame wraps JSON data in an unmasked, unfragmented WebSocket text frame (RFC 6455 §5.2), the
// same bytes coder/websocket would write for it.
func newFrame(seq uint64, data []byte, stored time.Time) *frame {
	n := len(data)
	var hdr []byte
	switch {
	case n < 126:
		hdr = []byte{0x81, byte(n)}
	case n <= 0xffff:
		hdr = []byte{0x81, 126, byte(n >> 8), byte(n)}
	default:
		hdr = binary.BigEndian.AppendUint64([]byte{0x81, 127}, uint64(n))
	}
	wire := make([]byte, 0, len(hdr)+n)
	return &frame{seq: seq, wire: append(append(wire, hdr...), data...), stored: stored}
}

// Close reasons agents' clients may act on.
const (
	reasonSlow     = "slow consumer, resume"
	reasonIdle     = "idle timeout"
	reasonExpired  = "token expired"
	reasonShutdown = "server shutting down, reconnect and resume"
	reasonReset    = "event stream reset, reconnect"
	closeTimeout   = 2 * time.Second
)

// conn is one agent's WebSocket. Memory per idle connection is kept small on purpose (the target
// is 16 KiB at 10,000 connections): one reader goroutine, no writer goroutine unless frames are
// pending, small bufio buffers (see hijackWriter), no per-connection channels.
//
// Text frames bypass coder/websocket's writer: they are written whole, pre-encoded, to the socket
// under sw.mu, which also serializes the library's own control frames (pings, pongs, close). The
// fan-out writes a live frame directly when the connection has nothing queued and the socket
// takes it without waiting; otherwise the frame goes to the queue and a writer goroutine.
type conn struct {
	hub   *Hub
	ws    *websocket.Conn
	nc    net.Conn    // the hijacked TCP connection, for deadlines
	sw    *sockWriter // every write to nc goes through it
	id    uint64
	agent Agent

	rooms map[string]struct{} // guarded by hub.mu

	mu        sync.Mutex
	space     sync.Cond // signalled when the queue shrinks or the connection closes
	queue     []*frame  // frames for the writer, at most Config.SendQueue
	writing   bool      // a writeLoop goroutine owns the queue
	partial   []byte    // rest of a frame the fan-out began; the writer holds sw.mu until it is sent
	paused    bool      // live frames go to held (handshake grace or replay in progress)
	handshake bool      // no client message yet and the resume grace has not ended
	replaying bool      // a resume owns the pause; only it may release
	held      []*frame  // live frames held while paused, at most Config.SendQueue
	minSeq    uint64    // live frames at or below this sequence are dropped: the client has them
	liveAfter uint64    // every visible event after this sequence reaches this connection live
	closed    bool
	timer     *time.Timer // keepalive and the handshake grace, one timer for both

	resumed  bool         // touched only by the reader goroutine
	lastSeen atomic.Int64 // unix nanos of the last frame or pong from the client
	done     chan struct{}
}

func newConn(h *Hub, ws *websocket.Conn, sw *sockWriter, id uint64) *conn {
	c := &conn{hub: h, ws: ws, nc: sw.nc, sw: sw, id: id, paused: true, handshake: true, done: make(chan struct{})}
	c.space.L = &c.mu
	c.lastSeen.Store(time.Now().UnixNano())
	return c
}

// deliver hands a live event to the connection and reports whether it was written to the socket
// right away. It is called by the fan-out with hub.mu held, so it never blocks: a connection
// that cannot take the frame is closed as a slow consumer.
func (c *conn) deliver(f *frame) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || f.seq <= c.minSeq {
		return false
	}
	if c.paused {
		if len(c.held) >= c.hub.cfg.SendQueue {
			c.beginCloseLocked(websocket.StatusTryAgainLater, reasonSlow, true)
			return false
		}
		c.held = append(c.held, f)
		return false
	}
	// Nothing queued (the writer exits only when the queue is empty) and the socket free: write
	// now, without a goroutine. The library holds sw.mu only for a control frame; then queue.
	if !c.writing && c.sw.raw != nil && c.sw.mu.TryLock() {
		n, err := c.sw.tryWrite(f.wire)
		switch {
		case err != nil:
			c.sw.mu.Unlock()
			c.beginCloseLocked(websocket.StatusGoingAway, "write failed", false)
			return false
		case n == len(f.wire):
			c.sw.mu.Unlock()
			return true
		case n > 0:
			// The socket buffer filled mid-frame: the writer sends the rest, keeping sw.mu so
			// nothing else lands inside the frame.
			c.partial = f.wire[n:]
			c.writing = true
			go c.writeLoop(f)
			return false
		}
		c.sw.mu.Unlock() // the socket took nothing: queue the whole frame
	}
	if !c.pushLocked(f) {
		c.beginCloseLocked(websocket.StatusTryAgainLater, reasonSlow, true)
	}
	return false
}

// pushLocked appends f to the queue and makes sure a writer runs; false if the queue is full.
func (c *conn) pushLocked(f *frame) bool {
	if len(c.queue) >= c.hub.cfg.SendQueue {
		return false
	}
	c.queue = append(c.queue, f)
	if !c.writing {
		c.writing = true
		go c.writeLoop(nil)
	}
	return true
}

// send queues a frame from this connection's own goroutines (control frames, replay), waiting for
// room instead of dropping: only this connection waits. False if the connection closed.
func (c *conn) send(f *frame) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.closed && len(c.queue) >= c.hub.cfg.SendQueue {
		c.space.Wait()
	}
	if c.closed {
		return false
	}
	c.pushLocked(f)
	return true
}

func (c *conn) sendJSON(v any) bool { return c.send(newFrame(0, mustJSON(v), time.Time{})) }

// writeLoop drains the queue and exits when it is empty, so an idle connection has no writer
// goroutine (and no stack) at all. If the fan-out left a frame half written (started is that
// frame, c.partial its rest), the loop owns sw.mu and finishes that frame first, even on a
// connection that is closing: a close frame must not land inside it.
func (c *conn) writeLoop(started *frame) {
	for {
		c.mu.Lock()
		partial := c.partial
		c.partial = nil
		if partial == nil && (c.closed || len(c.queue) == 0) {
			c.writing = false
			c.queue = nil
			c.space.Broadcast()
			c.mu.Unlock()
			return
		}
		var batch []*frame
		if !c.closed {
			batch = c.queue
			c.queue = nil
			c.space.Broadcast()
		}
		c.mu.Unlock()

		if partial == nil {
			c.sw.mu.Lock() // waits only for a control frame the library is writing
		}
		// A write that cannot finish within WriteTimeout means the client stopped reading.
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.hub.cfg.WriteTimeout))
		err := c.sw.writeLocked(partial)
		if err == nil && started != nil {
			delivered(started)
		}
		started = nil
		for _, f := range batch {
			if err != nil {
				break
			}
			if err = c.sw.writeLocked(f.wire); err == nil {
				delivered(f)
			}
		}
		// The library also writes on its own (pongs, close replies) without setting a deadline;
		// a stale one would fail those writes.
		_ = c.nc.SetWriteDeadline(time.Time{})
		c.sw.mu.Unlock()
		if err != nil {
			c.mu.Lock()
			c.writing = false
			c.queue = nil
			c.partial = nil
			if isTimeout(err) {
				c.beginCloseLocked(websocket.StatusTryAgainLater, reasonSlow, true)
			} else {
				c.beginCloseLocked(websocket.StatusGoingAway, "write failed", false)
			}
			c.space.Broadcast()
			c.mu.Unlock()
			return
		}
	}
}

// delivered records one event frame written by a connection's writer goroutine (a replayed frame,
// or a live one that had to wait for the socket).
func delivered(f *frame) {
	if f.seq == 0 {
		return
	}
	mEventsDelivered.Inc()
	if !f.stored.IsZero() {
		mFanoutLatency.Observe(time.Since(f.stored).Seconds())
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// beginCloseLocked marks the connection closed (so nothing more is queued) and finishes the close
// handshake on another goroutine, since the caller may hold hub.mu.
func (c *conn) beginCloseLocked(code websocket.StatusCode, reason string, slow bool) {
	if c.closed {
		return
	}
	c.closed = true
	c.queue, c.held = nil, nil
	c.space.Broadcast()
	if c.timer != nil {
		c.timer.Stop()
	}
	if slow {
		mSlowDisconnects.Inc()
	}
	go c.finish(code, reason)
}

func (c *conn) close(code websocket.StatusCode, reason string) {
	c.mu.Lock()
	c.beginCloseLocked(code, reason, false)
	c.mu.Unlock()
}

// finish sends the close frame (bounded in time: a slow client may never read it), drops the
// TCP connection and unregisters.
func (c *conn) finish(code websocket.StatusCode, reason string) {
	_ = c.nc.SetDeadline(time.Now().Add(closeTimeout))
	_ = c.ws.Close(code, reason)
	_ = c.ws.CloseNow()
	c.hub.unregister(c)
	c.hub.log.Debug("agent disconnected", "conn", c.id, "agent", c.agent.ID, "code", int(code), "reason", reason)
	close(c.done)
}

// startTimer arms the handshake grace; keepalive takes the timer over afterwards.
func (c *conn) startTimer() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.timer = time.AfterFunc(c.hub.cfg.ResumeGrace, c.tick)
}

// tick runs on the connection's timer: it ends the handshake grace, then pings the client every
// PingInterval, closing it when it stayed silent for IdleTimeout or its token expired.
func (c *conn) tick() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if c.handshake {
		c.handshake = false
		c.releaseLocked(false)
		if !c.closed {
			c.timer.Reset(c.pingDelay())
		}
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()

	now := time.Now()
	if !c.agent.Expires.IsZero() && now.After(c.agent.Expires) {
		c.close(websocket.StatusPolicyViolation, reasonExpired)
		return
	}
	if now.Sub(time.Unix(0, c.lastSeen.Load())) > c.hub.cfg.IdleTimeout {
		c.close(websocket.StatusGoingAway, reasonIdle)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.hub.cfg.IdleTimeout)
	_ = c.nc.SetWriteDeadline(now.Add(c.hub.cfg.WriteTimeout))
	err := c.ws.Ping(ctx)
	cancel()
	_ = c.nc.SetWriteDeadline(time.Time{})
	if err != nil {
		// The library already dropped the connection; this records why.
		c.close(websocket.StatusGoingAway, reasonIdle)
		return
	}
	c.lastSeen.Store(time.Now().UnixNano())
	c.mu.Lock()
	if !c.closed {
		c.timer.Reset(c.pingDelay())
	}
	c.mu.Unlock()
}

// pingDelay spreads pings over ±10% so 10,000 connections opened together do not ping together.
func (c *conn) pingDelay() time.Duration {
	d := c.hub.cfg.PingInterval
	return d - d/10 + rand.N(d/5+1)
}

// release ends a pause: held live frames follow whatever the replay queued, in order, minus the
// ones the client already has.
func (c *conn) release(fromResume bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.releaseLocked(fromResume)
}

func (c *conn) releaseLocked(fromResume bool) {
	// Wait for the replay to reach the writer first, so held frames fit in the queue.
	for !c.closed && len(c.queue) > 0 && len(c.queue)+len(c.held) > c.hub.cfg.SendQueue {
		c.space.Wait()
	}
	if c.closed || (c.replaying && !fromResume) {
		return // a resume started while we waited: it releases when its replay is done
	}
	c.replaying = false
	c.paused = false
	held := c.held
	c.held = nil
	for _, f := range held {
		if f.seq <= c.minSeq {
			continue
		}
		if !c.pushLocked(f) {
			c.beginCloseLocked(websocket.StatusTryAgainLater, reasonSlow, true)
			return
		}
	}
}

// visible reports whether this agent may see an event of team in conversation conv; rooms is the
// connection's joined conversations. hub.fanout applies the same rule through its indexes.
func (c *conn) visible(team, conv string, rooms map[string]struct{}) bool {
	if c.agent.Admin {
		return true
	}
	if contains(c.agent.Teams, effectiveTeam(team)) {
		return true
	}
	_, ok := rooms[conv]
	return ok
}
