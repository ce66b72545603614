// Package event holds chatwire's wire types: what travels between the processes over JetStream and
// what agents receive over WebSocket. Every type carries "v" so a consumer can refuse a payload
// written by a newer producer instead of misreading it.
package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Version is the wire version this build writes and reads.
const Version = 1

// Channels (providers) chatwire speaks to.
const (
	ChannelInterakt = "interakt"
	ChannelNetcore  = "netcore"
)

// Channels lists every known channel, for validation and metrics.
var Channels = []string{ChannelInterakt, ChannelNetcore}

// ValidChannel reports whether ch is a channel chatwire knows.
func ValidChannel(ch string) bool {
	for _, c := range Channels {
		if c == ch {
			return true
		}
	}
	return false
}

// Message types of an InboundMessage.
const (
	TypeText        = "text"
	TypeImage       = "image"
	TypeVideo       = "video"
	TypeAudio       = "audio"
	TypeDocument    = "document"
	TypeLocation    = "location"
	TypeInteractive = "interactive"
	TypeReaction    = "reaction"
	TypeSticker     = "sticker"
	TypeTemplate    = "template"
	TypeContacts    = "contacts"
	TypeUnknown     = "unknown"
)

// Delivery statuses, in the order they may advance. Failed is terminal and may replace any other.
const (
	StatusPending   = "pending"
	StatusSent      = "sent"
	StatusDelivered = "delivered"
	StatusRead      = "read"
	StatusFailed    = "failed"
)

// StatusRank orders statuses so they only move forward: a late "delivered" never replaces "read".
// Unknown statuses rank 0.
func StatusRank(s string) int {
	switch s {
	case StatusPending:
		return 1
	case StatusSent:
		return 2
	case StatusDelivered:
		return 3
	case StatusRead:
		return 4
	case StatusFailed:
		return 5
	}
	return 0
}

// Media describes an attachment. Interakt gives a (short-lived) URL, Netcore a provider media id.
type Media struct {
	URL             string `json:"url,omitempty"`
	ProviderMediaID string `json:"provider_media_id,omitempty"`
	MimeType        string `json:"mime_type,omitempty"`
	SHA256          string `json:"sha256,omitempty"`
	Filename        string `json:"filename,omitempty"`
	Caption         string `json:"caption,omitempty"`
}

// InboundMessage is one customer message, normalized from any provider's webhook.
type InboundMessage struct {
	V                 int             `json:"v"`
	ID                string          `json:"id"` // assigned by the gateway, sortable (ULID)
	Channel           string          `json:"channel"`
	Account           string          `json:"account,omitempty"` // provider account / business number
	ExternalID        string          `json:"external_id"`
	FromPhone         string          `json:"from_phone"` // digits with country code, no '+'
	FromName          string          `json:"from_name,omitempty"`
	ToPhone           string          `json:"to_phone,omitempty"`
	Type              string          `json:"type"`
	Text              string          `json:"text,omitempty"`
	Media             *Media          `json:"media,omitempty"`
	ReplyToExternalID string          `json:"reply_to_external_id,omitempty"`
	ReceivedAt        time.Time       `json:"received_at"`
	Payload           json.RawMessage `json:"payload,omitempty"` // this message's raw provider JSON
	// ClassifyText, when set, is what the classifier reads instead of Text (Interakt workflow
	// answers are classified on the combined "Q: … / A: …" text).
	ClassifyText string `json:"classify_text,omitempty"`
}

// StatusUpdate is a provider's delivery receipt for a message chatwire sent.
type StatusUpdate struct {
	V          int             `json:"v"`
	Channel    string          `json:"channel"`
	ExternalID string          `json:"external_id"`         // provider's id of our outbound message
	Reference  string          `json:"reference,omitempty"` // our message id echoed back (callbackData / x-apiheader)
	Status     string          `json:"status"`
	ErrorCode  string          `json:"error_code,omitempty"`
	ErrorText  string          `json:"error_text,omitempty"`
	At         time.Time       `json:"at"`
	Payload    json.RawMessage `json:"payload,omitempty"`
}

// ReplyCommand asks the sender to send an agent's reply. CommandID is the caller's idempotency key.
type ReplyCommand struct {
	V              int    `json:"v"`
	CommandID      string `json:"command_id"`
	ConversationID string `json:"conversation_id"`
	Text           string `json:"text,omitempty"`
	Media          *Media `json:"media,omitempty"`
	AgentID        string `json:"agent_id,omitempty"`
	SenderName     string `json:"sender_name,omitempty"`
}

// ClassifyJob asks the classifier to classify the first message of a new or reopened conversation.
type ClassifyJob struct {
	V              int    `json:"v"`
	ConversationID string `json:"conversation_id"`
	MessageID      string `json:"message_id"`
	Text           string `json:"text"`
}

// Agent event names (kept from the original system) and control frames.
const (
	EventNewMessage          = "new_message"
	EventConversationUpdated = "conversation_updated"
	EventMessageStatus       = "message_status"
	EventHello               = "hello"
	EventResyncRequired      = "resync_required"
)

