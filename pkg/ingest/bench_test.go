package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/ingest"
	"github.com/chatwire/chatwire/pkg/queue"
	"github.com/chatwire/chatwire/pkg/testenv"
)

// BenchmarkIngest measures, in one run: the ingest rate (INBOUND → Postgres rows, conversations,
// events, acks) of N synthetic messages from many phones with some duplicates; the rate of raw
// batched INSERTs into the same tables; and both again once chat_messages holds several million
// rows. Sizes: CHATWIRE_BENCH_MESSAGES (default 20000), CHATWIRE_BENCH_FILL_ROWS (default 3000000).
func BenchmarkIngest(b *testing.B) {
	n := envInt("CHATWIRE_BENCH_MESSAGES", 20000)
	fill := envInt("CHATWIRE_BENCH_FILL_ROWS", 3_000_000)
	const phones, dupEvery = 2000, 20
	batch, workers := envInt("CHATWIRE_BENCH_BATCH", 200), envInt("CHATWIRE_BENCH_WORKERS", 2) // 5 % duplicates

	dbURL := testenv.DatabaseURL(b)
	db := testenv.Open(b, dbURL)
	srv := testenv.StartNATS(b)
	_, js := srv.JetStream(b)
	log := testenv.Discard()

	for i := 0; i < b.N; i++ {
		type rates struct{ ingest, rawMessages, rawBoth float64 }
		phase := func(label string, round int) rates {
			published, unique := publishSynthetic(b, js, n, phones, dupEvery, round)
			idb := testenv.Open(b, dbURL)
			idb.SetMaxOpenConns(workers + 2)
			in := ingest.New(idb, js, ingest.Config{BatchSize: batch, BatchMaxWait: 50 * time.Millisecond, Workers: workers}, log)
			before := countRows(b, db)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			start := time.Now()
			self0, pg0 := cpuSeconds()
			go func() { _ = in.Run(ctx); close(done) }()
			waitDrained(b, js)
			took := time.Since(start)
			self1, pg1 := cpuSeconds()
			cancel()
			<-done
			if got := countRows(b, db) - before; got != unique {
				b.Fatalf("%s: stored %d rows, want %d", label, got, unique)
			}
			r := rates{ingest: float64(published) / took.Seconds()}
			r.rawMessages = float64(n) / rawInsert(b, db, n, batch, workers, round, phones, false).Seconds()
			r.rawBoth = float64(n) / rawInsert(b, db, n, batch, workers, round, phones, true).Seconds()
			b.Logf("%-12s ingest %6.0f msgs/s (%d msgs, %d new rows, %v) | raw INSERT messages %6.0f rows/s (ratio %.2f) | raw INSERT messages + conversation upsert %6.0f rows/s (ratio %.2f)",
				label, r.ingest, published, unique, took.Round(time.Millisecond), r.rawMessages, r.ingest/r.rawMessages, r.rawBoth, r.ingest/r.rawBoth)
			if self1 > 0 {
				// Both share the machine's cores: where the ingest phase's CPU went.
				b.Logf("%-12s CPU while ingesting: test process (ingestor + embedded NATS) %.2fs, postgres %.2fs, over %.2fs wall",
					label, self1-self0, pg1-pg0, took.Seconds())
			}
			return r
		}

		small := phase("empty table", 1)
		start := time.Now()
		fillMessages(b, db, fill)
		total := countRows(b, db)
		b.Logf("filled chat_messages to %d rows in %v", total, time.Since(start).Round(time.Second))
		big := phase(fmt.Sprintf("%.1fM rows", float64(total)/1e6), 2)

		b.Logf("ingest / raw INSERT messages:                     %.2f empty, %.2f at %.1fM rows (target >= 0.30)",
			small.ingest/small.rawMessages, big.ingest/big.rawMessages, float64(total)/1e6)
		b.Logf("ingest / raw INSERT messages + conversation upsert: %.2f empty, %.2f at %.1fM rows (target >= 0.30)",
			small.ingest/small.rawBoth, big.ingest/big.rawBoth, float64(total)/1e6)
		b.Logf("ingest at %.1fM rows / ingest on an empty table: %.2f (target >= 0.90)", float64(total)/1e6, big.ingest/small.ingest)
		b.ReportMetric(small.ingest, "ingest_msgs/s")
		b.ReportMetric(small.rawMessages, "raw_msg_rows/s")
		b.ReportMetric(small.rawBoth, "raw_msg+conv_rows/s")
		b.ReportMetric(big.ingest, "ingest_big_msgs/s")
		b.ReportMetric(big.rawMessages, "raw_msg_big_rows/s")
		b.ReportMetric(big.rawBoth, "raw_msg+conv_big_rows/s")
		b.ReportMetric(big.ingest/small.ingest, "big/empty")
	}
}

