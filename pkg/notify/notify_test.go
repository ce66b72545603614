package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/queue"
	"github.com/chatwire/chatwire/pkg/testenv"
)

func TestRefusesUnauthenticated(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, url := e.server(t, nil)
	expired := sign(t, jwt.SigningMethodHS256, testSecret, claims("a", "agent", -time.Hour, "support"))
	cases := map[string]http.Header{
		"no token":      {},
		"garbage":       {"Authorization": {"Bearer nope"}},
		"expired":       {"Authorization": {"Bearer " + expired}},
		"basic auth":    {"Authorization": {"Basic dXNlcjpwYXNz"}},
		"wrong secret":  {"Authorization": {"Bearer " + sign(t, jwt.SigningMethodHS256, []byte("someone-elses-secret-32-bytes-long!"), claims("a", "admin", time.Hour))}},
		"no signature ": {"Authorization": {"Bearer " + sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims("a", "admin", time.Hour))}},
	}
	for name, h := range cases {
		_, resp, err := dialRaw(t, url, "", h)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: err=%v resp=%v, want 401 before upgrade", name, err, resp)
		}
	}
	// The same server accepts a good token in the header or, for browsers, the query string.
	dial(t, url, token(t, "a", "agent", "support"))
	ws, _, err := dialRaw(t, url+"?token="+token(t, "b", "agent", "support"), "", nil)
	if err != nil {
		t.Fatalf("query-string token refused: %v", err)
	}
	startClient(t, ws)
}

func TestRefusesWrongOrigin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, url := e.server(t, nil)
	tok := token(t, "a", "agent", "support")
	for _, o := range []string{"https://evil.example", "http://app.example.com", "https://app.example.com.evil.io"} {
		_, resp, err := dialRaw(t, url, tok, http.Header{"Origin": {o}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("origin %s: err=%v resp=%v, want 403", o, err, resp)
		}
	}
	ws, _, err := dialRaw(t, url, tok, http.Header{"Origin": {"https://app.example.com"}})
	if err != nil {
		t.Fatalf("allowed origin refused: %v", err)
	}
	startClient(t, ws)
}

func TestAgentSeesOnlyItsTeams(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, url := e.server(t, nil)
	support := dial(t, url, token(t, "s1", "agent", "support"))
	sales := dial(t, url, token(t, "s2", "agent", "Sales"))
	general := dial(t, url, token(t, "g1", "agent", "general"))
	admin := dial(t, url, token(t, "boss", "admin"))
	for _, c := range []*client{support, sales, general, admin} {
		c.goLive()
	}

	var supportSeqs, salesSeqs, unassigned, all []uint64
	for range 5 {
		s := e.publish(t, "support", "conv-sup", 2)
		b := e.publish(t, "sales", "conv-sal", 3)
		u := e.publish(t, "", "conv-new", 1)
		supportSeqs, salesSeqs, unassigned = concat(supportSeqs, s), concat(salesSeqs, b), concat(unassigned, u)
		all = concat(all, s, b, u)
	}
	marker := e.publish(t, "", "conv-all", 1)
	admin.expectSeqs(concat(all, marker)) // the fan-out has passed the marker
	// A final event every agent sees (after joining its room) proves nothing else was queued.
	for _, c := range []*client{support, sales} {
		c.request(map[string]any{"type": MsgJoin, "conversation_id": "conv-all"})
	}
	marker2 := e.publish(t, "", "conv-all", 1)

	support.expectSeqs(concat(supportSeqs, marker2))
	sales.expectSeqs(concat(salesSeqs, marker2))
	general.expectSeqs(concat(unassigned, marker, marker2))
	admin.expectSeqs(marker2)
}

