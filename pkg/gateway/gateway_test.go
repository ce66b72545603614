package gateway_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/chatwire/chatwire/pkg/app"
	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/gateway"
	"github.com/chatwire/chatwire/pkg/queue"
	"github.com/chatwire/chatwire/pkg/testenv"
)

const (
	secret = "interakt-webhook-secret"
	token  = "netcore-shared-token"
)

type harness struct {
	t   *testing.T
	url string
	nc  *nats.Conn
	js  jetstream.JetStream
	srv *testenv.NATSServer
	cfg gateway.Config
	gw  *gateway.Gateway
}

func start(t *testing.T, cfg gateway.Config) *harness {
	t.Helper()
	srv := testenv.StartNATS(t)
	nc, js := srv.JetStream(t)
	if cfg.PublishTimeout == 0 {
		cfg.PublishTimeout = 2 * time.Second
	}
	if cfg.NetcoreTokenHeader == "" {
		cfg.NetcoreTokenHeader = "X-Webhook-Token"
	}
	if cfg.NetcoreTokenQuery == "" {
		cfg.NetcoreTokenQuery = "token"
	}
	pubJS, err := gateway.NewJetStream(nc, cfg.PublishTimeout, 4096)
	if err != nil {
		t.Fatal(err)
	}
	log := testenv.Logger(t)
	gw := gateway.New(log, pubJS, cfg)
	gw.WarnUnauthenticated()
	e := app.NewEcho(log, func(ctx context.Context) error { return queue.Ready(ctx, nc, js) })
	gw.Register(e)
	hs := httptest.NewServer(e)
	t.Cleanup(hs.Close)
	return &harness{t: t, url: hs.URL, nc: nc, js: js, srv: srv, cfg: cfg, gw: gw}
}

