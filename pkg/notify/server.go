// Package notify is the notifier's WebSocket side: it authenticates agents (JWT), reads the EVENTS
// stream and pushes each event to the agents allowed to see it (their teams, the conversations
// they joined, everything for admins), and lets a reconnecting agent resume from its last sequence
// without a gap or a duplicate. The protocol is documented in docs/events.md.
package notify

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go/jetstream"
)

// Config tunes the WebSocket server. Zero values take the defaults noted on each field.
type Config struct {
	Verifier         *Verifier     // required
	AllowedOrigins   []string      // browser origins allowed besides the notifier's own host; "*" allows all
	FirstMessageAuth bool          // accept an upgrade without a token and expect {"type":"auth"} first
	SendQueue        int           // frames queued per connection before it is dropped as slow (256)
	PingInterval     time.Duration // keepalive ping period (25s)
	IdleTimeout      time.Duration // close a connection silent for this long, pongs included (75s)
	WriteTimeout     time.Duration // a write blocked this long marks a slow client (10s)
	ResumeGrace      time.Duration // how long live frames wait for a first resume message (1s)
	ResumeMax        int           // most stream events a resume may scan before resync_required (20000)
	ReplayTimeout    time.Duration // bound on one replay (30s)
	AuthTimeout      time.Duration // first-message auth deadline (5s)
	EpochCheck       time.Duration // how often the stream's epoch is checked (30s)
	MaxRooms         int           // joined conversations per connection (500)
}

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.SendQueue <= 0 {
		c.SendQueue = 256
	}
	def(&c.PingInterval, 25*time.Second)
	def(&c.IdleTimeout, 75*time.Second)
	def(&c.WriteTimeout, 10*time.Second)
	def(&c.ResumeGrace, time.Second)
	def(&c.ReplayTimeout, 30*time.Second)
	def(&c.AuthTimeout, 5*time.Second)
	def(&c.EpochCheck, 30*time.Second)
	if c.ResumeMax <= 0 {
		c.ResumeMax = 20000
	}
	if c.MaxRooms <= 0 {
		c.MaxRooms = 500
	}
}

// Server serves GET /ws. It is an http.Handler; mount it on the notifier's router.
type Server struct {
	cfg     Config
	log     *slog.Logger
	hub     *Hub
	origins OriginPolicy
	nextID  atomic.Uint64
}

