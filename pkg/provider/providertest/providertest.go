// Package providertest holds the checks both providers' tests run the same way: the send
// contract against the documented shapes and the fake, the reading of documented answers, the
// fuzzing of that reading, transport failures, and the webhook testdata table with the wire
// codec the ingestor uses. Only _test.go files import it (it imports testing).
package providertest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/provider/fakeapi"
	"github.com/chatwire/chatwire/pkg/provider/sendapi"
)

// Shape replaces every JSON leaf of raw by its kind, so two documents compare by structure.
func Shape(t testing.TB, raw []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, raw)
	}
	var walk func(any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			out := map[string]any{}
			for k, e := range x {
				out[k] = walk(e)
			}
			return out
		case []any:
			out := make([]any, len(x))
			for i, e := range x {
				out[i] = walk(e)
			}
			return out
		case string:
			return "string"
		case bool:
			return "bool"
		case float64:
			return "number"
		}
		return "null"
	}
	return walk(v)
}

// CheckOneSend asserts one send through a fake: exactly one request arrived, its body is the
// documented one value for value, it carried auth, and the returned id is the one the fake issued.
func CheckOneSend[B any](t testing.TB, reqs []fakeapi.Request[B], id, doc, auth string) {
	t.Helper()
	if len(reqs) != 1 {
		t.Fatalf("fake got %d requests, want 1", len(reqs))
	}
	var got, want any
	_ = json.Unmarshal(reqs[0].Raw, &got)
	_ = json.Unmarshal([]byte(doc), &want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("request body\n got %s\nwant %s", reqs[0].Raw, doc)
	}
	if reqs[0].Auth != auth {
		t.Fatalf("Authorization = %q, want %q (the key as configured after the scheme)", reqs[0].Auth, auth)
	}
	if id == "" || id != reqs[0].ID {
		t.Fatalf("returned id %q, fake issued %q", id, reqs[0].ID)
	}
}

// Post sends body as JSON to url with the Authorization header auth. The caller closes the body.
func Post(t testing.TB, c *http.Client, url, auth, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// CheckAnswerShape posts body and asserts the answer is JSON shaped like the documented doc.
func CheckAnswerShape(t testing.TB, c *http.Client, url, auth, body, doc string) {
	t.Helper()
	resp := Post(t, c, url, auth, body)
	defer resp.Body.Close()
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatalf("fake answered non-JSON: %v", err)
	}
	if got, want := Shape(t, raw), Shape(t, []byte(doc)); !reflect.DeepEqual(got, want) {
		t.Fatalf("fake answer shape %v, documented %v (%s)", got, want, raw)
	}
}

// CheckRefused posts each body and asserts the fake answers 400 to every one.
func CheckRefused(t *testing.T, c *http.Client, url, auth string, bodies ...string) {
	t.Helper()
	for _, body := range bodies {
		resp := Post(t, c, url, auth, body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", body, resp.StatusCode)
		}
	}
}

// InterpretCase is one provider answer and how it must be read.
type InterpretCase struct {
	Name          string
	Status        int
	Header        http.Header
	Body          string
	WantID        string // a success with this id; the fields below are then not checked
	WantPermanent bool
	WantAmbiguous bool
	WantCode      string
	WantWait      time.Duration
}

// CheckInterpret runs each case through interpret, one subtest a case.
func CheckInterpret(t *testing.T, interpret sendapi.Interpreter, cases []InterpretCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			h := tc.Header
			if h == nil {
				h = http.Header{}
			}
			id, err := interpret(tc.Status, h, []byte(tc.Body))
			if tc.WantID != "" {
				if err != nil || id != tc.WantID {
					t.Fatalf("got %q, %v; want %q", id, err, tc.WantID)
				}
				return
			}
			var se *sendapi.Error
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a *SendError", err)
			}
			if se.Permanent() != tc.WantPermanent || se.MaybeAccepted() != tc.WantAmbiguous ||
				se.ProviderCode() != tc.WantCode || se.RetryAfter() != tc.WantWait {
				t.Fatalf("got permanent=%v ambiguous=%v code=%q wait=%v", se.Permanent(), se.MaybeAccepted(), se.ProviderCode(), se.RetryAfter())
			}
			if se.ProviderText() == "" {
				t.Fatal("empty reason")
			}
		})
	}
}

// FuzzInterpret fuzzes interpret from the documented answers docs plus odd bodies: whatever the
// provider answers, reading it never panics, a success always comes without an error and a failure
// is always a classified *SendError.
func FuzzInterpret(f *testing.F, interpret sendapi.Interpreter, docs ...string) {
	for _, s := range append(docs, "", "null", "{", "[]", `{"status":1}`, `{"data":null,"error":"x"}`) {
		f.Add(200, s, "")
		f.Add(429, s, "5")
		f.Add(503, s, "Wed, 21 Oct 2015 07:28:00 GMT")
	}
	f.Fuzz(func(t *testing.T, status int, body, retryAfter string) {
		if status < 100 || status > 999 {
			return
		}
		h := http.Header{}
		h.Set("Retry-After", retryAfter)
		id, err := interpret(status, h, []byte(body))
		if err != nil {
			se, ok := err.(*sendapi.Error)
			if !ok || se.Code == "" || se.Text == "" || se.Wait < 0 {
				t.Fatalf("unclassified error %#v", err)
			}
			if id != "" {
				t.Fatalf("id %q with an error", id)
			}
		}
	})
}

