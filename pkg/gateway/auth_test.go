package gateway

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestVerifyInteraktSignature(t *testing.T) {
	body := []byte(`{"type":"message_received"}`)
	good := SignInterakt("s3cret", body)
	cases := map[string]struct {
		header string
		want   bool
	}{
		"valid":                 {good, true},
		"valid, upper-case hex": {"sha256=" + strings.ToUpper(strings.TrimPrefix(good, "sha256=")), true},
		"valid, no prefix":      {strings.TrimPrefix(good, "sha256="), true},
		"other secret":          {SignInterakt("other", body), false},
		"empty":                 {"", false},
		"prefix only":           {"sha256=", false},
		"not hex":               {"sha256=" + strings.Repeat("zz", 32), false},
		"truncated":             {good[:len(good)-2], false},
		"sha1 length":           {"sha256=" + strings.Repeat("ab", 20), false},
	}
	for name, tc := range cases {
		if got := VerifyInteraktSignature("s3cret", body, tc.header); got != tc.want {
			t.Errorf("%s: got %v, want %v", name, got, tc.want)
		}
	}
}

func TestVerifyNetcoreToken(t *testing.T) {
	r := httptest.NewRequest("POST", "/webhooks/netcore?token=abc", nil)
	if !verifyNetcoreToken("abc", "X-Webhook-Token", "token", r) {
		t.Error("token in query rejected")
	}
	if verifyNetcoreToken("abc", "X-Webhook-Token", "", r) {
		t.Error("query accepted although the query parameter is disabled")
	}
	r = httptest.NewRequest("POST", "/webhooks/netcore", nil)
	r.Header.Set("X-Webhook-Token", "abcd")
	if verifyNetcoreToken("abc", "X-Webhook-Token", "token", r) {
		t.Error("longer token accepted")
	}
	r.Header.Set("X-Webhook-Token", "abc")
	if !verifyNetcoreToken("abc", "X-Webhook-Token", "token", r) {
		t.Error("token in header rejected")
	}
}

func FuzzVerifyInteraktSignature(f *testing.F) {
	f.Add("s3cret", []byte(`{"a":1}`), "sha256=00")
	f.Add("", []byte{}, "")
	f.Add("k", []byte("x"), SignInterakt("k", []byte("x")))
	f.Fuzz(func(t *testing.T, secret string, body []byte, header string) {
		if !VerifyInteraktSignature(secret, body, SignInterakt(secret, body)) {
			t.Fatal("a signature made with the secret does not verify")
		}
		if VerifyInteraktSignature(secret, body, header) {
			mac := hmac.New(sha256.New, []byte(secret))
			mac.Write(body)
			sig := strings.TrimSpace(header)
			if len(sig) >= 7 && strings.EqualFold(sig[:7], "sha256=") {
				sig = sig[7:]
			}
			got, err := hex.DecodeString(sig)
			if err != nil || !hmac.Equal(got, mac.Sum(nil)) {
				t.Fatalf("header %q accepted but is not the body's HMAC", header)
			}
		}
	})
}
