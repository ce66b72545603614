package interakt

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

// ErrParse is wrapped by every error Parse returns: the body is not JSON, has no recognizable
// shape, or is a webhook type this build does not know. The gateway keeps such bodies raw on
// inbound.invalid.interakt for replay once the parser learns them.
var ErrParse = errors.New("interakt webhook not understood")

// Webhook types (the envelope's "type").
const (
	WebhookMessageReceived  = "message_received"
	WebhookWorkflowResponse = "workflow_response_update"
)

// ParseResult is one webhook body, normalized. Interakt sends one event per request, but a
// workflow response carries several answers, so every list may hold more than one value.
type ParseResult struct {
	Type     string // the webhook's "type"
	Messages []event.InboundMessage
	Statuses []event.StatusUpdate
	// Ignored lists what was understood and deliberately not turned into an event (echoes of our
	// own outbound messages, button clicks), so callers can count it.
	Ignored []ParseIgnored
}

// ParseIgnored is one understood but deliberately dropped item.
type ParseIgnored struct {
	ExternalID string
	Reason     string
}

// Parse turns one Interakt webhook body into events. now is used when the body carries no
// readable timestamp. It never panics; every error wraps ErrParse. InboundMessage.ID is left
// empty: the gateway assigns it.
func Parse(body []byte, now time.Time) (ParseResult, error) {
	var env whEnvelope
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return ParseResult{}, fmt.Errorf("%w: body is not a JSON object", ErrParse)
	}
	if err := parseUnmarshal(body, &env); err != nil {
		return ParseResult{}, fmt.Errorf("%w: invalid JSON: %v", ErrParse, err)
	}
	typ := env.Type.String()
	res := ParseResult{Type: typ}
	if typ == "" {
		return res, fmt.Errorf("%w: no \"type\"", ErrParse)
	}
	data := env.Data
	if data == nil {
		return res, fmt.Errorf("%w: %s without a \"data\" object", ErrParse, parseSafe(typ))
	}
	fallback := webhookjson.FirstTime(webhookjson.Time, now, env.Timestamp.String())
	switch {
	case typ == WebhookMessageReceived:
		return res, parseMessageReceived(&res, body, data, fallback)
	case typ == WebhookWorkflowResponse:
		return res, parseWorkflow(&res, data, fallback)
	case parseStatusOf(typ) != "":
		return res, parseStatus(&res, body, typ, data, fallback)
	case strings.HasSuffix(typ, "_clicked"):
		var id string
		if data.Message != nil {
			id = data.Message.ID.String()
		}
		res.Ignored = append(res.Ignored, ParseIgnored{ExternalID: id, Reason: "button click"})
		return res, nil
	}
	return res, fmt.Errorf("%w: unknown webhook type %s", ErrParse, parseSafe(typ))
}

// The webhook's shapes. Every scalar is a webhookjson.String and every optional object a pointer
// or a webhookjson.Object, so a field of an unexpected type never fails the whole body (see
// parseUnmarshal).
type (
	whEnvelope struct {
		Timestamp webhookjson.String `json:"timestamp"`
		Type      webhookjson.String `json:"type"`
		Data      *whData            `json:"data"`
	}
	whData struct {
		Customer *whCustomer `json:"customer"`
		Message  *whMessage  `json:"message"`
		// workflow_response_update
		ID             webhookjson.String `json:"id"`
		CustomerName   webhookjson.String `json:"customer_name"`
		CustomerNumber webhookjson.String `json:"customer_number"`
		Answers        json.RawMessage    `json:"data"`
		CreatedAt      webhookjson.String `json:"created_at"`
		UpdatedAt      webhookjson.String `json:"updated_at"`
		CallbackData   webhookjson.String `json:"callback_data"`
		CallbackData2  webhookjson.String `json:"callbackData"`
	}
	whCustomer struct {
		ChannelPhoneNumber webhookjson.String `json:"channel_phone_number"`
		PhoneNumber        webhookjson.String `json:"phone_number"`
		CountryCode        webhookjson.String `json:"country_code"`
		Name               webhookjson.String `json:"name"`
		Traits             webhookjson.Object `json:"traits"`
	}
	whMessage struct {
		ID                   webhookjson.String `json:"id"`
		ChatMessageType      webhookjson.String `json:"chat_message_type"`
		ReceivedAtUTC        webhookjson.String `json:"received_at_utc"`
		ReceivedAt           webhookjson.String `json:"received_at"`
		ContentType          webhookjson.String `json:"message_content_type"`
		Message              webhookjson.String `json:"message"`
		MediaURL             webhookjson.String `json:"media_url"`
		Context              webhookjson.Object `json:"message_context"`
		SentAtUTC            webhookjson.String `json:"sent_at_utc"`
		DeliveredAtUTC       webhookjson.String `json:"delivered_at_utc"`
		SeenAtUTC            webhookjson.String `json:"seen_at_utc"`
		ReadAtUTC            webhookjson.String `json:"read_at_utc"`
		FailedAtUTC          webhookjson.String `json:"failed_at_utc"`
		ChannelErrorCode     webhookjson.String `json:"channel_error_code"`
		ChannelFailureReason webhookjson.String `json:"channel_failure_reason"`
		FailureReason        webhookjson.String `json:"failure_reason"`
		CallbackData         webhookjson.String `json:"callback_data"`
		CallbackData2        webhookjson.String `json:"callbackData"`
		MetaData             webhookjson.Object `json:"meta_data"`
	}
)

