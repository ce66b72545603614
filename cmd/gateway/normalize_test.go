package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/chatwire/chatwire/pkg/event"
)

func TestNormalizeFile(t *testing.T) {
	var out, errb bytes.Buffer
	err := normalize([]string{"--channel", "netcore", "../../pkg/provider/netcore/testdata/webhook/batch_media.json"}, nil, &out, &errb)
	if err != nil {
		t.Fatalf("normalize: %v (%s)", err, errb.String())
	}
	var n int
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var line normalizeLine
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("line %d is not JSON: %v", n, err)
		}
		ev, err := event.Decode[event.InboundMessage](line.Event)
		if err != nil || line.Kind != "message" || line.Subject != "inbound.message.netcore" || line.MsgID != "netcore:"+ev.ExternalID {
			t.Errorf("line %d: %+v (%v)", n, line, err)
		}
		if ev.Media == nil || ev.Media.ProviderMediaID == "" {
			t.Errorf("line %d: media id lost", n)
		}
		n++
	}
	if n != 5 {
		t.Fatalf("got %d lines, want 5 (one per message of the batch)", n)
	}
}

func TestNormalizeStdin(t *testing.T) {
	body, err := os.ReadFile("../../pkg/provider/interakt/testdata/webhook/workflow.json")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := normalize([]string{"--channel=interakt"}, bytes.NewReader(body), &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(out.String(), "\n"); got != 3 {
		t.Fatalf("got %d lines, want one per workflow answer (3):\n%s", got, out.String())
	}
}

func TestNormalizeRejectsBadInput(t *testing.T) {
	cases := map[string]struct {
		args  []string
		stdin string
		want  string
	}{
		"not json":       {[]string{"--channel", "interakt"}, "hello", "not a interakt webhook chatwire understands"},
		"no channel":     {nil, "{}", "--channel is required"},
		"bad channel":    {[]string{"--channel", "meta"}, "{}", "--channel must be interakt or netcore"},
		"missing file":   {[]string{"--channel", "netcore", "/nonexistent.json"}, "", "no such file"},
		"partly invalid": {[]string{"--channel", "netcore", "../../pkg/provider/netcore/testdata/webhook/partly_invalid.json"}, "", "3 item(s)"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := normalize(tc.args, strings.NewReader(tc.stdin), &bytes.Buffer{}, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
