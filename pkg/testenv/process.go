package testenv

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// FreeAddr returns a loopback host:port that nothing listens on at the moment, for a process
// under test to bind.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: free address: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// WaitReady waits until GET http://addr/readyz answers 200, and fails the test after d with
// what (a description, e.g. the process's log so far).
func WaitReady(t testing.TB, addr string, d time.Duration, what func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	msg := ""
	if what != nil {
		msg = what()
	}
	t.Fatalf("%s not ready after %v\n%s", addr, d, msg)
}

// Buffer is a bytes.Buffer that a process's logger and the test may use at once.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Process is a process's run function running in the background of a test.
type Process struct {
	t      testing.TB
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// Background runs fn until the test ends or Stop is called. Stopping cancels fn's context, as
// SIGTERM does for the real binary; when the test ends, an error from fn, or fn still running
// 20 s after the cancel, fails the test.
func Background(t testing.TB, fn func(ctx context.Context) error) *Process {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Process{t: t, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- fn(ctx) }()
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("process stopped with: %v", err)
		}
	})
	return p
}

// Stop cancels the process and returns what its run function returned.
func (p *Process) Stop() error {
	p.once.Do(func() {
		p.cancel()
		select {
		case p.err = <-p.done:
		case <-time.After(20 * time.Second):
			p.t.Error("process did not stop within 20s of its context ending")
		}
	})
	return p.err
}
