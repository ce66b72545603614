// Package fakeapi is the plumbing of the providers' fake message APIs (interakt.NewFake,
// netcore.NewFake): an httptest server that checks requests in the order a real provider does
// (method, path, key, JSON body, body shape), records every request, answers from a script of
// replies and "accepts" the message otherwise. Each provider package supplies what differs: its
// path, auth scheme, body type, validation and the JSON of its answers.
package fakeapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"time"
)

// Reply is a scripted answer. A zero Status means "accept the message".
type Reply struct {
	Status int
	Body   string
	Header http.Header
	Delay  time.Duration // extra latency for this reply
	// AcceptThenFail records the message as accepted but answers Status/Body anyway, to reproduce
	// a response lost after the provider took the message (a 504 from a proxy, say).
	AcceptThenFail bool
}

// Request is one request the fake received; Body is the decoded provider body.
type Request[B any] struct {
	Body     B
	Raw      []byte
	Auth     string
	At       time.Time
	Status   int    // what the fake answered
	Accepted bool   // the fake "sent" the message
	ID       string // the provider message id it returned when accepted
}

// Refusal is the check a request failed, in the order the fake checks.
type Refusal int

const (
	RefuseMethod      Refusal = iota // not a POST (405)
	RefusePath                       // not the send path (404)
	RefuseAuth                       // wrong Authorization (401)
	RefuseContentType                // not application/json (400)
	RefuseBody                       // not JSON or unknown fields (400); detail is the decode error
	RefuseInvalid                    // the provider's own validation (400); detail is its message
)

// API is what a provider's fake differs in.
type API[B any] struct {
	Path       string // the send path, e.g. /v1/public/message/
	AuthScheme string // "Basic " or "Bearer ": Authorization must be AuthScheme+key
	IDPrefix   string // prefix of the message ids the fake issues ("ik-", "nc-")
	// Accepted is the success body for an accepted message with this id.
	Accepted func(id string) string
	// Refused is the provider's error body for a request that failed check why with this status.
	Refused func(status int, why Refusal, detail string) string
	// Validate checks a decoded body against the documented shape; it returns what is wrong or "".
	Validate func(B) string
}

// Server is a running fake. It is safe for concurrent use.
type Server[B any] struct {
	URL    string // base URL, to pass to the provider's NewSender
	APIKey string // the key requests must carry

	api      API[B]
	srv      *httptest.Server
	mu       sync.Mutex
	latency  time.Duration
	script   []Reply
	requests []Request[B]
	seq      int
}

// NewServer starts a fake of api that accepts apiKey. Close it when done.
func NewServer[B any](apiKey string, api API[B]) *Server[B] {
	f := &Server[B]{APIKey: apiKey, api: api}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	return f
}

// Close stops the server.
func (f *Server[B]) Close() { f.srv.Close() }

// Client returns an HTTP client for the fake with enough idle connections for concurrent sends.
func (f *Server[B]) Client() *http.Client { return f.srv.Client() }

// SetLatency delays every answer by d (a real API takes tens of milliseconds).
func (f *Server[B]) SetLatency(d time.Duration) {
	f.mu.Lock()
	f.latency = d
	f.mu.Unlock()
}

// Enqueue scripts the next answers, in order; once they are used up the fake accepts.
func (f *Server[B]) Enqueue(r ...Reply) {
	f.mu.Lock()
	f.script = append(f.script, r...)
	f.mu.Unlock()
}

// Requests returns a copy of every request received.
func (f *Server[B]) Requests() []Request[B] {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request[B](nil), f.requests...)
}

// Calls is the number of requests received.
func (f *Server[B]) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

// CountAccepted counts the accepted requests whose body match selects.
func (f *Server[B]) CountAccepted(match func(B) bool) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.requests {
		if r.Accepted && match(r.Body) {
			n++
		}
	}
	return n
}

func (f *Server[B]) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	fr := Request[B]{Raw: raw, Auth: r.Header.Get("Authorization"), At: time.Now()}
	status, body, header, delay, accept := f.decide(r, raw, &fr)

	f.mu.Lock()
	latency := f.latency
	if accept {
		f.seq++
		fr.Accepted = true
		fr.ID = f.api.IDPrefix + strconv.Itoa(f.seq)
		if body == "" {
			body = f.api.Accepted(fr.ID)
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

// decide validates the request like the provider would, then applies the script.
func (f *Server[B]) decide(r *http.Request, raw []byte, fr *Request[B]) (status int, body string, h http.Header, delay time.Duration, accept bool) {
	fail := func(code int, why Refusal, detail string) (int, string, http.Header, time.Duration, bool) {
		return code, f.api.Refused(code, why, detail), nil, 0, false
	}
	if r.Method != http.MethodPost {
		return fail(http.StatusMethodNotAllowed, RefuseMethod, "")
	}
	if r.URL.Path != f.api.Path {
		return fail(http.StatusNotFound, RefusePath, "")
	}
	if r.Header.Get("Authorization") != f.api.AuthScheme+f.APIKey {
		return fail(http.StatusUnauthorized, RefuseAuth, "")
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		return fail(http.StatusBadRequest, RefuseContentType, "")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fr.Body); err != nil {
		return fail(http.StatusBadRequest, RefuseBody, err.Error())
	}
	if msg := f.api.Validate(fr.Body); msg != "" {
		return fail(http.StatusBadRequest, RefuseInvalid, msg)
	}

	f.mu.Lock()
	var next *Reply
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
