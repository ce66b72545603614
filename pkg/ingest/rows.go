package ingest

import (
	"database/sql"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/store"
)

// NetcoreMediaPrefix marks a media_url that holds a Netcore media id instead of a URL: Netcore
// webhooks carry an id, fetched with GET <NETCORE_API_URL>/api/v2/media/<id> and the API key.
// Storing it in media_url keeps the legacy column meaningful ("this message has media") and lets a
// reader tell an id from a link without parsing provider_payload.
const NetcoreMediaPrefix = "netcore-media:"

// NetcoreMediaID returns the Netcore media id of a media_url written by the ingestor, if it is one.
func NetcoreMediaID(mediaURL string) (string, bool) {
	if !strings.HasPrefix(mediaURL, NetcoreMediaPrefix) {
		return "", false
	}
	return mediaURL[len(NetcoreMediaPrefix):], true
}

// messageNamespace derives message row ids. A row's id is a function of the INBOUND delivery that
// created it (channel, provider id and the gateway's id), so a redelivery of the same INBOUND
// message recognises "its" row and publishes that row's events again, while a second copy of the
// provider message (a provider retry the gateway accepted as a new webhook) finds a row with
// another id and is a plain duplicate.
var messageNamespace = uuid.MustParse("6b1c2f0e-5d55-4c4f-9a43-7e0f3f1d8a21")

// MessageRowID is the chat_messages.id the ingestor gives the message carried by m.
func MessageRowID(m *event.InboundMessage) uuid.UUID {
	return uuid.NewSHA1(messageNamespace, []byte(m.Channel+"\x00"+m.ExternalID+"\x00"+m.ID))
}

// storedTypes are the message_type values chat_messages accepts.
var storedTypes = map[string]bool{
	event.TypeText: true, event.TypeImage: true, event.TypeDocument: true, event.TypeAudio: true,
	event.TypeVideo: true, event.TypeLocation: true, event.TypeSticker: true, event.TypeInteractive: true,
	event.TypeReaction: true, event.TypeTemplate: true, event.TypeContacts: true, event.TypeUnknown: true,
}

// messageType maps a wire type onto the widened message_type CHECK; anything else is "unknown"
// rather than a constraint violation (the raw payload keeps what it really was).
func messageType(t string) string {
	t = strings.ToLower(strings.TrimSpace(t))
	if storedTypes[t] {
		return t
	}
	return event.TypeUnknown
}

// clean removes NUL characters, which a Postgres text column cannot hold; they carry no meaning in
// a chat message and would otherwise make the whole message unstorable.
func clean(s string) string {
	if strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(s, "\x00", "")
}

// normalizePhone keeps the digits-only form the gateway promises, tolerating a leading '+'.
func normalizePhone(p string) string {
	return strings.TrimPrefix(strings.TrimSpace(clean(p)), "+")
}

// inboundRow is one chat_messages row to insert.
type inboundRow struct {
	id          uuid.UUID
	channel     string
	externalID  string
	interaktID  string // legacy column, Interakt rows only
	phone       string
	messageType string
	content     string
	mediaURL    string
	senderName  string
	createdAt   time.Time
	payload     string
	classify    string // text the classifier reads
}

// toRow maps an InboundMessage onto its row. now is used when the provider gave no time.
func toRow(m *event.InboundMessage, now time.Time) inboundRow {
	r := inboundRow{
		id:          MessageRowID(m),
		channel:     m.Channel,
		externalID:  clean(m.ExternalID),
		phone:       normalizePhone(m.FromPhone),
		messageType: messageType(m.Type),
		content:     clean(m.Text),
		senderName:  clean(m.FromName),
		createdAt:   m.ReceivedAt.UTC().Truncate(time.Microsecond), // Postgres keeps microseconds
		payload:     string(m.Payload),
	}
	if m.Channel == event.ChannelInterakt {
		r.interaktID = r.externalID
	}
	if m.Media != nil {
		switch {
		case m.Media.URL != "":
			r.mediaURL = clean(m.Media.URL)
		case m.Media.ProviderMediaID != "":
			r.mediaURL = NetcoreMediaPrefix + clean(m.Media.ProviderMediaID)
		}
		if r.content == "" {
			r.content = clean(m.Media.Caption)
		}
	}
	if m.ReceivedAt.IsZero() {
		r.createdAt = now.UTC().Truncate(time.Microsecond)
	}
	r.classify = clean(m.ClassifyText)
	if r.classify == "" {
		r.classify = r.content
	}
	if strings.TrimSpace(r.payload) == "" || r.payload == "null" {
		r.payload = ""
	}
	return r
}

// msgRow is the row as inserted, for the new_message event.
func (r *inboundRow) msgRow(conversationID string) msgRow {
	str := func(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }
	return msgRow{MessageRow: store.MessageRow{
		ID: r.id.String(), ConversationID: conversationID, Direction: "inbound", MessageType: r.messageType,
		Content: str(r.content), MediaURL: str(r.mediaURL), Channel: str(r.channel),
		ExternalMessageID: str(r.externalID), SenderType: "customer", SenderName: str(r.senderName),
		CreatedAt: r.createdAt,
	}}
}

// msgRow is a chat_messages row as agents see it, plus whether its conversation still awaits
// classification.
type msgRow struct {
	store.MessageRow
	ClassifyPending sql.NullBool `db:"classify_pending"`
}

const msgColumns = store.MessageColumns + `, classify_pending`
