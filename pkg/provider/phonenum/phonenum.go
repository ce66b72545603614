// Package phonenum normalizes WhatsApp phone numbers the way both providers exchange them: country
// code and number, digits only. Webhooks carry numbers with '+', spaces and dashes; send APIs
// want the bare digits of the number as stored.
package phonenum

import "strings"

// Digits keeps only the digits of a phone number ("+91 98765-43210" → "919876543210").
func Digits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}