// parseUnmarshal decodes leniently: a syntax error fails, but a field whose JSON type does not
// match (an object where a struct was expected holds a string) is left empty, because the rest of
// the body is still worth keeping.
func parseUnmarshal(b []byte, v any) error {
	err := json.Unmarshal(b, v)
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return nil
	}
	return err
}

// parseEchoTypes are chat_message_type values of messages the business sent (from the dashboard,
// the public API, a campaign or a bot): echoes of outbound traffic, not customer messages.
var parseEchoTypes = map[string]bool{
	"agentmessage":     true,
	"publicapimessage": true,
	"campaignmessage":  true,
	"botmessage":       true,
}

func parseMessageReceived(res *ParseResult, body []byte, data *whData, fallback time.Time) error {
	msg := data.Message
	if msg == nil {
		return fmt.Errorf("%w: message_received without data.message", ErrParse)
	}
	id := msg.ID.String()
	if id == "" {
		return fmt.Errorf("%w: message_received without data.message.id", ErrParse)
	}
	if kind := strings.ToLower(msg.ChatMessageType.String()); parseEchoTypes[kind] {
		res.Ignored = append(res.Ignored, ParseIgnored{ExternalID: id, Reason: "echo of outbound " + parseSafe(msg.ChatMessageType.String())})
		return nil
	}
	phone := parsePhone(data.Customer)
	if phone == "" {
		return fmt.Errorf("%w: message %s without a customer phone number", ErrParse, parseSafe(id))
	}
	m := event.InboundMessage{
		Channel:    event.ChannelInterakt,
		ExternalID: id,
		FromPhone:  phone,
		FromName:   parseName(data.Customer),
		ReceivedAt: webhookjson.FirstTime(webhookjson.Time, fallback, msg.ReceivedAtUTC.String(), msg.ReceivedAt.String()),
		Payload:    json.RawMessage(body),
	}
	m.ReplyToExternalID = msg.Context.Str("id")
	parseContent(&m, msg.ContentType.String(), msg.Message.String(), msg.MediaURL.String())
	res.Messages = append(res.Messages, m)
	return nil
}

// parseContent fills Type, Text and Media from Interakt's content type, message and media_url.
func parseContent(m *event.InboundMessage, contentType, text, mediaURL string) {
	ct := strings.ToLower(strings.ReplaceAll(strings.ReplaceAll(contentType, "_", ""), " ", ""))
	media := func(typ string) {
		m.Type = typ
		m.Text = text
		if mediaURL != "" || text != "" {
			m.Media = &event.Media{URL: mediaURL, Caption: text}
		}
	}
	switch ct {
	case "text":
		m.Type, m.Text = event.TypeText, text
	case "image":
		media(event.TypeImage)
	case "video":
		media(event.TypeVideo)
	case "audio", "voice":
		media(event.TypeAudio)
	case "document", "file":
		media(event.TypeDocument)
		if m.Media != nil {
			m.Media.Filename = parseFilename(mediaURL)
		}
	case "sticker":
		media(event.TypeSticker)
		m.Text = ""
		if m.Media != nil {
			m.Media.Caption = ""
		}
	case "location":
		m.Type, m.Text = event.TypeLocation, parseLocationText(text)
	case "interactivebuttonreply", "interactivelistreply", "interactive", "button", "buttonreply", "listreply":
		m.Type, m.Text = event.TypeInteractive, parseInteractiveText(text)
	case "template":
		m.Type, m.Text = event.TypeTemplate, text
	case "contacts", "contact":
		m.Type, m.Text = event.TypeContacts, text
	case "reaction":
		m.Type, m.Text = event.TypeReaction, text
	default:
		// Unknown content types are kept: the raw payload travels with the event.
		m.Type, m.Text = event.TypeUnknown, text
		if mediaURL != "" {
			m.Media = &event.Media{URL: mediaURL}
		}
	}
}

