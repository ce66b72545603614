package queue

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatwire/chatwire/pkg/event"
)

// PublishEvent publishes an agent event to EVENTS with Nats-Msg-Id = ev.ID, so republishing the
// same event (after a redelivered batch or a crash) inside the duplicate window is dropped by
// JetStream. ev.ID must be deterministic for the fact it reports.
func PublishEvent(ctx context.Context, js jetstream.JetStream, ev *event.AgentEvent) (*jetstream.PubAck, error) {
	if ev.ID == "" {
		return nil, fmt.Errorf("publishing %s event: empty id", ev.Event)
	}
	data, err := event.Encode(ev)
	if err != nil {
		return nil, fmt.Errorf("encoding %s event: %w", ev.Event, err)
	}
	ack, err := js.Publish(ctx, EventSubject(ev.ConversationID), data, jetstream.WithMsgID(ev.ID))
	if err != nil {
		return nil, fmt.Errorf("publishing %s event %s: %w", ev.Event, ev.ID, err)
	}
	return ack, nil
}
