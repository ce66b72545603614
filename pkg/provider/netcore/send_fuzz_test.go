package netcore

import (
	"testing"

	"github.com/chatwire/chatwire/pkg/provider/providertest"
)

// FuzzSendInterpret: whatever Netcore answers, reading it never panics, and a success always
// comes without an error while a failure is always a classified *SendError.
func FuzzSendInterpret(f *testing.F) {
	providertest.FuzzInterpret(f, sendInterpret, sendDocSuccess, sendDocFailure)
}
