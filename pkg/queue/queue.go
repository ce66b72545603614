// Package queue declares chatwire's JetStream topology in one place — streams, subjects and durable
// consumers — and creates or updates it idempotently at start-up. Every process calls Ensure, so
// whichever starts first builds the topology and a changed setting is applied on the next start.
package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Stream names.
const (
	StreamInbound  = "INBOUND"
	StreamEvents   = "EVENTS"
	StreamReplies  = "REPLIES"
	StreamClassify = "CLASSIFY"
	StreamDLQ      = "DLQ"
)

// Durable consumer names.
const (
	ConsumerIngestor   = "ingestor"
	ConsumerClassifier = "classifier"
	ConsumerSender     = "sender"
)

// Subjects.
const (
	SubjectReplies     = "replies.send"
	SubjectClassify    = "classify.request"
	SubjectDLQInbound  = "dlq.inbound"
	SubjectDLQReplies  = "dlq.replies"
	SubjectDLQClassify = "dlq.classify"
)

// Headers chatwire adds to dead letters, next to the original message's headers.
const (
	HeaderError     = "Chatwire-Error"
	HeaderDelivered = "Chatwire-Delivered"
	HeaderSubject   = "Chatwire-Subject"
	HeaderStream    = "Chatwire-Stream"
	HeaderStreamSeq = "Chatwire-Stream-Seq"
)

// InboundMessageSubject is where the gateway publishes a normalized customer message.
func InboundMessageSubject(channel string) string { return "inbound.message." + channel }

// InboundStatusSubject is where the gateway publishes a normalized delivery receipt.
func InboundStatusSubject(channel string) string { return "inbound.status." + channel }

// InboundInvalidSubject holds raw bodies the gateway could not parse, kept for replay.
func InboundInvalidSubject(channel string) string { return "inbound.invalid." + channel }

// EventSubject is the EVENTS subject of one conversation.
func EventSubject(conversationID string) string { return "events.conversation." + conversationID }

// MsgID is the Nats-Msg-Id of an inbound event: JetStream drops a second publish of the same
// provider message within the duplicate window.
func MsgID(channel, externalID string) string { return channel + ":" + externalID }

// Retention and dedup windows.
const (
	InboundMaxAge   = 7 * 24 * time.Hour
	EventsMaxAge    = 24 * time.Hour
	DLQMaxAge       = 30 * 24 * time.Hour
	DuplicateWindow = time.Hour
)

// Topology is the set of streams and consumers with deployment-specific settings.
type Topology struct {
	// Replicas of every stream and consumer: 1 locally, 3 in a cluster.
	Replicas int
	// AckWait of the durable consumers; longer than the slowest batch.
	AckWait time.Duration
	// MaxDeliver of the durable consumers; after that a message is dead-lettered.
	MaxDeliver int
}

// DefaultTopology is the single-node local setting.
func DefaultTopology() Topology {
	return Topology{Replicas: 1, AckWait: 30 * time.Second, MaxDeliver: 20}
}

// Streams returns the stream configurations.
func (t Topology) Streams() []jetstream.StreamConfig {
	r := t.replicas()
	return []jetstream.StreamConfig{
		{
			Name:        StreamInbound,
			Description: "normalized provider webhooks; raw invalid bodies kept for replay",
			Subjects:    []string{"inbound.message.*", "inbound.status.*", "inbound.invalid.*"},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      InboundMaxAge,
			Duplicates:  DuplicateWindow,
			Storage:     jetstream.FileStorage,
			Replicas:    r,
		},
		{
			Name:        StreamEvents,
			Description: "agent events; the stream sequence is the agents' resume cursor",
			Subjects:    []string{"events.conversation.*"},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      EventsMaxAge,
			Duplicates:  DuplicateWindow,
			Storage:     jetstream.FileStorage,
			Replicas:    r,
		},
		{
			Name:        StreamReplies,
			Description: "reply commands for the sender; Nats-Msg-Id = command_id",
			Subjects:    []string{SubjectReplies},
			Retention:   jetstream.WorkQueuePolicy,
			Duplicates:  DuplicateWindow,
			Storage:     jetstream.FileStorage,
			Replicas:    r,
		},
		{
			Name:        StreamClassify,
			Description: "classification jobs, one per new or reopened conversation",
			Subjects:    []string{SubjectClassify},
			Retention:   jetstream.WorkQueuePolicy,
			Duplicates:  DuplicateWindow,
			Storage:     jetstream.FileStorage,
			Replicas:    r,
		},
		{
			Name:        StreamDLQ,
			Description: "dead letters with the original headers and body plus Chatwire-Error",
			Subjects:    []string{"dlq.>"},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      DLQMaxAge,
			Storage:     jetstream.FileStorage,
			Replicas:    r,
		},
	}
}

