package classify

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// checkResult asserts what every stored classification must be: a known team and a clean,
// bounded, one-line, valid UTF-8 summary without NUL (Postgres text rejects both).
func checkResult(t *testing.T, r Result, maxRunes int) {
	t.Helper()
	if !ValidTeam(r.Team) {
		t.Fatalf("team %q not valid", r.Team)
	}
	if strings.ContainsAny(r.Summary, "\n\r\x00") || !utf8.ValidString(r.Summary) {
		t.Fatalf("summary not one clean line: %q", r.Summary)
	}
	if n := utf8.RuneCountInString(r.Summary); n > maxRunes {
		t.Fatalf("summary has %d runes, max %d", n, maxRunes)
	}
	if r.Summary != strings.TrimSpace(r.Summary) {
		t.Fatalf("summary not trimmed: %q", r.Summary)
	}
}

func FuzzParseAnswer(f *testing.F) {
	for _, s := range []string{
		`{"summary":"Payment failed","team":"finance"}`,
		"```json\n{\"summary\":\"x\",\"team\":\"Returns & Refunds\"}\n```",
		"<think>{}</think>{\"team\":\"tech\"}",
		`prose {"summary": null, "team": 5} more`,
		`{"summary":"a\nb\u0000c","team":"general"}`,
		"```", "{", "}{", `""`, "null", "[]", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseAnswer(s)
		if err == nil {
			checkResult(t, finish(r, s), LLMSummaryMaxRunes)
		}
	})
}

func FuzzGeminiResponse(f *testing.F) {
	fk := &fakeLLM{api: "gemini"}
	f.Add([]byte(fk.envelope(`{"summary":"Asks about delivery","team":"dispatch"}`)))
	f.Add([]byte(`{"candidates":[{"content":{"parts":[{"thought":true,"text":"hmm"},{"text":"{\"team\":\"sales\"}"}]}}]}`))
	f.Add([]byte(`{"promptFeedback":{"blockReason":"SAFETY"}}`))
	f.Add([]byte(`{"candidates":[{"content":{"parts":null}}]}`))
	f.Add([]byte(`{"candidates":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if r, err := parseGeminiResponse(body); err == nil {
			checkResult(t, finish(r, "text"), LLMSummaryMaxRunes)
		}
	})
}

func FuzzOpenAIResponse(f *testing.F) {
	fk := &fakeLLM{api: "openai"}
	f.Add([]byte(fk.envelope("```json\n{\"summary\":\"Refund\",\"team\":\"returns_refunds\"}\n```")))
	f.Add([]byte(`{"choices":[{"message":{"content":null,"refusal":"I can't"}}]}`))
	f.Add([]byte(`{"choices":[{"message":{"content":"{\"summary\":1}"}}]}`))
	f.Add([]byte(`{"choices":[]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if r, err := parseOpenAIResponse(body); err == nil {
			checkResult(t, finish(r, "text"), LLMSummaryMaxRunes)
		}
	})
}

func FuzzRules(f *testing.F) {
	for _, s := range []string{
		"mera order kab aayega", "paisa wapas chahiye", "Hi.\nPayment fail ho gaya!", "पैसे वापस चाहिए। ऑर्डर",
		"refund* payment*", "~kab aayega", strings.Repeat("abc ", 100), "\xff\xfe bad utf8", "...", "\x00",
	} {
		f.Add(s)
	}
	r := NewRules()
	f.Fuzz(func(t *testing.T, s string) {
		res, err := r.Classify(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		checkResult(t, res, SummaryMaxRunes)
		if again, _ := r.Classify(context.Background(), s); again != res {
			t.Fatalf("not deterministic: %+v then %+v", res, again)
		}
	})
}

func FuzzErrorDetails(f *testing.F) {
	f.Add([]byte(`{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"30s"}]}}`), "Wed, 21 Oct 2015 07:28:00 GMT")
	f.Add([]byte(`{"error":{"type":"invalid_request_error","code":"invalid_api_key"}}`), "1.5")
	f.Add([]byte(`{"error":{"code":[1]}}`), "-3")
	f.Fuzz(func(t *testing.T, body []byte, header string) {
		ra := parseRetryAfter(header, time.Now())
		if ra < 0 {
			t.Fatalf("negative Retry-After %s", ra)
		}
		code, _ := errorDetails(body, ra)
		if len(code) > 64 {
			t.Fatalf("code of %d bytes", len(code))
		}
	})
}
