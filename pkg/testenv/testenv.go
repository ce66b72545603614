// Package testenv gives tests real infrastructure: one throwaway PostgreSQL server per test binary
// with a fresh, migrated database per test (cloned from a template database), and an embedded
// NATS server with JetStream per test. Tests stay parallel and leave nothing behind.
//
// Use it from a package's TestMain so the server is stopped when the binary ends:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// Set CHATWIRE_TEST_DATABASE_URL to a superuser URL to use an existing server instead of
// starting one; set PG_BIN to the directory holding initdb and postgres.
package testenv

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"

	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the postgres driver
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatwire/chatwire/pkg/queue"
	"github.com/chatwire/chatwire/pkg/store"
)

const templateDB = "chatwire_template"

var (
	pgOnce   sync.Once
	pgServer *postgres
	pgErr    error
	dbSeq    atomic.Int64
)

// Main runs the tests, then stops the Postgres server if one was started.
func Main(m *testing.M) {
	code := m.Run()
	if pgServer != nil {
		pgServer.stop()
	}
	os.Exit(code)
}

type postgres struct {
	adminURL string // superuser URL, database "postgres"
	cmd      *exec.Cmd
	exited   chan struct{}
	dir      string
}

// Logger returns a logger that writes to the test's output.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Discard is a logger that drops everything, for benchmarks.
func Discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func server0(t testing.TB) *postgres {
	t.Helper()
	pgOnce.Do(func() { pgServer, pgErr = startPostgres() })
	if pgErr != nil {
		t.Fatalf("testenv: %v", pgErr)
	}
	return pgServer
}

// DatabaseURL creates a fresh database with every migration applied and returns its URL. The
// database is dropped when the test ends.
func DatabaseURL(t testing.TB) string {
	return newDatabase(t, templateDB)
}

// EmptyDatabaseURL creates a fresh database without any migration, for migration tests.
func EmptyDatabaseURL(t testing.TB) string {
	return newDatabase(t, "template0")
}

// DB opens a fresh migrated database (see DatabaseURL).
func DB(t testing.TB) *sqlx.DB {
	t.Helper()
	return Open(t, DatabaseURL(t))
}

// Open connects to url and closes the pool when the test ends.
func Open(t testing.TB, u string) *sqlx.DB {
	t.Helper()
	d, err := sqlx.Open("postgres", u)
	if err != nil {
		t.Fatalf("testenv: open: %v", err)
	}
	d.SetMaxOpenConns(20)
	t.Cleanup(func() { d.Close() })
	return d
}

func newDatabase(t testing.TB, template string) string {
	t.Helper()
	pg := server0(t)
	name := fmt.Sprintf("t_%d_%d", os.Getpid(), dbSeq.Add(1))
	admin, err := sql.Open("postgres", pg.adminURL)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	defer admin.Close()
	if _, err := admin.Exec(fmt.Sprintf(`CREATE DATABASE %s TEMPLATE %s`, name, template)); err != nil {
		t.Fatalf("testenv: create database: %v", err)
	}
	t.Cleanup(func() {
		a, err := sql.Open("postgres", pg.adminURL)
		if err != nil {
			return
		}
		defer a.Close()
		_, _ = a.Exec(fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, name))
	})
	return withDatabase(pg.adminURL, name)
}

func withDatabase(adminURL, name string) string {
	u, _ := url.Parse(adminURL)
	u.Path = "/" + name
	return u.String()
}

// pgBinDir finds initdb and postgres.
func pgBinDir() (string, error) {
	if d := os.Getenv("PG_BIN"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("PostgreSQL server binaries (initdb, postgres) not found: " +
		"install them with `apt-get install -y postgresql` (bash .ci/run does), " +
		"set PG_BIN to their directory, or set CHATWIRE_TEST_DATABASE_URL to a superuser URL")
}

func pgMajor(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// credential returns who to run Postgres as: initdb and postgres refuse to run as root.
func credential() (*syscall.Credential, int, int, error) {
	if os.Geteuid() != 0 {
		return nil, -1, -1, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid, gid, nil
	}
	return nil, -1, -1, errors.New("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startPostgres() (*postgres, error) {
	if u := os.Getenv("CHATWIRE_TEST_DATABASE_URL"); u != "" {
		pg := &postgres{adminURL: u}
		return pg, pg.prepareTemplate()
	}
	bin, err := pgBinDir()
	if err != nil {
		return nil, err
	}
	cred, uid, gid, err := credential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "chatwire-pg-")
	if err != nil {
		return nil, err
	}
	if uid >= 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		pg := &postgres{dir: dir, adminURL: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)}
		pg.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port),
			"-k", dir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
			"-c", "synchronous_commit=off", "-c", "full_page_writes=off",
			"-c", "max_connections=400", "-c", "shared_buffers=128MB")
		pg.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
		logf, _ := os.Create(filepath.Join(dir, "postgres.log"))
		pg.cmd.Stdout, pg.cmd.Stderr = logf, logf
		if err := pg.cmd.Start(); err != nil {
			return nil, fmt.Errorf("starting postgres: %w", err)
		}
		exited := make(chan struct{})
		pg.exited = exited
		go func() { _ = pg.cmd.Wait(); close(exited) }()
		if lastErr = pg.waitReady(exited); lastErr == nil {
			if err := pg.prepareTemplate(); err != nil {
				pg.stop()
				return nil, err
			}
			return pg, nil
		}
		_ = pg.cmd.Process.Kill()
		<-exited
	}
	log, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
	os.RemoveAll(dir)
	return nil, fmt.Errorf("postgres did not start: %v\n%s", lastErr, log)
}

