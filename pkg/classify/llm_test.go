package classify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

const customerText = "Mera order kab aayega? Order no 4411, phone 9876543210"

func TestGeminiRequestAndSuccess(t *testing.T) {
	f := newFake(t, "gemini", reply{answer: `{"summary": "Customer asks when order 4411 will arrive", "team": "dispatch"}`})
	g := f.classifier(t, time.Second, 2, nil)

	r, err := g.Classify(context.Background(), customerText)
	if err != nil {
		t.Fatalf("Classify: %v", err)
	}
	if want := (Result{Summary: "Customer asks when order 4411 will arrive", Team: "dispatch"}); r != want {
		t.Errorf("got %+v, want %+v", r, want)
	}

	reqs := f.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	q := reqs[0]
	if q.method != "POST" || q.path != "/v1beta/models/gemini-2.0-flash:generateContent" {
		t.Errorf("request %s %s", q.method, q.path)
	}
	if got := q.header.Get("x-goog-api-key"); got != testGeminiKey {
		t.Errorf("x-goog-api-key = %q", got)
	}
	if q.header.Get("Authorization") != "" {
		t.Error("the Gemini key must travel in x-goog-api-key only")
	}
	if ct := q.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if got := dig(q.body, "contents", 0, "parts", 0, "text"); got != customerText {
		t.Errorf("contents[0].parts[0].text = %v", got)
	}
	if got := dig(q.body, "contents", 0, "role"); got != "user" {
		t.Errorf("contents[0].role = %v", got)
	}
	if got := dig(q.body, "generationConfig", "responseMimeType"); got != "application/json" {
		t.Errorf("generationConfig.responseMimeType = %v", got)
	}
	if got := dig(q.body, "generationConfig", "responseSchema", "properties", "team", "enum"); fmt.Sprint(got) != fmt.Sprint(Teams) {
		t.Errorf("team enum = %v", got)
	}
	if got, _ := dig(q.body, "systemInstruction", "parts", 0, "text").(string); !strings.Contains(got, "returns_refunds") {
		t.Errorf("system instruction does not name the teams: %q", got)
	}
}

func TestOpenAIRequestAndSuccess(t *testing.T) {
	f := newFake(t, "openai", reply{answer: "```json\n{\"summary\": \"Wants a refund for a damaged item\", \"team\": \"returns_refunds\"}\n```"})
	g := f.classifier(t, time.Second, 2, nil)

	r, err := g.Classify(context.Background(), "saman toota hua aaya, paisa wapas chahiye")
	if err != nil {
		t.Fatalf("Classify: %v", err)
	}
	if want := (Result{Summary: "Wants a refund for a damaged item", Team: "returns_refunds"}); r != want {
		t.Errorf("got %+v, want %+v", r, want)
	}
	q := f.requests()[0]
	if q.method != "POST" || q.path != "/v1/chat/completions" {
		t.Errorf("request %s %s", q.method, q.path)
	}
	if got := q.header.Get("Authorization"); got != "Bearer "+testOpenAIKey {
		t.Errorf("Authorization = %q", got)
	}
	if got := dig(q.body, "model"); got != "llama3.1:8b" {
		t.Errorf("model = %v", got)
	}
	if dig(q.body, "messages", 0, "role") != "system" || dig(q.body, "messages", 1, "role") != "user" ||
		dig(q.body, "messages", 1, "content") != "saman toota hua aaya, paisa wapas chahiye" {
		t.Errorf("messages = %v", q.body["messages"])
	}
	if got := dig(q.body, "response_format", "type"); got != "json_object" {
		t.Errorf("response_format.type = %v", got)
	}
}

