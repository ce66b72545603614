package agentapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/chatwire/chatwire/pkg/classify"
	"github.com/chatwire/chatwire/pkg/event"
)

// Limits on what a request may carry. Text and caption limits are WhatsApp's: a longer message
// would only fail at the provider, after the agent was told it was queued.
const (
	maxBodyBytes     = 64 << 10
	maxTextRunes     = 4096
	maxCaptionRunes  = 1024
	maxURLLen        = 2048
	maxFilenameLen   = 255
	maxMimeLen       = 127
	maxCommandIDLen  = 128
	maxAgentFieldLen = 200
)

// Conversation statuses (the CHECK constraint of the original schema).
var statuses = []string{"open", "resolved", "archived"}

// badRequest is a client error; its message names the field and is safe to return.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func bad(format string, args ...any) error { return &badRequest{msg: fmt.Sprintf(format, args...)} }

// decodeJSON reads one JSON object from r into v, refusing unknown fields (a misspelt field would
// otherwise be silently ignored) and trailing data.
func decodeJSON(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.Is(err, io.EOF):
			return bad("body: empty, a JSON object is required")
		case errors.As(err, &te) && te.Field != "":
			return bad("%s: must be a %s, got %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
		case errors.As(err, &te):
			return bad("body: must be a JSON object, got %s", te.Value)
		case errors.As(err, &se):
			return bad("body: invalid JSON at byte %d: %v", se.Offset, se)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return bad("body: unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		case strings.Contains(err.Error(), "http: request body too large"):
			return bad("body: larger than %d bytes", maxBodyBytes)
		}
		return bad("body: invalid JSON: %v", err)
	}
	if dec.More() {
		return bad("body: unexpected data after the JSON object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return bad("body: unexpected data after the JSON object")
	}
	return nil
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "string"
	case "ptr", "struct", "map":
		return "JSON object"
	case "bool":
		return "boolean"
	}
	return k
}

// replyRequest is the body of POST /api/conversations/:id/replies.
type replyRequest struct {
	CommandID string        `json:"command_id"`
	Text      string        `json:"text"`
	Media     *mediaRequest `json:"media"`
}

type mediaRequest struct {
	URL      string `json:"url"`
	MimeType string `json:"mime_type"`
	Filename string `json:"filename"`
	Caption  string `json:"caption"`
}

// validate checks r and returns the media to send (nil for text only).
func (r *replyRequest) validate() (*event.Media, error) {
	if r.CommandID != "" {
		if err := validCommandID(r.CommandID); err != nil {
			return nil, err
		}
	}
	if err := validText("text", r.Text, maxTextRunes); err != nil {
		return nil, err
	}
	if r.Media == nil {
		if strings.TrimSpace(r.Text) == "" {
			return nil, bad("text: required (or media.url): a reply needs text or media")
		}
		return nil, nil
	}
	m := r.Media
	if m.URL == "" {
		return nil, bad("media.url: required when media is given")
	}
	if len(m.URL) > maxURLLen {
		return nil, bad("media.url: longer than %d bytes", maxURLLen)
	}
	u, err := url.Parse(m.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, bad("media.url: must be an absolute http:// or https:// URL the provider can fetch")
	}
	if m.MimeType != "" {
		typ, sub, ok := strings.Cut(m.MimeType, "/")
		if !ok || typ == "" || sub == "" || len(m.MimeType) > maxMimeLen || strings.ContainsFunc(m.MimeType, unicode.IsSpace) {
			return nil, bad("media.mime_type: must look like image/jpeg or application/pdf")
		}
	}
	if err := validLine("media.filename", m.Filename, maxFilenameLen); err != nil {
		return nil, err
	}
	if err := validText("media.caption", m.Caption, maxCaptionRunes); err != nil {
		return nil, err
	}
	// Without a caption the sender sends the text as the caption, so it must fit one.
	if m.Caption == "" && utf8.RuneCountInString(r.Text) > maxCaptionRunes {
		return nil, bad("text: longer than %d characters, the limit of a media caption (send the text as its own reply)", maxCaptionRunes)
	}
	return &event.Media{URL: m.URL, MimeType: m.MimeType, Filename: m.Filename, Caption: m.Caption}, nil
}

// validCommandID keeps ids to characters that are safe in a NATS header and in logs.
func validCommandID(id string) error {
	if len(id) > maxCommandIDLen {
		return bad("command_id: longer than %d characters", maxCommandIDLen)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.:", r)) {
			return bad("command_id: may contain only letters, digits and - _ . :")
		}
	}
	return nil
}

// validText refuses what Postgres or the providers cannot take: invalid UTF-8, NUL, too long.
func validText(field, s string, maxRunes int) error {
	switch {
	case !utf8.ValidString(s):
		return bad("%s: not valid UTF-8", field)
	case strings.ContainsRune(s, 0):
		return bad("%s: contains a NUL character", field)
	case utf8.RuneCountInString(s) > maxRunes:
		return bad("%s: longer than %d characters", field, maxRunes)
	}
	return nil
}

// validLine is validText for single-line values.
func validLine(field, s string, maxLen int) error {
	if err := validText(field, s, maxLen); err != nil {
		return err
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		return bad("%s: contains control characters", field)
	}
	return nil
}

// optString is a JSON field that distinguishes "absent" from null and from a value.
type optString struct {
	set  bool
	null bool
	v    string
}

func (o *optString) UnmarshalJSON(b []byte) error {
	o.set = true
	if string(b) == "null" {
		o.null = true
		return nil
	}
	return json.Unmarshal(b, &o.v)
}

// patchRequest is the body of PATCH /api/conversations/:id.
type patchRequest struct {
	Status        optString `json:"status"`
	AssignedTeam  optString `json:"assigned_team"`
	AssignedAgent optString `json:"assigned_agent"`
}

func (r *patchRequest) validate() (patch, error) {
	var p patch
	if !r.Status.set && !r.AssignedTeam.set && !r.AssignedAgent.set {
		return p, bad("body: nothing to change: send status, assigned_team and/or assigned_agent")
	}
	if r.Status.set {
		s := strings.ToLower(strings.TrimSpace(r.Status.v))
		if r.Status.null || !oneOf(s, statuses) {
			return p, bad("status: must be one of %s", strings.Join(statuses, ", "))
		}
		p.status = &s
	}
	if r.AssignedTeam.set {
		// "" or null unassigns: the conversation goes back to triage (team general's agents).
		t := strings.ToLower(strings.TrimSpace(r.AssignedTeam.v))
		if t != "" && !classify.ValidTeam(t) {
			return p, bad("assigned_team: must be one of %s (or \"\" to unassign)", strings.Join(classify.Teams, ", "))
		}
		p.setTeam, p.team = true, &t
	}
	if r.AssignedAgent.set {
		a := strings.TrimSpace(r.AssignedAgent.v)
		if err := validLine("assigned_agent", a, maxAgentFieldLen); err != nil {
			return p, err
		}
		p.setA, p.agent = true, &a
	}
	return p, nil
}

func oneOf(s string, list []string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
