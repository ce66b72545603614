package netcore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/provider/phonenum"
	"github.com/chatwire/chatwire/pkg/provider/sendapi"
)

// SendPath is the path of Netcore's WhatsApp message API under its base URL.
const SendPath = "/api/v2/message/"

// Sender sends session messages (text, and image/document/video/audio by URL) through Netcore's
// own message API — Netcore's message[] body, not the Meta Cloud API body the original system
// wrongly used. It is safe for concurrent use.
type Sender struct {
	api *sendapi.Client
}

// NewSender returns a Sender for the API at baseURL (https://waapi.pepipost.com; a value that
// already ends in /api/v2/message/ is accepted) with the API key sent as a Bearer token. client's
// Timeout is a backstop (30 s when nil); callers bound each send with a context.
func NewSender(baseURL, apiKey string, client *http.Client) *Sender {
	base := strings.TrimSuffix(strings.TrimSuffix(baseURL, "/"), strings.TrimSuffix(SendPath, "/"))
	return &Sender{api: sendapi.NewClient("netcore", base+SendPath, "Bearer "+strings.TrimSpace(apiKey), client)}
}

// SendRequest is Netcore's send body: a batch of messages, of which chatwire sends one.
type SendRequest struct {
	Message []SendMessage `json:"message"`
}

// SendMessage is one outgoing message. XAPIHeader carries our message id; Netcore echoes it in
// delivery reports.
type SendMessage struct {
	RecipientWhatsapp string      `json:"recipient_whatsapp"`
	RecipientType     string      `json:"recipient_type"`
	MessageType       string      `json:"message_type"`
	XAPIHeader        string      `json:"x-apiheader,omitempty"`
	TypeText          []SendText  `json:"type_text,omitempty"`
	TypeMedia         []SendMedia `json:"type_media,omitempty"`
}

// SendText is the content of a text message. preview_url is a string, as Netcore documents it.
type SendText struct {
	PreviewURL string `json:"preview_url"`
	Content    string `json:"content"`
}

// SendMedia is the content of a media message (attachment by URL).
type SendMedia struct {
	Attachment SendAttachment `json:"attachment"`
}

// SendAttachment is a media attachment: its URL, kind, caption and (documents) file name.
type SendAttachment struct {
	AttachmentURL  string `json:"attachment_url"`
	AttachmentType string `json:"attachment_type"`
	Caption        string `json:"caption,omitempty"`
	Filename       string `json:"filename,omitempty"`
}

// SendResponse is Netcore's answer: status success with data.id (the ncmessage_id delivery
// reports refer to), or status failure with an error code 8001–8008.
type SendResponse struct {
	Status string         `json:"status"`
	Data   *SendData      `json:"data,omitempty"`
	Error  *SendErrorBody `json:"error,omitempty"`
}

// SendData is the data of a successful answer.
type SendData struct {
	ID string `json:"id"`
}

// SendErrorBody is the error of a failed answer. Code arrives as a string ("8006") or a number.
type SendErrorBody struct {
	Code    sendCode `json:"code"`
	Message string   `json:"message"`
}

// sendCode decodes a code sent as a string or a number.
type sendCode string

func (c *sendCode) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*c = sendCode(s)
		return nil
	}
	if bytes.Equal(b, []byte("null")) {
		*c = ""
		return nil
	}
	*c = sendCode(b)
	return nil
}

// Netcore message and attachment types for sends.
const (
	SendTypeText  = "text"
	SendTypeMedia = "media"

	SendAttachImage    = "image"
	SendAttachDocument = "document"
	SendAttachVideo    = "video"
	SendAttachAudio    = "audio"
)

// CodeWindowClosed is Netcore's code for a free-form message outside the 24-hour window.
const CodeWindowClosed = "8007"

