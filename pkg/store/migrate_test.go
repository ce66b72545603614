package store_test

import (
	"database/sql"
	"os"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatwire/chatwire/pkg/store"
	"github.com/chatwire/chatwire/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var chatwireColumns = []string{"channel", "external_message_id", "status", "status_at", "error_code",
	"error_text", "command_id", "provider_payload"}

func TestMigrateEmptyUpDownUp(t *testing.T) {
	t.Parallel()
	ctx := testenv.Context(t, 2*time.Minute)
	d := testenv.Open(t, testenv.EmptyDatabaseURL(t))
	p, err := store.NewMigrator(d.DB)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}
	for _, col := range chatwireColumns {
		if !hasColumn(t, d, "chat_messages", col) {
			t.Errorf("after up: chat_messages.%s missing", col)
		}
	}
	if !hasColumn(t, d, "conversations", "channel") {
		t.Error("after up: conversations.channel missing")
	}
	if _, err := p.DownTo(ctx, 0); err != nil {
		t.Fatalf("down: %v", err)
	}
	var n int
	mustGet(t, d, &n, `SELECT count(*) FROM information_schema.tables WHERE table_name IN ('conversations','chat_messages')`)
	if n != 0 {
		t.Fatalf("after down: %d chat tables remain", n)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("up again after down: %v", err)
	}
}

// TestMigrateAdoptsSeedEraDatabase runs the migrations over databases the original system left
// behind — before and after its own Netcore migration — and checks that every row survives, ids
// are backfilled, and the wider schema accepts chatwire's rows.
func TestMigrateAdoptsSeedEraDatabase(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		seeds []string
	}{
		{"before netcore migration", []string{"testdata/seed_era.sql"}},
		{"after netcore migration", []string{"testdata/seed_era.sql", "testdata/seed_era_netcore.sql"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testenv.Context(t, 2*time.Minute)
			d := testenv.Open(t, testenv.EmptyDatabaseURL(t))
			for _, f := range tc.seeds {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := d.Exec(string(b)); err != nil {
					t.Fatalf("seeding %s: %v", f, err)
				}
			}
			var before []string
			mustSelect(t, d, &before, `SELECT id::text || '|' || coalesce(content,'') || '|' || coalesce(interakt_message_id,'') FROM chat_messages ORDER BY id`)
			var convBefore []string
			mustSelect(t, d, &convBefore, `SELECT id::text || '|' || phone_number || '|' || status || '|' || unread_count FROM conversations ORDER BY id`)

			if err := store.Migrate(ctx, d.DB, testenv.Logger(t)); err != nil {
				t.Fatalf("migrate: %v", err)
			}
			// Migrating again is a no-op.
			if err := store.Migrate(ctx, d.DB, testenv.Logger(t)); err != nil {
				t.Fatalf("second migrate: %v", err)
			}

			var after []string
			mustSelect(t, d, &after, `SELECT id::text || '|' || coalesce(content,'') || '|' || coalesce(interakt_message_id,'') FROM chat_messages ORDER BY id`)
			if len(after) != len(before) {
				t.Fatalf("rows: before %d, after %d", len(before), len(after))
			}
			for i := range before {
				if before[i] != after[i] {
					t.Errorf("row changed: %q -> %q", before[i], after[i])
				}
			}
			var convAfter []string
			mustSelect(t, d, &convAfter, `SELECT id::text || '|' || phone_number || '|' || status || '|' || unread_count FROM conversations ORDER BY id`)
			if len(convAfter) != len(convBefore) {
				t.Fatalf("conversations: before %d, after %d", len(convBefore), len(convAfter))
			}
			for i := range convBefore {
				if convBefore[i] != convAfter[i] {
					t.Errorf("conversation changed: %q -> %q", convBefore[i], convAfter[i])
				}
			}

			// Interakt-era rows: external_message_id and channel backfilled from the legacy id.
			var ext, ch sql.NullString
			mustQueryRow(t, d, `SELECT external_message_id, channel FROM chat_messages WHERE interakt_message_id = 'ik-msg-1'`, &ext, &ch)
			if ext.String != "ik-msg-1" || ch.String != "interakt" {
				t.Errorf("ik-msg-1: external_message_id=%q channel=%q, want ik-msg-1/interakt", ext.String, ch.String)
			}
			var nullChannel int
			mustGet(t, d, &nullChannel, `SELECT count(*) FROM chat_messages WHERE channel IS NULL`)
			if nullChannel != 0 {
				t.Errorf("%d rows left without channel", nullChannel)
			}

			if len(tc.seeds) == 2 {
				// The duplicate Netcore pair: the oldest keeps the id, the copy is renamed, both kept.
				var ids []string
				mustSelect(t, d, &ids, `SELECT external_message_id FROM chat_messages WHERE content = 'hello' ORDER BY created_at`)
				if len(ids) != 2 || ids[0] != "wamid.NC1" || ids[1] != "wamid.NC1#dup-b0000000-0000-0000-0000-000000000002" {
					t.Errorf("netcore duplicates: got %v", ids)
				}
				mustQueryRow(t, d, `SELECT channel FROM chat_messages WHERE id = 'b0000000-0000-0000-0000-000000000001'`, &ch)
				if ch.String != "netcore" {
					t.Errorf("netcore row channel = %q, want netcore (from its conversation)", ch.String)
				}
			}

			// The unique index now settles dedup, and new message types are accepted.
			_, err := d.Exec(`INSERT INTO chat_messages (conversation_id, channel, external_message_id, direction, message_type, sender_type)
				VALUES ('11111111-1111-1111-1111-111111111111', 'interakt', 'ik-msg-1', 'inbound', 'text', 'customer')`)
			if !store.IsCode(err, store.CodeUniqueViolation) {
				t.Errorf("duplicate (channel, external_message_id) insert: err = %v, want unique violation", err)
			}
			if _, err := d.Exec(`INSERT INTO chat_messages (conversation_id, channel, external_message_id, direction, message_type, sender_type)
				VALUES ('11111111-1111-1111-1111-111111111111', 'interakt', 'ik-loc-1', 'inbound', 'location', 'customer')`); err != nil {
				t.Errorf("location message refused after migration: %v", err)
			}
			if _, err := d.Exec(`INSERT INTO chat_messages (conversation_id, direction, message_type, sender_type) VALUES ('11111111-1111-1111-1111-111111111111', 'inbound', 'bogus', 'customer')`); err == nil {
				t.Error("message_type 'bogus' accepted: the widened CHECK is missing")
			}
		})
	}
}

func hasColumn(t *testing.T, d *sqlx.DB, table, col string) bool {
	t.Helper()
	var n int
	mustGet(t, d, &n, `SELECT count(*) FROM information_schema.columns WHERE table_name = $1 AND column_name = $2`, table, col)
	return n == 1
}

func mustGet(t *testing.T, d *sqlx.DB, dest any, q string, args ...any) {
	t.Helper()
	if err := d.Get(dest, q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func mustSelect(t *testing.T, d *sqlx.DB, dest any, q string, args ...any) {
	t.Helper()
	if err := d.Select(dest, q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func mustQueryRow(t *testing.T, d *sqlx.DB, q string, dest ...any) {
	t.Helper()
	if err := d.QueryRow(q).Scan(dest...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}
