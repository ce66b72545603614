package interakt

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

// FakeServer is an httptest stand-in for Interakt's public message API, for tests and benchmarks
// of code that sends through Interakt. It checks requests the way the documented API does (method,
// path, Basic key, body shape) and answers with the documented shapes; a script of replies lets a
// test reproduce Interakt's failures. The contract tests in this package keep it honest.
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
	ID       string // the id it returned when accepted
}

// FakeReply is a scripted answer. A zero Status means "accept the message".
type FakeReply struct {
	Status int
	Body   string
	Header http.Header
	Delay  time.Duration // extra latency for this reply
	// AcceptThenFail records the message as accepted but answers Status/Body anyway, to reproduce
	// a response lost after Interakt took the message (a 504 from a proxy, say).
	AcceptThenFail bool
}

// Documented answers, for scripts.
var (
	// FakeUnavailable is a 503.
	FakeUnavailable = FakeReply{Status: http.StatusServiceUnavailable, Body: `{"result":false,"message":"Service Unavailable"}`}
	// FakeRateLimited is a 429 with Retry-After: 1.
	FakeRateLimited = FakeReply{Status: http.StatusTooManyRequests, Body: `{"result":false,"message":"Too many requests"}`,
		Header: http.Header{"Retry-After": []string{"1"}}}
	// FakeWindowClosed is Interakt refusing free-form text outside the 24-hour window: HTTP 200
	// with result:false.
	FakeWindowClosed = FakeReply{Status: http.StatusOK,
		Body: `{"result":false,"message":"Message could not be sent: the 24 hour customer service window is closed, use a template"}`}
	// FakeRefused is a generic result:false with HTTP 200.
	FakeRefused = FakeReply{Status: http.StatusOK, Body: `{"result":false,"message":"Invalid phone number"}`}
)

// NewFake starts a fake Interakt that accepts apiKey. Close it when done.
func NewFake(apiKey string) *FakeServer {
	f := &FakeServer{APIKey: apiKey}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	return f
}

// Close stops the server.
func (f *FakeServer) Close() { f.srv.Close() }

// Client returns an HTTP client for the fake with enough idle connections for concurrent sends.
func (f *FakeServer) Client() *http.Client { return f.srv.Client() }

// SetLatency delays every answer by d (a real API takes tens of milliseconds).
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

// AcceptedFor counts the messages accepted with this callbackData: more than one is a duplicate
// the customer would see.
func (f *FakeServer) AcceptedFor(callbackData string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.requests {
		if r.Accepted && r.Body.CallbackData == callbackData {
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
		fr.ID = "ik-" + strconv.Itoa(f.seq)
		if body == "" {
			body = fmt.Sprintf(`{"result":true,"message":"Message created successfully","id":%q}`, fr.ID)
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

// decide validates the request like Interakt would, then applies the script.
func (f *FakeServer) decide(r *http.Request, raw []byte, fr *FakeRequest) (status int, body string, h http.Header, delay time.Duration, accept bool) {
	fail := func(code int, msg string) (int, string, http.Header, time.Duration, bool) {
		b, _ := json.Marshal(SendResponse{Result: false, Message: msg})
		return code, string(b), nil, 0, false
	}
	if r.Method != http.MethodPost {
		return fail(http.StatusMethodNotAllowed, "Method not allowed")
	}
	if r.URL.Path != SendPath {
		return fail(http.StatusNotFound, "Not found")
	}
	if r.Header.Get("Authorization") != "Basic "+f.APIKey {
		return fail(http.StatusUnauthorized, "Invalid API key")
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		return fail(http.StatusBadRequest, "Content-Type must be application/json")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fr.Body); err != nil {
		return fail(http.StatusBadRequest, "Invalid request body: "+err.Error())
	}
	if msg := FakeValidate(fr.Body); msg != "" {
		return fail(http.StatusBadRequest, msg)
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
	if len(b.FullPhoneNumber) < 8 || len(b.FullPhoneNumber) > 15 || sendPhone(b.FullPhoneNumber) != b.FullPhoneNumber {
		return "fullPhoneNumber must be the country code and number, digits only"
	}
	switch b.Type {
	case SendTypeText:
		if b.Data.Message == "" {
			return "data.message is required for type Text"
		}
		if b.Data.MediaURL != "" {
			return "data.mediaUrl is not allowed for type Text"
		}
	case SendTypeImage, SendTypeDocument, SendTypeVideo, SendTypeAudio:
		if b.Data.MediaURL == "" {
			return "data.mediaUrl is required for type " + b.Type
		}
	default:
		return "type must be Text, Image, Document, Video or Audio"
	}
	return ""
}
