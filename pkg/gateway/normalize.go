package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/provider/interakt"
	"github.com/chatwire/chatwire/pkg/provider/netcore"
	"github.com/chatwire/chatwire/pkg/queue"
)

// ErrUnknownChannel is returned for a channel chatwire has no parser for.
var ErrUnknownChannel = errors.New("unknown channel")

// Batch is one webhook body normalized: what the gateway publishes for it. The server and the
// `gateway normalize` operator tool both build it with Normalize, so they never disagree.
type Batch struct {
	Channel  string
	Messages []event.InboundMessage
	Statuses []event.StatusUpdate
	// Invalid holds raw items (or the whole body) that could not be understood; they go to
	// inbound.invalid.<channel> so they can be replayed once the parser is fixed.
	Invalid []Invalid
	// Ignored counts understood items deliberately not published (echoes of our own sends, clicks).
	Ignored []Ignored
}

// Invalid is a raw body or batch item that could not be normalized.
type Invalid struct {
	Raw    []byte
	Reason string
}

// Ignored is an understood item that is deliberately not an event.
type Ignored struct {
	ExternalID string
	Reason     string
}

// Normalize parses one webhook body of channel. A body that is not understood at all returns an
// error wrapping the provider's ErrParse; the caller keeps it raw (see Batch.Invalid).
func Normalize(channel string, body []byte, now time.Time) (Batch, error) {
	b := Batch{Channel: channel}
	switch channel {
	case event.ChannelInterakt:
		r, err := interakt.Parse(body, now)
		if err != nil {
			return b, err
		}
		b.Messages, b.Statuses = r.Messages, r.Statuses
		for _, ig := range r.Ignored {
			b.Ignored = append(b.Ignored, Ignored{ExternalID: ig.ExternalID, Reason: ig.Reason})
		}
	case event.ChannelNetcore:
		r, err := netcore.Parse(body, now)
		if err != nil {
			return b, err
		}
		b.Messages, b.Statuses = r.Messages, r.Statuses
		for _, inv := range r.Invalid {
			b.Invalid = append(b.Invalid, Invalid{Raw: inv.Raw, Reason: inv.Reason})
		}
	default:
		return b, fmt.Errorf("%w %q (want %s or %s)", ErrUnknownChannel, channel, event.ChannelInterakt, event.ChannelNetcore)
	}
	return b, nil
}

// Outgoing is one JetStream message the gateway publishes for a batch.
type Outgoing struct {
	Kind    string          `json:"kind"` // message | status | invalid
	Subject string          `json:"subject"`
	MsgID   string          `json:"nats_msg_id"`
	Reason  string          `json:"reason,omitempty"` // invalid only
	Event   json.RawMessage `json:"event,omitempty"`  // message and status
	Raw     []byte          `json:"-"`                // invalid only: the body kept verbatim
}

// Data is what goes on the wire.
func (o Outgoing) Data() []byte {
	if o.Kind == KindInvalid {
		return o.Raw
	}
	return o.Event
}

// Kinds of Outgoing.
const (
	KindMessage = "message"
	KindStatus  = "status"
	KindInvalid = "invalid"
)

// Outgoing encodes the batch into the messages to publish. newID assigns InboundMessage.ID (a
// ULID in the server); nil leaves ids empty. Every message carries a Nats-Msg-Id derived from the
// provider's id, so a retried webhook inside the duplicate window is stored once.
func (b Batch) Outgoing(newID func() string) ([]Outgoing, error) {
	out := make([]Outgoing, 0, len(b.Messages)+len(b.Statuses)+len(b.Invalid))
	for i := range b.Messages {
		m := b.Messages[i]
		if newID != nil {
			m.ID = newID()
		}
		data, err := event.Encode(&m)
		if err != nil {
			return nil, fmt.Errorf("encoding message %s: %w", m.ExternalID, err)
		}
		out = append(out, Outgoing{Kind: KindMessage, Subject: queue.InboundMessageSubject(b.Channel),
			MsgID: queue.MsgID(b.Channel, m.ExternalID), Event: data})
	}
	for i := range b.Statuses {
		s := b.Statuses[i]
		data, err := event.Encode(&s)
		if err != nil {
			return nil, fmt.Errorf("encoding status %s: %w", s.ExternalID, err)
		}
		out = append(out, Outgoing{Kind: KindStatus, Subject: queue.InboundStatusSubject(b.Channel),
			MsgID: StatusMsgID(b.Channel, s), Event: data})
	}
	for _, inv := range b.Invalid {
		out = append(out, InvalidOutgoing(b.Channel, inv.Raw, inv.Reason))
	}
	return out, nil
}

// StatusMsgID is the Nats-Msg-Id of a delivery receipt: one per message and status, so a retried
// receipt is dropped while sent, delivered and read of the same message are all kept.
func StatusMsgID(channel string, s event.StatusUpdate) string {
	id := s.ExternalID
	if id == "" {
		id = "ref:" + s.Reference
	}
	return channel + ":status:" + id + ":" + s.Status
}

// InvalidOutgoing keeps raw bytes for replay; its Nats-Msg-Id is the body's SHA-256, so a provider
// retrying the same unparseable body stores it once.
func InvalidOutgoing(channel string, raw []byte, reason string) Outgoing {
	sum := sha256.Sum256(raw)
	return Outgoing{Kind: KindInvalid, Subject: queue.InboundInvalidSubject(channel),
		MsgID: channel + ":invalid:" + hex.EncodeToString(sum[:]), Reason: reason, Raw: raw}
}
