package gateway

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
)

// InteraktSignatureHeader carries "sha256=<hex HMAC-SHA256 of the raw body>".
const InteraktSignatureHeader = "Interakt-Signature"

// VerifyInteraktSignature reports whether header is a valid signature of body under secret. The
// comparison runs in constant time; the "sha256=" prefix is optional and hex case is ignored.
func VerifyInteraktSignature(secret string, body []byte, header string) bool {
	sig := strings.TrimSpace(header)
	if len(sig) >= 7 && strings.EqualFold(sig[:7], "sha256=") {
		sig = sig[7:]
	}
	got, err := hex.DecodeString(sig)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// SignInterakt computes the Interakt-Signature header value for body, for tests and tooling.
func SignInterakt(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// verifyNetcoreToken checks the shared token in the configured header or query parameter.
// Both sides are hashed first so the constant-time comparison does not leak the token's length.
func verifyNetcoreToken(token, headerName, queryName string, r *http.Request) bool {
	want := sha256.Sum256([]byte(token))
	var candidates []string
	if headerName != "" {
		candidates = append(candidates, r.Header.Get(headerName))
	}
	if queryName != "" {
		candidates = append(candidates, r.URL.Query().Get(queryName))
	}
	ok := 0
	for _, c := range candidates {
		if c == "" {
			continue
		}
		got := sha256.Sum256([]byte(c))
		ok |= subtle.ConstantTimeCompare(got[:], want[:])
	}
	return ok == 1
}
