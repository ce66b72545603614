package netcore

import (
	"time"

	"github.com/chatwire/chatwire/pkg/provider/sendapi"
)

// SendError is a failed send through Netcore, classified for the sender (see sendapi.Error). Its
// message starts with "netcore: ".
type SendError = sendapi.Error

// SendRetryAfter parses a Retry-After header: delay-seconds or an HTTP date. Garbage means 0.
func SendRetryAfter(v string, now time.Time) time.Duration { return sendapi.ParseRetryAfter(v, now) }
