package netcore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"time"
)

// FakeServer is an httptest stand-in for Netcore's WhatsApp message API, for tests and benchmarks
// of code that sends through Netcore. It checks requests the way the documented API does (method,
// path, Bearer key, message[] body shape) and answers with the documented shapes; a script of
// replies reproduces Netcore's failures. The contract tests in this package keep it honest.
type FakeServer struct {
	URL    string // base URL, to pass to NewSender
	APIKey string // the key requests must carry

	srv      *httptest.Server
	mu       sync.Mutex
	latency  time.Duration
	script   []FakeReply
	requests []FakeRequest
	seq      int
}

// FakeRequest is one request the fake received.
type FakeRequest struct {
	Body     SendRequest
	Raw      []byte
	Auth     string
	At       time.Time
	Status   int    // what the fake answered
	Accepted bool   // the fake "sent" the message
	ID       string // the ncmessage_id it returned when accepted
}

// FakeReply is a scripted answer. A zero Status means "accept the message".
type FakeReply struct {
	Status int
	Body   string
	Header http.Header
	Delay  time.Duration // extra latency for this reply
	// AcceptThenFail records the message as accepted but answers Status/Body anyway, to reproduce
	// a response lost after Netcore took the message.
	AcceptThenFail bool
}

// FakeFailure is Netcore's documented failure body with the given code and message.
func FakeFailure(httpStatus int, code, msg string) FakeReply {
	b, _ := json.Marshal(SendResponse{Status: "failure", Error: &SendErrorBody{Code: sendCode(code), Message: msg}})
	return FakeReply{Status: httpStatus, Body: string(b)}
}

// Documented answers, for scripts.
var (
	// FakeUnavailable is a 503.
	FakeUnavailable = FakeFailure(http.StatusServiceUnavailable, "503", "Service temporarily unavailable")
	// FakeRateLimited is a 429 with Retry-After: 1.
	FakeRateLimited = FakeReply{Status: http.StatusTooManyRequests,
		Body:   `{"status":"failure","error":{"code":"429","message":"Too many requests"}}`,
		Header: http.Header{"Retry-After": []string{"1"}}}
	// FakeOutsideWindow is 8007: outside the 24-hour customer window.
	FakeOutsideWindow = FakeFailure(http.StatusBadRequest, CodeWindowClosed,
		"Message failed to send because more than 24 hours have passed since the customer last replied")
)

// NewFake starts a fake Netcore that accepts apiKey. Close it when done.
func NewFake(apiKey string) *FakeServer {
	f := &FakeServer{APIKey: apiKey}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	return f
}

// Close stops the server.
func (f *FakeServer) Close() { f.srv.Close() }

// Client returns an HTTP client for the fake.
func (f *FakeServer) Client() *http.Client { return f.srv.Client() }

// SetLatency delays every answer by d.
func (f *FakeServer) SetLatency(d time.Duration) {
	f.mu.Lock()
	f.latency = d
	f.mu.Unlock()
}

// Enqueue scripts the next answers, in order; once they are used up the fake accepts.
func (f *FakeServer) Enqueue(r ...FakeReply) {
	f.mu.Lock()
	f.script = append(f.script, r...)
	f.mu.Unlock()
}

// Requests returns a copy of every request received.
func (f *FakeServer) Requests() []FakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]FakeRequest(nil), f.requests...)
}

// Calls is the number of requests received.
func (f *FakeServer) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

// AcceptedFor counts the messages accepted with this x-apiheader.
func (f *FakeServer) AcceptedFor(ref string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.requests {
		if r.Accepted && len(r.Body.Message) > 0 && r.Body.Message[0].XAPIHeader == ref {
			n++
		}
	}
	return n
}

func (f *FakeServer) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	fr := FakeRequest{Raw: raw, Auth: r.Header.Get("Authorization"), At: time.Now()}
	status, body, header, delay, accept := f.decide(r, raw, &fr)

	f.mu.Lock()
	latency := f.latency
	if accept {
		f.seq++
		fr.Accepted = true
		fr.ID = "nc-" + strconv.Itoa(f.seq)
		if body == "" {
			body = fmt.Sprintf(`{"status":"success","data":{"id":%q}}`, fr.ID)
		}
	}
	fr.Status = status
	f.requests = append(f.requests, fr)
	f.mu.Unlock()

	if d := latency + delay; d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	for k, vs := range header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// decide validates the request like Netcore would, then applies the script. The codes of the
// fake's own validation failures are illustrative: Netcore documents 8001–8008 without a public
// list of which is which, except 8007.
func (f *FakeServer) decide(r *http.Request, raw []byte, fr *FakeRequest) (status int, body string, h http.Header, delay time.Duration, accept bool) {
	fail := func(code int, c, msg string) (int, string, http.Header, time.Duration, bool) {
		fr := FakeFailure(code, c, msg)
		return fr.Status, fr.Body, nil, 0, false
	}
	if r.Method != http.MethodPost {
		return fail(http.StatusMethodNotAllowed, "405", "Method not allowed")
	}
	if r.URL.Path != SendPath {
		return fail(http.StatusNotFound, "404", "Not found")
	}
	if r.Header.Get("Authorization") != "Bearer "+f.APIKey {
		return fail(http.StatusUnauthorized, "401", "Unauthorized: invalid API key")
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		return fail(http.StatusBadRequest, "8001", "Content-Type must be application/json")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fr.Body); err != nil {
		return fail(http.StatusBadRequest, "8001", "Invalid JSON payload: "+err.Error())
	}
	if msg := FakeValidate(fr.Body); msg != "" {
		return fail(http.StatusBadRequest, "8001", msg)
	}

	f.mu.Lock()
	var next *FakeReply
	if len(f.script) > 0 {
		next = &f.script[0]
		f.script = f.script[1:]
	}
	f.mu.Unlock()
	if next == nil || next.Status == 0 {
		var d time.Duration
		if next != nil {
			d = next.Delay
		}
		return http.StatusOK, "", nil, d, true
	}
	return next.Status, next.Body, next.Header, next.Delay, next.AcceptThenFail
}

// FakeValidate checks a body against the documented request shape and returns what is wrong, or "".
func FakeValidate(b SendRequest) string {
	if len(b.Message) != 1 {
		return "message must hold exactly one message"
	}
	m := b.Message[0]
	if len(m.RecipientWhatsapp) < 8 || len(m.RecipientWhatsapp) > 15 || sendPhone(m.RecipientWhatsapp) != m.RecipientWhatsapp {
		return "recipient_whatsapp must be the country code and number, digits only"
	}
	if m.RecipientType != "individual" {
		return "recipient_type must be individual"
	}
	switch m.MessageType {
	case SendTypeText:
		if len(m.TypeText) != 1 || m.TypeText[0].Content == "" {
			return "type_text[0].content is required for message_type text"
		}
		if p := m.TypeText[0].PreviewURL; p != "true" && p != "false" {
			return `type_text[0].preview_url must be "true" or "false"`
		}
		if len(m.TypeMedia) != 0 {
			return "type_media is not allowed for message_type text"
		}
	case SendTypeMedia:
		if len(m.TypeMedia) != 1 || m.TypeMedia[0].Attachment.AttachmentURL == "" {
			return "type_media[0].attachment.attachment_url is required for message_type media"
		}
		switch m.TypeMedia[0].Attachment.AttachmentType {
		case SendAttachImage, SendAttachDocument, SendAttachVideo, SendAttachAudio:
		default:
			return "attachment_type must be image, document, video or audio"
		}
	default:
		return "message_type must be text or media"
	}
	return ""
}
