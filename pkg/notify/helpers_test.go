package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/queue"
	"github.com/chatwire/chatwire/pkg/testenv"
)

// env is one test's NATS with the topology declared.
type env struct {
	nats *testenv.NATSServer
	js   jetstream.JetStream
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ns := testenv.StartNATS(t)
	_, js := ns.JetStream(t)
	return &env{nats: ns, js: js}
}

// server starts a notifier WebSocket server on a loopback port.
func (e *env) server(t *testing.T, mod func(*Config)) (*Server, string) {
	t.Helper()
	v, err := NewHS256Verifier(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Verifier: v, AllowedOrigins: []string{"https://app.example.com"}, ResumeGrace: 300 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	s, err := NewServer(testenv.Context(t, 10*time.Second), e.js, cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		hs.Close()
	})
	return s, "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
}

// caughtUp waits until srv has fanned out the stream up to seq, for tests whose next step must
// not race the fan-out.
func caughtUp(t testing.TB, srv *Server, seq uint64) {
	t.Helper()
	testenv.Eventually(t, 5*time.Second, func() bool { return srv.hub.position() >= seq }, "fan-out not at seq %d", seq)
}

var evSeq atomic.Int64

// publish publishes n events of team in conversation conv and returns their stream sequences.
func (e *env) publish(t testing.TB, team, conv string, n int) []uint64 {
	t.Helper()
	return e.publishData(t, team, conv, n, `{"n":%d}`)
}

func (e *env) publishData(t testing.TB, team, conv string, n int, dataFmt string) []uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seqs := make([]uint64, n)
	for i := range n {
		id := evSeq.Add(1)
		data := dataFmt
		if strings.Contains(dataFmt, "%d") {
			data = fmt.Sprintf(dataFmt, id)
		}
		ack, err := queue.PublishEvent(ctx, e.js, &event.AgentEvent{
			ID: fmt.Sprintf("ev-%d", id), Event: event.EventNewMessage, ConversationID: conv, Team: team,
			Data: json.RawMessage(data),
		})
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		seqs[i] = ack.Sequence
	}
	return seqs
}

func token(t testing.TB, sub, role string, teams ...string) string {
	t.Helper()
	tok, err := MintHS256(testSecret, sub, sub, teams, role, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// got is any server frame, decoded loosely.
type got struct {
	Event          string          `json:"event"`
	Seq            uint64          `json:"seq"`
	ConversationID string          `json:"conversation_id"`
	Team           string          `json:"team"`
	Data           json.RawMessage `json:"data"`
	Epoch          string          `json:"epoch"`
	Reason         string          `json:"reason"`
	Type           string          `json:"type"`
	Replayed       *int            `json:"replayed"`
	Error          string          `json:"error"`
}

// client is a test agent whose frames are pumped into a channel, so waiting for a frame never
// cancels a Read (which would close the socket).
type client struct {
	t       testing.TB
	ws      *websocket.Conn
	frames  chan got
	closed  chan error
	hello   got
	acks    []got // acks skipped by nextEvent
	pending []got // frames read by request while waiting for its ack
}

func dialRaw(t testing.TB, url, tok string, h http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	if h == nil {
		h = http.Header{}
	}
	if tok != "" {
		h.Set("Authorization", "Bearer "+tok)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h})
}

// dial connects, reads hello, and starts pumping frames.
func dial(t testing.TB, url, tok string) *client {
	t.Helper()
	ws, _, err := dialRaw(t, url, tok, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return startClient(t, ws)
}

func startClient(t testing.TB, ws *websocket.Conn) *client {
	t.Helper()
	ws.SetReadLimit(1 << 20)
	c := &client{t: t, ws: ws, frames: make(chan got, 10000), closed: make(chan error, 1)}
	t.Cleanup(func() { _ = ws.CloseNow() })
	go func() {
		for {
			_, data, err := ws.Read(context.Background())
			if err != nil {
				c.closed <- err
				close(c.frames)
				return
			}
			var g got
			if err := json.Unmarshal(data, &g); err != nil {
				c.closed <- fmt.Errorf("bad frame %s: %w", data, err)
				close(c.frames)
				return
			}
			c.frames <- g
		}
	}()
	c.hello = c.next()
	if c.hello.Event != event.EventHello || c.hello.Epoch == "" {
		t.Fatalf("first frame = %+v, want hello", c.hello)
	}
	return c
}

func (c *client) next() got {
	c.t.Helper()
	if len(c.pending) > 0 {
		g := c.pending[0]
		c.pending = c.pending[1:]
		return g
	}
	select {
	case g, ok := <-c.frames:
		if !ok {
			c.t.Fatalf("connection closed: %v", <-c.closed)
		}
		return g
	case <-time.After(10 * time.Second):
		c.t.Fatal("no frame within 10s")
	}
	return got{}
}

// nextEvent skips acks and returns the next frame that is not an ack.
func (c *client) nextEvent() got {
	c.t.Helper()
	for {
		g := c.next()
		if g.Event != EventAck {
			return g
		}
		c.acks = append(c.acks, g)
	}
}

func (c *client) send(v any) {
	c.t.Helper()
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// request sends a client message and waits for its ack.
func (c *client) request(v map[string]any) got {
	c.t.Helper()
	c.send(v)
	var other []got
	defer func() { c.pending = append(c.pending, other...) }()
	for {
		g := c.next()
		switch {
		case g.Event == EventAck && g.Type == v["type"]:
			return g
		case g.Event == EventError:
			c.t.Fatalf("request %v refused: %s", v, g.Error)
		}
		other = append(other, g)
	}
}

// goLive ends the handshake grace without resuming.
func (c *client) goLive() {
	c.t.Helper()
	c.request(map[string]any{"type": MsgLeave, "conversation_id": "none"})
}

// expectSeqs reads events and checks they are exactly seqs, in order.
func (c *client) expectSeqs(seqs []uint64) {
	c.t.Helper()
	for i, want := range seqs {
		g := c.nextEvent()
		if g.Event != event.EventNewMessage || g.Seq != want {
			c.t.Fatalf("event %d of %d: got %s seq %d (team %q), want seq %d", i+1, len(seqs), g.Event, g.Seq, g.Team, want)
		}
	}
}

func concat(parts ...[]uint64) []uint64 {
	var out []uint64
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
