// Package interakt speaks to Interakt, one of chatwire's two WhatsApp providers: it turns Interakt
// webhook bodies into chatwire's wire events (parse*.go) and sends agents' replies through
// Interakt's public message API (send*.go).
package interakt
