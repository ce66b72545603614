package interakt

import (
	"net/http"
	"testing"
)

// FuzzSendInterpret: whatever the provider answers, reading it never panics, and a success always
// comes without an error while a failure is always a classified *SendError.
func FuzzSendInterpret(f *testing.F) {
	for _, s := range []string{sendDocSuccess, sendDocRefusal, "", "null", "{", "[]", `{"status":1}`, `{"data":null,"error":"x"}`} {
		f.Add(200, s, "")
		f.Add(429, s, "5")
		f.Add(503, s, "Wed, 21 Oct 2015 07:28:00 GMT")
	}
	f.Fuzz(func(t *testing.T, status int, body, retryAfter string) {
		if status < 100 || status > 999 {
			return
		}
		h := http.Header{}
		h.Set("Retry-After", retryAfter)
		id, err := sendInterpret(status, h, []byte(body))
		if err != nil {
			se, ok := err.(*SendError)
			if !ok || se.Code == "" || se.Text == "" || se.Wait < 0 {
				t.Fatalf("unclassified error %#v", err)
			}
			if id != "" {
				t.Fatalf("id %q with an error", id)
			}
		}
	})
}