func TestJoinAndLeaveConversation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv, url := e.server(t, nil)
	c := dial(t, url, token(t, "a1", "agent", "sales"))
	c.goLive()

	before := e.publish(t, "support", "conv-x", 2) // not visible: other team, not joined
	caughtUp(t, srv, before[1])
	c.request(map[string]any{"type": MsgJoin, "conversation_id": "conv-x"})
	joined := e.publish(t, "support", "conv-x", 3)
	own := e.publish(t, "sales", "conv-y", 1)
	c.expectSeqs(concat(joined, own))

	c.request(map[string]any{"type": MsgLeave, "conversation_id": "conv-x"})
	e.publish(t, "support", "conv-x", 3)
	marker := e.publish(t, "sales", "conv-y", 1)
	c.expectSeqs(marker)

	// Joining a conversation of the agent's own team changes nothing and leaving it does not
	// hide the team's events.
	c.request(map[string]any{"type": MsgJoin, "conversation_id": "conv-y"})
	c.request(map[string]any{"type": MsgLeave, "conversation_id": "conv-y"})
	c.expectSeqs(e.publish(t, "sales", "conv-y", 2))

	// Bad requests get an error frame and the connection stays usable.
	c.send(map[string]any{"type": MsgJoin})
	if g := c.next(); g.Event != EventError {
		t.Fatalf("join without conversation_id: got %+v, want error", g)
	}
	c.expectSeqs(e.publish(t, "sales", "conv-y", 1))
}

// TestResumeAfterMissedEvents is the scenario: disconnect, miss 100 events, resume.
func TestResumeAfterMissedEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, url := e.server(t, nil)
	tok := token(t, "a1", "agent", "support")
	c := dial(t, url, tok)
	c.goLive()
	first := e.publish(t, "support", "conv-1", 3)
	c.expectSeqs(first)
	cursor, epoch := first[len(first)-1], c.hello.Epoch
	_ = c.ws.Close(websocket.StatusNormalClosure, "")

	var missed []uint64
	for i := range 100 {
		missed = append(missed, e.publish(t, "support", "conv-1", 1)...)
		if i%10 == 0 {
			e.publish(t, "sales", "conv-2", 1) // interleaved events the agent may not see
		}
	}

	c2 := dial(t, url, tok)
	c2.send(map[string]any{"type": MsgResume, "after_seq": cursor, "epoch": epoch})
	c2.expectSeqs(missed)
	// The ack marks the seam between replayed and live frames; how many were replayed depends on
	// how far this replica had read the stream when the client connected.
	if len(c2.acks) == 0 {
		c2.acks = append(c2.acks, c2.next())
	}
	if len(c2.acks) != 1 || c2.acks[0].Type != MsgResume || c2.acks[0].Replayed == nil {
		t.Fatalf("acks = %+v, want one resume ack", c2.acks)
	}
	live := e.publish(t, "support", "conv-1", 5)
	c2.expectSeqs(live)

	// The replay's consumer is deleted; only the live fan-out's remains.
	stream, err := e.js.Stream(testenv.Context(t, 5*time.Second), queue.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, func() bool {
		info, err := stream.Info(testenv.Context(t, 5*time.Second))
		return err == nil && info.State.Consumers == 1
	}, "replay consumers left on the stream")
}

// TestResumeSeamUnderLoad resumes while events keep arriving: the client must see every visible
// event after its cursor exactly once, in order, across the replay/live seam.
func TestResumeSeamUnderLoad(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, url := e.server(t, nil)
	tok := token(t, "a1", "agent", "support")
	base := e.publish(t, "support", "conv-1", 50)
	cursor := base[9] // the client saw the first 10

	done := make(chan []uint64)
	go func() {
		var seqs []uint64
		for range 150 {
			seqs = append(seqs, e.publish(t, "support", "conv-1", 1)...)
			e.publish(t, "sales", "conv-2", 1)
		}
		done <- seqs
	}()
	time.Sleep(20 * time.Millisecond) // let publishing get going
	c := dial(t, url, tok)
	c.send(map[string]any{"type": MsgResume, "after_seq": cursor})
	during := <-done

	want := concat(base[10:], during)
	var gotSeqs []uint64
	for len(gotSeqs) < len(want) {
		g := c.nextEvent()
		gotSeqs = append(gotSeqs, g.Seq)
	}
	for i := range want {
		if gotSeqs[i] != want[i] {
			t.Fatalf("event %d: got seq %d, want %d (gap or duplicate at the seam)\n got %v\nwant %v", i, gotSeqs[i], want[i], gotSeqs, want)
		}
	}
	c.expectSeqs(e.publish(t, "support", "conv-1", 1))
}