// Consumers returns the durable consumers, keyed by stream name.
func (t Topology) Consumers() map[string][]jetstream.ConsumerConfig {
	base := func(name, desc string, filters ...string) jetstream.ConsumerConfig {
		return jetstream.ConsumerConfig{
			Durable:        name,
			Description:    desc,
			FilterSubjects: filters,
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        t.ackWait(),
			MaxDeliver:     t.maxDeliver(),
			MaxAckPending:  10000,
			DeliverPolicy:  jetstream.DeliverAllPolicy,
			Replicas:       t.replicas(),
		}
	}
	return map[string][]jetstream.ConsumerConfig{
		StreamInbound: {base(ConsumerIngestor, "stores inbound messages and statuses in Postgres",
			"inbound.message.*", "inbound.status.*")},
		StreamClassify: {base(ConsumerClassifier, "classifies new conversations", SubjectClassify)},
		StreamReplies:  {base(ConsumerSender, "sends agents' replies through providers", SubjectReplies)},
	}
}

func (t Topology) replicas() int {
	if t.Replicas < 1 {
		return 1
	}
	return t.Replicas
}

func (t Topology) ackWait() time.Duration {
	if t.AckWait <= 0 {
		return 30 * time.Second
	}
	return t.AckWait
}

func (t Topology) maxDeliver() int {
	if t.MaxDeliver <= 0 {
		return 20
	}
	return t.MaxDeliver
}

// Ensure creates or updates every stream and durable consumer. It is safe to call concurrently
// from several processes.
func (t Topology) Ensure(ctx context.Context, js jetstream.JetStream) error {
	for _, sc := range t.Streams() {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("declaring stream %s: %w", sc.Name, err)
		}
	}
	for stream, ccs := range t.Consumers() {
		for _, cc := range ccs {
			if _, err := js.CreateOrUpdateConsumer(ctx, stream, cc); err != nil {
				return fmt.Errorf("declaring consumer %s on %s: %w", cc.Durable, stream, err)
			}
		}
	}
	return nil
}

// Connect dials NATS and returns the connection and its JetStream context. It fails fast with an
// error naming NATS_URL when the server cannot be reached, then reconnects forever once connected.
func Connect(ctx context.Context, url, name string, log *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.Timeout(5*time.Second),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", c.ConnectedUrlRedacted()) }),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("NATS_URL: cannot connect to %s: %w", redact(url), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(actx); err != nil {
		nc.Close()
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return nil, nil, fmt.Errorf("NATS_URL: server %s has JetStream disabled (start it with -js)", redact(url))
		}
		return nil, nil, fmt.Errorf("NATS_URL: JetStream at %s not answering: %w", redact(url), err)
	}
	return nc, js, nil
}

// Ready reports whether JetStream answers, for /readyz.
func Ready(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
	if !nc.IsConnected() {
		return errors.New("nats not connected")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	return nil
}

// redact removes credentials from a NATS URL before it is printed.
func redact(url string) string {
	for i := 0; i+2 < len(url); i++ {
		if url[i:i+3] == "://" {
			rest := url[i+3:]
			for j := 0; j < len(rest); j++ {
				if rest[j] == '@' {
					return url[:i+3] + "***@" + rest[j+1:]
				}
				if rest[j] == '/' {
					break
				}
			}
			break
		}
	}
	return url
}
