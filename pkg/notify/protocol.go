package notify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/chatwire/chatwire/pkg/event"
)

// Client message types (client → server).
const (
	MsgJoin   = "join_conversation"
	MsgLeave  = "leave_conversation"
	MsgResume = "resume"
	MsgAuth   = "auth"
)

// Server control frames besides the agent events of pkg/event.
const (
	EventError = "error"
	EventAck   = "ack"
)

const (
	maxConversationIDLen = 128
	maxClientMessage     = 16 << 10
)

// ClientMessage is one JSON text frame from an agent's client.
type ClientMessage struct {
	Type           string `json:"type"`
	ConversationID string `json:"conversation_id,omitempty"`
	AfterSeq       uint64 `json:"after_seq,omitempty"`
	Epoch          string `json:"epoch,omitempty"`
	Token          string `json:"token,omitempty"`
}

// ErrBadMessage wraps every reason a client frame is refused.
var ErrBadMessage = errors.New("bad client message")

// ParseClientMessage decodes and validates a client frame. It never panics, whatever the input.
func ParseClientMessage(data []byte) (ClientMessage, error) {
	var m ClientMessage
	if len(data) > maxClientMessage {
		return m, fmt.Errorf("%w: larger than %d bytes", ErrBadMessage, maxClientMessage)
	}
	var raw struct {
		Type           string          `json:"type"`
		ConversationID string          `json:"conversation_id"`
		AfterSeq       json.RawMessage `json:"after_seq"`
		Epoch          string          `json:"epoch"`
		Token          string          `json:"token"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return m, fmt.Errorf("%w: not a JSON object: %v", ErrBadMessage, err)
	}
	m = ClientMessage{Type: raw.Type, ConversationID: raw.ConversationID, Epoch: raw.Epoch, Token: raw.Token}
	switch m.Type {
	case MsgJoin, MsgLeave:
		if err := validConversationID(m.ConversationID); err != nil {
			return m, err
		}
	case MsgResume:
		if len(raw.AfterSeq) == 0 || bytes.Equal(raw.AfterSeq, []byte("null")) {
			return m, fmt.Errorf("%w: resume needs after_seq", ErrBadMessage)
		}
		n, err := strconv.ParseUint(string(raw.AfterSeq), 10, 64)
		if err != nil {
			return m, fmt.Errorf("%w: after_seq must be a non-negative integer", ErrBadMessage)
		}
		m.AfterSeq = n
		if len(m.Epoch) > 64 {
			return m, fmt.Errorf("%w: epoch too long", ErrBadMessage)
		}
	case MsgAuth:
		if m.Token == "" {
			return m, fmt.Errorf("%w: auth needs token", ErrBadMessage)
		}
	case "":
		return m, fmt.Errorf("%w: missing type", ErrBadMessage)
	default:
		return m, fmt.Errorf("%w: unknown type %q", ErrBadMessage, truncate(m.Type, 40))
	}
	return m, nil
}

func validConversationID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: missing conversation_id", ErrBadMessage)
	case len(id) > maxConversationIDLen:
		return fmt.Errorf("%w: conversation_id longer than %d bytes", ErrBadMessage, maxConversationIDLen)
	case !utf8.ValidString(id):
		return fmt.Errorf("%w: conversation_id is not UTF-8", ErrBadMessage)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// eventFrame is what an agent receives for an agent event. id is kept so clients can dedupe
// across a resync (the same fact always has the same id).
type eventFrame struct {
	Event          string          `json:"event"`
	Seq            uint64          `json:"seq"`
	ConversationID string          `json:"conversation_id"`
	Team           string          `json:"team"`
	ID             string          `json:"id,omitempty"`
	Data           json.RawMessage `json:"data"`
}

func encodeEvent(ev *event.AgentEvent, seq uint64) ([]byte, error) {
	data := ev.Data
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	return json.Marshal(eventFrame{
		Event: ev.Event, Seq: seq, ConversationID: ev.ConversationID, Team: ev.Team, ID: ev.ID, Data: data,
	})
}

// helloFrame is the first frame on every connection.
type helloFrame struct {
	Event string `json:"event"`
	Epoch string `json:"epoch"`
	Seq   uint64 `json:"seq"`
}

// resyncFrame tells the client its resume point is gone: reload over REST, then continue from seq.
type resyncFrame struct {
	Event  string `json:"event"`
	Epoch  string `json:"epoch"`
	Seq    uint64 `json:"seq"`
	Reason string `json:"reason"`
}

// ackFrame confirms a client request (join, leave, resume) so a client knows when it took effect.
type ackFrame struct {
	Event          string `json:"event"`
	Type           string `json:"type"`
	ConversationID string `json:"conversation_id,omitempty"`
	Replayed       *int   `json:"replayed,omitempty"`
	Seq            uint64 `json:"seq,omitempty"`
}

// errorFrame reports a refused client message; the connection stays open.
type errorFrame struct {
	Event string `json:"event"`
	Error string `json:"error"`
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil { // only fixed struct types reach here
		panic(err)
	}
	return b
}
