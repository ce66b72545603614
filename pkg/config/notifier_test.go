package config_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatwire/chatwire/pkg/config"
)

func TestNotifierSettings(t *testing.T) {
	secret := strings.Repeat("s", 32)
	n, err := config.LoadNotifier(env(map[string]string{
		"JWT_SECRET": secret, "ALLOWED_ORIGINS": "https://app.example.com, https://*.agents.example.com",
		"WS_SEND_QUEUE": "64", "WS_PING_INTERVAL": "10s", "WS_IDLE_TIMEOUT": "30s", "WS_WRITE_TIMEOUT": "5s",
		"WS_RESUME_GRACE": "500ms", "WS_RESUME_MAX": "5000", "WS_FIRST_MESSAGE_AUTH": "true",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(n.AllowedOrigins) != 2 || n.SendQueue != 64 || n.PingInterval != 10*time.Second || n.IdleTimeout != 30*time.Second ||
		n.WriteTimeout != 5*time.Second || n.ResumeGrace != 500*time.Millisecond || n.ResumeMax != 5000 || !n.FirstMessageAuth {
		t.Fatalf("settings not read: %+v", n)
	}
	d, err := config.LoadNotifier(env(map[string]string{"JWT_SECRET": secret}))
	if err != nil {
		t.Fatal(err)
	}
	if d.SendQueue != 256 || d.PingInterval != 25*time.Second || d.IdleTimeout != 75*time.Second || d.FirstMessageAuth || d.RSAPublicKey != nil {
		t.Fatalf("defaults: %+v", d)
	}

	for name, c := range map[string]struct {
		env  map[string]string
		want string
	}{
		"both keys":        {map[string]string{"JWT_SECRET": secret, "JWT_PUBLIC_KEY": "x"}, "JWT_SECRET and JWT_PUBLIC_KEY"},
		"short secret":     {map[string]string{"JWT_SECRET": "short"}, "JWT_SECRET must be at least 32"},
		"origin no scheme": {map[string]string{"JWT_SECRET": secret, "ALLOWED_ORIGINS": "app.example.com"}, "ALLOWED_ORIGINS"},
		"origin with path": {map[string]string{"JWT_SECRET": secret, "ALLOWED_ORIGINS": "https://a.example.com/app"}, "ALLOWED_ORIGINS"},
		"idle <= ping":     {map[string]string{"JWT_SECRET": secret, "WS_IDLE_TIMEOUT": "5s", "WS_PING_INTERVAL": "10s"}, "WS_IDLE_TIMEOUT"},
		"bad bool":         {map[string]string{"JWT_SECRET": secret, "WS_FIRST_MESSAGE_AUTH": "yes"}, "WS_FIRST_MESSAGE_AUTH"},
		"bad key":          {map[string]string{"JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----"}, "JWT_PUBLIC_KEY"},
		"missing key file": {map[string]string{"JWT_PUBLIC_KEY": "/nonexistent/key.pem"}, "JWT_PUBLIC_KEY"},
	} {
		_, err := config.LoadNotifier(env(c.env))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one naming %q", name, err, c.want)
		}
	}
}

func TestNotifierRSAPublicKey(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	path := filepath.Join(t.TempDir(), "jwt.pem")
	if err := os.WriteFile(path, []byte(pemText), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{
		"pem":          pemText,
		"escaped pem":  strings.ReplaceAll(pemText, "\n", `\n`),
		"path to file": path,
	} {
		n, err := config.LoadNotifier(env(map[string]string{"JWT_PUBLIC_KEY": v}))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n.RSAPublicKey == nil || n.RSAPublicKey.N.Cmp(key.N) != 0 {
			t.Fatalf("%s: key not parsed", name)
		}
	}
}
