// Package agentapi is the agents' REST API the notifier serves under /api next to its WebSocket:
// conversation lists and history read from Postgres (what a front-end reloads after
// resync_required), marking a conversation read, changing its status or team, and replying —
// which publishes a ReplyCommand to the REPLIES stream for the sender. Callers authenticate with
// the same agent JWT as the WebSocket and see the same conversations: admins all, agents their
// teams' plus, for team general, unassigned ones.
package agentapi

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/labstack/echo/v4"
	"github.com/lib/pq"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/notify"
	"github.com/chatwire/chatwire/pkg/queue"
	"github.com/chatwire/chatwire/pkg/store"
)

// Page sizes.
const (
	defaultLimit = 50
	maxLimit     = 200
)

// Verifier checks an agent token; *notify.Verifier is one.
type Verifier interface {
	Verify(token string) (notify.Agent, error)
}

// Config is what the API needs besides its database and JetStream.
type Config struct {
	Verifier Verifier
	// AllowedOrigins are the browser origins (ALLOWED_ORIGINS) that may call the API from another
	// origin (CORS). Empty: same-origin callers and non-browser clients only.
	AllowedOrigins []string
	// Timeout bounds each database statement and JetStream publish (default 5 s).
	Timeout time.Duration
}

// API serves the agents' REST endpoints.
type API struct {
	db      *db
	js      jetstream.JetStream
	cfg     Config
	log     *slog.Logger
	origins notify.OriginPolicy
}

// New returns the API over the database and JetStream.
func New(x *sqlx.DB, js jetstream.JetStream, cfg Config, log *slog.Logger) (*API, error) {
	if cfg.Verifier == nil {
		return nil, errors.New("agentapi: no token verifier")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	op, err := notify.NewOriginPolicy(cfg.AllowedOrigins)
	if err != nil {
		return nil, fmt.Errorf("ALLOWED_ORIGINS: %w", err)
	}
	return &API{db: &db{x: x, timeout: cfg.Timeout}, js: js, cfg: cfg, log: log, origins: op}, nil
}

// Mount registers the endpoints under /api on e.
func (a *API) Mount(e *echo.Echo) {
	g := e.Group("/api", metricsMiddleware, a.cors, a.authenticate)
	g.GET("/conversations", a.listConversations)
	g.GET("/conversations/:id", a.getConversation)
	g.PATCH("/conversations/:id", a.patchConversation)
	g.GET("/conversations/:id/messages", a.listMessages)
	g.POST("/conversations/:id/replies", a.postReply)
	g.POST("/conversations/:id/read", a.markRead)
	// Preflights and unknown paths under /api pass through the middleware (CORS, 401) first.
	g.Any("", a.notFound)
	g.Any("/*", a.notFound)
}

// MountUnavailable answers every /api request with 503 and reason, for a notifier started without
// a database: the WebSocket keeps working, and callers learn why the API does not.
func MountUnavailable(e *echo.Echo, reason string) {
	h := func(c echo.Context) error {
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"error": reason})
	}
	e.Any("/api", h, metricsMiddleware)
	e.Any("/api/*", h, metricsMiddleware)
}

func (a *API) notFound(c echo.Context) error {
	return echo.NewHTTPError(http.StatusNotFound, "no such endpoint: "+c.Request().Method+" "+c.Request().URL.Path)
}

const agentKey = "agentapi.agent"

func agentOf(c echo.Context) notify.Agent { return c.Get(agentKey).(notify.Agent) }

