// Package sendapi is the part of sending a reply that is the same for every WhatsApp provider:
// the classified send error the sender acts on, the JSON POST round trip with its transport
// failures sorted into "never left" and "may have been accepted", and Retry-After parsing. Each
// provider package keeps its own body shapes and the reading of its own answers.
package sendapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error is a failed send, classified for the sender: whether a retry can help, whether the
// provider may have accepted the message anyway, and how long the provider asked us to wait.
type Error struct {
	Provider   string        // prefix of the message ("interakt", "netcore"); set by Client.Post
	HTTPStatus int           // 0 when no HTTP answer arrived
	Code       string        // e.g. http_429, window_closed, 8007, timeout, network
	Text       string        // the provider's message or the transport error
	Temporary  bool          // retrying may succeed (network, timeout, 5xx, 429)
	Ambiguous  bool          // the request may have been accepted (timeout after sending, 504…)
	Wait       time.Duration // Retry-After, when the provider sent one
	Err        error         // underlying transport error, if any
}

func (e *Error) Error() string {
	if e.HTTPStatus != 0 {
		return e.Provider + ": HTTP " + strconv.Itoa(e.HTTPStatus) + " " + e.Code + ": " + e.Text
	}
	return e.Provider + ": " + e.Code + ": " + e.Text
}

func (e *Error) Unwrap() error { return e.Err }

// Permanent reports that retrying the same request cannot succeed.
func (e *Error) Permanent() bool { return !e.Temporary }

// MaybeAccepted reports that the provider may have accepted the message despite the error.
func (e *Error) MaybeAccepted() bool { return e.Ambiguous }

// ProviderCode is the code stored on a failed message.
func (e *Error) ProviderCode() string { return e.Code }

// ProviderText is the reason stored on a failed message.
func (e *Error) ProviderText() string { return e.Text }

// RetryAfter is how long the provider asked us to wait (0 if it did not say).
func (e *Error) RetryAfter() time.Duration { return e.Wait }

// ParseRetryAfter parses a Retry-After header: delay-seconds or an HTTP date. Garbage means 0.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// Snippet is a bounded, printable excerpt of a response body for an error's Text.
func Snippet(raw []byte) string {
	s := strings.TrimSpace(string(raw))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		s = "(empty body)"
	}
	return s
}

// maxResponse bounds how much of a response body is read: providers answer a few hundred bytes.
const maxResponse = 64 << 10

// Client posts JSON bodies to one provider's message endpoint. It is safe for concurrent use.
type Client struct {
	provider string
	url      string
	auth     string
	http     *http.Client
}

// NewClient returns a Client that posts to url with the Authorization header auth, naming
// provider in its errors. hc's Timeout is a backstop (30 s when hc is nil); callers bound each
// send with a context.
func NewClient(provider, url, auth string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{provider: provider, url: url, auth: auth, http: hc}
}

// Interpreter turns a provider's HTTP answer into its message id or an *Error.
type Interpreter func(status int, h http.Header, raw []byte) (string, error)

// Post sends body as JSON and hands the answer to interpret. Every error is an *Error naming the
// provider.
func (c *Client) Post(ctx context.Context, body any, interpret Interpreter) (string, error) {
	id, err := c.post(ctx, body, interpret)
	var se *Error
	if errors.As(err, &se) {
		se.Provider = c.provider
	}
	return id, err
}

func (c *Client) post(ctx context.Context, body any, interpret Interpreter) (string, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return "", &Error{Code: "encode", Text: err.Error(), Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(b))
	if err != nil {
		return "", &Error{Code: "request", Text: err.Error(), Err: err}
	}
	req.Header.Set("Authorization", c.auth)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return "", networkError(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		// The request was answered but the body was cut: the provider may have accepted it.
		return "", &Error{HTTPStatus: resp.StatusCode, Code: "network", Text: "reading response: " + err.Error(),
			Temporary: true, Ambiguous: true, Err: err}
	}
	return interpret(resp.StatusCode, resp.Header, raw)
}

// networkError classifies a failed round trip. A dial failure never reached the provider; any
// other failure (timeout, reset, EOF) may have happened after the provider accepted the message.
func networkError(err error) *Error {
	e := &Error{Code: "network", Text: err.Error(), Temporary: true, Err: err}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || isTimeout(err) {
		e.Code = "timeout"
	}
	e.Ambiguous = !isDialError(err)
	return e
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isDialError reports a failure to connect at all: nothing reached the provider.
func isDialError(err error) bool {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return true
	}
	var de *net.DNSError
	return errors.As(err, &de)
}
