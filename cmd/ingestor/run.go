package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/chatwire/chatwire/pkg/app"
	"github.com/chatwire/chatwire/pkg/classify"
	"github.com/chatwire/chatwire/pkg/config"
	"github.com/chatwire/chatwire/pkg/ingest"
	"github.com/chatwire/chatwire/pkg/store"
)

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "migrate":
			return migrate(ctx, getenv, stderr)
		default:
			return fmt.Errorf("unknown command %q (usage: ingestor [migrate])", args[0])
		}
	}
	cfg, err := config.LoadIngestor(getenv)
	if err != nil {
		return err
	}
	log := app.NewLogger(stderr, cfg.LogLevel, cfg.LogFormat, "ingestor")
	db, err := store.OpenMigrated(ctx, cfg.DatabaseURL, cfg.DBMaxConns, log)
	if err != nil {
		return err
	}
	defer db.Close()

	clf, err := classify.New(classify.Config{
		Kind:          cfg.Classifier,
		Timeout:       cfg.ClassifyTimeout,
		Retries:       retries(cfg.ClassifyRetries),
		GeminiAPIKey:  cfg.GeminiAPIKey,
		GeminiModel:   cfg.GeminiModel,
		GeminiBaseURL: cfg.GeminiBaseURL,
		OpenAIBaseURL: cfg.OpenAIBaseURL,
		OpenAIAPIKey:  cfg.OpenAIAPIKey,
		OpenAIModel:   cfg.OpenAIModel,
	}, log)
	if err != nil {
		return fmt.Errorf("CLASSIFIER: %w", err)
	}

	if cfg.ClassifyJobTimeout < clf.MaxDuration() {
		log.Warn("CLASSIFY_JOB_TIMEOUT is shorter than the classifier's retries can take; slow answers will be cut short and fall back",
			"job_timeout", cfg.ClassifyJobTimeout, "classifier_max", clf.MaxDuration())
	}

	base, err := app.Boot(ctx, "ingestor", cfg.Common, stderr)
	if err != nil {
		return err
	}
	defer base.Close(cfg.ShutdownTimeout)

	l, err := app.Listen(cfg.HTTPAddr)
	if err != nil {
		return err
	}
	e := app.NewEcho(base.Log, base.Ready, store.Ready(db))

	ing := ingest.New(db, base.JS, ingest.Config{
		BatchSize:      cfg.BatchSize,
		BatchMaxWait:   cfg.BatchMaxWait,
		Workers:        cfg.Workers,
		StatusRetryFor: cfg.StatusRetryFor,
	}, base.Log)
	worker := ingest.NewClassifyWorker(db, base.JS, clf, ingest.ClassifyConfig{
		Concurrency: cfg.ClassifyConcurrency,
		JobTimeout:  cfg.ClassifyJobTimeout,
	}, base.Log)

	// The consumers stop when ctx ends or one of them fails; the HTTP server follows.
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for name, runner := range map[string]func(context.Context) error{"ingest": ing.Run, "classify": worker.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := runner(wctx); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				stop()
			}
		}()
	}
	base.Log.Info("ingestor listening", "addr", l.Addr().String(), "classifier", clf.Name(),
		"batch_size", cfg.BatchSize, "workers", cfg.Workers)
	serveErr := app.Serve(wctx, l, e, cfg.ShutdownTimeout)

	// Let the batches in flight finish, within the shutdown bound, before NATS is drained.
	stop()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(cfg.ShutdownTimeout):
		base.Log.Warn("consumers still busy at shutdown; unacknowledged messages will be redelivered")
	}
	var all []error
	for {
		select {
		case err := <-errs:
			all = append(all, err)
			continue
		default:
		}
		break
	}
	if len(all) > 0 {
		return errors.Join(all...)
	}
	return serveErr
}

// retries maps CLASSIFY_RETRIES onto classify.Config, where 0 means "the default" and a negative
// value means none.
func retries(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// migrate implements `ingestor migrate`: apply the migrations to DATABASE_URL and exit.
func migrate(ctx context.Context, getenv func(string) string, stderr io.Writer) error {
	cfg, err := config.LoadIngestorMigrate(getenv)
	if err != nil {
		return err
	}
	log := app.NewLogger(stderr, cfg.LogLevel, cfg.LogFormat, "ingestor")
	db, err := store.Open(ctx, cfg.DatabaseURL, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := store.Migrate(ctx, db.DB, log); err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	log.Info("database is up to date")
	return nil
}
