package netcore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/provider/phonenum"
	"github.com/chatwire/chatwire/pkg/provider/webhookjson"
)

// ErrParse is wrapped by every error Parse returns: the body is not JSON or has neither
// incoming_message nor delivery_status. The gateway keeps such bodies raw on
// inbound.invalid.netcore for replay once the parser learns them.
var ErrParse = errors.New("netcore webhook not understood")

// ParseResult is one webhook body, normalized. Netcore batches: one body may carry many messages
// and many delivery statuses.
type ParseResult struct {
	Messages []event.InboundMessage
	Statuses []event.StatusUpdate
	// Invalid holds the items of a batch that could not be understood (no id, no sender, an
	// unknown status), raw, so the rest of the batch still goes through and nothing is lost.
	Invalid []ParseInvalid
}

// ParseInvalid is one batch item that could not be normalized. Raw is the item wrapped as a
// one-item webhook body ({"incoming_message":[item]} or {"delivery_status":[item]}), so a kept
// item can be replayed through Parse like any body once the parser understands it.
type ParseInvalid struct {
	Raw    json.RawMessage
	Reason string
}

// parseKeep wraps one batch item as a webhook body of its own.
func parseKeep(list string, item json.RawMessage) json.RawMessage {
	out := make([]byte, 0, len(list)+len(item)+8)
	out = append(out, `{"`...)
	out = append(out, list...)
	out = append(out, `":[`...)
	out = append(out, item...)
	return append(out, "]}"...)
}

// Parse turns one Netcore webhook body into events. now is used when an item carries no readable
// timestamp. It never panics; every error wraps ErrParse. InboundMessage.ID is left empty: the
// gateway assigns it.
func Parse(body []byte, now time.Time) (ParseResult, error) {
	var res ParseResult
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return res, fmt.Errorf("%w: body is not a JSON object", ErrParse)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return res, fmt.Errorf("%w: invalid JSON: %v", ErrParse, err)
	}
	inc, hasInc := top["incoming_message"]
	del, hasDel := top["delivery_status"]
	if !hasInc && !hasDel {
		return res, fmt.Errorf("%w: neither incoming_message nor delivery_status", ErrParse)
	}
	incItems, err := parseList(inc)
	if err != nil {
		return res, fmt.Errorf("%w: incoming_message: %v", ErrParse, err)
	}
	delItems, err := parseList(del)
	if err != nil {
		return res, fmt.Errorf("%w: delivery_status: %v", ErrParse, err)
	}
	for _, raw := range incItems {
		m, reason := parseIncoming(raw, now)
		if reason != "" {
			res.Invalid = append(res.Invalid, ParseInvalid{Raw: parseKeep("incoming_message", raw), Reason: "incoming_message: " + reason})
			continue
		}
		res.Messages = append(res.Messages, m)
	}
	for _, raw := range delItems {
		st, reason := parseDelivery(raw, now)
		if reason != "" {
			res.Invalid = append(res.Invalid, ParseInvalid{Raw: parseKeep("delivery_status", raw), Reason: "delivery_status: " + reason})
			continue
		}
		res.Statuses = append(res.Statuses, st)
	}
	return res, nil
}

// parseList accepts a list of items, a single object (tolerated as a list of one), or null.
func parseList(raw json.RawMessage) ([]json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || bytes.Equal(raw, []byte("null")):
		return nil, nil
	case raw[0] == '{':
		return []json.RawMessage{raw}, nil
	case raw[0] == '[':
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, err
		}
		return items, nil
	}
	return nil, errors.New("neither a list nor an object")
}

// parseIncoming normalizes one incoming_message item; a non-empty reason says why it could not.
func parseIncoming(raw json.RawMessage, now time.Time) (event.InboundMessage, string) {
	var it webhookjson.Object
	if err := json.Unmarshal(raw, &it); err != nil || it == nil {
		return event.InboundMessage{}, "item is not an object"
	}
	m := event.InboundMessage{
		Channel:    event.ChannelNetcore,
		ExternalID: it.Str("message_id"),
		FromPhone:  phonenum.Digits(it.Str("from")),
		FromName:   it.Str("from_name"),
		ToPhone:    phonenum.Digits(it.Str("to")),
		ReceivedAt: webhookjson.FirstTime(webhookjson.EpochOrTime, now, it.Str("received_at"), it.Str("timestamp")),
		Payload:    raw,
	}
	m.Account = m.ToPhone
	switch {
	case m.ExternalID == "":
		return m, "no message_id"
	case m.FromPhone == "":
		return m, "no from"
	}
	// context is "", null or an object; only the object says which message this one answers.
	// ncmessage_id is Netcore's id of a message we sent (what our outbound rows carry); message_id
	// is the WhatsApp id, which is what a customer's own earlier message is stored under.
	if ctx := it.Obj("context"); ctx != nil {
		m.ReplyToExternalID = webhookjson.First(ctx.Str("ncmessage_id"), ctx.Str("message_id"))
	}
	parseContent(&m, it)
	return m, ""
}