// The synthetic messages' text and provider payload; the raw baseline writes the same.
const (
	benchText    = "Hello, where is my order? It was due yesterday."
	benchPayload = `{"message_id":"x","text_type":{"text":"Hello, where is my order?"}}`
)

// cpuSeconds returns the CPU time used so far by this process and by every postgres process, from
// /proc (zeros where there is no /proc).
func cpuSeconds() (self, postgres float64) {
	read := func(path string) (comm string, secs float64) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", 0
		}
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open || end+2 > len(s) {
			return "", 0
		}
		f := strings.Fields(s[end+2:]) // from field 3 (state) on; utime, stime, cutime, cstime are 14-17
		if len(f) < 15 {
			return "", 0
		}
		for _, v := range f[11:15] {
			n, _ := strconv.ParseFloat(v, 64)
			secs += n / 100 // USER_HZ
		}
		return s[open+1 : end], secs
	}
	_, self = read("/proc/self/stat")
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if comm, secs := read("/proc/" + e.Name() + "/stat"); comm == "postgres" {
			postgres += secs
		}
	}
	return self, postgres
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// publishSynthetic puts n messages on INBOUND: phones distinct numbers, every dupEvery-th message
// a provider retry of an earlier one (another gateway id and Nats-Msg-Id, so only the database
// can tell). Returns how many were published and how many rows they should make.
func publishSynthetic(b *testing.B, js jetstream.JetStream, n, phones, dupEvery, round int) (published, unique int) {
	b.Helper()
	rng := rand.New(rand.NewPCG(uint64(round), 42))
	base := time.Date(2026, 2, 23, 0, 0, 0, 0, time.UTC).Add(time.Duration(round) * 24 * time.Hour)
	futures := make([]jetstream.PubAckFuture, 0, n)
	var msgs []*event.InboundMessage
	for i := 0; i < n; i++ {
		var m *event.InboundMessage
		if i > 0 && i%dupEvery == 0 {
			c := *msgs[rng.IntN(len(msgs))]
			c.ID = ulid.Make().String()
			m = &c
		} else {
			ch := event.ChannelInterakt
			if i%3 == 0 {
				ch = event.ChannelNetcore
			}
			m = &event.InboundMessage{
				ID: ulid.Make().String(), Channel: ch, ExternalID: fmt.Sprintf("bench-%d-%d", round, i),
				FromPhone: fmt.Sprintf("9170%08d", rng.IntN(phones)), FromName: "Customer",
				Type: event.TypeText, Text: benchText,
				ReceivedAt: base.Add(time.Duration(i) * time.Millisecond),
				Payload:    json.RawMessage(benchPayload),
			}
			msgs = append(msgs, m)
			unique++
		}
		data, err := event.Encode(m)
		if err != nil {
			b.Fatal(err)
		}
		f, err := js.PublishAsync(queue.InboundMessageSubject(m.Channel), data, jetstream.WithMsgID(m.ID))
		if err != nil {
			b.Fatal(err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatal(err)
		case <-time.After(30 * time.Second):
			b.Fatal("publish not confirmed")
		}
	}
	return n, unique
}

func waitDrained(b *testing.B, js jetstream.JetStream) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := js.Consumer(ctx, queue.StreamInbound, queue.ConsumerIngestor)
		cancel()
		if err == nil {
			info := c.CachedInfo()
			if info.NumPending == 0 && info.NumAckPending == 0 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatal("ingestor did not drain INBOUND within 10 minutes")
}

func countRows(b *testing.B, db *sqlx.DB) int {
	b.Helper()
	var n int
	if err := db.Get(&n, `SELECT count(*) FROM chat_messages`); err != nil {
		b.Fatal(err)
	}
	return n
}

// rawInsert is the baseline: n rows INSERTed in batches of the ingest batch size, one prepared
// statement per batch, from as many connections as the ingestor has workers. The rows are the ones
// the ingestor writes for the synthetic messages — every column a per-row parameter, the same
// channel mix (Interakt rows fill the legacy interakt_message_id, so its two indexes get entries),
// text, sender name, provider time and payload — so the difference is the ingestor's own work.
// withConversations=false inserts chat_messages rows only (into existing conversations); true
// also upserts their conversations (unread_count + n, last_message_at) in the same statement;
// neither deduplicates, publishes events or touches JetStream.
func rawInsert(b *testing.B, db *sqlx.DB, n, batch, workers, round, phones int, withConversations bool) time.Duration {
	b.Helper()
	var convs []string
	if err := db.Select(&convs, `SELECT id FROM conversations ORDER BY phone_number LIMIT 2000`); err != nil || len(convs) == 0 {
		b.Fatalf("conversations for the raw insert: %v", err)
	}
	const qMessages = `INSERT INTO chat_messages (id, conversation_id, channel, external_message_id, interakt_message_id,
	               direction, message_type, content, sender_type, sender_name, created_at, provider_payload)
	           SELECT u.id, u.conv, u.channel, u.ext, NULLIF(u.ik, ''), 'inbound', u.typ, u.content,
	                  'customer', u.name, u.at, u.payload::jsonb
	             FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
	                         $8::text[], $9::timestamptz[], $10::text[])
	                  AS u(id, conv, channel, ext, ik, typ, content, name, at, payload)`
	const qBoth = `WITH u AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
	                                       $7::text[], $8::text[], $9::timestamptz[], $10::text[])
	                         AS u(id, phone, channel, ext, ik, typ, content, name, at, payload)),
	     c AS (INSERT INTO conversations AS c (phone_number, customer_name, channel, unread_count, last_message_at)
	           SELECT phone, max(name), max(channel), count(*), max(at) FROM u GROUP BY phone ORDER BY phone
	           ON CONFLICT (phone_number) DO UPDATE
	              SET unread_count = c.unread_count + EXCLUDED.unread_count,
	                  last_message_at = GREATEST(c.last_message_at, EXCLUDED.last_message_at), updated_at = now()
	           RETURNING id, phone_number)
	     INSERT INTO chat_messages (id, conversation_id, channel, external_message_id, interakt_message_id,
	               direction, message_type, content, sender_type, sender_name, created_at, provider_payload)
	     SELECT u.id, c.id, u.channel, u.ext, NULLIF(u.ik, ''), 'inbound', u.typ, u.content,
	            'customer', u.name, u.at, u.payload::jsonb
	       FROM u JOIN c ON c.phone_number = u.phone`
	q := qMessages
	if withConversations {
		q = qBoth
	}
	stmt, err := db.Preparex(q)
	if err != nil {
		b.Fatal(err)
	}
	defer stmt.Close()
	base := time.Date(2026, 2, 23, 0, 0, 0, 0, time.UTC).Add(time.Duration(round) * 24 * time.Hour)
	rng := rand.New(rand.NewPCG(uint64(round), 7))
	jobs := make(chan []string)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for job := range jobs {
				first, _ := strconv.Atoi(job[0])
				cnt := min(batch, n-first)
				ids, cs, chans, exts, iks := make([]string, cnt), make([]string, cnt), make([]string, cnt), make([]string, cnt), make([]string, cnt)
				typs, contents, names, ats, payloads := make([]string, cnt), make([]string, cnt), make([]string, cnt), make([]string, cnt), make([]string, cnt)
				for i := range cnt {
					k := first + i
					ids[i] = uuid.NewString()
					cs[i] = convs[k%len(convs)]
					if withConversations {
						cs[i] = job[1+i]
					}
					exts[i] = fmt.Sprintf("raw-%d-%v-%d", round, withConversations, k)
					chans[i] = event.ChannelInterakt
					iks[i] = exts[i]
					if k%3 == 0 {
						chans[i], iks[i] = event.ChannelNetcore, ""
					}
					typs[i], contents[i], names[i], payloads[i] = event.TypeText, benchText, "Customer", benchPayload
					ats[i] = base.Add(time.Duration(k) * time.Millisecond).Format(time.RFC3339Nano)
				}
				if _, err := stmt.Exec(pq.Array(ids), pq.Array(cs), pq.Array(chans), pq.Array(exts), pq.Array(iks),
					pq.Array(typs), pq.Array(contents), pq.Array(names), pq.Array(ats), pq.Array(payloads)); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for first := 0; first < n; first += batch {
		job := []string{strconv.Itoa(first)}
		for i := first; i < min(first+batch, n); i++ {
			job = append(job, fmt.Sprintf("9170%08d", rng.IntN(phones)))
		}
		jobs <- job
	}
	close(jobs)
	wg.Wait()
	return time.Since(start)
}

// fillMessages grows chat_messages by rows spread over 50,000 conversations, fast: secondary
// indexes are dropped, rows generated by INSERT … SELECT generate_series, indexes rebuilt.
func fillMessages(b *testing.B, db *sqlx.DB, rows int) {
	b.Helper()
	ctx := context.Background()
	var defs []struct {
		Name string `db:"indexname"`
		Def  string `db:"indexdef"`
	}
	if err := db.SelectContext(ctx, &defs, `SELECT indexname, indexdef FROM pg_indexes
	     WHERE tablename = 'chat_messages' AND indexname <> 'chat_messages_pkey'
	       AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = 'chat_messages'::regclass)`); err != nil {
		b.Fatal(err)
	}
	for _, d := range defs {
		mustExec(b, db, `DROP INDEX `+pq.QuoteIdentifier(d.Name))
	}
	mustExec(b, db, `INSERT INTO conversations (phone_number, customer_name, channel, status, unread_count, last_message_at)
	                 SELECT '9180' || lpad(g::text, 8, '0'), 'Filler', 'interakt', 'resolved', 0, now() - interval '1 day'
	                   FROM generate_series(1, 50000) g`)
	mustExec(b, db, `WITH fill_convs AS (
	                     SELECT row_number() OVER () - 1 AS k, id FROM conversations WHERE phone_number LIKE '9180%')
	                 INSERT INTO chat_messages (id, conversation_id, channel, external_message_id, interakt_message_id,
	                        direction, message_type, content, sender_type, sender_name, status, created_at)
	                 SELECT gen_random_uuid(), c.id,
	                        CASE WHEN g % 3 = 0 THEN 'netcore' ELSE 'interakt' END,
	                        'fill-' || g,
	                        CASE WHEN g % 3 = 0 THEN NULL ELSE 'fill-' || g END,
	                        CASE WHEN g % 2 = 0 THEN 'inbound' ELSE 'outbound' END,
	                        'text', 'Filler message number ' || g,
	                        CASE WHEN g % 2 = 0 THEN 'customer' ELSE 'agent' END, 'Filler',
	                        CASE WHEN g % 2 = 0 THEN NULL ELSE 'read' END,
	                        now() - (g || ' seconds')::interval
	                   FROM generate_series(1, $1) g
	                   JOIN fill_convs c ON c.k = g % 50000`, rows)
	for _, d := range defs {
		mustExec(b, db, d.Def)
	}
	mustExec(b, db, `VACUUM ANALYZE chat_messages`)
	mustExec(b, db, `VACUUM ANALYZE conversations`)
}

func mustExec(b *testing.B, db *sqlx.DB, q string, args ...any) {
	b.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		b.Fatalf("%s: %v", q, err)
	}
}
