package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatwire/chatwire/pkg/app"
	"github.com/chatwire/chatwire/pkg/gateway"
	"github.com/chatwire/chatwire/pkg/queue"
	"github.com/chatwire/chatwire/pkg/testenv"
)

// benchRun is what one phase measured.
type benchRun struct {
	name    string
	ops     int64
	elapsed time.Duration
	p50     time.Duration
	p99     time.Duration
	errors  int64
	lat     []time.Duration
}

func (r benchRun) rate() float64 { return float64(r.ops) / r.elapsed.Seconds() }

// benchMerge adds run to acc; percentiles are kept from the raw latencies.
func benchMerge(acc, run benchRun) benchRun {
	acc.name = run.name
	acc.ops += run.ops
	acc.elapsed += run.elapsed
	acc.errors += run.errors
	acc.lat = append(acc.lat, run.lat...)
	sort.Slice(acc.lat, func(i, j int) bool { return acc.lat[i] < acc.lat[j] })
	if len(acc.lat) > 0 {
		acc.p50 = acc.lat[len(acc.lat)*50/100]
		acc.p99 = acc.lat[len(acc.lat)*99/100]
	}
	return acc
}

// benchDrive runs op from `clients` goroutines for d and records every latency.
func benchDrive(name string, clients int, d time.Duration, op func(worker, i int) error) benchRun {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		lat  []time.Duration
		errs atomic.Int64
		stop atomic.Bool
	)
	start := time.Now()
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			local := make([]time.Duration, 0, 4096)
			for i := 0; !stop.Load(); i++ {
				t0 := time.Now()
				if err := op(w, i); err != nil {
					errs.Add(1)
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}(w)
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	r := benchRun{name: name, ops: int64(len(lat)), elapsed: elapsed, errors: errs.Load(), lat: lat}
	if len(lat) > 0 {
		r.p50 = lat[len(lat)*50/100]
		r.p99 = lat[len(lat)*99/100]
	}
	return r
}

// benchNATS starts an embedded JetStream server with file storage. syncAlways mirrors the local
// deployment's `sync_interval: always` (every acknowledged write is fsynced).
func benchNATS(b *testing.B, syncAlways bool) (*nats.Conn, jetstream.JetStream) {
	opts := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: b.TempDir(), NoLog: true, NoSigs: true, SyncAlways: syncAlways}
	srv, err := server.NewServer(opts)
	if err != nil {
		b.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		b.Fatal("nats not ready")
	}
	b.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := queue.DefaultTopology().Ensure(ctx, js); err != nil {
		b.Fatal(err)
	}
	return nc, js
}

// benchBody is a realistic Interakt text webhook with a unique message id.
func benchBody(w, i int) []byte {
	return []byte(`{"version":"1.0","timestamp":"2026-02-23T10:15:02.123Z","type":"message_received","data":{"customer":{"id":"c8f2a1d0-7c11-4b0e-9d1e-2f6f0c3b9a01","channel_phone_number":"919876543210","phone_number":"9876543210","country_code":"+91","traits":{"name":"Asha"}},"message":{"id":"bench-` +
		strconv.Itoa(w) + "-" + strconv.Itoa(i) + `","chat_message_type":"CustomerMessage","received_at_utc":"2026-02-23T10:15:01.000000","message_content_type":"Text","message":"Where is my order? It was supposed to arrive yesterday.","media_url":null,"message_context":{"from":"","id":""}}}}`)
}

func benchClient(clients int) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		MaxIdleConns: clients * 2, MaxIdleConnsPerHost: clients * 2, MaxConnsPerHost: clients,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	}}
}

