package config

import "time"

// Ingestor is the ingestor's (and its classify worker's) configuration.
type Ingestor struct {
	Common
	DatabaseURL    string        // DATABASE_URL
	DBMaxConns     int           // DB_MAX_CONNS
	BatchSize      int           // INGEST_BATCH_SIZE
	BatchMaxWait   time.Duration // INGEST_BATCH_MAX_WAIT
	Workers        int           // INGEST_WORKERS: batches in flight per process
	StatusRetryFor time.Duration // INGEST_STATUS_RETRY_FOR: how long a receipt for an unknown message is retried

	Classifier          string        // CLASSIFIER: rules | gemini | openai
	ClassifyConcurrency int           // CLASSIFY_CONCURRENCY
	ClassifyTimeout     time.Duration // CLASSIFY_TIMEOUT: per attempt
	ClassifyRetries     int           // CLASSIFY_RETRIES: attempts after the first
	ClassifyJobTimeout  time.Duration // CLASSIFY_JOB_TIMEOUT: whole job, retries included
	GeminiAPIKey        string        // GEMINI_API_KEY
	GeminiModel         string        // GEMINI_MODEL
	GeminiBaseURL       string        // GEMINI_BASE_URL
	OpenAIBaseURL       string        // OPENAI_BASE_URL
	OpenAIAPIKey        string        // OPENAI_API_KEY
	OpenAIModel         string        // OPENAI_MODEL
}

// LoadIngestor reads and validates the ingestor's environment.
func LoadIngestor(get Getenv) (Ingestor, error) {
	l := &loader{get: get}
	c := Ingestor{
		Common:              l.common(":8082"),
		DatabaseURL:         l.databaseURL(true),
		DBMaxConns:          l.integer("DB_MAX_CONNS", 16, 1, 1000),
		BatchSize:           l.integer("INGEST_BATCH_SIZE", 200, 1, 10000),
		BatchMaxWait:        l.duration("INGEST_BATCH_MAX_WAIT", 100*time.Millisecond, time.Millisecond),
		Workers:             l.integer("INGEST_WORKERS", 2, 1, 64),
		StatusRetryFor:      l.duration("INGEST_STATUS_RETRY_FOR", 10*time.Minute, time.Second),
		Classifier:          l.oneOf("CLASSIFIER", "rules", "rules", "gemini", "openai"),
		ClassifyConcurrency: l.integer("CLASSIFY_CONCURRENCY", 4, 1, 256),
		ClassifyTimeout:     l.duration("CLASSIFY_TIMEOUT", 10*time.Second, 10*time.Millisecond),
		ClassifyRetries:     l.integer("CLASSIFY_RETRIES", 2, 0, 10),
		ClassifyJobTimeout:  l.duration("CLASSIFY_JOB_TIMEOUT", 2*time.Minute, 100*time.Millisecond),
		GeminiAPIKey:        l.str("GEMINI_API_KEY", ""),
		GeminiModel:         l.str("GEMINI_MODEL", "gemini-2.0-flash"),
		GeminiBaseURL:       l.httpURL("GEMINI_BASE_URL", "https://generativelanguage.googleapis.com"),
		OpenAIBaseURL:       l.httpURL("OPENAI_BASE_URL", ""),
		OpenAIAPIKey:        l.str("OPENAI_API_KEY", ""),
		OpenAIModel:         l.str("OPENAI_MODEL", ""),
	}
	switch c.Classifier {
	case "gemini":
		if c.GeminiAPIKey == "" {
			l.fail("GEMINI_API_KEY", "is required when CLASSIFIER=gemini")
		}
	case "openai":
		if c.OpenAIBaseURL == "" {
			l.fail("OPENAI_BASE_URL", "is required when CLASSIFIER=openai (e.g. http://127.0.0.1:11434/v1)")
		}
		if c.OpenAIModel == "" {
			l.fail("OPENAI_MODEL", "is required when CLASSIFIER=openai")
		}
	}
	return c, l.err()
}

// IngestorMigrate is what `ingestor migrate` needs: only the database and the logger.
type IngestorMigrate struct {
	DatabaseURL string // DATABASE_URL
	LogLevel    string // LOG_LEVEL
	LogFormat   string // LOG_FORMAT
}

// LoadIngestorMigrate reads the environment of `ingestor migrate`.
func LoadIngestorMigrate(get Getenv) (IngestorMigrate, error) {
	l := &loader{get: get}
	c := IngestorMigrate{
		DatabaseURL: l.databaseURL(true),
		LogLevel:    l.oneOf("LOG_LEVEL", "info", "debug", "info", "warn", "error"),
		LogFormat:   l.oneOf("LOG_FORMAT", "json", "json", "text"),
	}
	return c, l.err()
}
