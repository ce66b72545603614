package agentapi

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/chatwire/chatwire/pkg/store"
)

// cursor is a keyset pagination position: the sort key of the last item of a page. It travels as
// an opaque string so clients never build one themselves; the kind prefix keeps a message cursor
// from being used on the conversation list.
type cursor struct {
	kind string    // "c" conversations, "m" messages
	null bool      // conversations only: the last item had no last_message_at
	at   time.Time // microsecond precision, as Postgres stores it
	id   string
}

const (
	maxCursorLen    = 200
	minCursorMicros = -2208988800000000  // 1900-01-01
	maxCursorMicros = 253402300799999999 // 9999-12-31T23:59:59.999999
)

func (c cursor) String() string {
	at := "-"
	if !c.null {
		at = strconv.FormatInt(c.at.UnixMicro(), 10)
	}
	return base64.RawURLEncoding.EncodeToString([]byte("1|" + c.kind + "|" + at + "|" + c.id))
}

var errBadCursor = errors.New("not a cursor returned by this API")

// parseCursor decodes s; kind is the list it must belong to.
func parseCursor(s, kind string) (*cursor, error) {
	if s == "" {
		return nil, nil
	}
	if len(s) > maxCursorLen {
		return nil, errBadCursor
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, errBadCursor
	}
	parts := strings.Split(string(raw), "|")
	if len(parts) != 4 || parts[0] != "1" || parts[1] != kind {
		return nil, errBadCursor
	}
	id, err := uuid.Parse(parts[3])
	if err != nil {
		return nil, errBadCursor
	}
	c := &cursor{kind: kind, id: id.String()}
	if parts[2] == "-" {
		if kind != "c" {
			return nil, errBadCursor
		}
		c.null = true
		return c, nil
	}
	us, err := strconv.ParseInt(parts[2], 10, 64)
	// Stored times are 1900…9999; outside that it was not ours (and Postgres might refuse it).
	if err != nil || us < minCursorMicros || us > maxCursorMicros {
		return nil, errBadCursor
	}
	c.at = time.UnixMicro(us).UTC()
	return c, nil
}

func convCursor(r store.ConversationRow) cursor {
	if !r.LastMessageAt.Valid {
		return cursor{kind: "c", null: true, id: r.ID}
	}
	return cursor{kind: "c", at: r.LastMessageAt.Time, id: r.ID}
}

func msgCursor(r store.MessageRow) cursor { return cursor{kind: "m", at: r.CreatedAt, id: r.ID} }