func benchPost(c *http.Client, url string, body []byte, sign string) error {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if sign != "" {
		req.Header.Set(gateway.InteraktSignatureHeader, gateway.SignInterakt(sign, body))
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// BenchmarkGatewayThroughput drives (a) the gateway over loopback HTTP with N concurrent clients
// against a real embedded JetStream (file storage), (b) a bare net/http handler that does nothing,
// and (c) raw JetStream publishes at the same concurrency, and prints webhooks/s and p99 of each
// side by side with the ratio a/min(b,c) (target ≥ 0.7).
//
// CHATWIRE_BENCH_CLIENTS (default 64), CHATWIRE_BENCH_SECONDS per phase (default 5) and
// CHATWIRE_BENCH_SYNC=always|default (default: always, as the local deployment configures
// JetStream) tune it.
func BenchmarkGatewayThroughput(b *testing.B) {
	clients := benchEnvInt("CHATWIRE_BENCH_CLIENTS", 64)
	d := time.Duration(benchEnvInt("CHATWIRE_BENCH_SECONDS", 5)) * time.Second
	syncAlways := os.Getenv("CHATWIRE_BENCH_SYNC") != "default"
	for n := 0; n < b.N; n++ {
		nc, _ := benchNATS(b, syncAlways)
		const secret = "bench-secret"
		cfg := gateway.Config{InteraktSecret: secret, PublishTimeout: 5 * time.Second}
		pubJS, err := gateway.NewJetStream(nc, cfg.PublishTimeout, 4096)
		if err != nil {
			b.Fatal(err)
		}
		gw := gateway.New(testenv.Discard(), pubJS, cfg)
		e := app.NewEcho(testenv.Discard())
		gw.Register(e)
		gwSrv := httptest.NewServer(e)
		defer gwSrv.Close()
		bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusOK)
		}))
		defer bare.Close()

		// A short warm-up so connections and the stream's first block exist before measuring.
		hc := benchClient(clients)
		benchDrive("warm-up", clients, 500*time.Millisecond, func(w, i int) error {
			return benchPost(hc, gwSrv.URL+"/webhooks/interakt", benchBody(w, -1-i), secret)
		})

		// The same bytes the gateway publishes: one encoded event per webhook, with a msg id.
		batch, err := gateway.Normalize("interakt", benchBody(0, 0), time.Now())
		if err != nil {
			b.Fatal(err)
		}
		out, err := batch.Outgoing(func() string { return "01JMZ8Q3V8T4ZP3W7H5C2N9K6R" })
		if err != nil {
			b.Fatal(err)
		}
		payload := out[0].Data()
		rawJS, err := gateway.NewJetStream(nc, 5*time.Second, 4096)
		if err != nil {
			b.Fatal(err)
		}
		bc := benchClient(clients)
		phases := []struct {
			name string
			op   func(w, i int) error
		}{
			{"gateway", func(w, i int) error {
				return benchPost(hc, gwSrv.URL+"/webhooks/interakt", benchBody(w, i), secret)
			}},
			{"bare net/http", func(w, i int) error {
				return benchPost(bc, bare.URL, benchBody(w, i), secret)
			}},
			{"raw JetStream", func(w, i int) error {
				m := nats.NewMsg(queue.InboundMessageSubject("interakt"))
				m.Data = payload
				m.Header.Set(jetstream.MsgIDHeader, "raw:"+strconv.Itoa(w)+":"+strconv.Itoa(i))
				f, err := rawJS.PublishMsgAsync(m)
				if err != nil {
					return err
				}
				select {
				case <-f.Ok():
					return nil
				case err := <-f.Err():
					return err
				}
			}},
		}
		// The phases run interleaved in short rounds, so load from anything else on the machine
		// (the CPUs are shared) falls on all three alike instead of skewing one of them.
		rounds := 5
		results := make([]benchRun, len(phases))
		for r := 0; r < rounds; r++ {
			for p, ph := range phases {
				base := (r + 1) * 10_000_000 // unique message ids across rounds
				run := benchDrive(ph.name, clients, d/time.Duration(rounds), func(w, i int) error { return ph.op(w, base+i) })
				results[p] = benchMerge(results[p], run)
			}
		}
		a, bb, c := results[0], results[1], results[2]

		mode := "sync_interval=always"
		if !syncAlways {
			mode = "sync_interval=default(2m)"
		}
		ratio := a.rate() / min(bb.rate(), c.rate())
		fmt.Printf("\nGateway throughput, %d concurrent clients, %v per phase, JetStream file storage %s\n", clients, d, mode)
		fmt.Printf("  %-16s %12s %10s %10s %8s\n", "", "webhooks/s", "p50", "p99", "errors")
		for _, r := range []benchRun{a, bb, c} {
			fmt.Printf("  %-16s %12.0f %10v %10v %8d\n", r.name, r.rate(), r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond), r.errors)
		}
		verdict := "meets"
		if ratio < 0.7 {
			verdict = "BELOW"
		}
		fmt.Printf("  ratio gateway / min(bare http, raw JetStream) = %.2f (%s the 0.7 target)\n\n", ratio, verdict)
		b.ReportMetric(a.rate(), "gateway_webhooks/s")
		b.ReportMetric(bb.rate(), "bare_http_req/s")
		b.ReportMetric(c.rate(), "raw_js_pub/s")
		b.ReportMetric(float64(a.p99.Microseconds()), "gateway_p99_µs")
		b.ReportMetric(ratio, "ratio")
		if a.errors > 0 {
			b.Errorf("gateway answered %d requests with an error", a.errors)
		}
	}
}

func benchEnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