// post sends body to the channel's webhook, signed or with the token when the harness has them.
func (h *harness) post(channel string, body []byte, mutate ...func(*http.Request)) (int, string) {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.url+"/webhooks/"+channel, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if channel == event.ChannelInterakt && h.cfg.InteraktSecret != "" {
		req.Header.Set(gateway.InteraktSignatureHeader, gateway.SignInterakt(h.cfg.InteraktSecret, body))
	}
	if channel == event.ChannelNetcore && h.cfg.NetcoreToken != "" {
		req.Header.Set(h.cfg.NetcoreTokenHeader, h.cfg.NetcoreToken)
	}
	for _, m := range mutate {
		m(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("POST %s: %v", channel, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// stored returns every message in INBOUND, in order.
func (h *harness) stored() []*jetstream.RawStreamMsg {
	h.t.Helper()
	return testenv.StreamMsgs(h.t, h.js, queue.StreamInbound)
}

func (h *harness) byMsgID() map[string]*jetstream.RawStreamMsg {
	out := map[string]*jetstream.RawStreamMsg{}
	for _, m := range h.stored() {
		out[m.Header.Get(jetstream.MsgIDHeader)] = m
	}
	return out
}

func testdata(t *testing.T, channel string) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "provider", channel, "testdata", "webhook", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata for %s: %v", channel, err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

// TestEveryPayloadLandsInInbound posts every testdata payload of both providers to a running
// gateway and finds each normalized event (or the raw body, for what is not understood) in
// INBOUND under the right subject and Nats-Msg-Id.
func TestEveryPayloadLandsInInbound(t *testing.T) {
	h := start(t, gateway.Config{InteraktSecret: secret, NetcoreToken: token})
	type want struct {
		subject, kind string
		data          []byte // raw body for invalid
	}
	wants := map[string]want{}
	for _, ch := range event.Channels {
		for name, body := range testdata(t, ch) {
			code, resp := h.post(ch, body)
			if code != http.StatusOK {
				t.Fatalf("%s/%s: got %d %s, want 200", ch, name, code, resp)
			}
			batch, err := gateway.Normalize(ch, body, time.Now())
			var out []gateway.Outgoing
			if err != nil {
				out = []gateway.Outgoing{gateway.InvalidOutgoing(ch, body, err.Error())}
			} else if out, err = batch.Outgoing(nil); err != nil {
				t.Fatal(err)
			}
			for _, o := range out {
				wants[o.MsgID] = want{subject: o.Subject, kind: o.Kind, data: o.Raw}
			}
		}
	}
	got := h.byMsgID()
	if len(got) != len(wants) || len(h.stored()) != len(wants) {
		t.Errorf("INBOUND holds %d messages, want %d", len(h.stored()), len(wants))
	}
	for id, w := range wants {
		m, ok := got[id]
		if !ok {
			t.Errorf("%s %s not in INBOUND", w.kind, id)
			continue
		}
		if m.Subject != w.subject {
			t.Errorf("%s: subject %s, want %s", id, m.Subject, w.subject)
		}
		switch w.kind {
		case gateway.KindMessage:
			ev, err := event.Decode[event.InboundMessage](m.Data)
			if err != nil {
				t.Errorf("%s: the ingestor could not decode it: %v", id, err)
				continue
			}
			if _, err := ulid.ParseStrict(ev.ID); err != nil {
				t.Errorf("%s: id %q is not a ULID", id, ev.ID)
			}
			if queue.MsgID(ev.Channel, ev.ExternalID) != id {
				t.Errorf("%s: Nats-Msg-Id does not match the event's channel:external_id", id)
			}
		case gateway.KindStatus:
			if _, err := event.Decode[event.StatusUpdate](m.Data); err != nil {
				t.Errorf("%s: the ingestor could not decode it: %v", id, err)
			}
		case gateway.KindInvalid:
			if !bytes.Equal(m.Data, w.data) {
				t.Errorf("%s: invalid body not kept verbatim", id)
			}
			if m.Header.Get(gateway.HeaderReason) == "" {
				t.Errorf("%s: invalid body stored without a reason", id)
			}
		}
	}
	// Facts checked independently of the parser: the Netcore sample and an Interakt workflow.
	if m, ok := got["netcore:wamid.HBgMOTE5MjAxMDUzMTU3FQIAEhggQjQ1RkQ2MEFCQzEyMzQ1Njc4OTAA"]; !ok {
		t.Error("netcore text sample not stored")
	} else if ev, _ := event.Decode[event.InboundMessage](m.Data); ev.FromPhone != "919201053157" || ev.Text != "Message content" || ev.Type != "text" {
		t.Errorf("netcore text sample stored as %+v", ev)
	}
	for _, a := range []string{"ans-1", "ans-2", "ans-3"} {
		if _, ok := got["interakt:workflow_wf-7d1c2b_"+a]; !ok {
			t.Errorf("workflow answer %s not stored", a)
		}
	}
	if _, ok := got["interakt:5b6a0c1e-0030-4e8a-9f00-aa0000000030"]; ok {
		t.Error("an echo of an agent's message was stored as a customer message")
	}
}

func TestDuplicatePostStoresOnce(t *testing.T) {
	h := start(t, gateway.Config{})
	in := testdata(t, "interakt")["text.json"]
	nc := testdata(t, "netcore")["batch_media.json"]
	for i := 0; i < 3; i++ {
		if code, resp := h.post("interakt", in); code != http.StatusOK {
			t.Fatalf("interakt post %d: %d %s", i, code, resp)
		}
		if code, resp := h.post("netcore", nc); code != http.StatusOK {
			t.Fatalf("netcore post %d: %d %s", i, code, resp)
		}
	}
	if n := len(h.stored()); n != 1+5 {
		t.Fatalf("INBOUND holds %d messages after three posts of the same webhooks, want 6", n)
	}
}

func TestAuthentication(t *testing.T) {
	h := start(t, gateway.Config{InteraktSecret: secret, NetcoreToken: token})
	body := testdata(t, "interakt")["text.json"]
	forged := []func(*http.Request){
		func(r *http.Request) {
			r.Header.Set(gateway.InteraktSignatureHeader, gateway.SignInterakt("not-the-secret", body))
		},
		func(r *http.Request) { r.Header.Del(gateway.InteraktSignatureHeader) },
		func(r *http.Request) { r.Header.Set(gateway.InteraktSignatureHeader, "sha256=zz") },
	}
	for i, f := range forged {
		if code, _ := h.post("interakt", body, f); code != http.StatusUnauthorized {
			t.Errorf("forged signature %d: got %d, want 401", i, code)
		}
	}
	// A valid signature over a different body is forged too.
	sig := gateway.SignInterakt(secret, body)
	tampered := bytes.Replace(body, []byte("Where is my order?"), []byte("Where is my refund"), 1)
	if code, _ := h.post("interakt", tampered, func(r *http.Request) { r.Header.Set(gateway.InteraktSignatureHeader, sig) }); code != http.StatusUnauthorized {
		t.Errorf("tampered body: got %d, want 401", code)
	}
	nbody := testdata(t, "netcore")["text.json"]
	if code, _ := h.post("netcore", nbody, func(r *http.Request) { r.Header.Set("X-Webhook-Token", "wrong") }); code != http.StatusUnauthorized {
		t.Errorf("wrong netcore token: got %d, want 401", code)
	}
	if code, _ := h.post("netcore", nbody, func(r *http.Request) { r.Header.Del("X-Webhook-Token") }); code != http.StatusUnauthorized {
		t.Errorf("missing netcore token: got %d, want 401", code)
	}
	if n := len(h.stored()); n != 0 {
		t.Fatalf("INBOUND holds %d messages after only forged requests, want 0", n)
	}
	if code, resp := h.post("interakt", body); code != http.StatusOK {
		t.Errorf("valid signature: %d %s", code, resp)
	}
	if code, resp := h.post("netcore", nbody, func(r *http.Request) {
		r.Header.Del("X-Webhook-Token")
		r.URL.RawQuery = "token=" + token
	}); code != http.StatusOK {
		t.Errorf("token in the query: %d %s", code, resp)
	}
	if n := len(h.stored()); n != 2 {
		t.Fatalf("INBOUND holds %d messages, want 2", n)
	}
}

func TestJetStreamDownAnswers503ThenRetryIsStored(t *testing.T) {
	h := start(t, gateway.Config{PublishTimeout: 500 * time.Millisecond})
	body := testdata(t, "interakt")["image.json"]
	h.srv.Stop()
	start := time.Now()
	if code, resp := h.post("interakt", body); code != http.StatusServiceUnavailable {
		t.Fatalf("with JetStream stopped: got %d %s, want 503", code, resp)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("503 took %v; Interakt gives up after 3 s", d)
	}
	if code := getStatus(t, h.url+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with JetStream stopped: %d, want 503", code)
	}
	h.srv.Restart()
	testenv.Eventually(t, 10*time.Second, func() bool { return getStatus(t, h.url+"/readyz") == http.StatusOK }, "gateway ready again")
	if code, resp := h.post("interakt", body); code != http.StatusOK {
		t.Fatalf("retry after JetStream returned: %d %s", code, resp)
	}
	got := h.byMsgID()
	if _, ok := got["interakt:5b6a0c1e-0002-4e8a-9f00-aa0000000002"]; !ok || len(got) != 1 {
		t.Fatalf("after the retry INBOUND holds %v, want the image message once", keys(got))
	}
}

func TestBodyOverLimitIs413(t *testing.T) {
	h := start(t, gateway.Config{MaxBytes: 1024})
	big := []byte(`{"incoming_message":[{"message_id":"x","from":"1","message_type":"TEXT","text_type":{"text":"` + strings.Repeat("a", 2000) + `"}}]}`)
	if code, _ := h.post("netcore", big); code != http.StatusRequestEntityTooLarge {
		t.Errorf("declared length over limit: got %d, want 413", code)
	}
	// Chunked: no Content-Length, the limit is enforced while reading.
	if code, _ := h.post("netcore", big, func(r *http.Request) { r.ContentLength = -1; r.Body = io.NopCloser(bytes.NewReader(big)) }); code != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked body over limit: got %d, want 413", code)
	}
	if n := len(h.stored()); n != 0 {
		t.Fatalf("INBOUND holds %d messages, want 0", n)
	}
}

func TestInvalidBodyKeptRawAnd200(t *testing.T) {
	h := start(t, gateway.Config{})
	body := []byte("<xml>not json</xml>")
	for i := 0; i < 2; i++ {
		if code, resp := h.post("interakt", body); code != http.StatusOK {
			t.Fatalf("invalid body: got %d %s, want 200", code, resp)
		}
	}
	msgs := h.stored()
	if len(msgs) != 1 {
		t.Fatalf("INBOUND holds %d messages after posting the same invalid body twice, want 1", len(msgs))
	}
	m := msgs[0]
	if m.Subject != "inbound.invalid.interakt" || !bytes.Equal(m.Data, body) || !strings.Contains(m.Header.Get(gateway.HeaderReason), "not a JSON object") {
		t.Errorf("stored %s %q reason %q", m.Subject, m.Data, m.Header.Get(gateway.HeaderReason))
	}
	metrics := getBody(t, h.url+"/metrics")
	if !strings.Contains(metrics, `chatwire_gateway_invalid_total{channel="interakt"}`) ||
		!strings.Contains(metrics, `chatwire_gateway_webhooks_total{channel="interakt",outcome="invalid"}`) ||
		!strings.Contains(metrics, `chatwire_gateway_publish_seconds_bucket{channel="interakt"`) {
		t.Error("/metrics lacks the invalid counter, the outcome or the publish latency histogram")
	}
}

func TestNetcoreBatchWithBadItems(t *testing.T) {
	h := start(t, gateway.Config{})
	body := testdata(t, "netcore")["partly_invalid.json"]
	if code, resp := h.post("netcore", body); code != http.StatusOK {
		t.Fatalf("got %d %s", code, resp)
	}
	var subjects []string
	for _, m := range h.stored() {
		subjects = append(subjects, m.Subject)
	}
	want := "inbound.message.netcore,inbound.invalid.netcore,inbound.invalid.netcore,inbound.invalid.netcore"
	if strings.Join(subjects, ",") != want {
		t.Fatalf("stored %v, want %s", subjects, want)
	}
}

func TestStatusesOfOneMessageAreAllKept(t *testing.T) {
	h := start(t, gateway.Config{})
	for _, f := range []string{"status_sent.json", "status_delivered.json", "status_read.json", "status_read.json"} {
		if code, resp := h.post("interakt", testdata(t, "interakt")[f]); code != http.StatusOK {
			t.Fatalf("%s: %d %s", f, code, resp)
		}
	}
	var got []string
	for _, m := range h.stored() {
		st, err := event.Decode[event.StatusUpdate](m.Data)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, st.Status+"/"+st.Reference)
	}
	want := "sent/01JMZ8Q3V8T4ZP3W7H5C2N9K6R delivered/01JMZ8Q3V8T4ZP3W7H5C2N9K6R read/01JMZ8Q3V8T4ZP3W7H5C2N9K6R"
	if strings.Join(got, " ") != want {
		t.Fatalf("stored %v, want %s", got, want)
	}
}

func getStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func keys(m map[string]*jetstream.RawStreamMsg) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestStreamUnavailableAnswers503 covers JetStream not answering while NATS itself is up (a lost
// stream, a cluster without quorum): the request waits at most PUBLISH_TIMEOUT, then gets 503.
func TestStreamUnavailableAnswers503(t *testing.T) {
	h := start(t, gateway.Config{PublishTimeout: 700 * time.Millisecond})
	ctx := testenv.Context(t, 10*time.Second)
	if err := h.js.DeleteStream(ctx, queue.StreamInbound); err != nil {
		t.Fatal(err)
	}
	body := testdata(t, "netcore")["text.json"]
	began := time.Now()
	if code, resp := h.post("netcore", body); code != http.StatusServiceUnavailable {
		t.Fatalf("without the INBOUND stream: got %d %s, want 503", code, resp)
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("503 took %v, want about PUBLISH_TIMEOUT", d)
	}
	if err := queue.DefaultTopology().Ensure(ctx, h.js); err != nil {
		t.Fatal(err)
	}
	if code, resp := h.post("netcore", body); code != http.StatusOK {
		t.Fatalf("after the stream is back: %d %s", code, resp)
	}
	if n := len(h.stored()); n != 1 {
		t.Fatalf("INBOUND holds %d messages, want 1", n)
	}
}