// parseInteractiveText takes the title of a button or list reply whose `message` is a JSON string
// such as {"type":"button_reply","button_reply":{"id":"…","title":"…"}}; it falls back to the raw
// string when the shape is not recognized.
func parseInteractiveText(raw string) string {
	var v webhookjson.Object
	if err := json.Unmarshal([]byte(raw), &v); err != nil || v == nil {
		return raw
	}
	for _, k := range []string{"button_reply", "list_reply", "buttonReply", "listReply", "button"} {
		if r := v.Obj(k); r != nil {
			if t := r.Str("title"); t != "" {
				return t
			}
			if t := r.Str("text"); t != "" {
				return t
			}
		}
	}
	for _, k := range []string{"title", "text"} {
		if t := v.Str(k); t != "" {
			return t
		}
	}
	return raw
}

// parseLocationText renders a location (a JSON string or plain text) as "lat,long name, address".
func parseLocationText(raw string) string {
	var v webhookjson.Object
	if err := json.Unmarshal([]byte(raw), &v); err != nil || v == nil {
		return raw
	}
	lat, long := v.Str("latitude"), v.Str("longitude")
	if lat == "" || long == "" {
		return raw
	}
	out := lat + "," + long
	for _, k := range []string{"name", "address"} {
		if s := v.Str(k); s != "" {
			out += " " + s
		}
	}
	return out
}

func parseFilename(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	if i := strings.LastIndex(u, "/"); i >= 0 && i+1 < len(u) {
		return u[i+1:]
	}
	return ""
}

// parsePhone builds the customer's full number: country code (without '+') + phone_number, unless
// phone_number already carries it. channel_phone_number, when present, is already both and wins
// when it agrees with phone_number.
func parsePhone(cust *whCustomer) string {
	if cust == nil {
		return ""
	}
	rawPN := cust.PhoneNumber.String()
	pn := phonenum.Digits(rawPN)
	cc := phonenum.Digits(cust.CountryCode.String())
	cpn := phonenum.Digits(cust.ChannelPhoneNumber.String())
	switch {
	case cpn != "" && (pn == "" || strings.HasSuffix(cpn, pn)):
		return cpn
	case pn == "":
		return cpn
	case strings.HasPrefix(rawPN, "+"):
		return pn
	case cc != "" && strings.HasPrefix(pn, cc) && len(pn) >= 11:
		// Already prefixed: national numbers are at most 10 digits in the markets Interakt serves.
		return pn
	}
	return cc + pn
}

func parseName(cust *whCustomer) string {
	if cust == nil {
		return ""
	}
	for _, k := range []string{"name", "Name", "full_name"} {
		if s := cust.Traits.Str(k); s != "" {
			return s
		}
	}
	return cust.Name.String()
}

// parseStatusOf maps message_api_* / message_campaign_* types to a chatwire status ("" if none).
func parseStatusOf(typ string) string {
	var rest string
	switch {
	case strings.HasPrefix(typ, "message_api_"):
		rest = strings.TrimPrefix(typ, "message_api_")
	case strings.HasPrefix(typ, "message_campaign_"):
		rest = strings.TrimPrefix(typ, "message_campaign_")
	default:
		return ""
	}
	switch rest {
	case "sent":
		return event.StatusSent
	case "delivered":
		return event.StatusDelivered
	case "read", "seen":
		return event.StatusRead
	case "failed":
		return event.StatusFailed
	}
	return ""
}