// authenticate requires "Authorization: Bearer <agent JWT>". Unlike the WebSocket it does not take
// ?token=: every HTTP client can set headers, and tokens in URLs end up in access logs.
func (a *API) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if c.Request().Method == http.MethodOptions {
			return next(c)
		}
		agent, err := a.verify(c.Request().Header.Get("Authorization"))
		if err != nil {
			mAuthRefused.Inc()
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="chatwire"`)
			return echo.NewHTTPError(http.StatusUnauthorized, err.Error())
		}
		c.Set(agentKey, agent)
		return next(c)
	}
}

func (a *API) verify(header string) (notify.Agent, error) {
	if header == "" {
		return notify.Agent{}, fmt.Errorf("%w: no token: send Authorization: Bearer <token>", notify.ErrUnauthenticated)
	}
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return notify.Agent{}, fmt.Errorf("%w: Authorization header must be \"Bearer <token>\"", notify.ErrUnauthenticated)
	}
	return a.cfg.Verifier.Verify(strings.TrimSpace(tok))
}

// fail turns an error into the HTTP answer: client errors with their message, a database that
// cannot be reached as 503 (retry), anything else 500 (logged by the echo error handler).
func (a *API) fail(c echo.Context, err error) error {
	var br *badRequest
	switch {
	case errors.As(err, &br):
		return echo.NewHTTPError(http.StatusBadRequest, br.msg)
	case errors.Is(err, errNotFound):
		return echo.NewHTTPError(http.StatusNotFound, "conversation not found")
	case c.Request().Context().Err() != nil:
		return echo.NewHTTPError(499, "request cancelled")
	case dbUnavailable(err):
		a.log.Warn("agent api: database unavailable", "path", c.Path(), "err", err)
		return echo.NewHTTPError(http.StatusServiceUnavailable, "database unavailable, retry")
	}
	return err
}

// dbUnavailable reports whether err says the database could not answer (connection, timeout,
// overload) rather than that a statement is wrong.
func dbUnavailable(err error) bool {
	var pe *pq.Error
	if errors.As(err, &pe) {
		return store.IsTransient(err)
	}
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, sql.ErrConnDone) || errors.As(err, &ne)
}

func convID(c echo.Context) (string, error) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		return "", bad("id: not a conversation id (a uuid is expected)")
	}
	return id.String(), nil
}

func limitParam(c echo.Context) (int, error) {
	v := c.QueryParam("limit")
	if v == "" {
		return defaultLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxLimit {
		return 0, bad("limit: must be an integer from 1 to %d, got %q", maxLimit, clip(v))
	}
	return n, nil
}

// clip shortens echoed input so an error message stays short.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// page is a list answer: items newest first and, when more exist, the cursor for the next page
// (pass it as ?before=).
type page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// GET /api/conversations?status=&limit=&before=
func (a *API) listConversations(c echo.Context) error {
	limit, err := limitParam(c)
	if err != nil {
		return a.fail(c, err)
	}
	status := strings.ToLower(strings.TrimSpace(c.QueryParam("status")))
	if status != "" && !oneOf(status, statuses) {
		return a.fail(c, bad("status: must be one of %s, got %q", strings.Join(statuses, ", "), clip(status)))
	}
	cur, err := parseCursor(c.QueryParam("before"), "c")
	if err != nil {
		return a.fail(c, bad("before: %v", err))
	}
	rows, err := a.db.listConversations(c.Request().Context(), agentOf(c), listConvQuery{status: status, limit: limit + 1, cursor: cur})
	if err != nil {
		return a.fail(c, err)
	}
	out := page[event.ConversationData]{Items: make([]event.ConversationData, 0, len(rows))}
	if len(rows) > limit {
		rows = rows[:limit]
		out.NextCursor = convCursor(rows[limit-1]).String()
	}
	for i := range rows {
		out.Items = append(out.Items, rows[i].Data())
	}
	return c.JSON(http.StatusOK, out)
}

// GET /api/conversations/:id
func (a *API) getConversation(c echo.Context) error {
	id, err := convID(c)
	if err != nil {
		return a.fail(c, err)
	}
	r, err := a.db.conversation(c.Request().Context(), agentOf(c), id)
	if err != nil {
		return a.fail(c, err)
	}
	return c.JSON(http.StatusOK, r.Data())
}

// GET /api/conversations/:id/messages?limit=&before=
func (a *API) listMessages(c echo.Context) error {
	id, err := convID(c)
	if err != nil {
		return a.fail(c, err)
	}
	limit, err := limitParam(c)
	if err != nil {
		return a.fail(c, err)
	}
	cur, err := parseCursor(c.QueryParam("before"), "m")
	if err != nil {
		return a.fail(c, bad("before: %v", err))
	}
	ctx := c.Request().Context()
	if _, err := a.db.conversation(ctx, agentOf(c), id); err != nil {
		return a.fail(c, err)
	}
	rows, err := a.db.messages(ctx, id, limit+1, cur)
	if err != nil {
		return a.fail(c, err)
	}
	out := page[event.MessageData]{Items: make([]event.MessageData, 0, len(rows))}
	if len(rows) > limit {
		rows = rows[:limit]
		out.NextCursor = msgCursor(rows[limit-1]).String()
	}
	for i := range rows {
		out.Items = append(out.Items, rows[i].Data())
	}
	return c.JSON(http.StatusOK, out)
}

// POST /api/conversations/:id/read
func (a *API) markRead(c echo.Context) error {
	id, err := convID(c)
	if err != nil {
		return a.fail(c, err)
	}
	r, err := a.db.markRead(c.Request().Context(), agentOf(c), id)
	if err != nil {
		return a.fail(c, err)
	}
	return a.updated(c, r, "read")
}

// PATCH /api/conversations/:id
func (a *API) patchConversation(c echo.Context) error {
	id, err := convID(c)
	if err != nil {
		return a.fail(c, err)
	}
	var req patchRequest
	if err := decodeJSON(http.MaxBytesReader(c.Response(), c.Request().Body, maxBodyBytes), &req); err != nil {
		return a.fail(c, err)
	}
	p, err := req.validate()
	if err != nil {
		return a.fail(c, err)
	}
	r, err := a.db.patch(c.Request().Context(), agentOf(c), id, p)
	if err != nil {
		return a.fail(c, err)
	}
	return a.updated(c, r, "update")
}

// updated publishes conversation_updated for r and answers with the row. The event id is derived
// from updated_at, which a request that changes nothing leaves alone: repeating the request
// re-publishes the same id (JetStream drops the copy), so a client that got 503 because the
// publish failed after the commit just retries, and the event is not lost.
func (a *API) updated(c echo.Context, r store.ConversationRow, what string) error {
	d := r.Data()
	body, err := json.Marshal(d)
	if err != nil {
		return err
	}
	ev := &event.AgentEvent{
		ID:             fmt.Sprintf("conv:%s:%s:%d", r.ID, what, r.UpdatedAt.UnixNano()),
		Event:          event.EventConversationUpdated,
		ConversationID: r.ID,
		Team:           d.AssignedTeam,
		Data:           body,
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), a.cfg.Timeout)
	defer cancel()
	if _, err := queue.PublishEvent(ctx, a.js, ev); err != nil {
		mEventFailures.Inc()
		a.log.Warn("agent api: conversation_updated not published", "conversation", r.ID, "event_id", ev.ID, "err", err)
		return echo.NewHTTPError(http.StatusServiceUnavailable,
			"saved, but the conversation_updated event could not be published (JetStream unavailable); retry the request")
	}
	return c.JSON(http.StatusOK, d)
}

// replyAccepted is the 202 answer to a reply.
type replyAccepted struct {
	CommandID string `json:"command_id"`
}

// POST /api/conversations/:id/replies
func (a *API) postReply(c echo.Context) error {
	id, err := convID(c)
	if err != nil {
		return a.fail(c, err)
	}
	var req replyRequest
	if err := decodeJSON(http.MaxBytesReader(c.Response(), c.Request().Body, maxBodyBytes), &req); err != nil {
		return a.fail(c, err)
	}
	media, err := req.validate()
	if err != nil {
		return a.fail(c, err)
	}
	agent := agentOf(c)
	ctx := c.Request().Context()
	if _, err := a.db.conversation(ctx, agent, id); err != nil {
		return a.fail(c, err)
	}
	cmd := &event.ReplyCommand{
		CommandID: req.CommandID, ConversationID: id, Text: req.Text, Media: media,
		AgentID: agent.ID, SenderName: agent.Name,
	}
	if cmd.CommandID == "" {
		cmd.CommandID = ulid.Make().String()
	} else {
		// A command id the sender already stored for another conversation would be dropped as a
		// duplicate: say so instead of answering 202 for a reply that will never be sent.
		owner, err := a.db.commandConversation(ctx, cmd.CommandID)
		if err != nil {
			return a.fail(c, err)
		}
		if owner != "" && owner != id {
			mReplies.WithLabelValues("conflict").Inc()
			return echo.NewHTTPError(http.StatusConflict, "command_id: already used for a reply in another conversation")
		}
	}
	data, err := event.Encode(cmd)
	if err != nil {
		return fmt.Errorf("encoding reply command: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	ack, err := a.js.Publish(pctx, queue.SubjectReplies, data, jetstream.WithMsgID(cmd.CommandID))
	if err != nil {
		mReplies.WithLabelValues("unavailable").Inc()
		a.log.Warn("agent api: reply not queued", "conversation", id, "command_id", cmd.CommandID, "err", err)
		return echo.NewHTTPError(http.StatusServiceUnavailable,
			"reply not queued: JetStream unavailable; retry with the same command_id "+cmd.CommandID)
	}
	if ack.Duplicate {
		if msg := a.differentCommand(pctx, ack.Sequence, cmd); msg != "" {
			mReplies.WithLabelValues("conflict").Inc()
			return echo.NewHTTPError(http.StatusConflict, msg)
		}
		mReplies.WithLabelValues("duplicate").Inc()
	} else {
		mReplies.WithLabelValues("queued").Inc()
	}
	a.log.Info("agent api: reply queued", "conversation", id, "command_id", cmd.CommandID,
		"agent", agent.ID, "duplicate", ack.Duplicate)
	return c.JSON(http.StatusAccepted, replyAccepted{CommandID: cmd.CommandID})
}

// differentCommand compares a command JetStream dropped as a duplicate with the one it kept (the
// duplicate's PubAck names the original's sequence) and says what differs. A repeat of the same
// reply is fine; the same command_id for another reply would silently never be sent. The original
// may be consumed already (REPLIES is a work queue): then the sender's unique command_id settles
// it and there is nothing to compare.
func (a *API) differentCommand(ctx context.Context, seq uint64, cmd *event.ReplyCommand) string {
	s, err := a.js.Stream(ctx, queue.StreamReplies)
	if err != nil {
		return ""
	}
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		return ""
	}
	orig, err := event.Decode[event.ReplyCommand](m.Data)
	if err != nil || orig.CommandID != cmd.CommandID {
		return ""
	}
	switch {
	case orig.ConversationID != cmd.ConversationID:
		return "command_id: already used for a reply in another conversation"
	case orig.Text != cmd.Text || !sameMedia(orig.Media, cmd.Media):
		return "command_id: already used for a different reply in this conversation"
	}
	return ""
}

func sameMedia(a, b *event.Media) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}