// parseContent fills Type, Text and Media from message_type and its <type>_type object.
func parseContent(m *event.InboundMessage, it webhookjson.Object) {
	mt := strings.ToLower(it.Str("message_type"))
	content := it.Obj(mt + "_type")
	if content == nil {
		content = it.Obj("type_" + mt)
	}
	media := func(typ string) {
		m.Type = typ
		md := &event.Media{
			ProviderMediaID: content.Str("id"),
			URL:             webhookjson.First(content.Str("url"), content.Str("link")),
			MimeType:        content.Str("mime_type"),
			SHA256:          content.Str("sha256"),
			Filename:        content.Str("filename"),
			Caption:         content.Str("caption"),
		}
		if *md != (event.Media{}) {
			m.Media = md
		}
		m.Text = md.Caption
	}
	switch mt {
	case "text":
		m.Type = event.TypeText
		m.Text = webhookjson.First(content.Str("text"), content.Str("body"), it.Str("text_type"))
	case "image":
		media(event.TypeImage)
	case "video":
		media(event.TypeVideo)
	case "audio", "voice":
		media(event.TypeAudio)
	case "document":
		media(event.TypeDocument)
	case "sticker":
		media(event.TypeSticker)
	case "location":
		m.Type = event.TypeLocation
		m.Text = parseLocationText(content)
	case "reaction":
		m.Type = event.TypeReaction
		m.Text = content.Str("emoji")
		if id := content.Str("message_id"); id != "" {
			m.ReplyToExternalID = id
		}
	case "button":
		m.Type = event.TypeInteractive
		m.Text = webhookjson.First(content.Str("text"), content.Str("title"), content.Str("payload"))
	case "interactive":
		m.Type = event.TypeInteractive
		for _, k := range []string{"button_reply", "list_reply"} {
			if r := content.Obj(k); r != nil {
				m.Text = webhookjson.First(r.Str("title"), r.Str("id"))
				break
			}
		}
		if m.Text == "" {
			m.Text = webhookjson.First(content.Str("title"), content.Str("text"))
		}
	case "contacts", "contact":
		m.Type = event.TypeContacts
		m.Text = parseContactsText(it[mt+"_type"])
	case "template":
		m.Type = event.TypeTemplate
		m.Text = content.Str("text")
	default:
		// Unknown types are kept as "unknown"; the raw item travels in Payload.
		m.Type = event.TypeUnknown
	}
}

// parseLocationText renders "lat,long name address".
func parseLocationText(loc webhookjson.Object) string {
	lat, long := loc.Str("latitude"), loc.Str("longitude")
	var parts []string
	if lat != "" || long != "" {
		parts = append(parts, lat+","+long)
	}
	for _, k := range []string{"name", "address"} {
		if s := loc.Str(k); s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, " ")
}

// parseContactsText lists the shared contacts' names and numbers.
func parseContactsText(raw json.RawMessage) string {
	var list []webhookjson.Object
	if err := json.Unmarshal(raw, &list); err != nil {
		var one webhookjson.Object
		if err := json.Unmarshal(raw, &one); err != nil || one == nil {
			return ""
		}
		if c, ok := one["contacts"]; ok {
			_ = json.Unmarshal(c, &list)
		} else {
			list = []webhookjson.Object{one}
		}
	}
	var out []string
	for _, c := range list {
		name := webhookjson.First(c.Obj("name").Str("formatted_name"), c.Str("name"))
		var phones []string
		var ps []webhookjson.Object
		if err := json.Unmarshal(c["phones"], &ps); err == nil {
			for _, p := range ps {
				if s := p.Str("phone"); s != "" {
					phones = append(phones, s)
				}
			}
		}
		s := strings.TrimSpace(name + " " + strings.Join(phones, ", "))
		if s != "" {
			out = append(out, s)
		}
	}
	return strings.Join(out, "; ")
}

// parseStatuses maps Netcore's delivery statuses to chatwire's.
var parseStatuses = map[string]string{
	"sent":        event.StatusSent,
	"delivered":   event.StatusDelivered,
	"read":        event.StatusRead,
	"seen":        event.StatusRead,
	"failed":      event.StatusFailed,
	"failure":     event.StatusFailed,
	"undelivered": event.StatusFailed,
	"rejected":    event.StatusFailed,
}

// parseDelivery normalizes one delivery_status item; a non-empty reason says why it could not.
func parseDelivery(raw json.RawMessage, now time.Time) (event.StatusUpdate, string) {
	var it webhookjson.Object
	if err := json.Unmarshal(raw, &it); err != nil || it == nil {
		return event.StatusUpdate{}, "item is not an object"
	}
	st := event.StatusUpdate{
		Channel:    event.ChannelNetcore,
		ExternalID: it.Str("ncmessage_id"),
		Reference:  webhookjson.First(it.Str("x-apiheader"), it.Str("x_apiheader")),
		At:         webhookjson.FirstTime(webhookjson.EpochOrTime, now, it.Str("received_at"), it.Str("timestamp")),
		Payload:    raw,
	}
	rawStatus := it.Str("status")
	st.Status = parseStatuses[strings.ToLower(rawStatus)]
	switch {
	case st.ExternalID == "" && st.Reference == "":
		return st, "no ncmessage_id or x-apiheader"
	case st.Status == "":
		return st, "unknown status " + strconv.Quote(parseCut(rawStatus))
	}
	if st.Status == event.StatusFailed {
		st.ErrorCode = webhookjson.First(it.Str("error_code"), it.Str("code"))
		st.ErrorText = webhookjson.First(it.Str("status_remark"), it.Str("error_message"))
	}
	return st, ""
}

// parseCut bounds a provider-chosen value before it goes into an error or a log line.
func parseCut(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}
