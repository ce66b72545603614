package agentapi

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// cors answers preflights and marks responses readable by allowed origins. Tokens travel in the
// Authorization header, never in cookies, so credentials are not allowed and a foreign page
// cannot act with an agent's session.
func (a *API) cors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req, h := c.Request(), c.Response().Header()
		origin := req.Header.Get("Origin")
		h.Add("Vary", "Origin")
		allowed := origin != "" && a.origins.Allows(origin, "")
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
