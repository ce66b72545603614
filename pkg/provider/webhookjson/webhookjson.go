// Package webhookjson holds the tolerant JSON readers both providers' webhook parsers use.
// Providers send the same field sometimes as a string and sometimes as a number, "" or null where
// an object is expected, and timestamps in several forms; these types and functions read all of
// them without failing the whole body, so one odd field never loses a customer's message.
package webhookjson

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// String decodes any JSON scalar into text and never fails on a type mismatch: ids and codes
// arrive sometimes as strings and sometimes as numbers, and a field documented as a string can
// arrive as an object. null leaves it empty; an object or array is kept as its compact JSON text
// so nothing is lost.
type String string

// UnmarshalJSON implements json.Unmarshaler.
func (s *String) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || bytes.Equal(b, []byte("null")):
		*s = ""
	case b[0] == '"' && len(b) >= 2 && b[len(b)-1] == '"' && bytes.IndexByte(b, '\\') < 0 && plainASCII(b):
		// Fast path for the common case: no escapes, nothing to decode.
		*s = String(b[1 : len(b)-1])
	case b[0] == '"':
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = String(v)
	case b[0] == '{' || b[0] == '[':
		var buf bytes.Buffer
		if err := json.Compact(&buf, b); err != nil {
			return err
		}
		*s = String(buf.String())
	default: // number or boolean: keep the literal
		*s = String(b)
	}
	return nil
}

// String returns the text without surrounding spaces.
func (s String) String() string { return strings.TrimSpace(string(s)) }

// Object decodes a JSON object leniently: anything that is not an object ("" or null, which
// providers send for "no value") decodes to nil instead of failing the whole body.
type Object map[string]json.RawMessage

// UnmarshalJSON implements json.Unmarshaler.
func (o *Object) UnmarshalJSON(b []byte) error {
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

// Str returns the field k as text ("" when missing).
func (o Object) Str(k string) string {
	raw, ok := o[k]
	if !ok {
		return ""
	}
	var s String
	if err := json.Unmarshal(raw, &s); err != nil {
		return ""
	}
	return s.String()
}

// Obj returns the field k as an object (nil when missing or not an object).
func (o Object) Obj(k string) Object {
	raw, ok := o[k]
	if !ok {
		return nil
	}
	var v Object
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil
	}
	return v
}

// First returns the first non-empty value, or "".
func First(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// timeLayouts are the textual timestamp forms providers use. A time without a zone (Interakt's
// received_at_utc, Netcore's delivery_status received_at "2026-02-23 10:15:02") is UTC.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999 -0700",
}

// Time reads a date-time text as UTC; ok is false when s is empty or unreadable.
func Time(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	for _, l := range timeLayouts {
		if t, err := time.ParseInLocation(l, s, time.UTC); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// EpochOrTime reads a timestamp as UTC: epoch seconds (or milliseconds) as a string or number, or
// a date-time text as Time reads it. ok is false when s is empty or unreadable.
func EpochOrTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	if n, err := strconv.ParseFloat(s, 64); err == nil && numeric(s) {
		switch {
		case n <= 0 || n > 1e15:
			return time.Time{}, false
		case n >= 1e11: // milliseconds
			return time.UnixMilli(int64(n)).UTC(), true
		default:
			sec := int64(n)
			return time.Unix(sec, int64((n-float64(sec))*1e9)).UTC(), true
		}
	}
	return Time(s)
}

// FirstTime returns the first of candidates that parse reads, or fallback (as UTC).
func FirstTime(parse func(string) (time.Time, bool), fallback time.Time, candidates ...string) time.Time {
	for _, c := range candidates {
		if t, ok := parse(c); ok {
			return t
		}
	}
	return fallback.UTC()
}

// plainASCII reports whether b holds only printable ASCII, which a JSON string can carry
// verbatim (the decoder would otherwise replace invalid UTF-8 and control characters).
func plainASCII(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// numeric reports whether s is a plain decimal number (no sign, exponent, NaN or Inf).
func numeric(s string) bool {
	for _, r := range s {
		if (r < '0' || r > '9') && r != '.' {
			return false
		}
	}
	return s != ""
}
