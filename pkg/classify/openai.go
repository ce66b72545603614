package classify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
)

// OpenAI classifies with any OpenAI-compatible chat completions endpoint
// (POST {base}/chat/completions): OpenAI itself, or self-hosted servers such as Ollama, vLLM,
// llama.cpp or LM Studio, whose base URL usually ends in /v1.
type OpenAI struct {
	hc      *http.Client
	url     string
	model   string
	headers http.Header

	// dropped remembers optional request parameters the server rejected with a 400, so later
	// calls do not pay for the same rejection again.
	mu      sync.Mutex
	dropped map[string]bool
}

// optionalParams are sent for better answers but are not understood by every compatible server
// (response_format by older self-hosted ones, temperature by some reasoning models).
var optionalParams = []string{"response_format", "temperature"}

// NewOpenAI returns an OpenAI-compatible classifier; apiKey may be empty for local servers.
func NewOpenAI(hc *http.Client, base, apiKey, model string) (*OpenAI, error) {
	switch {
	case base == "":
		return nil, errors.New("openai: OPENAI_BASE_URL is empty")
	case strings.TrimSpace(model) == "":
		return nil, errors.New("openai: OPENAI_MODEL is empty")
	}
	h := http.Header{}
	if apiKey != "" {
		h.Set("Authorization", "Bearer "+apiKey)
	}
	return &OpenAI{
		hc:      hc,
		url:     endpoint(strings.TrimSuffix(strings.TrimRight(base, "/"), "/chat/completions"), "/chat/completions"),
		model:   strings.TrimSpace(model),
		headers: h,
		dropped: map[string]bool{},
	}, nil
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Classify asks the model once (plus once per optional parameter the server turns down);
// retries and fallback belong to the guard around it.
func (o *OpenAI) Classify(ctx context.Context, text string) (Result, error) {
	for range len(optionalParams) + 1 {
		req := map[string]any{
			"model": o.model,
			"messages": []chatMessage{
				{Role: "system", Content: systemPrompt},
				{Role: "user", Content: clip(text)},
			},
			"stream": false,
		}
		o.mu.Lock()
		if !o.dropped["response_format"] {
			req["response_format"] = map[string]string{"type": "json_object"}
		}
		if !o.dropped["temperature"] {
			req["temperature"] = 0
		}
		o.mu.Unlock()

		body, errBody, err := postJSON(ctx, o.hc, "openai", o.url, o.headers, req)
		var se *StatusError
		if errors.As(err, &se) && se.Status == http.StatusBadRequest && o.dropRejected(req, errBody) {
			continue
		}
		if err != nil {
			return Result{}, err
		}
		r, err := parseOpenAIResponse(body)
		if err != nil {
			return Result{}, err
		}
		return finish(r, text), nil
	}
	return Result{}, errors.New("openai: server rejects the request even without optional parameters")
}

// dropRejected marks the optional parameters that a 400 body names and that req carried, and
// reports whether there was any: then the request is worth repeating without them.
func (o *OpenAI) dropRejected(req map[string]any, errBody []byte) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	found := false
	for _, p := range optionalParams {
		if _, sent := req[p]; sent && bytes.Contains(errBody, []byte(p)) {
			o.dropped[p] = true
			found = true
		}
	}
	return found
}

// parseOpenAIResponse reads choices[0].message.content as the JSON answer.
func parseOpenAIResponse(body []byte) (Result, error) {
	var resp struct {
		Choices []struct {
			Message struct {
				Content *string `json:"content"`
				Refusal *string `json:"refusal"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return Result{}, fmt.Errorf("openai: %w: response is %s", ErrMalformed, jsonErrKind(err))
	}
	if len(resp.Choices) == 0 {
		return Result{}, fmt.Errorf("openai: %w: no choices", ErrMalformed)
	}
	c := resp.Choices[0]
	if c.Message.Refusal != nil && *c.Message.Refusal != "" {
		return Result{}, fmt.Errorf("openai: %w: model refused", ErrMalformed)
	}
	if c.Message.Content == nil || strings.TrimSpace(*c.Message.Content) == "" {
		return Result{}, fmt.Errorf("openai: %w: empty answer (finish reason %.32s)", ErrMalformed, c.FinishReason)
	}
	r, err := parseAnswer(*c.Message.Content)
	if err != nil {
		return Result{}, fmt.Errorf("openai: %w", err)
	}
	return r, nil
}
