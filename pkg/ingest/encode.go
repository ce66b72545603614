package ingest

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/chatwire/chatwire/pkg/event"
)

// encodeAgentEvent is event.Encode for an AgentEvent whose Data was made by json.Marshal (compact,
// HTML-escaped), as agentEvent makes it. It
// writes the envelope around Data instead of marshalling the struct, which would scan and copy
// Data a second time (json.RawMessage is re-compacted); a batch publishes two events per message,
// so this is most of the ingestor's encoding work. TestEncodeAgentEventMatchesEncode keeps the
// output byte-identical to event.Encode.
func encodeAgentEvent(ev *event.AgentEvent) ([]byte, error) {
	if bytes.ContainsAny(ev.Data, "<>&") {
		// Not from json.Marshal (which escapes these): let encoding/json normalise it.
		return event.Encode(ev)
	}
	b := make([]byte, 0, len(ev.Data)+len(ev.ID)+len(ev.Event)+len(ev.ConversationID)+len(ev.Team)+72)
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, event.Version, 10)
	if ev.ID != "" {
		b = append(b, `,"id":`...)
		b = appendJSONString(b, ev.ID)
	}
	b = append(b, `,"event":`...)
	b = appendJSONString(b, ev.Event)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, ev.Seq, 10)
	b = append(b, `,"conversation_id":`...)
	b = appendJSONString(b, ev.ConversationID)
	b = append(b, `,"team":`...)
	b = appendJSONString(b, ev.Team)
	b = append(b, `,"data":`...)
	if len(ev.Data) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, ev.Data...)
	}
	return append(b, '}'), nil
}

// appendJSONString appends s as encoding/json writes it: ids and team names are plain ASCII and
// are quoted as they are; anything else goes through json.Marshal (escaping, HTML-safe).
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
