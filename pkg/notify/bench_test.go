package notify

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/queue"
	"github.com/chatwire/chatwire/pkg/testenv"
)

// The benchmark runs the notifier in a child process (this test binary, re-executed with
// benchChildEnv set) so the resident memory it reports is the server's alone, not the 10,000
// clients' that live in the benchmark process.
const benchChildEnv = "CHATWIRE_NOTIFY_BENCH_CHILD"

// Sockets and measured events (one more warms up).
const benchConns, benchEvents = 10000, 20

func TestMain(m *testing.M) {
	if os.Getenv(benchChildEnv) != "" {
		os.Exit(benchChild())
	}
	os.Exit(m.Run())
}

func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}

// benchChild serves /ws with a real Server until its stdin closes, and /stats with its memory.
func benchChild() int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "bench child:", err); return 1 }
	if _, err := raiseFileLimit(); err != nil {
		return fail(err)
	}
	nc, err := nats.Connect(os.Getenv("NATS_URL"))
	if err != nil {
		return fail(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fail(err)
	}
	v, _ := NewHS256Verifier(testSecret)
	srv, err := NewServer(context.Background(), js, Config{Verifier: v, ResumeGrace: 100 * time.Millisecond}, testenv.Discard())
	if err != nil {
		return fail(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", srv)
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gc") != "" {
			runtime.GC()
			debug.FreeOSMemory()
			if p := os.Getenv("CHATWIRE_NOTIFY_BENCH_HEAPPROFILE"); p != "" && srv.Connections() > 0 {
				if f, err := os.Create(p); err == nil {
					_ = pprof.WriteHeapProfile(f)
					f.Close()
				}
			}
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		_ = json.NewEncoder(w).Encode(map[string]uint64{
			"connections": uint64(srv.Connections()), "heap_inuse": ms.HeapInuse, "stack_inuse": ms.StackInuse,
			"goroutines": uint64(runtime.NumGoroutine()),
		})
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	if p := os.Getenv("CHATWIRE_NOTIFY_BENCH_CPUPROFILE"); p != "" { // for investigating, not for make bench
		f, err := os.Create(p)
		if err != nil {
			return fail(err)
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	fmt.Printf("ADDR %s\n", l.Addr())
	go func() { _ = http.Serve(l, mux) }()
	_, _ = io.Copy(io.Discard, os.Stdin) // the parent holds stdin open while it needs us
	return 0
}

type childStats struct {
	Connections uint64 `json:"connections"`
	HeapInuse   uint64 `json:"heap_inuse"`
	StackInuse  uint64 `json:"stack_inuse"`
	Goroutines  uint64 `json:"goroutines"`
}

func vmRSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// BenchmarkFanout10k opens 10,000 authenticated sockets to one notifier, publishes events every
// socket may see, and prints the server's resident memory per connection and the latency from
// publish to receipt at every socket.
func BenchmarkFanout10k(b *testing.B) {
	const conns, events = benchConns, benchEvents
	limit, err := raiseFileLimit()
	if err != nil || limit < conns+500 {
		b.Skipf("need a file limit above %d, have %d (%v)", conns+500, limit, err)
	}
	ns := testenv.StartNATS(b)
	_, js := ns.JetStream(b)

	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), benchChildEnv+"=1", "NATS_URL="+ns.URL)
	child.Stderr = os.Stderr
	stdin, _ := child.StdinPipe()
	stdout, _ := child.StdoutPipe()
	if err := child.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); _ = child.Wait() }()
	cpu := func() time.Duration { // user+system CPU time of the child
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child.Process.Pid))
		if err != nil {
			return 0
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ is 100 on Linux
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ADDR ") {
		b.Fatalf("child did not start: %q %v", line, err)
	}
	addr := strings.TrimSpace(strings.TrimPrefix(line, "ADDR "))
	stats := func(gc bool) childStats {
		u := "http://" + addr + "/stats"
		if gc {
			u += "?gc=1"
		}
		resp, err := http.Get(u)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		var s childStats
		_ = json.NewDecoder(resp.Body).Decode(&s)
		return s
	}
	rss := func() uint64 {
		r, err := vmRSS(child.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	time.Sleep(200 * time.Millisecond)
	stats(true)
	rss0 := rss()

	// Clients: one goroutine each, recording when each event frame arrives.
	recv := make([][events + 1]int64, conns)
	var counts [events + 1]atomic.Int32
	var allIn [events + 1]chan struct{}
	for i := range allIn {
		allIn[i] = make(chan struct{})
	}
	sockets := make([]*rawClient, conns)
	start := time.Now()
	var wg sync.WaitGroup
	var dialErr atomic.Value
	sem := make(chan struct{}, 32)
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			tok, _ := MintHS256(testSecret, fmt.Sprintf("agent-%d", i), "", []string{"support"}, RoleAgent, time.Hour)
			rc, err := dialRawClient(addr, tok)
			if err != nil {
				dialErr.Store(err)
				return
			}
			sockets[i] = rc
		}()
	}
	wg.Wait()
	if err, _ := dialErr.Load().(error); err != nil {
		b.Fatalf("dialing: %v", err)
	}
	connectTime := time.Since(start)
	for i, rc := range sockets {
		go func() {
			k := -1 // the first text frame is hello
			_ = rc.readFrames(func() bool {
				if k >= 0 {
					recv[i][k] = time.Now().UnixNano()
					if counts[k].Add(1) == conns {
						close(allIn[k])
					}
				}
				k++
				return k <= events
			})
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for stats(false).Connections < conns && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // past the resume grace: every socket is live
	rssConnected := rss()
	idle := stats(true)
	rssConnectedGC := rss()

	data, _ := json.Marshal(event.MessageData{ID: "01J0000000000000000000000", ConversationID: "c1", Direction: "inbound",
		MessageType: "text", Content: "Hello, I need help with my order #1234", Channel: "interakt", SenderType: "customer",
		SenderName: "Customer", CreatedAt: time.Now()})
	cpu0 := cpu()
	published := make([]int64, events+1)
	var fanout []time.Duration
	for k := range events + 1 {
		published[k] = time.Now().UnixNano()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := queue.PublishEvent(ctx, js, &event.AgentEvent{ID: fmt.Sprintf("bench-%d", k), Event: event.EventNewMessage,
			ConversationID: "c1", Team: "support", Data: data})
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		select {
		case <-allIn[k]:
		case <-time.After(30 * time.Second):
			b.Fatalf("event %d reached %d of %d sockets in 30s", k, counts[k].Load(), conns)
		}
		if k > 0 { // event 0 warms up
			fanout = append(fanout, time.Duration(slices.Max(column(recv, k))-published[k]))
		}
		time.Sleep(50 * time.Millisecond)
	}
	cpuPerEvent := (cpu() - cpu0) / (events + 1)
	var lat []time.Duration
	for k := 1; k <= events; k++ {
		for i := range conns {
			lat = append(lat, time.Duration(recv[i][k]-published[k]))
		}
	}
	slices.Sort(lat)
	slices.Sort(fanout)
	rssAfter := rss()

	perConn := func(r uint64) float64 { return float64(int64(r)-int64(rss0)) / conns / 1024 }
	b.ReportMetric(perConn(rssConnectedGC), "KiB/conn")
	b.ReportMetric(ms(pct(lat, 50)), "p50-ms")
	b.ReportMetric(ms(pct(lat, 99)), "p99-ms")
	b.ReportMetric(0, "ns/op")
	fmt.Printf("notify fan-out: %d connections opened in %v (server in child process %d)\n", conns, connectTime.Round(time.Millisecond), child.Process.Pid)
	fmt.Printf("  server RSS: %.1f MiB before clients; %.1f MiB with %d idle sockets (%.1f KiB/conn); %.1f MiB (%.1f KiB/conn) after GC; %.1f MiB after %d events\n",
		mib(rss0), mib(rssConnected), conns, perConn(rssConnected), mib(rssConnectedGC), perConn(rssConnectedGC), mib(rssAfter), events+1)
	fmt.Printf("  server Go heap in use %.1f MiB, stacks %.1f MiB, %d goroutines with %d sockets\n",
		mib(idle.HeapInuse), mib(idle.StackInuse), idle.Goroutines, conns)
	fmt.Printf("  latency publish→receipt over %d deliveries: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
		len(lat), ms(pct(lat, 50)), ms(pct(lat, 99)), ms(lat[len(lat)-1]))
	fmt.Printf("  time until the last of %d sockets had an event: p50 %.1f ms, p99 %.1f ms\n", conns, ms(pct(fanout, 50)), ms(pct(fanout, 99)))
	fmt.Printf("  server CPU per event fanned out to %d sockets: %.1f ms (2 cores shared with the clients and NATS)\n", conns, ms(cpuPerEvent))
	for _, rc := range sockets {
		rc.nc.Close()
	}
}

// rawClient is a minimal WebSocket client for the benchmark: the handshake and unmasked server
// frames only, one small buffer, no per-frame allocation. The clients share two cores with the
// server under test, so every cycle they save is one the server gets.
type rawClient struct {
	nc  net.Conn
	buf []byte
	n   int
}

func dialRawClient(addr, tok string) (*rawClient, error) {
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer " + tok + "\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		nc.Close()
		return nil, err
	}
	rc := &rawClient{nc: nc, buf: make([]byte, 4096)}
	for {
		m, err := nc.Read(rc.buf[rc.n:])
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("handshake: %w", err)
		}
		rc.n += m
		if i := strings.Index(string(rc.buf[:rc.n]), "\r\n\r\n"); i >= 0 {
			if !strings.HasPrefix(string(rc.buf[:rc.n]), "HTTP/1.1 101") {
				nc.Close()
				return nil, fmt.Errorf("handshake: %s", strings.SplitN(string(rc.buf[:rc.n]), "\r\n", 2)[0])
			}
			rc.n = copy(rc.buf, rc.buf[i+4:rc.n])
			break
		}
		if rc.n == len(rc.buf) {
			nc.Close()
			return nil, errors.New("handshake: response too large")
		}
	}
	_ = nc.SetDeadline(time.Time{})
	return rc, nil
}

