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

// ParseInvalid is one batch item that could not be normalized.
type ParseInvalid struct {
	Raw    json.RawMessage
	Reason string
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
			res.Invalid = append(res.Invalid, ParseInvalid{Raw: raw, Reason: "incoming_message: " + reason})
			continue
		}
		res.Messages = append(res.Messages, m)
	}
	for _, raw := range delItems {
		st, reason := parseDelivery(raw, now)
		if reason != "" {
			res.Invalid = append(res.Invalid, ParseInvalid{Raw: raw, Reason: "delivery_status: " + reason})
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
	var it whObject
	if err := json.Unmarshal(raw, &it); err != nil || it == nil {
		return event.InboundMessage{}, "item is not an object"
	}
	m := event.InboundMessage{
		Channel:    event.ChannelNetcore,
		ExternalID: it.str("message_id"),
		FromPhone:  parseDigits(it.str("from")),
		FromName:   it.str("from_name"),
		ToPhone:    parseDigits(it.str("to")),
		ReceivedAt: parseFirstTime(now, it.str("received_at"), it.str("timestamp")),
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
	if ctx := it.obj("context"); ctx != nil {
		m.ReplyToExternalID = parseFirst(ctx.str("ncmessage_id"), ctx.str("message_id"))
	}
	parseContent(&m, it)
	return m, ""
}

// parseContent fills Type, Text and Media from message_type and its <type>_type object.
func parseContent(m *event.InboundMessage, it whObject) {
	mt := strings.ToLower(it.str("message_type"))
	content := it.obj(mt + "_type")
	if content == nil {
		content = it.obj("type_" + mt)
	}
	media := func(typ string) {
		m.Type = typ
		md := &event.Media{
			ProviderMediaID: content.str("id"),
			URL:             parseFirst(content.str("url"), content.str("link")),
			MimeType:        content.str("mime_type"),
			SHA256:          content.str("sha256"),
			Filename:        content.str("filename"),
			Caption:         content.str("caption"),
		}
		if *md != (event.Media{}) {
			m.Media = md
		}
		m.Text = md.Caption
	}
	switch mt {
	case "text":
		m.Type = event.TypeText
		m.Text = parseFirst(content.str("text"), content.str("body"), it.str("text_type"))
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
		m.Text = content.str("emoji")
		if id := content.str("message_id"); id != "" {
			m.ReplyToExternalID = id
		}
	case "button":
		m.Type = event.TypeInteractive
		m.Text = parseFirst(content.str("text"), content.str("title"), content.str("payload"))
	case "interactive":
		m.Type = event.TypeInteractive
		for _, k := range []string{"button_reply", "list_reply"} {
			if r := content.obj(k); r != nil {
				m.Text = parseFirst(r.str("title"), r.str("id"))
				break
			}
		}
		if m.Text == "" {
			m.Text = parseFirst(content.str("title"), content.str("text"))
		}
	case "contacts", "contact":
		m.Type = event.TypeContacts
		m.Text = parseContactsText(it[mt+"_type"])
	case "template":
		m.Type = event.TypeTemplate
		m.Text = content.str("text")
	default:
		// Unknown types are kept as "unknown"; the raw item travels in Payload.
		m.Type = event.TypeUnknown
	}
}

// parseLocationText renders "lat,long name address".
func parseLocationText(loc whObject) string {
	lat, long := loc.str("latitude"), loc.str("longitude")
	var parts []string
	if lat != "" || long != "" {
		parts = append(parts, lat+","+long)
	}
	for _, k := range []string{"name", "address"} {
		if s := loc.str(k); s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, " ")
}

// parseContactsText lists the shared contacts' names and numbers.
func parseContactsText(raw json.RawMessage) string {
	var list []whObject
	if err := json.Unmarshal(raw, &list); err != nil {
		var one whObject
		if err := json.Unmarshal(raw, &one); err != nil || one == nil {
			return ""
		}
		if c, ok := one["contacts"]; ok {
			_ = json.Unmarshal(c, &list)
		} else {
			list = []whObject{one}
		}
	}
	var out []string
	for _, c := range list {
		name := parseFirst(c.obj("name").str("formatted_name"), c.str("name"))
		var phones []string
		var ps []whObject
		if err := json.Unmarshal(c["phones"], &ps); err == nil {
			for _, p := range ps {
				if s := p.str("phone"); s != "" {
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
	var it whObject
	if err := json.Unmarshal(raw, &it); err != nil || it == nil {
		return event.StatusUpdate{}, "item is not an object"
	}
	st := event.StatusUpdate{
		Channel:    event.ChannelNetcore,
		ExternalID: it.str("ncmessage_id"),
		Reference:  parseFirst(it.str("x-apiheader"), it.str("x_apiheader")),
		At:         parseFirstTime(now, it.str("received_at"), it.str("timestamp")),
		Payload:    raw,
	}
	rawStatus := it.str("status")
	st.Status = parseStatuses[strings.ToLower(rawStatus)]
	switch {
	case st.ExternalID == "" && st.Reference == "":
		return st, "no ncmessage_id or x-apiheader"
	case st.Status == "":
		return st, "unknown status " + strconv.Quote(parseCut(rawStatus))
	}
	if st.Status == event.StatusFailed {
		st.ErrorCode = parseFirst(it.str("error_code"), it.str("code"))
		st.ErrorText = parseFirst(it.str("status_remark"), it.str("error_message"))
	}
	return st, ""
}

func parseFirst(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// parseCut bounds a provider-chosen value before it goes into an error or a log line.
func parseCut(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}
