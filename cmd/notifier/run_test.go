package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chatwire/chatwire/pkg/notify"
	"github.com/chatwire/chatwire/pkg/testenv"
)

const secret = "0123456789abcdef0123456789abcdef-cmd-test"

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestTokenSubcommand(t *testing.T) {
	var out, errOut bytes.Buffer
	err := mintToken([]string{"--sub", "agent-1", "--name", "Asha", "--teams", "support, sales", "--role", "agent", "--ttl", "12h"},
		env(map[string]string{"JWT_SECRET": secret}), &out, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := notify.NewHS256Verifier([]byte(secret))
	a, err := v.Verify(strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatalf("minted token does not verify: %v", err)
	}
	if a.ID != "agent-1" || a.Name != "Asha" || a.Admin || strings.Join(a.Teams, ",") != "support,sales" ||
		time.Until(a.Expires) < 11*time.Hour {
		t.Fatalf("claims = %+v", a)
	}

	for name, c := range map[string]struct {
		args []string
		env  map[string]string
	}{
		"no secret": {[]string{"--sub", "a"}, nil},
		"no sub":    {nil, map[string]string{"JWT_SECRET": secret}},
		"bad role":  {[]string{"--sub", "a", "--role", "root"}, map[string]string{"JWT_SECRET": secret}},
		"bad flag":  {[]string{"--nope"}, map[string]string{"JWT_SECRET": secret}},
	} {
		if err := mintToken(c.args, env(c.env), io.Discard, io.Discard); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestRunServesWebSocket starts the notifier process against an embedded NATS server and talks
// to it the way an agent's browser would.
func TestRunServesWebSocket(t *testing.T) {
	ns := testenv.StartNATS(t)
	addr := testenv.FreeAddr(t)
	proc := testenv.Background(t, func(ctx context.Context) error {
		return run(ctx, nil, env(map[string]string{
			"NATS_URL": ns.URL, "HTTP_ADDR": addr, "JWT_SECRET": secret,
			"ALLOWED_ORIGINS": "https://agents.example.com", "LOG_LEVEL": "error",
		}), io.Discard)
	})
	testenv.WaitReady(t, addr, 10*time.Second, nil)

	var tok bytes.Buffer
	if err := mintToken([]string{"--sub", "agent-1", "--teams", "support"}, env(map[string]string{"JWT_SECRET": secret}), &tok, io.Discard); err != nil {
		t.Fatal(err)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	url := fmt.Sprintf("ws://%s/ws?token=%s", addr, strings.TrimSpace(tok.String()))
	ws, _, err := websocket.Dial(dctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://agents.example.com"}}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	_, data, err := ws.Read(dctx)
	if err != nil {
		t.Fatal(err)
	}
	var hello struct {
		Event string `json:"event"`
		Epoch string `json:"epoch"`
	}
	if json.Unmarshal(data, &hello); hello.Event != "hello" || hello.Epoch == "" {
		t.Fatalf("first frame %s, want hello", data)
	}
	if _, resp, err := websocket.Dial(dctx, "ws://"+addr+"/ws", nil); err == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("dial without token: %v, want 401", err)
	}

	if err := proc.Stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	// Shutdown closed the socket with 1001 so the agent reconnects elsewhere.
	if _, _, err := ws.Read(dctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("after shutdown: %v, want close 1001", err)
	}
}
