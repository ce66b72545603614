package notify

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef-test")

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("signing: %v", err)
	}
	return s
}

func claims(sub, role string, exp time.Duration, teams ...string) Claims {
	c := Claims{Name: "Asha", Teams: teams, Role: role, RegisteredClaims: jwt.RegisteredClaims{Subject: sub}}
	if exp != 0 {
		c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(exp))
	}
	return c
}

func TestVerifyHS256(t *testing.T) {
	v, err := NewHS256Verifier(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	good := sign(t, jwt.SigningMethodHS256, testSecret, claims("agent-1", "agent", time.Hour, "Support", " sales ", "support"))
	a, err := v.Verify(good)
	if err != nil {
		t.Fatalf("valid token refused: %v", err)
	}
	if a.ID != "agent-1" || a.Name != "Asha" || a.Admin || strings.Join(a.Teams, ",") != "support,sales" {
		t.Fatalf("agent = %+v", a)
	}
	admin, err := v.Verify(sign(t, jwt.SigningMethodHS256, testSecret, claims("boss", "admin", time.Hour)))
	if err != nil || !admin.Admin {
		t.Fatalf("admin token: %+v, %v", admin, err)
	}

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string]string{
		"empty":          "",
		"garbage":        "not-a-jwt",
		"wrong secret":   sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-xx"), claims("a", "agent", time.Hour)),
		"expired":        sign(t, jwt.SigningMethodHS256, testSecret, claims("a", "agent", -time.Hour)),
		"no exp":         sign(t, jwt.SigningMethodHS256, testSecret, claims("a", "agent", 0)),
		"no sub":         sign(t, jwt.SigningMethodHS256, testSecret, claims("", "agent", time.Hour)),
		"unknown role":   sign(t, jwt.SigningMethodHS256, testSecret, claims("a", "root", time.Hour)),
		"HS512":          sign(t, jwt.SigningMethodHS512, testSecret, claims("a", "agent", time.Hour)),
		"RS256 to HS256": sign(t, jwt.SigningMethodRS256, rsaKey, claims("a", "agent", time.Hour)),
		"alg none":       sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims("a", "admin", time.Hour)),
	}
	for name, tok := range bad {
		if _, err := v.Verify(tok); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: err = %v, want ErrUnauthenticated", name, err)
		} else if tok != "" && strings.Contains(err.Error(), tok) {
			t.Errorf("%s: error message contains the token", name)
		}
	}
}

func TestVerifyRS256RejectsAlgorithmConfusion(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewRS256Verifier(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(sign(t, jwt.SigningMethodRS256, key, claims("a", "agent", time.Hour, "sales"))); err != nil {
		t.Fatalf("valid RS256 token refused: %v", err)
	}
	// The classic attack: an HS256 token whose HMAC key is the server's public key.
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	forged := sign(t, jwt.SigningMethodHS256, pubPEM, claims("a", "admin", time.Hour))
	if _, err := v.Verify(forged); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("HS256 token signed with the public key accepted: %v", err)
	}
}

func TestMintHS256RoundTrip(t *testing.T) {
	tok, err := MintHS256(testSecret, "agent-7", "Ravi", []string{"dispatch"}, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := NewHS256Verifier(testSecret)
	a, err := v.Verify(tok)
	if err != nil || a.ID != "agent-7" || a.Admin || a.Teams[0] != "dispatch" || time.Until(a.Expires) < 59*time.Minute {
		t.Fatalf("minted token: %+v, %v", a, err)
	}
	if _, err := MintHS256(testSecret, "", "", nil, "agent", time.Hour); err == nil {
		t.Fatal("minted a token without sub")
	}
	if _, err := MintHS256([]byte("short"), "a", "", nil, "agent", time.Hour); err == nil {
		t.Fatal("minted a token with a short secret")
	}
}

func TestTokenFromRequest(t *testing.T) {
	r := httptest.NewRequest("GET", "/ws?token=q", nil)
	if tok, err := tokenFromRequest(r); err != nil || tok != "q" {
		t.Fatalf("query token: %q %v", tok, err)
	}
	r.Header.Set("Authorization", "Bearer h")
	if tok, err := tokenFromRequest(r); err != nil || tok != "h" {
		t.Fatalf("header token wins: %q %v", tok, err)
	}
	r.Header.Set("Authorization", "Basic dXNlcjpwYXNz")
	if _, err := tokenFromRequest(r); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("Basic auth accepted: %v", err)
	}
}

func TestOriginPolicy(t *testing.T) {
	p, err := NewOriginPolicy([]string{"https://app.example.com", "https://*.agents.example.com/", " "})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		origin, host string
		want         bool
	}{
		{"", "notifier:8081", true}, // non-browser client
		{"https://app.example.com", "notifier:8081", true},
		{"HTTPS://APP.EXAMPLE.COM", "notifier:8081", true},
		{"http://app.example.com", "notifier:8081", false}, // scheme matters
		{"https://app.example.com.evil.io", "notifier:8081", false},
		{"https://eu.agents.example.com", "notifier:8081", true},
		{"https://agents.example.com", "notifier:8081", false},
		{"https://evil.io", "notifier:8081", false},
		{"http://notifier:8081", "notifier:8081", true}, // same origin
		{"null", "notifier:8081", false},
	}
	for _, c := range cases {
		if got := p.Allows(c.origin, c.host); got != c.want {
			t.Errorf("allows(%q, %q) = %v, want %v", c.origin, c.host, got, c.want)
		}
	}
	if _, err := NewOriginPolicy([]string{"app.example.com"}); err == nil {
		t.Error("origin without scheme accepted")
	}
	all, _ := NewOriginPolicy([]string{"*"})
	if !all.Allows("https://anything.io", "x") {
		t.Error("* does not allow all")
	}
	none, _ := NewOriginPolicy(nil)
	if none.Allows("https://anything.io", "x") {
		t.Error("empty policy allows a foreign origin")
	}
}
