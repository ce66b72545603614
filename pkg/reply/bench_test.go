package reply

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/provider/interakt"
	"github.com/chatwire/chatwire/pkg/queue"
	"github.com/chatwire/chatwire/pkg/testenv"
)

// benchRun sends n replies through a fake Interakt answering in 20 ms, with real Postgres and
// JetStream, and returns the throughput, the sender's own overhead per reply (time in the sender
// minus time in the provider call), and the fake's request times.
// at holds when each provider call started, i.e. when the sender let the request go.
func benchRun(b *testing.B, n, concurrency, ratePerMin int) (perSec float64, overhead []time.Duration, at []time.Time) {
	e := newEnv(b, 0)
	e.log = testenv.Discard()
	e.interakt.SetLatency(20 * time.Millisecond)
	convs := make([]string, 200)
	for i := range convs {
		convs[i] = e.conversation(event.ChannelInterakt, "support")
	}
	// Enough idle connections for every concurrent send; Go's default keeps 2 per host.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		MaxIdleConns: 2 * concurrency, MaxIdleConnsPerHost: 2 * concurrency, IdleConnTimeout: time.Minute}}
	cfg := e.config()
	rec := &recordingSender{next: interakt.NewSender(e.interakt.URL, e.interakt.APIKey, client)}
	cfg.Senders = map[string]Sender{event.ChannelInterakt: rec}
	cfg.Concurrency = concurrency
	cfg.RetryDeadline = time.Hour
	if ratePerMin > 0 {
		cfg.RatePerMin = map[string]int{event.ChannelInterakt: ratePerMin}
	}
	var slowAt []time.Time
	var (
		mu   sync.Mutex
		sent int
		done = make(chan struct{})
	)
	cfg.Observe = func(o Outcome) {
		mu.Lock()
		defer mu.Unlock()
		if o.Result != ResultSent {
			return
		}
		overhead = append(overhead, o.Total-o.Provider)
		if o.Total-o.Provider > 500*time.Millisecond {
			slowAt = append(slowAt, time.Now())
		}
		sent++
		if sent == n {
			close(done)
		}
	}

	// The backlog is published first, so the measurement is the sender alone.
	for i := 0; i < n; i++ {
		cmd := event.ReplyCommand{CommandID: fmt.Sprintf("bench-%d", i), ConversationID: convs[i%len(convs)],
			Text: "Your order ships today.", AgentID: "agent-1", SenderName: "Ravi"}
		data, _ := event.Encode(&cmd)
		if _, err := e.js.PublishAsync(queue.SubjectReplies, data, jetstream.WithMsgID(cmd.CommandID)); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-e.js.PublishAsyncComplete():
	case <-time.After(60 * time.Second):
		b.Fatal("publishing the backlog timed out")
	}

	start := time.Now()
	stop := e.start(cfg, nil)
	select {
	case <-done:
	case <-time.After(10 * time.Minute):
		b.Fatalf("only %d of %d replies sent", sent, n)
	}
	elapsed := time.Since(start)
	if len(slowAt) > 0 {
		b.Logf("%d replies spent over 500 ms in the sender, between %v and %v into the run", len(slowAt), slowAt[0].Sub(start), slowAt[len(slowAt)-1].Sub(start))
	}
	stop()
	st := e.db.Stats()
	b.Logf("db pool: max open %d, waits %d, waited %v", st.MaxOpenConnections, st.WaitCount, st.WaitDuration)
	at = rec.starts
	if e.interakt.Calls() != n {
		b.Fatalf("provider called %d times for %d replies", e.interakt.Calls(), n)
	}
	return float64(n) / elapsed.Seconds(), overhead, at
}

// recordingSender notes when each send starts: the moment the rate limiter let it go.
type recordingSender struct {
	next   Sender
	mu     sync.Mutex
	starts []time.Time
}

func (r *recordingSender) Send(ctx context.Context, ref, phone, text string, media *event.Media) (string, error) {
	r.mu.Lock()
	r.starts = append(r.starts, time.Now())
	r.mu.Unlock()
	return r.next.Send(ctx, ref, phone, text, media)
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// BenchmarkSenderThroughput: `make bench` prints replies/s (target ≥ 2,000) and the sender's
// overhead p50/p99 against a provider answering in 20 ms.
func BenchmarkSenderThroughput(b *testing.B) {
	const n, concurrency = 20000, 256
	for range b.N {
		perSec, overhead, _ := benchRun(b, n, concurrency, 0)
		p50, p99 := percentile(overhead, .5), percentile(overhead, .99)
		b.Logf("sender: %d replies, concurrency %d, provider latency 20ms: %.0f replies/s; sender overhead p50 %v p99 %v",
			n, concurrency, perSec, p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond))
		b.ReportMetric(perSec, "replies/s")
		b.ReportMetric(float64(p99.Microseconds())/1000, "overhead-p99-ms")
	}
}

// BenchmarkSenderRateLimited: with INTERAKT_RATE_PER_MIN set, no minute sees more provider calls
// than the limit (plus the limiter's burst, 1/100 s worth). The run lasts a little over a minute
// so a full one-minute window is checked. Calls are timed as they start; the busiest one-second
// window is printed too. On a busy machine it runs a few percent over the per-second rate
// because the scheduler releases goroutines late, in clumps — the per-minute count is what a
// provider's plan limits.
func BenchmarkSenderRateLimited(b *testing.B) {
	const perMin, n, concurrency = 12000, 13000, 256 // 200/s for 65 s
	for range b.N {
		perSec, _, at := benchRun(b, n, concurrency, perMin)
		sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
		busiest := func(win time.Duration) int {
			most, j := 0, 0
			for i := range at {
				for at[i].Sub(at[j]) >= win {
					j++
				}
				most = max(most, i-j+1)
			}
			return most
		}
		minute, second := busiest(time.Minute), busiest(time.Second)
		burst := max(1, perMin/6000)
		overall := float64(len(at)-1) / at[len(at)-1].Sub(at[0]).Seconds()
		b.Logf("sender rate-limited at %d/min: %d replies, %.1f requests/s overall; busiest 60 s window %d requests (limit %d + burst %d); busiest 1 s window %d (rate %d/s)",
			perMin, n, overall, minute, perMin, burst, second, perMin/60)
		b.ReportMetric(perSec, "replies/s")
		b.ReportMetric(float64(minute), "max-per-minute")
		// A goroutine released late at the start of a window stretches it: allow 100 ms of that.
		if minute > perMin+burst+perMin/600 {
			b.Fatalf("rate limit exceeded: %d requests in one minute, limit %d", minute, perMin)
		}
	}
}
