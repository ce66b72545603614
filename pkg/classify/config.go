package classify

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// Kinds of classifier, as CLASSIFIER names them.
const (
	KindRules  = "rules"
	KindGemini = "gemini"
	KindOpenAI = "openai"
)

// Config selects and configures a classifier; the fields mirror the ingestor's environment
// (pkg/config.Ingestor).
type Config struct {
	Kind    string        // CLASSIFIER: rules (default when empty) | gemini | openai
	Timeout time.Duration // CLASSIFY_TIMEOUT, per attempt; DefaultTimeout when zero
	// Retries is the number of attempts after the first: 0 means DefaultRetries, negative none.
	Retries int

	GeminiAPIKey  string // GEMINI_API_KEY
	GeminiModel   string // GEMINI_MODEL
	GeminiBaseURL string // GEMINI_BASE_URL, default https://generativelanguage.googleapis.com

	OpenAIBaseURL string // OPENAI_BASE_URL, e.g. https://api.openai.com/v1 or http://127.0.0.1:11434/v1
	OpenAIAPIKey  string // OPENAI_API_KEY, optional for self-hosted servers
	OpenAIModel   string // OPENAI_MODEL

	// HTTPClient for the LLM APIs; a client with its own transport when nil. Per-attempt
	// timeouts come from Timeout either way.
	HTTPClient *http.Client
}

// New returns the configured classifier wrapped in a Guarded: per-attempt timeout, bounded
// retries, then Fallback.
func New(cfg Config, log *slog.Logger) (*Guarded, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	retries := cfg.Retries
	switch {
	case retries == 0:
		retries = DefaultRetries
	case retries < 0:
		retries = 0
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	var (
		inner Classifier
		err   error
	)
	kind := cfg.Kind
	switch kind {
	case "", KindRules:
		kind, inner = KindRules, NewRules()
	case KindGemini:
		base := cfg.GeminiBaseURL
		if base == "" {
			base = "https://generativelanguage.googleapis.com"
		}
		inner, err = NewGemini(hc, base, cfg.GeminiAPIKey, cfg.GeminiModel)
	case KindOpenAI:
		inner, err = NewOpenAI(hc, cfg.OpenAIBaseURL, cfg.OpenAIAPIKey, cfg.OpenAIModel)
	default:
		return nil, fmt.Errorf("classify: unknown classifier %q (want rules, gemini or openai)", cfg.Kind)
	}
	if err != nil {
		return nil, fmt.Errorf("classify: %w", err)
	}
	return NewGuarded(kind, inner, cfg.Timeout, retries, log), nil
}
