package interakt

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SendError is a failed send, classified for the sender: whether a retry can help, whether Interakt
// may have accepted the message anyway, and how long Interakt asked us to wait.
type SendError struct {
	HTTPStatus int           // 0 when no HTTP answer arrived
	Code       string        // e.g. http_429, window_closed, refused, timeout, network
	Text       string        // Interakt's message or the transport error
	Temporary  bool          // retrying may succeed (network, timeout, 5xx, 429)
	Ambiguous  bool          // the request may have been accepted (timeout after sending, 504…)
	Wait       time.Duration // Retry-After, when Interakt sent one
	Err        error         // underlying transport error, if any
}

func (e *SendError) Error() string {
	if e.HTTPStatus != 0 {
		return "interakt: HTTP " + strconv.Itoa(e.HTTPStatus) + " " + e.Code + ": " + e.Text
	}
	return "interakt: " + e.Code + ": " + e.Text
}

func (e *SendError) Unwrap() error { return e.Err }

// Permanent reports that retrying the same request cannot succeed.
func (e *SendError) Permanent() bool { return !e.Temporary }

// MaybeAccepted reports that Interakt may have accepted the message despite the error.
func (e *SendError) MaybeAccepted() bool { return e.Ambiguous }

// ProviderCode is the code stored on a failed message.
func (e *SendError) ProviderCode() string { return e.Code }

// ProviderText is the reason stored on a failed message.
func (e *SendError) ProviderText() string { return e.Text }

// RetryAfter is how long Interakt asked us to wait (0 if it did not say).
func (e *SendError) RetryAfter() time.Duration { return e.Wait }

// SendRetryAfter parses a Retry-After header: delay-seconds or an HTTP date. Garbage means 0.
func SendRetryAfter(v string, now time.Time) time.Duration {
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

func sendIsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// sendIsDialError reports a failure to connect at all: nothing reached Interakt.
func sendIsDialError(err error) bool {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return true
	}
	var de *net.DNSError
	return errors.As(err, &de)
}