func (pg *postgres) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("postgres exited")
		default:
		}
		d, err := sql.Open("postgres", pg.adminURL)
		if err == nil {
			err = d.Ping()
			d.Close()
			if err == nil {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("timed out waiting for postgres")
}

// prepareTemplate builds the migrated template database that every test database is cloned from.
func (pg *postgres) prepareTemplate() error {
	admin, err := sql.Open("postgres", pg.adminURL)
	if err != nil {
		return err
	}
	defer admin.Close()
	name := templateDB
	if pg.cmd == nil { // shared server: several test binaries may run at once
		name = fmt.Sprintf("%s_%d", templateDB, os.Getpid())
	}
	_, _ = admin.Exec(fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, name))
	if _, err := admin.Exec(fmt.Sprintf(`CREATE DATABASE %s`, name)); err != nil {
		return fmt.Errorf("creating template database: %w", err)
	}
	d, err := sql.Open("postgres", withDatabase(pg.adminURL, name))
	if err != nil {
		return err
	}
	defer d.Close()
	if err := store.Migrate(context.Background(), d, Discard()); err != nil {
		return fmt.Errorf("migrating template database: %w", err)
	}
	return nil
}

func (pg *postgres) stop() {
	if pg.cmd == nil || pg.cmd.Process == nil {
		return
	}
	_ = pg.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-pg.exited:
	case <-time.After(5 * time.Second):
		_ = pg.cmd.Process.Kill()
		<-pg.exited
	}
	os.RemoveAll(pg.dir)
}

// NATSServer is an embedded NATS server with JetStream, private to one test.
type NATSServer struct {
	t    testing.TB
	opts *server.Options
	srv  *server.Server
	URL  string
}

// StartNATS starts an embedded NATS server with JetStream on a random loopback port; it is shut
// down when the test ends.
func StartNATS(t testing.TB) *NATSServer {
	t.Helper()
	opts := &server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}
	s := &NATSServer{t: t, opts: opts}
	s.start()
	s.opts.Port = s.srv.Addr().(*net.TCPAddr).Port
	s.URL = s.srv.ClientURL()
	t.Cleanup(s.Stop)
	return s
}

func (s *NATSServer) start() {
	s.t.Helper()
	srv, err := server.NewServer(s.opts)
	if err != nil {
		s.t.Fatalf("testenv: nats server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		s.t.Fatal("testenv: nats server not ready")
	}
	s.srv = srv
}

// Stop shuts the server down (idempotent); its store survives for Restart.
func (s *NATSServer) Stop() {
	if s.srv == nil {
		return
	}
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
	s.srv = nil
}

// Restart starts the server again on the same port with the same store.
func (s *NATSServer) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// Server returns the running server.
func (s *NATSServer) Server() *server.Server { return s.srv }

// JetStream connects to the server, declares chatwire's topology and returns the connection; it
// is closed when the test ends.
func (s *NATSServer) JetStream(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.URL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("testenv: nats connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("testenv: jetstream: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := queue.DefaultTopology().Ensure(ctx, js); err != nil {
		t.Fatalf("testenv: topology: %v", err)
	}
	return nc, js
}

// Context returns a context cancelled when the test ends or after d.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Eventually polls cond every 20 ms until it returns true or d elapses, then fails the test
// with msg.
func Eventually(t testing.TB, d time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("not true after %v: %s", d, fmt.Sprintf(msg, args...))
}

// StreamInfo returns a stream's current state.
func StreamInfo(t testing.TB, js jetstream.JetStream, stream string) *jetstream.StreamInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("testenv: stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("testenv: stream %s info: %v", stream, err)
	}
	return info
}

// StreamMsgs reads every message a stream holds now, oldest first (deleted sequences skipped).
func StreamMsgs(t testing.TB, js jetstream.JetStream, stream string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("testenv: stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("testenv: stream %s info: %v", stream, err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("testenv: stream %s message %d: %v", stream, seq, err)
		}
		out = append(out, m)
	}
	return out
}