func TestResumeRequiresResyncWhenEventsAreGone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv, url := e.server(t, nil)
	tok := token(t, "a1", "agent", "support")
	seqs := e.publish(t, "support", "conv-1", 10)
	caughtUp(t, srv, seqs[9])

	// Another epoch: sequence numbers from another life of the stream mean nothing.
	c := dial(t, url, tok)
	c.send(map[string]any{"type": MsgResume, "after_seq": 3, "epoch": "123"})
	if g := c.next(); g.Event != event.EventResyncRequired || g.Epoch != c.hello.Epoch || g.Seq != c.hello.Seq {
		t.Fatalf("other epoch: got %+v, want resync_required with the current epoch and seq", g)
	}
	c.expectSeqs(e.publish(t, "support", "conv-1", 1)) // then live

	// A cursor beyond the stream.
	c = dial(t, url, tok)
	c.send(map[string]any{"type": MsgResume, "after_seq": 1 << 40})
	if g := c.next(); g.Event != event.EventResyncRequired {
		t.Fatalf("future cursor: got %+v, want resync_required", g)
	}

	// Events after the cursor expired (purge stands in for the 24 h retention).
	stream, err := e.js.Stream(testenv.Context(t, 5*time.Second), queue.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Purge(testenv.Context(t, 5*time.Second), jetstream.WithPurgeSequence(seqs[5])); err != nil {
		t.Fatal(err)
	}
	c = dial(t, url, tok)
	c.send(map[string]any{"type": MsgResume, "after_seq": seqs[2]})
	if g := c.next(); g.Event != event.EventResyncRequired || g.Reason == "" {
		t.Fatalf("expired cursor: got %+v, want resync_required", g)
	}
	// From a cursor still retained, the replay works.
	c = dial(t, url, tok)
	c.send(map[string]any{"type": MsgResume, "after_seq": seqs[5] - 1})
	c.expectSeqs(seqs[5:])
}