// readFrames calls onText for every text frame until it returns false; it answers pings.
func (rc *rawClient) readFrames(onText func() bool) error {
	for {
		for rc.n >= 2 {
			op, l, hdr := rc.buf[0]&0x0f, int(rc.buf[1]&0x7f), 2
			switch l {
			case 126:
				if rc.n < 4 {
					goto more
				}
				l, hdr = int(binary.BigEndian.Uint16(rc.buf[2:4])), 4
			case 127:
				return errors.New("frame too large for the bench client")
			}
			if hdr+l > len(rc.buf) {
				return errors.New("frame too large for the bench client")
			}
			if rc.n < hdr+l {
				break
			}
			switch op {
			case 0x1:
				if !onText() {
					return nil
				}
			case 0x8:
				return io.EOF
			case 0x9: // pong with the same payload, masked with a zero key
				pong := append([]byte{0x8a, 0x80 | byte(l), 0, 0, 0, 0}, rc.buf[hdr:hdr+l]...)
				if _, err := rc.nc.Write(pong); err != nil {
					return err
				}
			}
			rc.n = copy(rc.buf, rc.buf[hdr+l:rc.n])
		}
	more:
		m, err := rc.nc.Read(rc.buf[rc.n:])
		if err != nil {
			return err
		}
		rc.n += m
	}
}

func column(recv [][benchEvents + 1]int64, k int) []int64 {
	out := make([]int64, len(recv))
	for i := range recv {
		out[i] = recv[i][k]
	}
	return out
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func mib(n uint64) float64       { return float64(n) / (1 << 20) }
