package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatwire/chatwire/pkg/queue"
)

// maxDeliveriesAdvisory is the subject prefix of the server's advisory for a message that reached
// its consumer's MaxDeliver (nats-server JSAdvisoryConsumerMaxDeliveryExceedPre).
const maxDeliveriesAdvisory = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"

// deadLetter publishes a message to a DLQ subject with its original headers and body, plus the
// reason and the delivery count. The original Nats-Msg-Id travels along, so dead-lettering the
// same message twice (the DLQ publish succeeded, the Term did not) keeps one copy.
func deadLetter(ctx context.Context, js jetstream.JetStream, dlqSubject, subject string, hdr nats.Header,
	data []byte, meta *jetstream.MsgMetadata, reason string) error {
	h := nats.Header{}
	for k, v := range hdr {
		h[k] = append([]string(nil), v...)
	}
	h.Set(queue.HeaderError, reason)
	h.Set(queue.HeaderSubject, subject)
	if meta != nil {
		h.Set(queue.HeaderDelivered, strconv.FormatUint(meta.NumDelivered, 10))
		if meta.Stream != "" {
			h.Set(queue.HeaderStream, meta.Stream)
		}
		if meta.Sequence.Stream > 0 {
			h.Set(queue.HeaderStreamSeq, strconv.FormatUint(meta.Sequence.Stream, 10))
		}
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(pctx, &nats.Msg{Subject: dlqSubject, Header: h, Data: data}); err != nil {
		return fmt.Errorf("publishing to %s: %w", dlqSubject, err)
	}
	return nil
}

// maxDeliverAdvisory is the part of the server's advisory chatwire reads.
type maxDeliverAdvisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// WatchMaxDeliveries dead-letters the messages a consumer gave up on: when a message reaches
// MaxDeliver, JetStream stops delivering it and publishes an advisory; this reads the message
// from the stream by its sequence and publishes it to dlqSubject. Replicas share the advisories
// through a queue group, so each lands in the DLQ once. Advisories are core NATS messages: one
// sent while no ingestor runs is not seen (the message stays in its stream for replay).
func WatchMaxDeliveries(js jetstream.JetStream, stream, consumer, dlqSubject string, log *slog.Logger) (stop func(), err error) {
	nc := js.Conn()
	subject := maxDeliveriesAdvisory + "." + stream + "." + consumer
	sub, err := nc.QueueSubscribe(subject, "chatwire-dlq-"+consumer, func(m *nats.Msg) {
		var adv maxDeliverAdvisory
		if err := json.Unmarshal(m.Data, &adv); err != nil || adv.StreamSeq == 0 {
			log.Warn("unreadable max-deliveries advisory", "subject", m.Subject)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, stream)
		if err != nil {
			log.Error("max deliveries: stream lookup failed", "stream", stream, "err", err)
			return
		}
		raw, err := s.GetMsg(ctx, adv.StreamSeq)
		if err != nil {
			log.Error("max deliveries: message not readable, not dead-lettered", "stream", stream, "seq", adv.StreamSeq, "err", err)
			return
		}
		meta := &jetstream.MsgMetadata{NumDelivered: adv.Deliveries, Stream: stream,
			Sequence: jetstream.SequencePair{Stream: adv.StreamSeq}}
		reason := fmt.Sprintf("max deliveries (%d) exhausted on consumer %s", adv.Deliveries, consumer)
		if err := deadLetter(ctx, js, dlqSubject, raw.Subject, raw.Header, raw.Data, meta, reason); err != nil {
			log.Error("max deliveries: dead-lettering failed", "stream", stream, "seq", adv.StreamSeq, "err", err)
			return
		}
		mDeadLetters.WithLabelValues(dlqSubject, "max_deliver").Inc()
		log.Warn("message dead-lettered", "subject", raw.Subject, "stream_seq", adv.StreamSeq,
			"delivered", adv.Deliveries, "reason", reason)
	})
	if err != nil {
		return nil, fmt.Errorf("subscribing to %s: %w", subject, err)
	}
	if err := nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("subscribing to %s: %w", subject, err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}
