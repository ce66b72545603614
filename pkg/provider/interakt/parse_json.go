package interakt

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"
)

// whString decodes any JSON scalar into text and never fails on a type mismatch: Interakt sends
// ids and codes sometimes as strings and sometimes as numbers, and `message` is a JSON string for
// interactive replies but could arrive as an object. null leaves it empty; an object or array is
// kept as its compact JSON text so nothing is lost.
type whString string

func (s *whString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || bytes.Equal(b, []byte("null")):
		*s = ""
	case b[0] == '"' && len(b) >= 2 && b[len(b)-1] == '"' && bytes.IndexByte(b, '\\') < 0 && parsePlainASCII(b):
		// Fast path for the common case: no escapes, nothing to decode.
		*s = whString(b[1 : len(b)-1])
	case b[0] == '"':
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = whString(v)
	case b[0] == '{' || b[0] == '[':
		var buf bytes.Buffer
		if err := json.Compact(&buf, b); err != nil {
			return err
		}
		*s = whString(buf.String())
	default: // number or boolean: keep the literal
		*s = whString(b)
	}
	return nil
}

func (s whString) String() string { return strings.TrimSpace(string(s)) }

// whObject decodes a JSON object leniently: anything that is not an object ("" or null, which
// providers send for "no value") decodes to nil instead of failing the whole body.
type whObject map[string]json.RawMessage

func (o *whObject) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		*o = nil
		return nil
	}
	m := map[string]json.RawMessage{}
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*o = m
	return nil
}

// str returns the field k as text ("" when missing).
func (o whObject) str(k string) string {
	raw, ok := o[k]
	if !ok {
		return ""
	}
	var s whString
	if err := json.Unmarshal(raw, &s); err != nil {
		return ""
	}
	return s.String()
}

// obj returns the field k as an object (nil when missing or not an object).
func (o whObject) obj(k string) whObject {
	raw, ok := o[k]
	if !ok {
		return nil
	}
	var v whObject
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil
	}
	return v
}

// parseDigits keeps only the digits of a phone number ("+91 98765-43210" → "919876543210").
func parseDigits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// parseTimeLayouts are the forms Interakt uses. received_at_utc carries no zone and is UTC.
var parseTimeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999 -0700",
}

// parseTime reads a provider timestamp as UTC; ok is false when s is empty or unreadable.
func parseTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	for _, l := range parseTimeLayouts {
		if t, err := time.ParseInLocation(l, s, time.UTC); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// parseFirstTime returns the first readable timestamp of candidates, or fallback.
func parseFirstTime(fallback time.Time, candidates ...string) time.Time {
	for _, c := range candidates {
		if t, ok := parseTime(c); ok {
			return t
		}
	}
	return fallback.UTC()
}

// parsePlainASCII reports whether b holds only printable ASCII, which a JSON string can carry
// verbatim (the decoder would otherwise replace invalid UTF-8 and control characters).
func parsePlainASCII(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}
