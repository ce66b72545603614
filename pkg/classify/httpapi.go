package classify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxResponseBytes bounds what is read from a model API: a classification answer is tiny.
const maxResponseBytes = 1 << 20

// StatusError is a non-2xx answer from a model API. It carries only the status and the API's
// machine-readable error code, never the error message, which may quote the customer's text.
type StatusError struct {
	API        string        // "gemini" or "openai"
	Status     int           // HTTP status
	Code       string        // e.g. RESOURCE_EXHAUSTED, invalid_request_error
	RetryAfter time.Duration // from Retry-After (or Gemini's RetryInfo); 0 when absent
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("%s: HTTP %d", e.API, e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return s
}

// Retryable reports whether the same request may succeed later: rate limits and server errors.
func (e *StatusError) Retryable() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// postJSON sends body as JSON and returns the response body of a 2xx answer, or a *StatusError
// (with the raw error body for callers that must inspect it, e.g. for an unsupported parameter).
func postJSON(ctx context.Context, hc *http.Client, api, url string, hdr http.Header, body any) ([]byte, []byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: encoding request: %w", api, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: building request: %w", api, err)
	}
	req.Header = hdr.Clone()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: calling API: %w", api, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: reading response: %w", api, err)
	}
	if resp.StatusCode/100 != 2 {
		se := &StatusError{API: api, Status: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
		se.Code, se.RetryAfter = errorDetails(data, se.RetryAfter)
		return nil, data, se
	}
	return data, nil, nil
}

// errorDetails extracts the machine-readable code from the error bodies of Google
// ({"error":{"status":"RESOURCE_EXHAUSTED","details":[{"@type":"…RetryInfo","retryDelay":"30s"}]}})
// and OpenAI-compatible servers ({"error":{"type":"…","code":"…"}}).
func errorDetails(body []byte, retryAfter time.Duration) (string, time.Duration) {
	var e struct {
		Error struct {
			Status  string          `json:"status"`
			Type    string          `json:"type"`
			Code    json.RawMessage `json:"code"`
			Details []struct {
				Type       string `json:"@type"`
				RetryDelay string `json:"retryDelay"`
			} `json:"details"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return "", retryAfter
	}
	code := e.Error.Status
	if code == "" {
		code = e.Error.Type
	}
	if c := strings.Trim(string(e.Error.Code), `"`); code == "" && c != "" && c != "null" && len(c) < 64 {
		code = c
	}
	if len(code) > 64 {
		code = code[:64]
	}
	if retryAfter == 0 {
		for _, d := range e.Error.Details {
			if strings.HasSuffix(d.Type, "google.rpc.RetryInfo") {
				if v, err := time.ParseDuration(d.RetryDelay); err == nil && v > 0 {
					retryAfter = v
				}
			}
		}
	}
	return code, retryAfter
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		if n <= 0 || n > 24*3600 {
			return 0
		}
		return time.Duration(n * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// endpoint joins a base URL and a path without doubling the slash.
func endpoint(base, path string) string {
	return strings.TrimRight(base, "/") + path
}
