package ingest

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"github.com/jmoiron/sqlx"
)

// stmtCache prepares the batch statements once per database handle. database/sql keeps each
// statement prepared on every connection it was used on, so a batch statement costs one round
// trip (Bind/Execute) and no parse or plan, instead of two round trips (Parse/Describe, then
// Bind/Execute) and a fresh plan each time.
type stmtCache struct {
	db *sqlx.DB
	mu sync.Mutex
	m  map[string]*sqlx.Stmt
}

func newStmtCache(db *sqlx.DB) *stmtCache { return &stmtCache{db: db, m: map[string]*sqlx.Stmt{}} }

func (c *stmtCache) get(ctx context.Context, q string) (*sqlx.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.m[q]; s != nil {
		return s, nil
	}
	s, err := c.db.PreparexContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("preparing statement: %w", err)
	}
	c.m[q] = s
	return s, nil
}

// close releases every prepared statement.
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, s := range c.m {
		_ = s.Close()
		delete(c.m, q)
	}
}

// stx is a transaction that runs its statements through the cache.
type stx struct {
	tx    *sqlx.Tx
	cache *stmtCache
}

func (t stx) stmt(ctx context.Context, q string) (*sqlx.Stmt, error) {
	if t.cache == nil {
		return nil, nil
	}
	s, err := t.cache.get(ctx, q)
	if err != nil {
		return nil, err
	}
	return t.tx.StmtxContext(ctx, s), nil
}

func (t stx) SelectContext(ctx context.Context, dest any, q string, args ...any) error {
	s, err := t.stmt(ctx, q)
	if err != nil {
		return err
	}
	if s == nil {
		return t.tx.SelectContext(ctx, dest, q, args...)
	}
	return s.SelectContext(ctx, dest, args...)
}

func (t stx) QueryxContext(ctx context.Context, q string, args ...any) (*sqlx.Rows, error) {
	s, err := t.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return t.tx.QueryxContext(ctx, q, args...)
	}
	return s.QueryxContext(ctx, args...)
}

func (t stx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	s, err := t.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return t.tx.ExecContext(ctx, q, args...)
	}
	return s.ExecContext(ctx, args...)
}

func (t stx) QueryRowxContext(ctx context.Context, q string, args ...any) *sqlx.Row {
	s, err := t.stmt(ctx, q)
	if err != nil || s == nil {
		return t.tx.QueryRowxContext(ctx, q, args...)
	}
	return s.QueryRowxContext(ctx, args...)
}
