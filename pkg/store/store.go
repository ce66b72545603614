// Package store opens chatwire's PostgreSQL database and applies its migrations. The domain
// packages (ingest, reply, notify) keep their own SQL next to their code and use the *sqlx.DB
// opened here; the row types they share (a message or conversation as agents see it) are here.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/chatwire/chatwire/db"
)

// PostgreSQL error codes callers branch on.
const (
	CodeUniqueViolation      = "23505"
	CodeSerializationFailure = "40001"
	CodeDeadlockDetected     = "40P01"
)

// ValidateURL checks a DATABASE_URL without connecting, so a malformed value fails at start-up
// with a message naming the problem.
func ValidateURL(raw string) error {
	if raw == "" {
		return errors.New("is empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("is not a URL: %v", redactErr(err, raw))
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return fmt.Errorf("scheme must be postgres:// or postgresql://, got %q", u.Scheme)
	}
	if u.Host == "" && u.Query().Get("host") == "" {
		return errors.New("has no host")
	}
	if _, err := pq.NewConnector(raw); err != nil {
		return fmt.Errorf("is not a valid postgres URL: %v", redactErr(err, raw))
	}
	return nil
}

// redactErr strips the URL (which may hold a password) from an error message.
func redactErr(err error, raw string) string {
	return strings.ReplaceAll(err.Error(), raw, "<DATABASE_URL>")
}

// Open connects to Postgres and checks the connection within the context's deadline.
func Open(ctx context.Context, dsn string, maxConns int) (*sqlx.DB, error) {
	if err := ValidateURL(dsn); err != nil {
		return nil, fmt.Errorf("DATABASE_URL %w", err)
	}
	d, err := sqlx.Open("postgres", dsn)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %s", redactErr(err, dsn))
	}
	if maxConns > 0 {
		d.SetMaxOpenConns(maxConns)
		d.SetMaxIdleConns(maxConns)
	}
	d.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := d.PingContext(pctx); err != nil {
		d.Close()
		return nil, fmt.Errorf("DATABASE_URL: cannot reach postgres: %s", redactErr(err, dsn))
	}
	return d, nil
}

// Migrations returns the embedded migration files.
func Migrations() fs.FS {
	sub, err := fs.Sub(db.Migrations, "migrations")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	return sub
}

// NewMigrator returns a goose provider over the embedded migrations. A Postgres advisory lock
// keeps replicas that start together from migrating at once.
func NewMigrator(d *sql.DB) (*goose.Provider, error) {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, fmt.Errorf("migration lock: %w", err)
	}
	return goose.NewProvider(goose.DialectPostgres, d, Migrations(), goose.WithSessionLocker(locker))
}

// Migrate applies every pending migration.
func Migrate(ctx context.Context, d *sql.DB, log *slog.Logger) error {
	p, err := NewMigrator(d)
	if err != nil {
		return err
	}
	res, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	for _, r := range res {
		log.Info("migration applied", "version", r.Source.Version, "file", r.Source.Path, "took", r.Duration)
	}
	return nil
}

// OpenMigrated opens the database and applies pending migrations, for the processes that own the
// schema (ingestor, sender). Replicas that start together take turns: Migrate holds goose's
// advisory lock.
func OpenMigrated(ctx context.Context, dsn string, maxConns int, log *slog.Logger) (*sqlx.DB, error) {
	d, err := Open(ctx, dsn, maxConns)
	if err != nil {
		return nil, err
	}
	mctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if err := Migrate(mctx, d.DB, log); err != nil {
		d.Close()
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	return d, nil
}

// Ready returns a readiness check for /readyz: Postgres answers a ping within 2 s.
func Ready(d *sqlx.DB) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := d.PingContext(ctx); err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		return nil
	}
}

// IsCode reports whether err is a Postgres error with the given SQLSTATE.
func IsCode(err error, code string) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && string(pe.Code) == code
}

// IsTransient reports whether err is worth retrying: serialization failures, deadlocks, and
// connection problems.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	var pe *pq.Error
	if errors.As(err, &pe) {
		switch pe.Code.Class() {
		case "08", "40", "53", "57": // connection, transaction rollback, resources, operator intervention
			return true
		}
		return false
	}
	// Not a server error: the connection failed, a context expired, or the driver gave up.
	return true
}
