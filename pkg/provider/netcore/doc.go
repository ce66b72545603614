// Package netcore speaks to Netcore Cloud, one of chatwire's two WhatsApp providers: it turns
// Netcore's batched webhook bodies into chatwire's wire events (parse*.go) and sends agents' replies
// through Netcore's own message API (send*.go).
package netcore