func TestOpenAIWithoutKeySendsNoAuthorization(t *testing.T) {
	f := newFake(t, "openai", reply{answer: `{"summary":"Asks the price","team":"sales"}`})
	g, err := New(Config{Kind: "openai", OpenAIBaseURL: f.srv.URL + "/v1/", OpenAIModel: "qwen2.5"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := g.Classify(context.Background(), "price kya hai"); err != nil || r.Team != "sales" {
		t.Fatalf("got %+v, %v", r, err)
	}
	q := f.requests()[0]
	if _, ok := q.header["Authorization"]; ok {
		t.Errorf("Authorization sent without a key: %q", q.header.Get("Authorization"))
	}
	if q.path != "/v1/chat/completions" {
		t.Errorf("path = %s (a trailing slash on the base URL must not double)", q.path)
	}
}

// A self-hosted server that does not know response_format answers 400 naming it; the client
// repeats the request without it, and stops sending it.
func TestOpenAIRetriesWithoutResponseFormat(t *testing.T) {
	reject := reply{status: 400, body: `{"error":{"message":"Unrecognized request argument supplied: response_format","type":"invalid_request_error","param":null,"code":null}}`}
	ok := reply{answer: `{"summary":"App crashes on login","team":"technical"}`}
	f := newFake(t, "openai", reject, ok)
	g := f.classifier(t, time.Second, 2, nil)

	for i := range 2 {
		r, err := g.Classify(context.Background(), "app login pe crash ho raha hai")
		if err != nil || r.Team != "technical" {
			t.Fatalf("call %d: got %+v, %v", i, r, err)
		}
	}
	reqs := f.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3 (rejected, repeated, next call)", len(reqs))
	}
	if _, ok := reqs[0].body["response_format"]; !ok {
		t.Error("first request should offer response_format")
	}
	for i, q := range reqs[1:] {
		if _, ok := q.body["response_format"]; ok {
			t.Errorf("request %d still sends response_format", i+2)
		}
		if _, ok := q.body["temperature"]; !ok {
			t.Errorf("request %d dropped temperature, which the server never rejected", i+2)
		}
	}
}

// The failure modes every LLM classifier must survive, run against both APIs.
func TestLLMFailures(t *testing.T) {
	for _, api := range []string{"gemini", "openai"} {
		t.Run(api, func(t *testing.T) {
			t.Parallel()
			testLLMFailures(t, api)
		})
	}
}

func testLLMFailures(t *testing.T, api string) {
	good := reply{answer: `{"summary":"Payment failed but money was deducted","team":"finance"}`}
	goodResult := Result{Summary: "Payment failed but money was deducted", Team: "finance"}
	text := "payment fail ho gaya\npaise kat gaye"
	fallback := Fallback(text)

	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, api, reply{hang: true})
		g := f.classifier(t, 150*time.Millisecond, 1, nil)
		start := time.Now()
		r, err := g.Classify(context.Background(), text)
		el := time.Since(start)
		if OutcomeOf(err) != OutcomeFallbackTimeout || r != fallback {
			t.Fatalf("got %+v, %v; want the fallback with fallback_timeout", r, err)
		}
		if n := len(f.requests()); n != 2 {
			t.Errorf("%d attempts, want 2", n)
		}
		if el < 300*time.Millisecond || el > 2*time.Second {
			t.Errorf("took %s, want about 2 × 150ms", el)
		}
	})

	t.Run("429 Retry-After then success", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, api, reply{status: 429, header: map[string]string{"Retry-After": "1"}, body: rateLimitBody(api)}, good)
		g := f.classifier(t, time.Second, 2, nil)
		start := time.Now()
		r, err := g.Classify(context.Background(), text)
		if err != nil || r != goodResult {
			t.Fatalf("got %+v, %v", r, err)
		}
		if el := time.Since(start); el < time.Second {
			t.Errorf("retried after %s, before the 1 s Retry-After", el)
		}
		if n := len(f.requests()); n != 2 {
			t.Errorf("%d requests, want 2", n)
		}
	})

	t.Run("429 with Retry-After too long falls back at once", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, api, reply{status: 429, header: map[string]string{"Retry-After": "3600"}, body: rateLimitBody(api)}, good)
		g := f.classifier(t, time.Second, 2, nil)
		start := time.Now()
		r, err := g.Classify(context.Background(), text)
		if OutcomeOf(err) != OutcomeFallbackError || r != fallback {
			t.Fatalf("got %+v, %v", r, err)
		}
		if n := len(f.requests()); n != 1 || time.Since(start) > time.Second {
			t.Errorf("%d requests in %s, want 1 right away", n, time.Since(start))
		}
	})

	t.Run("500s then fallback", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, api, reply{status: 500, body: `{"error":{"code":500,"message":"Internal error encountered.","status":"INTERNAL"}}`})
		g := f.classifier(t, time.Second, 2, nil)
		r, err := g.Classify(context.Background(), text)
		if OutcomeOf(err) != OutcomeFallbackError || r != fallback {
			t.Fatalf("got %+v, %v", r, err)
		}
		var fe *FallbackError
		if !errors.As(err, &fe) || fe.Attempts != 3 {
			t.Errorf("err = %v, want a FallbackError after 3 attempts", err)
		}
		if n := len(f.requests()); n != 3 {
			t.Errorf("%d requests, want 3", n)
		}
	})

	t.Run("503 then success", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, api, reply{status: 503, body: `{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}`}, good)
		g := f.classifier(t, time.Second, 2, nil)
		if r, err := g.Classify(context.Background(), text); err != nil || r != goodResult {
			t.Fatalf("got %+v, %v", r, err)
		}
	})

	t.Run("401 is not retried", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, api, reply{status: 401, body: `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}`}, good)
		g := f.classifier(t, time.Second, 2, nil)
		r, err := g.Classify(context.Background(), text)
		if OutcomeOf(err) != OutcomeFallbackError || r != fallback {
			t.Fatalf("got %+v, %v", r, err)
		}
		if n := len(f.requests()); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
	})

	t.Run("server down", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, api, good)
		g := f.classifier(t, time.Second, 1, nil)
		f.srv.Close()
		r, err := g.Classify(context.Background(), text)
		if OutcomeOf(err) != OutcomeFallbackError || r != fallback {
			t.Fatalf("got %+v, %v", r, err)
		}
	})

	malformed := []struct {
		name    string
		reply   reply
		outcome Outcome
		want    Result
		calls   int
	}{
		{"non-JSON text", reply{answer: "The customer has a payment problem, send to finance."}, OutcomeFallbackMalformed, fallback, 2},
		{"JSON of the wrong shape", reply{answer: `["finance"]`}, OutcomeFallbackMalformed, fallback, 2},
		{"JSON without either field", reply{answer: `{"category":"finance"}`}, OutcomeFallbackMalformed, fallback, 2},
		{"wrong team", reply{answer: `{"summary":"Payment failed","team":"accounting dept"}`}, OutcomeOK, Result{Summary: "Payment failed", Team: "general"}, 1},
		{"team alias", reply{answer: `{"summary":"Payment failed","team":"Billing"}`}, OutcomeOK, Result{Summary: "Payment failed", Team: "finance"}, 1},
		{"missing summary", reply{answer: `{"team":"finance"}`}, OutcomeOK, Result{Summary: "payment fail ho gaya", Team: "finance"}, 1},
		{"multi-line summary", reply{answer: "{\"summary\":\"Payment failed.\\nMoney deducted.\",\"team\":\"finance\"}"}, OutcomeOK, Result{Summary: "Payment failed. Money deducted.", Team: "finance"}, 1},
		{"prose around JSON", reply{answer: "Sure! Here it is:\n{\"summary\":\"Payment failed\",\"team\":\"finance\"}\nHope this helps."}, OutcomeOK, Result{Summary: "Payment failed", Team: "finance"}, 1},
		{"think block", reply{answer: "<think>The user says {paise} were deducted</think>\n{\"summary\":\"Payment failed\",\"team\":\"finance\"}"}, OutcomeOK, Result{Summary: "Payment failed", Team: "finance"}, 1},
		{"empty answer", reply{answer: ""}, OutcomeFallbackMalformed, fallback, 2},
		{"empty candidates/choices", reply{rawJSON: true, body: emptyBody(api)}, OutcomeFallbackMalformed, fallback, 2},
		{"HTML instead of JSON", reply{body: "<html><body>Bad gateway</body></html>", rawJSON: true}, OutcomeFallbackMalformed, fallback, 2},
	}
	if api == "gemini" {
		malformed = append(malformed, struct {
			name    string
			reply   reply
			outcome Outcome
			want    Result
			calls   int
		}{"prompt blocked", reply{rawJSON: true, body: `{"promptFeedback":{"blockReason":"SAFETY","safetyRatings":[]},"usageMetadata":{"promptTokenCount":9}}`}, OutcomeFallbackMalformed, fallback, 2})
	}
	for _, m := range malformed {
		t.Run("malformed/"+m.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, api, m.reply)
			g := f.classifier(t, time.Second, 3, nil)
			r, err := g.Classify(context.Background(), text)
			if OutcomeOf(err) != m.outcome || r != m.want {
				t.Fatalf("got %+v, %v (%s); want %+v, %s", r, err, OutcomeOf(err), m.want, m.outcome)
			}
			// A malformed answer is retried once at most, even with retries to spare.
			if n := len(f.requests()); n != m.calls {
				t.Errorf("%d requests, want %d", n, m.calls)
			}
		})
	}
}