func TestResumeInURL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, url := e.server(t, nil)
	seqs := e.publish(t, "support", "conv-1", 5)
	ws, _, err := dialRaw(t, url+"?after_seq=2", token(t, "a", "agent", "support"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := startClient(t, ws)
	c.expectSeqs(seqs[2:])
}

func TestSlowClientIsDroppedWithoutDelayingOthers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv, url := e.server(t, func(c *Config) { c.SendQueue = 16; c.WriteTimeout = time.Second })
	fast := dial(t, url, token(t, "fast", "agent", "support"))
	fast.goLive()

	// The slow client reads its hello, goes live, then stops reading.
	slowWS, _, err := dialRaw(t, url, token(t, "slow", "agent", "support"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slowWS.CloseNow()
	slowWS.SetReadLimit(1 << 20)
	if _, _, err := slowWS.Read(testenv.Context(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	ctx := testenv.Context(t, 5*time.Second)
	_ = slowWS.Write(ctx, websocket.MessageText, []byte(`{"type":"leave_conversation","conversation_id":"x"}`))
	testenv.Eventually(t, 5*time.Second, func() bool { return srv.Connections() == 2 }, "both connected")
	slowBefore := testutil.ToFloat64(mSlowDisconnects)

	// 64 KiB events: a few hundred overflow the slow client's socket buffers, then its queue.
	// Publishing is paced so the fast client (which decodes every frame) can keep up.
	big := `{"blob":"` + strings.Repeat("x", 64<<10) + `"}`
	const n = 300
	received := make(chan time.Time, 1)
	go func() {
		count := 0
		for g := range fast.frames {
			if g.Event == event.EventNewMessage {
				if count++; count == n {
					received <- time.Now()
					return
				}
			}
		}
	}()
	start := time.Now()
	var last time.Time
	for range n {
		e.publishData(t, "support", "conv-1", 1, big)
		last = time.Now()
		time.Sleep(2 * time.Millisecond)
	}
	select {
	case at := <-received:
		t.Logf("published %d × 64 KiB in %v; the fast client had the last one %v after it was published", n, last.Sub(start), at.Sub(last))
		if at.Sub(last) > time.Second {
			t.Fatalf("fast client delayed by %v", at.Sub(last))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("fast client did not receive all events")
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return srv.Connections() == 1 }, "slow client not dropped")
	if testutil.ToFloat64(mSlowDisconnects) <= slowBefore {
		t.Fatal("slow disconnect not counted")
	}
	// The slow client finds its connection closed once it reads again; when the close frame
	// fitted in its buffers it says why.
	var closeErr error
	for closeErr == nil {
		_, _, closeErr = slowWS.Read(testenv.Context(t, 10*time.Second))
	}
	if s := websocket.CloseStatus(closeErr); s != -1 && s != websocket.StatusTryAgainLater {
		t.Fatalf("slow client close status %v, want 1013", s)
	}
}

// TestPausedReaderGetsWholeFramesInOrder: a client that stops reading until the server's writes
// back up (the fan-out then leaves frames half written for the connection's writer) still gets
// every frame whole and in order once it reads again, and a ping in between is answered.
func TestPausedReaderGetsWholeFramesInOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv, url := e.server(t, func(c *Config) { c.SendQueue = 256; c.WriteTimeout = 20 * time.Second })
	ws, _, err := dialRaw(t, url, token(t, "paused", "agent", "support"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	ctx := testenv.Context(t, 10*time.Second)
	if _, _, err := ws.Read(ctx); err != nil { // hello
		t.Fatal(err)
	}
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"leave_conversation","conversation_id":"x"}`)); err != nil {
		t.Fatal(err)
	}
	if _, data, err := ws.Read(ctx); err != nil || !strings.Contains(string(data), `"ack"`) {
		t.Fatalf("ack: %s %v", data, err)
	}

	// 120 × 48 KiB is more than loopback socket buffers hold while nobody reads.
	big := `{"n":%d,"blob":"` + strings.Repeat("y", 48<<10) + `"}`
	seqs := e.publishData(t, "support", "conv-p", 120, big)
	caughtUp(t, srv, seqs[len(seqs)-1])

	frames := make(chan got, len(seqs))
	go func() {
		defer close(frames)
		for {
			_, data, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			var g got
			if err := json.Unmarshal(data, &g); err != nil {
				g.Event = "bad frame: " + err.Error()
			}
			frames <- g
		}
	}()
	for i, want := range seqs {
		if i == len(seqs)/2 {
			if err := ws.Ping(testenv.Context(t, 5*time.Second)); err != nil {
				t.Fatalf("ping during the backlog: %v", err)
			}
		}
		select {
		case g := <-frames:
			if g.Event != event.EventNewMessage || g.Seq != want {
				t.Fatalf("frame %d: got %s seq %d, want seq %d", i+1, g.Event, g.Seq, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("frame %d of %d missing", i+1, len(seqs))
		}
	}
	if srv.Connections() != 1 {
		t.Fatal("paused client was dropped")
	}
}

func TestTwoReplicasBothDeliver(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, url1 := e.server(t, nil)
	_, url2 := e.server(t, nil)
	a := dial(t, url1, token(t, "a", "agent", "support"))
	b := dial(t, url2, token(t, "b", "agent", "support"))
	if a.hello.Epoch != b.hello.Epoch {
		t.Fatalf("replicas disagree on the epoch: %s vs %s", a.hello.Epoch, b.hello.Epoch)
	}
	a.goLive()
	b.goLive()
	seqs := e.publish(t, "support", "conv-1", 20)
	a.expectSeqs(seqs)
	b.expectSeqs(seqs)

	// A client that moves replica resumes where it left off.
	_ = a.ws.Close(websocket.StatusNormalClosure, "")
	missed := e.publish(t, "support", "conv-1", 7)
	b.expectSeqs(missed)
	a2 := dial(t, url2, token(t, "a", "agent", "support"))
	a2.send(map[string]any{"type": MsgResume, "after_seq": seqs[len(seqs)-1], "epoch": a.hello.Epoch})
	a2.expectSeqs(missed)
}

func TestKeepaliveClosesSilentClients(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv, url := e.server(t, func(c *Config) { c.PingInterval = 100 * time.Millisecond; c.IdleTimeout = 400 * time.Millisecond })
	alive := dial(t, url, token(t, "alive", "agent", "support")) // its pump answers pings
	alive.goLive()
	silent, _, err := dialRaw(t, url, token(t, "silent", "agent", "support"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.CloseNow() // never reads, so never answers a ping
	testenv.Eventually(t, 5*time.Second, func() bool { return srv.Connections() == 2 }, "silent client not registered")
	testenv.Eventually(t, 5*time.Second, func() bool { return srv.Connections() == 1 }, "silent client not closed")
	time.Sleep(600 * time.Millisecond) // several ping periods
	if srv.Connections() != 1 {
		t.Fatal("the answering client was closed too")
	}
	alive.expectSeqs(e.publish(t, "support", "c", 1))
}

// TestClientPingAnsweredAfterWrites: the server's write deadlines must not outlive the writes
// they bound, or the library's own pong would fail on a stale one.
func TestClientPingAnsweredAfterWrites(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, url := e.server(t, func(c *Config) { c.WriteTimeout = 200 * time.Millisecond })
	c := dial(t, url, token(t, "a", "agent", "support"))
	c.goLive()
	c.expectSeqs(e.publish(t, "support", "c", 3))
	time.Sleep(400 * time.Millisecond)
	if err := c.ws.Ping(testenv.Context(t, 5*time.Second)); err != nil {
		t.Fatalf("server did not answer a ping: %v", err)
	}
	c.expectSeqs(e.publish(t, "support", "c", 1))
}

func TestFirstMessageAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, url := e.server(t, func(c *Config) { c.FirstMessageAuth = true; c.AuthTimeout = 500 * time.Millisecond })
	ctx := testenv.Context(t, 10*time.Second)

	ws, _, err := dialRaw(t, url, "", nil)
	if err != nil {
		t.Fatalf("upgrade without token refused although first-message auth is on: %v", err)
	}
	_ = ws.Write(ctx, websocket.MessageText, []byte(`{"type":"auth","token":"`+token(t, "a", "agent", "support")+`"}`))
	c := startClient(t, ws)
	c.goLive()
	c.expectSeqs(e.publish(t, "support", "conv", 1))

	// A bad first frame ends the connection with a policy violation.
	ws, _, err = dialRaw(t, url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = ws.Write(ctx, websocket.MessageText, []byte(`{"type":"join_conversation","conversation_id":"x"}`))
	_, _, err = ws.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("non-auth first frame: %v, want close 1008", err)
	}
	// And so does silence.
	ws, _, err = dialRaw(t, url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err = ws.Read(ctx); err == nil {
		t.Fatal("silent unauthenticated connection got a frame")
	}
	// A bad token in the header is still refused before the upgrade.
	if _, resp, err := dialRaw(t, url, "bad", nil); err == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bad header token: %v %v, want 401", err, resp)
	}
}

func TestRecreatedStreamChangesEpoch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv, url := e.server(t, func(c *Config) { c.EpochCheck = 100 * time.Millisecond })
	tok := token(t, "a", "agent", "support")
	c := dial(t, url, tok)
	c.goLive()
	seqs := e.publish(t, "support", "conv", 3)
	c.expectSeqs(seqs)

	ctx := testenv.Context(t, 10*time.Second)
	if err := e.js.DeleteStream(ctx, queue.StreamEvents); err != nil {
		t.Fatal(err)
	}
	if err := queue.DefaultTopology().Ensure(ctx, e.js); err != nil {
		t.Fatal(err)
	}
	// The old connection is told to reconnect.
	for {
		if _, ok := <-c.frames; !ok {
			break
		}
	}
	if err := <-c.closed; websocket.CloseStatus(err) != websocket.StatusServiceRestart {
		t.Fatalf("close after stream reset: %v, want 1012", err)
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return srv.Ready(ctx) == nil }, "not ready after reset")
	c2 := dial(t, url, tok)
	if c2.hello.Epoch == c.hello.Epoch {
		t.Fatal("epoch unchanged after the stream was recreated")
	}
	c2.send(map[string]any{"type": MsgResume, "after_seq": seqs[2], "epoch": c.hello.Epoch})
	if g := c2.next(); g.Event != event.EventResyncRequired {
		t.Fatalf("resume with the old epoch: %+v, want resync_required", g)
	}
	c2.expectSeqs(e.publish(t, "support", "conv", 2))
}

func TestExpiredTokenClosesConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, url := e.server(t, func(c *Config) { c.PingInterval = 100 * time.Millisecond; c.IdleTimeout = time.Second })
	tok, err := MintHS256(testSecret, "a", "", []string{"support"}, RoleAgent, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, url, tok)
	c.goLive()
	select {
	case <-time.After(5 * time.Second):
		t.Fatal("connection outlived its token")
	case err := <-c.closed:
		if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
			t.Fatalf("closed with %v, want 1008 token expired", err)
		}
	}
}
