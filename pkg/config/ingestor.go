package config

import "time"

// Ingestor is the ingestor's (and its classify worker's) configuration.
type Ingestor struct {
	Common
	DatabaseURL  string        // DATABASE_URL
	DBMaxConns   int           // DB_MAX_CONNS
	BatchSize    int           // INGEST_BATCH_SIZE
	BatchMaxWait time.Duration // INGEST_BATCH_MAX_WAIT

	Classifier          string        // CLASSIFIER: rules | gemini | openai
	ClassifyConcurrency int           // CLASSIFY_CONCURRENCY
	ClassifyTimeout     time.Duration // CLASSIFY_TIMEOUT
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
		Classifier:          l.oneOf("CLASSIFIER", "rules", "rules", "gemini", "openai"),
		ClassifyConcurrency: l.integer("CLASSIFY_CONCURRENCY", 4, 1, 256),
		ClassifyTimeout:     l.duration("CLASSIFY_TIMEOUT", 10*time.Second, 10*time.Millisecond),
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