func rateLimitBody(api string) string {
	if api == "gemini" {
		return `{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}`
	}
	return `{"error":{"message":"Rate limit reached for requests","type":"requests","param":null,"code":"rate_limit_exceeded"}}`
}

func emptyBody(api string) string {
	if api == "gemini" {
		return `{"candidates":[],"usageMetadata":{"promptTokenCount":9}}`
	}
	return `{"id":"chatcmpl-1","object":"chat.completion","choices":[]}`
}

// Gemini states its rate-limit pause in the error body (google.rpc.RetryInfo), not always in
// a Retry-After header.
func TestGeminiRetryInfoDelayHonoured(t *testing.T) {
	body := `{"error":{"code":429,"message":"You exceeded your current quota.","status":"RESOURCE_EXHAUSTED",
	"details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[]},
	{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"0.4s"}]}}`
	f := newFake(t, "gemini", reply{status: 429, body: body}, reply{answer: `{"summary":"Asks for the price","team":"sales"}`})
	g := f.classifier(t, time.Second, 2, nil)
	start := time.Now()
	if r, err := g.Classify(context.Background(), "price kya hai"); err != nil || r.Team != "sales" {
		t.Fatalf("got %+v, %v", r, err)
	}
	if el := time.Since(start); el < 400*time.Millisecond {
		t.Errorf("retried after %s, before the 0.4s RetryInfo delay", el)
	}
}