// AgentEvent is what producers publish to EVENTS and what the notifier forwards to agents. Seq is
// the EVENTS stream sequence, filled in by the notifier (producers leave it zero). ID is the
// deterministic event id, also used as Nats-Msg-Id so a redelivered batch never duplicates an event.
type AgentEvent struct {
	V              int             `json:"v,omitempty"`
	ID             string          `json:"id,omitempty"`
	Event          string          `json:"event"`
	Seq            uint64          `json:"seq"`
	ConversationID string          `json:"conversation_id"`
	Team           string          `json:"team"`
	Data           json.RawMessage `json:"data"`
}

// Errors returned by Decode.
var (
	ErrVersion = errors.New("unsupported wire version")
	ErrInvalid = errors.New("invalid event")
)

// versioned is implemented by every wire type so the codec can stamp and check the version.
type versioned interface {
	version() *int
	validate() error
}

func (m *InboundMessage) version() *int { return &m.V }
func (m *StatusUpdate) version() *int   { return &m.V }
func (m *ReplyCommand) version() *int   { return &m.V }
func (m *ClassifyJob) version() *int    { return &m.V }
func (m *AgentEvent) version() *int     { return &m.V }

func (m *InboundMessage) validate() error {
	switch {
	case !ValidChannel(m.Channel):
		return fmt.Errorf("%w: inbound message: unknown channel %q", ErrInvalid, m.Channel)
	case m.ExternalID == "":
		return fmt.Errorf("%w: inbound message: missing external_id", ErrInvalid)
	case m.FromPhone == "":
		return fmt.Errorf("%w: inbound message %s: missing from_phone", ErrInvalid, m.ExternalID)
	case m.Type == "":
		return fmt.Errorf("%w: inbound message %s: missing type", ErrInvalid, m.ExternalID)
	}
	return nil
}

func (m *StatusUpdate) validate() error {
	switch {
	case !ValidChannel(m.Channel):
		return fmt.Errorf("%w: status update: unknown channel %q", ErrInvalid, m.Channel)
	case m.ExternalID == "" && m.Reference == "":
		return fmt.Errorf("%w: status update: missing external_id and reference", ErrInvalid)
	case StatusRank(m.Status) < StatusRank(StatusSent):
		return fmt.Errorf("%w: status update %s: unknown status %q", ErrInvalid, m.ExternalID, m.Status)
	}
	return nil
}

func (m *ReplyCommand) validate() error {
	switch {
	case m.CommandID == "":
		return fmt.Errorf("%w: reply command: missing command_id", ErrInvalid)
	case m.ConversationID == "":
		return fmt.Errorf("%w: reply command %s: missing conversation_id", ErrInvalid, m.CommandID)
	case m.Text == "" && (m.Media == nil || m.Media.URL == ""):
		return fmt.Errorf("%w: reply command %s: needs text or media.url", ErrInvalid, m.CommandID)
	}
	return nil
}

func (m *ClassifyJob) validate() error {
	if m.ConversationID == "" || m.MessageID == "" {
		return fmt.Errorf("%w: classify job: missing conversation_id or message_id", ErrInvalid)
	}
	return nil
}

func (m *AgentEvent) validate() error {
	if m.Event == "" {
		return fmt.Errorf("%w: agent event: missing event name", ErrInvalid)
	}
	return nil
}

// Encode stamps the current version on v and marshals it.
func Encode[T any, P interface {
	*T
	versioned
}](v P) ([]byte, error) {
	*v.version() = Version
	return json.Marshal(v)
}

// Decode unmarshals data into a T, refusing other wire versions and structurally invalid values.
func Decode[T any, P interface {
	*T
	versioned
}](data []byte) (T, error) {
	var out T
	p := P(&out)
	if err := json.Unmarshal(data, p); err != nil {
		return out, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if *p.version() != Version {
		return out, fmt.Errorf("%w: got v=%d, this build reads v=%d", ErrVersion, *p.version(), Version)
	}
	return out, p.validate()
}

// MessageData is the `data` of new_message and message_status events: the chat_messages row as
// agents' front-ends read it.
type MessageData struct {
	ID                string     `json:"id"`
	ConversationID    string     `json:"conversation_id"`
	Direction         string     `json:"direction"`
	MessageType       string     `json:"message_type"`
	Content           string     `json:"content"`
	MediaURL          string     `json:"media_url,omitempty"`
	Channel           string     `json:"channel"`
	ExternalMessageID string     `json:"external_message_id,omitempty"`
	SenderType        string     `json:"sender_type"`
	SenderName        string     `json:"sender_name,omitempty"`
	AgentID           string     `json:"agent_id,omitempty"`
	Status            string     `json:"status,omitempty"`
	StatusAt          *time.Time `json:"status_at,omitempty"`
	ErrorCode         string     `json:"error_code,omitempty"`
	ErrorText         string     `json:"error_text,omitempty"`
	Summary           string     `json:"summary,omitempty"`
	SuggestedTeam     string     `json:"suggested_team,omitempty"`
	CreatedAt         time.Time  `json:"created_at"`
}

// ConversationData is the `data` of conversation_updated events: the conversations row.
type ConversationData struct {
	ID            string     `json:"id"`
	PhoneNumber   string     `json:"phone_number"`
	CustomerName  string     `json:"customer_name,omitempty"`
	Status        string     `json:"status"`
	AssignedTeam  string     `json:"assigned_team,omitempty"`
	AssignedAgent string     `json:"assigned_agent,omitempty"`
	Channel       string     `json:"channel"`
	LastMessageAt *time.Time `json:"last_message_at,omitempty"`
	UnreadCount   int        `json:"unread_count"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
}
