package classify

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// reply is one scripted answer of a fake LLM API.
type reply struct {
	status  int               // 0: 200
	header  map[string]string // extra response headers
	body    string            // raw body; when empty, the API's success envelope around answer
	answer  string            // the model's text
	hang    bool              // never answer; wait for the client to give up
	rawJSON bool              // body is used verbatim even for 200
}

// fakeLLM reproduces the documented request/response shapes of one API. It answers with the
// scripted replies in order, repeating the last one, and records every request.
type fakeLLM struct {
	t       *testing.T
	api     string // gemini | openai
	srv     *httptest.Server
	mu      sync.Mutex
	script  []reply
	reqs    []recorded
	release chan struct{}
}

type recorded struct {
	method, path string
	header       http.Header
	body         map[string]any
}

func newFake(t *testing.T, api string, script ...reply) *fakeLLM {
	f := &fakeLLM{t: t, api: api, script: script, release: make(chan struct{})}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		close(f.release)
		f.srv.Close()
	})
	return f
}

func (f *fakeLLM) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		f.t.Errorf("%s fake: request body is not JSON: %v", f.api, err)
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, recorded{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: body})
	n := len(f.reqs)
	rp := f.script[min(n, len(f.script))-1]
	f.mu.Unlock()

	if rp.hang {
		select {
		case <-r.Context().Done():
		case <-f.release:
		}
		return
	}
	for k, v := range rp.header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	status := rp.status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	if rp.body != "" || rp.rawJSON || status != http.StatusOK {
		io.WriteString(w, rp.body)
		return
	}
	io.WriteString(w, f.envelope(rp.answer))
}

// envelope wraps a model answer the way each API documents its success response.
func (f *fakeLLM) envelope(answer string) string {
	var v any
	switch f.api {
	case "gemini": // https://ai.google.dev/api/generate-content#generatecontentresponse
		v = map[string]any{
			"candidates": []any{map[string]any{
				"content":      map[string]any{"parts": []any{map[string]any{"text": answer}}, "role": "model"},
				"finishReason": "STOP",
				"index":        0,
			}},
			"usageMetadata": map[string]any{"promptTokenCount": 120, "candidatesTokenCount": 18, "totalTokenCount": 138},
			"modelVersion":  "gemini-2.0-flash",
			"responseId":    "mcY2aJzfLdSmkdUPz8-E0Qc",
		}
	case "openai": // https://platform.openai.com/docs/api-reference/chat/object
		v = map[string]any{
			"id":      "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
			"object":  "chat.completion",
			"created": 1741570283,
			"model":   "gpt-4o-mini-2024-07-18",
			"choices": []any{map[string]any{
				"index":         0,
				"message":       map[string]any{"role": "assistant", "content": answer, "refusal": nil},
				"logprobs":      nil,
				"finish_reason": "stop",
			}},
			"usage": map[string]any{"prompt_tokens": 120, "completion_tokens": 18, "total_tokens": 138},
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func (f *fakeLLM) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.reqs...)
}

// classifier builds the guarded classifier of the fake's API, with short backoffs for tests.
func (f *fakeLLM) classifier(t *testing.T, timeout time.Duration, retries int, log *slog.Logger) *Guarded {
	t.Helper()
	cfg := Config{Kind: f.api, Timeout: timeout, Retries: retries}
	switch f.api {
	case "gemini":
		cfg.GeminiBaseURL, cfg.GeminiAPIKey, cfg.GeminiModel = f.srv.URL, testGeminiKey, "gemini-2.0-flash"
	case "openai":
		cfg.OpenAIBaseURL, cfg.OpenAIAPIKey, cfg.OpenAIModel = f.srv.URL+"/v1", testOpenAIKey, "llama3.1:8b"
	}
	g, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	g.backoffBase, g.backoffMax = 20*time.Millisecond, 50*time.Millisecond
	return g
}

const (
	testGeminiKey = "AIzaSyTESTKEY-never-logged"
	testOpenAIKey = "sk-test-never-logged"
)

// logBuffer collects log output so tests can check what reaches the logs.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
