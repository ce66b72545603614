package agentapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatwire/chatwire/pkg/app"
	"github.com/chatwire/chatwire/pkg/notify"
	"github.com/chatwire/chatwire/pkg/queue"
	"github.com/chatwire/chatwire/pkg/testenv"
)

// BenchmarkAgentAPI measures, over HTTP against real Postgres and JetStream: first pages of the
// conversation list for a team agent among 50,000 conversations (10 teams), history pages of a
// 2,000-message conversation, and replies (publish + PubAck) at concurrency 32.
func BenchmarkAgentAPI(b *testing.B) {
	ns := testenv.StartNATS(b)
	_, js := ns.JetStream(b)
	d := testenv.DB(b)
	if _, err := d.Exec(`INSERT INTO conversations (phone_number, assigned_team, last_message_at, status)
		SELECT '91' || (9000000000 + g)::text, (ARRAY['finance','support','dispatch','sales','technical','returns_refunds','general','x1','x2','x3'])[1 + g % 10],
		       now() - g * interval '1 second', CASE WHEN g % 3 = 0 THEN 'resolved' ELSE 'open' END
		  FROM generate_series(1, 50000) g`); err != nil {
		b.Fatal(err)
	}
	var conv string
	if err := d.Get(&conv, `SELECT id FROM conversations WHERE assigned_team = 'support' LIMIT 1`); err != nil {
		b.Fatal(err)
	}
	if _, err := d.Exec(`INSERT INTO chat_messages (conversation_id, direction, message_type, content, sender_type, created_at)
		SELECT $1, 'inbound', 'text', 'message ' || g, 'customer', now() - g * interval '1 second' FROM generate_series(1, 2000) g`, conv); err != nil {
		b.Fatal(err)
	}
	if _, err := d.Exec(`ANALYZE`); err != nil {
		b.Fatal(err)
	}
	v, _ := notify.NewHS256Verifier([]byte(secret))
	api, err := New(d, js, Config{Verifier: v}, testenv.Discard())
	if err != nil {
		b.Fatal(err)
	}
	e := app.NewEcho(testenv.Discard())
	api.Mount(e)
	srv := httptest.NewServer(e)
	defer srv.Close()
	tok, _ := notify.MintHS256([]byte(secret), "bench", "Bench", []string{"support"}, "agent", time.Hour)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

	run := func(name string, n, conc int, req func(i int) (*http.Request, int)) {
		lat := make([]time.Duration, n)
		var next atomic.Int64
		var failed atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < conc; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= n {
						return
					}
					r, want := req(i)
					r.Header.Set("Authorization", "Bearer "+tok)
					t0 := time.Now()
					res, err := client.Do(r)
					lat[i] = time.Since(t0)
					if err != nil || res.StatusCode != want {
						failed.Add(1)
					}
					if res != nil {
						readAll(res)
					}
				}
			}()
		}
		wg.Wait()
		el := time.Since(start)
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		rate := float64(n) / el.Seconds()
		p50, p99 := lat[n/2], lat[n*99/100]
		fmt.Printf("%s: %d requests, concurrency %d: %.0f req/s, p50 %v, p99 %v, failed %d\n",
			name, n, conc, rate, p50.Round(time.Microsecond), p99.Round(time.Microsecond), failed.Load())
		b.ReportMetric(rate, name+"_req/s")
		b.ReportMetric(float64(p99.Microseconds())/1000, name+"_p99_ms")
		if failed.Load() > 0 {
			b.Errorf("%s: %d requests failed", name, failed.Load())
		}
	}
	for i := 0; i < b.N; i++ {
		run("list", 3000, 8, func(int) (*http.Request, int) {
			r, _ := http.NewRequest("GET", srv.URL+"/api/conversations?status=open&limit=50", nil)
			return r, 200
		})
		run("history", 3000, 8, func(int) (*http.Request, int) {
			r, _ := http.NewRequest("GET", srv.URL+"/api/conversations/"+conv+"/messages?limit=50", nil)
			return r, 200
		})
		run("reply", 5000, 32, func(i int) (*http.Request, int) {
			body := fmt.Sprintf(`{"command_id":"bench-%d-%d","text":"hello %d"}`, i, b.N, i)
			r, _ := http.NewRequest("POST", srv.URL+"/api/conversations/"+conv+"/replies", strings.NewReader(body))
			return r, 202
		})
	}
	s, _ := js.Stream(testenv.Context(b, 5*time.Second), queue.StreamReplies)
	if info, err := s.Info(testenv.Context(b, 5*time.Second)); err == nil {
		fmt.Printf("REPLIES holds %d commands\n", info.State.Msgs)
	}
}
