package classify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Gemini classifies with Google's Gemini generateContent REST API
// (POST {base}/v1beta/models/{model}:generateContent, key in the x-goog-api-key header so it
// never appears in a URL, and so never in a logged error).
type Gemini struct {
	hc      *http.Client
	url     string
	headers http.Header
}

// NewGemini returns a Gemini classifier. base is e.g. https://generativelanguage.googleapis.com;
// model e.g. gemini-2.0-flash (a "models/" prefix is accepted).
func NewGemini(hc *http.Client, base, apiKey, model string) (*Gemini, error) {
	model = strings.TrimPrefix(strings.TrimSpace(model), "models/")
	switch {
	case apiKey == "":
		return nil, errors.New("gemini: GEMINI_API_KEY is empty")
	case model == "":
		return nil, errors.New("gemini: GEMINI_MODEL is empty")
	case base == "":
		return nil, errors.New("gemini: GEMINI_BASE_URL is empty")
	}
	h := http.Header{}
	h.Set("x-goog-api-key", apiKey)
	return &Gemini{
		hc:      hc,
		url:     endpoint(base, "/v1beta/models/"+url.PathEscape(model)+":generateContent"),
		headers: h,
	}, nil
}

type geminiPart struct {
	Text string `json:"text"`
}

type geminiContent struct {
	Role  string       `json:"role,omitempty"`
	Parts []geminiPart `json:"parts"`
}

type geminiRequest struct {
	SystemInstruction geminiContent   `json:"systemInstruction"`
	Contents          []geminiContent `json:"contents"`
	GenerationConfig  map[string]any  `json:"generationConfig"`
}

// geminiSchema constrains the answer to {"summary": string, "team": one of Teams} (an OpenAPI
// subset schema, as generateContent's responseSchema expects).
func geminiSchema() map[string]any {
	return map[string]any{
		"type": "OBJECT",
		"properties": map[string]any{
			"summary": map[string]any{"type": "STRING", "description": "one line, what the customer wants"},
			"team":    map[string]any{"type": "STRING", "enum": Teams},
		},
		"required":         []string{"summary", "team"},
		"propertyOrdering": []string{"summary", "team"},
	}
}

// Classify asks the model once; retries and fallback belong to the guard around it.
func (g *Gemini) Classify(ctx context.Context, text string) (Result, error) {
	req := geminiRequest{
		SystemInstruction: geminiContent{Parts: []geminiPart{{Text: systemPrompt}}},
		Contents:          []geminiContent{{Role: "user", Parts: []geminiPart{{Text: clip(text)}}}},
		GenerationConfig: map[string]any{
			"responseMimeType": "application/json",
			"responseSchema":   geminiSchema(),
			"temperature":      0,
		},
	}
	body, _, err := postJSON(ctx, g.hc, "gemini", g.url, g.headers, req)
	if err != nil {
		return Result{}, err
	}
	r, err := parseGeminiResponse(body)
	if err != nil {
		return Result{}, err
	}
	return finish(r, text), nil
}

// parseGeminiResponse reads candidates[0].content.parts[*].text as the JSON answer.
func parseGeminiResponse(body []byte) (Result, error) {
	var resp struct {
		Candidates []struct {
			Content struct {
				Parts []struct {
					Text    string `json:"text"`
					Thought bool   `json:"thought"`
				} `json:"parts"`
			} `json:"content"`
			FinishReason string `json:"finishReason"`
		} `json:"candidates"`
		PromptFeedback struct {
			BlockReason string `json:"blockReason"`
		} `json:"promptFeedback"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return Result{}, fmt.Errorf("gemini: %w: response is %s", ErrMalformed, jsonErrKind(err))
	}
	if len(resp.Candidates) == 0 {
		if r := resp.PromptFeedback.BlockReason; r != "" {
			return Result{}, fmt.Errorf("gemini: %w: no candidates, prompt blocked (%.32s)", ErrMalformed, r)
		}
		return Result{}, fmt.Errorf("gemini: %w: no candidates", ErrMalformed)
	}
	c := resp.Candidates[0]
	// The answer is normally one part; join the non-thought parts in case the model split it.
	var sb strings.Builder
	for _, p := range c.Content.Parts {
		if !p.Thought {
			sb.WriteString(p.Text)
		}
	}
	if strings.TrimSpace(sb.String()) == "" {
		return Result{}, fmt.Errorf("gemini: %w: empty answer (finish reason %.32s)", ErrMalformed, c.FinishReason)
	}
	r, err := parseAnswer(sb.String())
	if err != nil {
		return Result{}, fmt.Errorf("gemini: %w", err)
	}
	return r, nil
}
