// Package e2e runs chatwire's real binaries against real PostgreSQL and NATS, the way an operator
// starts them.
package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatwire/chatwire/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var processes = []string{"gateway", "ingestor", "notifier", "sender"}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds the four commands once per test binary.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "chatwire-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+"/", "../cmd/...")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = &buildError{err: err, out: string(out)}
		}
	})
	if buildErr != nil {
		t.Fatalf("building binaries: %v", buildErr)
	}
	return binDir
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

// baseEnv is a valid configuration for every process, pointing at nothing in particular.
func baseEnv() map[string]string {
	return map[string]string{
		"DATABASE_URL": "postgres://postgres@127.0.0.1:1/chatwire?sslmode=disable",
		"NATS_URL":     "nats://127.0.0.1:1",
		"HTTP_ADDR":    "127.0.0.1:0",
		"JWT_SECRET":   strings.Repeat("k", 32),
	}
}

// runToExit starts a binary with env and waits for it to exit (it must, within 30 s).
func runToExit(t *testing.T, bin string, env map[string]string) (stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s did not exit within 30s; stderr:\n%s", filepath.Base(bin), errb.String())
	}
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %s: %v", bin, err)
	}
	return errb.String(), code
}

// TestStartupFailsWithOneClearLine: a malformed DATABASE_URL or an unreachable NATS makes every
// process exit non-zero with one line naming the variable, never a stack trace.
func TestStartupFailsWithOneClearLine(t *testing.T) {
	dir := binaries(t)
	realDB := testenv.DatabaseURL(t) // so that only NATS is missing where NATS is the point
	cases := []struct {
		name      string
		processes []string
		env       map[string]string
		want      string
	}{
		{"malformed DATABASE_URL", []string{"ingestor", "sender"}, map[string]string{"DATABASE_URL": "mysql://u:hunter2@x/y"}, "DATABASE_URL"},
		{"unparseable DATABASE_URL", []string{"ingestor", "sender", "notifier"}, map[string]string{"DATABASE_URL": "postgres://u:hunter2@h:port/db"}, "DATABASE_URL"},
		{"unreachable DATABASE_URL", []string{"ingestor", "sender", "notifier"}, map[string]string{"NATS_URL": "nats://127.0.0.1:4222"}, "DATABASE_URL"},
		{"unreachable NATS", processes, map[string]string{"DATABASE_URL": realDB}, "NATS_URL"},
		{"malformed NATS_URL", processes, map[string]string{"NATS_URL": "not a url"}, "NATS_URL"},
		{"bad HTTP_ADDR", processes, map[string]string{"HTTP_ADDR": "8080"}, "HTTP_ADDR"},
	}
	for _, tc := range cases {
		for _, p := range tc.processes {
			t.Run(tc.name+"/"+p, func(t *testing.T) {
				t.Parallel()
				env := baseEnv()
				for k, v := range tc.env {
					env[k] = v
				}
				stderr, code := runToExit(t, filepath.Join(dir, p), env)
				if code == 0 {
					t.Fatalf("exit code 0, want non-zero; stderr: %q", stderr)
				}
				lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
				last := lines[len(lines)-1]
				if !strings.HasPrefix(last, p+": ") || !strings.Contains(last, tc.want) {
					t.Errorf("last stderr line %q does not start with %q and name %s", last, p+": ", tc.want)
				}
				if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
					t.Errorf("stack trace on stderr:\n%s", stderr)
				}
				if strings.Contains(stderr, "hunter2") {
					t.Errorf("password printed:\n%s", stderr)
				}
				// Logs before the error line are fine (JSON); the error itself is one line.
				for _, l := range lines[:len(lines)-1] {
					if !strings.HasPrefix(l, "{") {
						t.Errorf("unexpected non-log stderr line before the error: %q", l)
					}
				}
			})
		}
	}
}