func parseStatus(res *ParseResult, body []byte, typ string, data *whData, fallback time.Time) error {
	msg := data.Message
	if msg == nil {
		return fmt.Errorf("%w: %s without data.message", ErrParse, parseSafe(typ))
	}
	st := event.StatusUpdate{
		Channel:    event.ChannelInterakt,
		ExternalID: msg.ID.String(),
		Reference:  parseCallbackData(data, msg),
		Status:     parseStatusOf(typ),
		Payload:    json.RawMessage(body),
	}
	if st.ExternalID == "" && st.Reference == "" {
		return fmt.Errorf("%w: %s without a message id or callback data", ErrParse, parseSafe(typ))
	}
	var at []string
	switch st.Status {
	case event.StatusSent:
		at = []string{msg.SentAtUTC.String()}
	case event.StatusDelivered:
		at = []string{msg.DeliveredAtUTC.String()}
	case event.StatusRead:
		at = []string{msg.SeenAtUTC.String(), msg.ReadAtUTC.String()}
	case event.StatusFailed:
		at = []string{msg.FailedAtUTC.String()}
		st.ErrorCode = msg.ChannelErrorCode.String()
		st.ErrorText = webhookjson.First(msg.ChannelFailureReason.String(), msg.FailureReason.String())
	}
	st.At = webhookjson.FirstTime(webhookjson.Time, fallback, append(at, msg.ReceivedAtUTC.String())...)
	res.Statuses = append(res.Statuses, st)
	return nil
}

// parseCallbackData finds the callbackData we set when sending; integrations report it in a few
// places, so every known one is tried.
func parseCallbackData(data *whData, msg *whMessage) string {
	return webhookjson.First(
		msg.CallbackData.String(), msg.CallbackData2.String(),
		msg.MetaData.Obj("source_data").Str("callback_data"),
		msg.MetaData.Str("callback_data"),
		data.CallbackData.String(), data.CallbackData2.String(),
	)
}

// parseWorkflow turns a workflow_response_update into one message per answer. Each answer's
// external id, workflow_<response id>_<answer id>, is stable across retries; the combined
// "Q: … / A: …" text of the whole response is what the classifier reads.
func parseWorkflow(res *ParseResult, data *whData, fallback time.Time) error {
	wid := data.ID.String()
	if wid == "" {
		return fmt.Errorf("%w: workflow_response_update without data.id", ErrParse)
	}
	phone := phonenum.Digits(data.CustomerNumber.String())
	if phone == "" {
		phone = parsePhone(data.Customer)
	}
	if phone == "" {
		return fmt.Errorf("%w: workflow response %s without customer_number", ErrParse, parseSafe(wid))
	}
	var items []json.RawMessage
	if raw := bytes.TrimSpace(data.Answers); len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
		if err := json.Unmarshal(raw, &items); err != nil {
			return fmt.Errorf("%w: workflow response %s: data.data is not a list", ErrParse, parseSafe(wid))
		}
	}
	type qa struct {
		raw    json.RawMessage
		q      string
		answer webhookjson.Object
	}
	var pairs []qa
	var combined []string
	for _, raw := range items {
		var it webhookjson.Object
		if err := json.Unmarshal(raw, &it); err != nil || it == nil {
			continue
		}
		ans := it.Obj("answer")
		if ans == nil {
			continue
		}
		q := it.Obj("question").Str("message")
		if q == "" {
			q = it.Str("question")
		}
		pairs = append(pairs, qa{raw: raw, q: q, answer: ans})
		combined = append(combined, "Q: "+q+" / A: "+ans.Str("message"))
	}
	if len(pairs) == 0 {
		res.Ignored = append(res.Ignored, ParseIgnored{ExternalID: "workflow_" + wid, Reason: "workflow response without answers"})
		return nil
	}
	classify := strings.Join(combined, "\n")
	at := webhookjson.FirstTime(webhookjson.Time, fallback, data.UpdatedAt.String(), data.CreatedAt.String())
	for i, p := range pairs {
		aid := p.answer.Str("id")
		if aid == "" {
			aid = strconv.Itoa(i)
		}
		m := event.InboundMessage{
			Channel:      event.ChannelInterakt,
			ExternalID:   "workflow_" + wid + "_" + aid,
			FromPhone:    phone,
			FromName:     data.CustomerName.String(),
			ReceivedAt:   at,
			Payload:      p.raw,
			ClassifyText: classify,
		}
		parseContent(&m, p.answer.Str("message_content_type"), p.answer.Str("message"), p.answer.Str("media_url"))
		if p.answer.Str("message_content_type") == "" {
			m.Type, m.Text = event.TypeText, p.answer.Str("message")
		}
		res.Messages = append(res.Messages, m)
	}
	return nil
}

// parseSafe bounds a provider-chosen identifier before it goes into an error or a log line.
func parseSafe(s string) string {
	const max = 64
	if len(s) > max {
		s = s[:max] + "…"
	}
	return strconv.Quote(s)
}
