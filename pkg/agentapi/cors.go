package agentapi

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
)

// originPolicy decides which browser origins may call the API from another origin. It reads
// ALLOWED_ORIGINS the way the WebSocket does: exact origins, https://*.example.com for
// subdomains, or * for any.
type originPolicy struct {
	allowAll bool
	exact    map[string]bool
	suffixes []string // ".example.com"
	schemes  []string // the scheme of each suffix
}

func newOriginPolicy(allowed []string) (originPolicy, error) {
	p := originPolicy{exact: map[string]bool{}}
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

func (p originPolicy) allows(origin string) bool {
	if p.allowAll {
		return true
	}
	u, err := url.Parse(strings.ToLower(origin))
	if err != nil || u.Host == "" {
		return false
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

// cors answers preflights and marks responses readable by allowed origins. Tokens travel in the
// Authorization header, never in cookies, so credentials are not allowed and a foreign page
// cannot act with an agent's session.
func (a *API) cors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req, h := c.Request(), c.Response().Header()
		origin := req.Header.Get("Origin")
		h.Add("Vary", "Origin")
		allowed := origin != "" && a.origins.allows(origin)
		if allowed {
			h.Set("Access-Control-Allow-Origin", origin)
		}
		if req.Method != http.MethodOptions || req.Header.Get("Access-Control-Request-Method") == "" {
			return next(c)
		}
		if !allowed {
			return echo.NewHTTPError(http.StatusForbidden, "origin not allowed (ALLOWED_ORIGINS)")
		}
		h.Set("Access-Control-Allow-Methods", "GET, POST, PATCH")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
		h.Set("Access-Control-Max-Age", "600")
		return c.NoContent(http.StatusNoContent)
	}
}
