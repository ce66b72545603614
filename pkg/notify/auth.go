package notify

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Roles an agent token may carry.
const (
	RoleAgent = "agent"
	RoleAdmin = "admin"
)

// Limits on what a token may claim, so one connection's bookkeeping stays small.
const (
	maxTeams   = 64
	maxNameLen = 200
	maxSubLen  = 200
)

// Claims are the agent token's claims (the contract in DESIGN.md: sub, name, teams, role, exp).
type Claims struct {
	Name  string   `json:"name,omitempty"`
	Teams []string `json:"teams,omitempty"`
	Role  string   `json:"role,omitempty"`
	jwt.RegisteredClaims
}

// Agent is who a verified token says the caller is.
type Agent struct {
	ID      string
	Name    string
	Teams   []string // lower-case, trimmed, without duplicates
	Admin   bool
	Expires time.Time
}

// ErrUnauthenticated wraps every token failure; the message after it says what was wrong and is
// safe to show to the caller (it never contains the token).
var ErrUnauthenticated = errors.New("unauthenticated")

// Verifier checks agent tokens: HS256 with a shared secret or RS256 with a public key, never
// both, and never "none" or another algorithm than the one configured.
type Verifier struct {
	method string
	key    any
	now    func() time.Time
}

// NewHS256Verifier verifies tokens signed with HMAC-SHA256 and secret.
func NewHS256Verifier(secret []byte) (*Verifier, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("HS256 secret must be at least 32 bytes, got %d", len(secret))
	}
	return &Verifier{method: jwt.SigningMethodHS256.Alg(), key: secret, now: time.Now}, nil
}

// NewRS256Verifier verifies tokens signed with RSA-SHA256 by the holder of pub's private key.
func NewRS256Verifier(pub *rsa.PublicKey) (*Verifier, error) {
	if pub == nil {
		return nil, errors.New("RS256 public key is nil")
	}
	return &Verifier{method: jwt.SigningMethodRS256.Alg(), key: pub, now: time.Now}, nil
}

// Verify parses and checks a token and returns the agent it names.
func (v *Verifier) Verify(token string) (Agent, error) {
	if token == "" {
		return Agent{}, fmt.Errorf("%w: no token", ErrUnauthenticated)
	}
	if len(token) > 8192 {
		return Agent{}, fmt.Errorf("%w: token too long", ErrUnauthenticated)
	}
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return v.key, nil },
		jwt.WithValidMethods([]string{v.method}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(30*time.Second),
		jwt.WithTimeFunc(v.now),
	)
	if err != nil {
		return Agent{}, fmt.Errorf("%w: %s", ErrUnauthenticated, tokenProblem(err))
	}
	return agentFromClaims(c)
}

// tokenProblem names what is wrong with a token in words fit for a 401 body.
func tokenProblem(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "token has no exp claim"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "token signature invalid or algorithm not accepted"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "token malformed"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token not valid yet"
	}
	return "token invalid"
}

func agentFromClaims(c Claims) (Agent, error) {
	sub := strings.TrimSpace(c.Subject)
	switch {
	case sub == "":
		return Agent{}, fmt.Errorf("%w: token has no sub claim", ErrUnauthenticated)
	case len(sub) > maxSubLen || len(c.Name) > maxNameLen:
		return Agent{}, fmt.Errorf("%w: sub or name claim too long", ErrUnauthenticated)
	case len(c.Teams) > maxTeams:
		return Agent{}, fmt.Errorf("%w: more than %d teams", ErrUnauthenticated, maxTeams)
	}
	a := Agent{ID: sub, Name: c.Name}
	switch strings.ToLower(strings.TrimSpace(c.Role)) {
	case "", RoleAgent:
	case RoleAdmin:
		a.Admin = true
	default:
		return Agent{}, fmt.Errorf("%w: role must be agent or admin", ErrUnauthenticated)
	}
	for _, t := range c.Teams {
		t = normTeam(t)
		if t != "" && !contains(a.Teams, t) {
			a.Teams = append(a.Teams, t)
		}
	}
	if c.ExpiresAt != nil {
		a.Expires = c.ExpiresAt.Time
	}
	return a, nil
}

func normTeam(t string) string { return strings.ToLower(strings.TrimSpace(t)) }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// MintHS256 signs a token for agent with secret, valid for ttl. It is for development and tests
// (`notifier token`); production tokens come from the identity provider.
func MintHS256(secret []byte, sub, name string, teams []string, role string, ttl time.Duration) (string, error) {
	if len(secret) < 32 {
		return "", fmt.Errorf("HS256 secret must be at least 32 bytes, got %d", len(secret))
	}
	if strings.TrimSpace(sub) == "" {
		return "", errors.New("sub is required")
	}
	if role == "" {
		role = RoleAgent
	}
	if role != RoleAgent && role != RoleAdmin {
		return "", fmt.Errorf("role must be %s or %s, got %q", RoleAgent, RoleAdmin, role)
	}
	if ttl <= 0 {
		return "", fmt.Errorf("ttl must be positive, got %v", ttl)
	}
	now := time.Now()
	c := Claims{Name: name, Teams: teams, Role: role, RegisteredClaims: jwt.RegisteredClaims{
		Subject:   sub,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}

// tokenFromRequest finds a token in the Authorization header or, for browsers, which cannot set
// headers on a WebSocket, the token query parameter. An Authorization header that is present but
// not a Bearer token is an error rather than "no token", so a misconfigured client learns why.
func tokenFromRequest(r *http.Request) (string, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return "", fmt.Errorf("%w: Authorization header must be \"Bearer <token>\"", ErrUnauthenticated)
		}
		return strings.TrimSpace(tok), nil
	}
	return r.URL.Query().Get("token"), nil
}

// OriginPolicy decides which browser origins may open a socket or call the agent API, from
// ALLOWED_ORIGINS: exact origins, https://*.example.com for subdomains, or * for any.
type OriginPolicy struct {
	allowAll bool
	exact    map[string]bool // "https://app.example.com"
	suffixes []string        // from "https://*.example.com": scheme "https", suffix ".example.com"
	schemes  []string
}

// NewOriginPolicy parses ALLOWED_ORIGINS entries.
func NewOriginPolicy(allowed []string) (OriginPolicy, error) {
	p := OriginPolicy{exact: map[string]bool{}}
	for _, o := range allowed {
		o = strings.ToLower(strings.TrimRight(strings.TrimSpace(o), "/"))
		switch {
		case o == "":
		case o == "*":
			p.allowAll = true
		default:
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
				return p, fmt.Errorf("origin %q must look like https://app.example.com or https://*.example.com", o)
			}
			if rest, ok := strings.CutPrefix(u.Host, "*."); ok {
				p.schemes = append(p.schemes, u.Scheme)
				p.suffixes = append(p.suffixes, "."+rest)
				continue
			}
			p.exact[u.Scheme+"://"+u.Host] = true
		}
	}
	return p, nil
}

// Allows reports whether a request with this Origin may connect. Requests without an Origin come
// from non-browser clients, which origin checks do not protect against anyway; a page served from
// the notifier's own host is same-origin.
func (p OriginPolicy) Allows(origin, host string) bool {
	if origin == "" || p.allowAll {
		return true
	}
	u, err := url.Parse(strings.ToLower(origin))
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, host) {
		return true
	}
	if p.exact[u.Scheme+"://"+u.Host] {
		return true
	}
	for i, s := range p.suffixes {
		if u.Scheme == p.schemes[i] && strings.HasSuffix(u.Host, s) && len(u.Host) > len(s) {
			return true
		}
	}
	return false
}
