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

	"github.com/chatwire/chatwire/pkg/queue"
	"github.com/chatwire/chatwire/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// startNotifier runs the notifier process with extra environment and returns its address; it is
// stopped when the test ends.
func startNotifier(t *testing.T, natsURL string, extra map[string]string) string {
	t.Helper()
	addr := testenv.FreeAddr(t)
	vars := map[string]string{"NATS_URL": natsURL, "HTTP_ADDR": addr, "JWT_SECRET": secret, "LOG_LEVEL": "error"}
	for k, v := range extra {
		vars[k] = v
	}
	testenv.Background(t, func(ctx context.Context) error { return run(ctx, nil, env(vars), io.Discard) })
	testenv.WaitReady(t, addr, 10*time.Second, nil)
	return addr
}

func devToken(t *testing.T, args ...string) string {
	t.Helper()
	var tok bytes.Buffer
	if err := mintToken(args, env(map[string]string{"JWT_SECRET": secret}), &tok, io.Discard); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(tok.String())
}

func call(t *testing.T, method, url, tok, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// Without DATABASE_URL the notifier starts, serves the WebSocket, and /api says why it cannot help.
func TestAPIWithoutDatabase(t *testing.T) {
	ns := testenv.StartNATS(t)
	addr := startNotifier(t, ns.URL, nil)
	code, body := call(t, "GET", "http://"+addr+"/api/conversations", devToken(t, "--sub", "a1"), "")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "DATABASE_URL is not configured") {
		t.Fatalf("GET /api/conversations: %d %s, want 503 naming DATABASE_URL", code, body)
	}
}

// With DATABASE_URL the API is mounted on the same server as /ws.
func TestAPIWithDatabase(t *testing.T) {
	ns := testenv.StartNATS(t)
	dbURL := testenv.DatabaseURL(t)
	d := testenv.Open(t, dbURL)
	var id string
	if err := d.Get(&id, `INSERT INTO conversations (phone_number, assigned_team, last_message_at) VALUES ('919876543210', 'support', now()) RETURNING id`); err != nil {
		t.Fatal(err)
	}
	addr := startNotifier(t, ns.URL, map[string]string{"DATABASE_URL": dbURL})
	base := "http://" + addr + "/api/conversations"
	tok := devToken(t, "--sub", "agent-1", "--name", "Asha", "--teams", "support")

	if code, body := call(t, "GET", base, "", ""); code != http.StatusUnauthorized {
		t.Fatalf("without token: %d %s", code, body)
	}
	code, body := call(t, "GET", base, tok, "")
	var list struct {
		Items []struct{ ID string } `json:"items"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list.Items) != 1 || list.Items[0].ID != id {
		t.Fatalf("list: %d %s", code, body)
	}
	code, body = call(t, "POST", fmt.Sprintf("%s/%s/replies", base, id), tok, `{"command_id":"cmd-run-1","text":"hello"}`)
	if code != http.StatusAccepted || !strings.Contains(body, `"command_id":"cmd-run-1"`) {
		t.Fatalf("reply: %d %s", code, body)
	}
	_, js := ns.JetStream(t)
	s, err := js.Stream(context.Background(), queue.StreamReplies)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(context.Background()); err != nil || info.State.Msgs != 1 {
		t.Fatalf("REPLIES: %+v %v, want 1 command", info, err)
	}
}
