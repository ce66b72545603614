package reply

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/chatwire/chatwire/pkg/event"
)

// rowContent maps a command to the row's message_type, content and media_url. A media reply's
// content is its caption (or the text when there is no caption).
func rowContent(cmd *event.ReplyCommand) (msgType, content, mediaURL string) {
	if cmd.Media == nil || cmd.Media.URL == "" {
		return event.TypeText, cmd.Text, ""
	}
	content = cmd.Media.Caption
	if content == "" {
		content = cmd.Text
	}
	mt := strings.ToLower(cmd.Media.MimeType)
	switch {
	case strings.HasPrefix(mt, "image/"):
		msgType = event.TypeImage
	case strings.HasPrefix(mt, "video/"):
		msgType = event.TypeVideo
	case strings.HasPrefix(mt, "audio/"):
		msgType = event.TypeAudio
	default:
		msgType = event.TypeDocument
	}
	return msgType, content, cmd.Media.URL
}

func validUUID(s string) bool {
	_, err := uuid.Parse(s)
	return err == nil
}

func jsonData(v any) (json.RawMessage, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding event data: %w", err)
	}
	return b, nil
}
