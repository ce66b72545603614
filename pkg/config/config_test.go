package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chatwire/chatwire/pkg/config"
)

func env(m map[string]string) config.Getenv { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	g, err := config.LoadGateway(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if g.HTTPAddr != ":8080" || g.NATSURL != "nats://127.0.0.1:4222" || g.LogFormat != "json" || g.WebhookMaxBytes != 1<<20 {
		t.Errorf("gateway defaults: %+v", g)
	}
	s, err := config.LoadSender(env(map[string]string{"DATABASE_URL": "postgres://u@localhost/db"}))
	if err != nil {
		t.Fatal(err)
	}
	if s.HTTPAddr != ":8083" || s.InteraktAPIURL != "https://api.interakt.ai" || s.NetcoreAPIURL != "https://waapi.pepipost.com" {
		t.Errorf("sender defaults: %+v", s)
	}
	i, err := config.LoadIngestor(env(map[string]string{"DATABASE_URL": "postgres://u@localhost/db"}))
	if err != nil {
		t.Fatal(err)
	}
	if i.HTTPAddr != ":8082" || i.Classifier != "rules" || i.BatchMaxWait != 100*time.Millisecond {
		t.Errorf("ingestor defaults: %+v", i)
	}
	n, err := config.LoadNotifier(env(map[string]string{"JWT_SECRET": strings.Repeat("s", 32)}))
	if err != nil {
		t.Fatal(err)
	}
	if n.HTTPAddr != ":8081" || len(n.AllowedOrigins) != 0 {
		t.Errorf("notifier defaults: %+v", n)
	}
}

func TestNetcoreLegacyURLAccepted(t *testing.T) {
	s, err := config.LoadSender(env(map[string]string{
		"DATABASE_URL":    "postgres://u@localhost/db",
		"NETCORE_API_URL": "https://waapi.pepipost.com/api/v2/message/",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if s.NetcoreAPIURL != "https://waapi.pepipost.com" {
		t.Errorf("NETCORE_API_URL normalized to %q", s.NetcoreAPIURL)
	}
}

func TestErrorsNameTheVariable(t *testing.T) {
	for _, tc := range []struct {
		name string
		load func(config.Getenv) error
		env  map[string]string
		want []string
	}{
		{"missing database url", func(g config.Getenv) error { _, err := config.LoadIngestor(g); return err }, nil,
			[]string{"DATABASE_URL is required"}},
		{"malformed database url", func(g config.Getenv) error { _, err := config.LoadSender(g); return err },
			map[string]string{"DATABASE_URL": "mysql://x@y/z"}, []string{"DATABASE_URL", "postgres://"}},
		{"password not echoed", func(g config.Getenv) error { _, err := config.LoadSender(g); return err },
			map[string]string{"DATABASE_URL": "postgres://u:s3cret@h:notaport/db"}, []string{"DATABASE_URL"}},
		{"bad nats url", func(g config.Getenv) error { _, err := config.LoadGateway(g); return err },
			map[string]string{"NATS_URL": "localhost"}, []string{"NATS_URL"}},
		{"bad int", func(g config.Getenv) error { _, err := config.LoadGateway(g); return err },
			map[string]string{"WEBHOOK_MAX_BYTES": "lots"}, []string{"WEBHOOK_MAX_BYTES must be an integer"}},
		{"bad log format", func(g config.Getenv) error { _, err := config.LoadGateway(g); return err },
			map[string]string{"LOG_FORMAT": "xml"}, []string{"LOG_FORMAT must be one of json, text"}},
		{"no jwt key", func(g config.Getenv) error { _, err := config.LoadNotifier(g); return err }, nil,
			[]string{"JWT_SECRET"}},
		{"gemini without key", func(g config.Getenv) error { _, err := config.LoadIngestor(g); return err },
			map[string]string{"DATABASE_URL": "postgres://u@h/db", "CLASSIFIER": "gemini"}, []string{"GEMINI_API_KEY is required"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.load(env(tc.env))
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans several lines: %q", msg)
			}
			if strings.Contains(msg, "s3cret") {
				t.Errorf("error leaks the password: %q", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
}