// Cancelling the caller's context (shutdown) ends a hanging call at once, and says so.
func TestCallerCancelStopsAtOnce(t *testing.T) {
	f := newFake(t, "openai", reply{hang: true})
	g := f.classifier(t, 10*time.Second, 2, nil)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	r, err := g.Classify(ctx, "hello")
	if !errors.Is(err, context.Canceled) || r != Fallback("hello") {
		t.Fatalf("got %+v, %v; want the fallback and context.Canceled", r, err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("took %s after cancel", el)
	}
}

// Neither the customer's text nor an API key reaches the logs, even when everything fails.
func TestLogsCarryNoTextOrKeys(t *testing.T) {
	secret := "my card number is 4111111111111111 and my address is 22 Baker Street"
	for _, api := range []string{"gemini", "openai"} {
		var lb logBuffer
		// The server echoes the request in its error message, as some servers do.
		f := newFake(t, api,
			reply{status: 400, body: `{"error":{"code":400,"message":"bad input: ` + secret + `","status":"INVALID_ARGUMENT"}}`},
			reply{answer: "not json: " + secret})
		g := f.classifier(t, time.Second, 2, lb.logger())
		for range 2 {
			if _, err := g.Classify(context.Background(), secret); err == nil {
				t.Fatalf("%s: expected a fallback", api)
			} else if strings.Contains(err.Error(), "4111") {
				t.Errorf("%s: error quotes the text: %v", api, err)
			}
		}
		logs := lb.String()
		if !strings.Contains(logs, "classifier fell back") {
			t.Errorf("%s: fallback not logged: %s", api, logs)
		}
		for _, s := range []string{"4111", "Baker", testGeminiKey, testOpenAIKey} {
			if strings.Contains(logs, s) {
				t.Errorf("%s: logs contain %q:\n%s", api, s, logs)
			}
		}
	}
}

func TestOutcomeMetric(t *testing.T) {
	name := "metric-test"
	flaky := &scripted{errs: []error{nil, fmt.Errorf("x: %w", ErrMalformed), fmt.Errorf("x: %w", ErrMalformed), context.DeadlineExceeded}}
	g := NewGuarded(name, flaky, time.Second, -1, nil)
	// Counters are process-wide: compare increments, so the test also holds with -count=N.
	want := map[Outcome]float64{OutcomeOK: 1, OutcomeFallbackMalformed: 2, OutcomeFallbackTimeout: 1, OutcomeFallbackError: 0}
	before := map[Outcome]float64{}
	for o := range want {
		before[o] = testutil.ToFloat64(outcomesTotal.WithLabelValues(name, string(o)))
	}
	for range 4 {
		g.Classify(context.Background(), "x")
	}
	for o, w := range want {
		if got := testutil.ToFloat64(outcomesTotal.WithLabelValues(name, string(o))) - before[o]; got != w {
			t.Errorf("outcome %s counted %v, want %v", o, got, w)
		}
	}
}

// scripted is a classifier returning the scripted errors in turn.
type scripted struct{ errs []error }

func (s *scripted) Classify(context.Context, string) (Result, error) {
	err := s.errs[0]
	s.errs = s.errs[1:]
	return Result{Summary: "s", Team: "sales"}, err
}

func TestNewValidates(t *testing.T) {
	bad := []Config{
		{Kind: "llama"},
		{Kind: "gemini", GeminiModel: "gemini-2.0-flash"},            // no key
		{Kind: "gemini", GeminiAPIKey: "k"},                          // no model
		{Kind: "openai", OpenAIModel: "m"},                           // no base URL
		{Kind: "openai", OpenAIBaseURL: "http://127.0.0.1:11434/v1"}, // no model
	}
	for _, c := range bad {
		if _, err := New(c, nil); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
	g, err := New(Config{Kind: "gemini", GeminiAPIKey: "k", GeminiModel: "models/gemini-2.0-flash"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if u := g.inner.(*Gemini).url; u != "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent" {
		t.Errorf("default Gemini URL = %s", u)
	}
}

// dig walks decoded JSON by keys and indexes; nil when the path does not exist.
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}