// NewServer validates cfg and starts the live fan-out from the current end of the EVENTS stream.
func NewServer(ctx context.Context, js jetstream.JetStream, cfg Config, log *slog.Logger) (*Server, error) {
	cfg.defaults()
	if cfg.Verifier == nil {
		return nil, errors.New("notify: a token verifier is required")
	}
	origins, err := NewOriginPolicy(cfg.AllowedOrigins)
	if err != nil {
		return nil, fmt.Errorf("ALLOWED_ORIGINS: %w", err)
	}
	s := &Server{cfg: cfg, log: log, origins: origins, hub: newHub(js, cfg, log)}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.hub.start(sctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Ready reports whether the live fan-out is running, for /readyz.
func (s *Server) Ready(context.Context) error {
	if !s.hub.ready.Load() {
		return errors.New("events fan-out not running")
	}
	return nil
}

// Connections returns the number of registered agent connections.
func (s *Server) Connections() int { return s.hub.count() }

// Shutdown stops the fan-out and closes every socket with 1001 so clients reconnect elsewhere and
// resume; it waits for the close handshakes until ctx ends.
func (s *Server) Shutdown(ctx context.Context) { s.hub.shutdown(ctx) }

// ServeHTTP checks origin and token before upgrading, so a refused client gets a plain 403 or 401.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.origins.Allows(r.Header.Get("Origin"), r.Host) {
		mRefused.WithLabelValues("origin").Inc()
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	var agent Agent
	tok, err := tokenFromRequest(r)
	if err == nil && tok != "" {
		agent, err = s.cfg.Verifier.Verify(tok)
	} else if err == nil && !s.cfg.FirstMessageAuth {
		err = fmt.Errorf("%w: no token: send Authorization: Bearer <token> or ?token=", ErrUnauthenticated)
	}
	if err != nil {
		mRefused.WithLabelValues("auth").Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="chatwire"`)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if !s.hub.ready.Load() {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	// Optional resume in the URL, for clients that prefer it to a first message.
	var resume *ClientMessage
	if v := r.URL.Query().Get("after_seq"); v != "" {
		n, perr := strconv.ParseUint(v, 10, 64)
		if perr != nil {
			mRefused.WithLabelValues("bad_request").Inc()
			http.Error(w, "after_seq must be a non-negative integer", http.StatusBadRequest)
			return
		}
		resume = &ClientMessage{Type: MsgResume, AfterSeq: n, Epoch: r.URL.Query().Get("epoch")}
	}

	hw := &hijackWriter{ResponseWriter: w}
	ws, err := websocket.Accept(hw, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // the origin was checked above, against our own policy
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return // Accept answered the request
	}
	ws.SetReadLimit(maxClientMessage)
	c := newConn(s.hub, ws, hw.sw, s.nextID.Add(1))
	c.agent = agent
	// The HTTP goroutine (and its grown stack) ends here; the connection continues on a fresh one.
	go s.run(c, tok != "", resume)
}

// run authenticates by first message if needed, registers, resumes if asked in the URL, then
// reads client messages until the connection ends.
func (s *Server) run(c *conn, authed bool, resume *ClientMessage) {
	if !authed {
		if !s.authFirstMessage(c) {
			return
		}
	}
	s.hub.register(c)
	s.log.Debug("agent connected", "conn", c.id, "agent", c.agent.ID, "teams", c.agent.Teams, "admin", c.agent.Admin)
	c.startTimer()
	if resume != nil {
		c.firstMessage()
		c.resume(*resume)
	}
	c.readLoop()
}

func (s *Server) authFirstMessage(c *conn) bool {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.AuthTimeout)
	_, data, err := c.ws.Read(ctx)
	cancel()
	if err != nil {
		mRefused.WithLabelValues("auth").Inc()
		_ = c.ws.CloseNow()
		return false
	}
	m, err := ParseClientMessage(data)
	if err == nil && m.Type != MsgAuth {
		err = errors.New("first message must be {\"type\":\"auth\",\"token\":…}")
	}
	if err == nil {
		c.agent, err = s.cfg.Verifier.Verify(m.Token)
	}
	if err != nil {
		mRefused.WithLabelValues("auth").Inc()
		_ = c.nc.SetDeadline(time.Now().Add(closeTimeout))
		_ = c.ws.Close(websocket.StatusPolicyViolation, truncate(err.Error(), 100))
		return false
	}
	return true
}

// firstMessage ends the handshake grace; true if this was the first client message.
func (c *conn) firstMessage() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	first := c.handshake
	c.handshake = false
	if first && c.timer != nil && !c.closed {
		c.timer.Reset(c.pingDelay()) // the timer now means keepalive
	}
	return first
}

// readLoop handles client messages. Reading also answers pings and collects pongs.
func (c *conn) readLoop() {
	for {
		_, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.mu.Lock()
			c.beginCloseLocked(websocket.StatusGoingAway, "read failed", false)
			c.mu.Unlock()
			return
		}
		c.lastSeen.Store(time.Now().UnixNano())
		m, err := ParseClientMessage(data)
		first := c.firstMessage()
		if err == nil && m.Type == MsgResume {
			c.resume(m)
			continue
		}
		if first {
			c.release(false)
		}
		if err != nil {
			c.sendJSON(errorFrame{Event: EventError, Error: err.Error()})
			continue
		}
		c.handle(m)
	}
}

func (c *conn) handle(m ClientMessage) {
	switch m.Type {
	case MsgJoin:
		if err := c.hub.join(c, m.ConversationID); err != nil {
			c.sendJSON(errorFrame{Event: EventError, Error: err.Error()})
			return
		}
	case MsgLeave:
		c.hub.leave(c, m.ConversationID)
	case MsgAuth:
		c.sendJSON(errorFrame{Event: EventError, Error: "already authenticated"})
		return
	}
	c.sendJSON(ackFrame{Event: EventAck, Type: m.Type, ConversationID: m.ConversationID})
}

// Buffer sizes of a hijacked connection. net/http hands over 4 KiB read and write buffers; agents
// send a few small frames, so smaller buffers save most of the per-connection memory at 10,000
// connections. Text frames are written without the buffer (see sockWriter); it carries only
// coder/websocket's control frames, at most 127 bytes each, so each reaches sockWriter.Write whole.
const (
	readBufSize  = 512
	writeBufSize = 256
)

// hijackWriter hands coder/websocket a hijacked connection with small buffers, writing through a
// sockWriter that the connection shares with the library.
type hijackWriter struct {
	http.ResponseWriter
	sw *sockWriter
}

func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("flushing upgrade response: %w", err)
	}
	w.sw = &sockWriter{nc: nc}
	if sc, ok := nc.(syscall.Conn); ok {
		w.sw.raw, _ = sc.SyscallConn()
	}
	// Bytes the client sent right behind its upgrade request (a first frame) may already sit in
	// net/http's reader. They must stay in front of the connection itself: coder/websocket resets
	// the reader we return onto the net.Conn we return, so a reader-only wrapper would lose them.
	conn := nc
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		conn = &prefixedConn{Conn: nc, r: io.MultiReader(bytes.NewReader(bytes.Clone(b)), nc)}
	}
	return conn, bufio.NewReadWriter(bufio.NewReaderSize(conn, readBufSize), bufio.NewWriterSize(w.sw, writeBufSize)), nil
}

// prefixedConn is a net.Conn whose reads return already-received bytes first.
type prefixedConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *hijackWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// sockWriter serializes whole frames on one socket. coder/websocket writes through it only control
// frames (pings, pongs, close), each small enough to reach Write in one piece from its buffer;
// the connection writes its pre-encoded text frames with mu held.
type sockWriter struct {
	nc  net.Conn
	raw syscall.RawConn // for writes that must not wait; nil if nc has no file descriptor

	mu        sync.Mutex
	closeSent bool // the library sent a close frame: no data frame may follow it
}

// Write is the library's path: one control frame per call.
func (w *sockWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(p) > 0 && p[0]&0x0f == 0x8 {
		w.closeSent = true
	}
	return w.nc.Write(p)
}

// writeLocked writes p whole, waiting for the socket (bounded by the write deadline); mu held.
func (w *sockWriter) writeLocked(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if w.closeSent {
		return net.ErrClosed
	}
	_, err := w.nc.Write(p)
	return err
}

// tryWrite writes as much of p as the socket takes without waiting; mu held and raw set. A short
// count with a nil error means the socket buffer is full.
func (w *sockWriter) tryWrite(p []byte) (n int, err error) {
	if w.closeSent {
		return 0, net.ErrClosed
	}
	rerr := w.raw.Write(func(fd uintptr) bool {
		for n < len(p) {
			m, e := syscall.Write(int(fd), p[n:])
			if m > 0 {
				n += m
			}
			if e == syscall.EINTR {
				continue
			}
			if e != nil && e != syscall.EAGAIN {
				err = e
			}
			if e != nil || m <= 0 {
				break
			}
		}
		return true // never wait for the socket here
	})
	if err == nil {
		err = rerr
	}
	return n, err
}