// CheckNetworkErrors asserts how transport failures are classified. sendTo sends one message to
// the API at baseURL with a default client; slow sends one through a fake that answers late.
func CheckNetworkErrors(t *testing.T, sendTo func(ctx context.Context, baseURL string) error, slow func(ctx context.Context) error) {
	t.Helper()
	// Nothing listens: the request never left, so it is safe to retry at once.
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	err := sendTo(context.Background(), url)
	var se *sendapi.Error
	if !errors.As(err, &se) || se.Permanent() || se.MaybeAccepted() {
		t.Fatalf("dial failure: %v (ambiguous=%v)", err, se != nil && se.MaybeAccepted())
	}

	// A timeout after the request was written: the provider may have taken it.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = slow(ctx)
	if !errors.As(err, &se) || se.Permanent() || !se.MaybeAccepted() || se.Code != "timeout" {
		t.Fatalf("timeout: %v", err)
	}
}

// WantMsg is what a user of a parsed message sees; Payload and the channel are checked by each
// provider's test.
type WantMsg struct {
	ExternalID, Type, Text, FromPhone, FromName, ToPhone, ReplyTo string
	Media                                                         *event.Media
	ReceivedAt                                                    time.Time
	ClassifyText                                                  string
}

// WantStatus is what a user of a parsed delivery status sees.
type WantStatus struct {
	ExternalID, Reference, Status, ErrorCode, ErrorText string
	At                                                  time.Time
}

// WebhookFiles is where each provider keeps its webhook bodies, one JSON file a case.
const WebhookFiles = "testdata/webhook/*.json"

// EachWebhook runs check on every file of WebhookFiles with its table entry (keyed by the file's
// base name), one subtest a file, and fails when a file has no entry or an entry no file.
func EachWebhook[C any](t *testing.T, table map[string]C, check func(t *testing.T, body []byte, tc C)) {
	t.Helper()
	files, _ := filepath.Glob(WebhookFiles)
	if len(files) != len(table) {
		t.Errorf("%d testdata files but %d table entries: every payload needs an expectation", len(files), len(table))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		tc, ok := table[name]
		if !ok {
			t.Errorf("testdata/webhook/%s.json has no table entry", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			check(t, body, tc)
		})
	}
}

// SeedWebhooks adds every file of WebhookFiles to f's corpus.
func SeedWebhooks(f *testing.F) {
	files, _ := filepath.Glob(WebhookFiles)
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// Parsed reports whether a testdata body parsed and its checks should go on. A body the table
// marks invalid (wantErr) must fail with an error wrapping errParse, and res is printed when it
// did not; any other body must parse without error.
func Parsed(t testing.TB, err, errParse error, wantErr bool, res any) bool {
	t.Helper()
	if wantErr {
		if !errors.Is(err, errParse) {
			t.Fatalf("want an ErrParse error, got %v (result %+v)", err, res)
		}
		return false
	}
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return true
}

// CheckMessages compares parsed messages with want, and checks each passes the wire codec.
func CheckMessages(t testing.TB, got []event.InboundMessage, want []WantMsg) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d messages, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		m := got[i]
		g := WantMsg{ExternalID: m.ExternalID, Type: m.Type, Text: m.Text, FromPhone: m.FromPhone, FromName: m.FromName,
			ToPhone: m.ToPhone, ReplyTo: m.ReplyToExternalID, Media: m.Media, ReceivedAt: m.ReceivedAt, ClassifyText: m.ClassifyText}
		if !wantEqual(g, w) {
			t.Errorf("message %d:\n got %+v (media %+v)\nwant %+v (media %+v)", i, g, g.Media, w, w.Media)
		}
		CheckWire(t, m)
	}
}

// CheckStatuses compares parsed statuses with want, and checks each passes the wire codec.
func CheckStatuses(t testing.TB, got []event.StatusUpdate, want []WantStatus) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d statuses, want %d", len(got), len(want))
	}
	for i, w := range want {
		s := got[i]
		g := WantStatus{ExternalID: s.ExternalID, Reference: s.Reference, Status: s.Status, ErrorCode: s.ErrorCode, ErrorText: s.ErrorText, At: s.At}
		if g != w {
			t.Errorf("status %d:\n got %+v\nwant %+v", i, g, w)
		}
		CheckWireStatus(t, s)
	}
}

func wantEqual(a, b WantMsg) bool {
	am, bm := a.Media, b.Media
	a.Media, b.Media = nil, nil
	if a != b || (am == nil) != (bm == nil) {
		return false
	}
	return am == nil || *am == *bm
}

// CheckWire asserts that a parsed message is accepted by the codec the ingestor uses.
func CheckWire(t testing.TB, m event.InboundMessage) {
	t.Helper()
	m.ID = "01JMZ8Q3V8T4ZP3W7H5C2N9K6R"
	data, err := event.Encode(&m)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	if _, err := event.Decode[event.InboundMessage](data); err != nil {
		t.Fatalf("the ingestor would refuse this message: %v", err)
	}
}

// CheckWireStatus asserts that a parsed status is accepted by the codec the ingestor uses.
func CheckWireStatus(t testing.TB, s event.StatusUpdate) {
	t.Helper()
	data, err := event.Encode(&s)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	if _, err := event.Decode[event.StatusUpdate](data); err != nil {
		t.Fatalf("the ingestor would refuse this status: %v", err)
	}
}