// NewSendRequest builds the body for one reply; ref is our message id (x-apiheader).
func NewSendRequest(ref, phone, text string, media *event.Media) SendRequest {
	m := SendMessage{RecipientWhatsapp: phonenum.Digits(phone), RecipientType: "individual", XAPIHeader: ref}
	if media != nil && media.URL != "" {
		caption := media.Caption
		if caption == "" {
			caption = text
		}
		a := SendAttachment{AttachmentURL: media.URL, AttachmentType: SendAttachmentType(media), Caption: caption}
		if a.AttachmentType == SendAttachDocument {
			a.Filename = media.Filename
		}
		m.MessageType = SendTypeMedia
		m.TypeMedia = []SendMedia{{Attachment: a}}
	} else {
		preview := "false"
		if strings.Contains(text, "https://") || strings.Contains(text, "http://") {
			preview = "true"
		}
		m.MessageType = SendTypeText
		m.TypeText = []SendText{{PreviewURL: preview, Content: text}}
	}
	return SendRequest{Message: []SendMessage{m}}
}

// SendAttachmentType picks Netcore's attachment type from the MIME type (document otherwise).
func SendAttachmentType(m *event.Media) string {
	mt := strings.ToLower(m.MimeType)
	switch {
	case strings.HasPrefix(mt, "image/"):
		return SendAttachImage
	case strings.HasPrefix(mt, "video/"):
		return SendAttachVideo
	case strings.HasPrefix(mt, "audio/"):
		return SendAttachAudio
	}
	return SendAttachDocument
}

// Send sends one reply to phone and returns Netcore's ncmessage_id. Errors are *SendError.
func (s *Sender) Send(ctx context.Context, ref, phone, text string, media *event.Media) (string, error) {
	return s.api.Post(ctx, NewSendRequest(ref, phone, text, media), sendInterpret)
}

// sendInterpret turns an HTTP answer into the ncmessage_id or a classified *SendError.
func sendInterpret(status int, h http.Header, raw []byte) (string, error) {
	var r SendResponse
	jsonErr := json.Unmarshal(raw, &r)
	wait := SendRetryAfter(h.Get("Retry-After"), time.Now())
	switch {
	case status == http.StatusTooManyRequests:
		return "", &SendError{HTTPStatus: status, Code: "http_429", Text: sendReason(r, raw), Temporary: true, Wait: wait}
	case status == http.StatusGatewayTimeout:
		return "", &SendError{HTTPStatus: status, Code: "http_504", Text: sendReason(r, raw), Temporary: true, Ambiguous: true}
	case status >= 500 || status == http.StatusRequestTimeout:
		return "", &SendError{HTTPStatus: status, Code: fmt.Sprintf("http_%d", status), Text: sendReason(r, raw), Temporary: true, Wait: wait}
	}
	if jsonErr == nil && strings.EqualFold(r.Status, "failure") {
		// Netcore looked at the message and refused it (8001–8008): the same request would be
		// refused again. 8007 is the 24-hour window, permanent for this message.
		code := ""
		if r.Error != nil {
			code = string(r.Error.Code)
		}
		if code == "" {
			code = fmt.Sprintf("http_%d", status)
		}
		return "", &SendError{HTTPStatus: status, Code: code, Text: sendReason(r, raw)}
	}
	if status >= 200 && status < 300 {
		if jsonErr != nil || !strings.EqualFold(r.Status, "success") {
			// A 2xx we cannot read: the message may be on its way, so the outcome is unknown.
			return "", &SendError{HTTPStatus: status, Code: "bad_response",
				Text: "unreadable success response: " + sendapi.Snippet(raw), Temporary: true, Ambiguous: true}
		}
		if r.Data == nil {
			return "", nil
		}
		return r.Data.ID, nil
	}
	return "", &SendError{HTTPStatus: status, Code: fmt.Sprintf("http_%d", status), Text: sendReason(r, raw)}
}

func sendReason(r SendResponse, raw []byte) string {
	if r.Error != nil && r.Error.Message != "" {
		return r.Error.Message
	}
	return sendapi.Snippet(raw)
}
