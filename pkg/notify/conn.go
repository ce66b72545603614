package notify

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// frame is one text frame ready to write. Live event frames are encoded once and shared by every
// connection that receives them.
type frame struct {
	seq    uint64    // stream sequence of an event; 0 for control frames
	data   []byte    // the JSON text
	stored time.Time // when the event was stored in EVENTS, for the fan-out latency histogram
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
type conn struct {
	hub   *Hub
	ws    *websocket.Conn
	nc    net.Conn // the hijacked TCP connection, for write deadlines
	id    uint64
	agent Agent

	rooms map[string]struct{} // guarded by hub.mu

	mu        sync.Mutex
	space     sync.Cond // signalled when the queue shrinks or the connection closes
	queue     []*frame  // frames for the writer, at most Config.SendQueue
	writing   bool      // a writeLoop goroutine owns the queue
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

func newConn(h *Hub, ws *websocket.Conn, nc net.Conn, id uint64) *conn {
	c := &conn{hub: h, ws: ws, nc: nc, id: id, paused: true, handshake: true, done: make(chan struct{})}
	c.space.L = &c.mu
	c.lastSeen.Store(time.Now().UnixNano())
	return c
}

// deliver hands a live event to the connection. It is called by the fan-out with hub.mu held, so
// it never blocks: a connection that cannot take the frame is closed as a slow consumer.
func (c *conn) deliver(f *frame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || f.seq <= c.minSeq {
		return
	}
	if c.paused {
		if len(c.held) >= c.hub.cfg.SendQueue {
			c.beginCloseLocked(websocket.StatusTryAgainLater, reasonSlow, true)
			return
		}
		c.held = append(c.held, f)
		return
	}
	if !c.pushLocked(f) {
		c.beginCloseLocked(websocket.StatusTryAgainLater, reasonSlow, true)
	}
}

// pushLocked appends f to the queue and makes sure a writer runs; false if the queue is full.
func (c *conn) pushLocked(f *frame) bool {
	if len(c.queue) >= c.hub.cfg.SendQueue {
		return false
	}
	c.queue = append(c.queue, f)
	if !c.writing {
		c.writing = true
		go c.writeLoop()
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

func (c *conn) sendJSON(v any) bool { return c.send(&frame{data: mustJSON(v)}) }

// writeLoop drains the queue and exits when it is empty, so an idle connection has no writer
// goroutine (and no stack) at all.
func (c *conn) writeLoop() {
	for {
		c.mu.Lock()
		if c.closed || len(c.queue) == 0 {
			c.writing = false
			c.queue = nil
			c.space.Broadcast()
			c.mu.Unlock()
			return
		}
		batch := c.queue
		c.queue = nil
		c.space.Broadcast()
		c.mu.Unlock()

		// A write that cannot finish within WriteTimeout means the client stopped reading.
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.hub.cfg.WriteTimeout))
		for _, f := range batch {
			if err := c.ws.Write(context.Background(), websocket.MessageText, f.data); err != nil {
				c.mu.Lock()
				c.writing = false
				c.queue = nil
				if isTimeout(err) {
					c.beginCloseLocked(websocket.StatusTryAgainLater, reasonSlow, true)
				} else {
					c.beginCloseLocked(websocket.StatusGoingAway, "write failed", false)
				}
				c.space.Broadcast()
				c.mu.Unlock()
				return
			}
			if f.seq > 0 {
				mEventsDelivered.Inc()
				if !f.stored.IsZero() {
					mFanoutLatency.Observe(time.Since(f.stored).Seconds())
				}
			}
		}
		// The library also writes on its own (pongs, close replies) without setting a deadline;
		// a stale one would fail those writes.
		_ = c.nc.SetWriteDeadline(time.Time{})
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
