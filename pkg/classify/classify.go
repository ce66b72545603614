// Package classify turns the first message of a conversation into a one-line summary and a
// suggested team. Implementations: rules (offline, default), gemini, openai (any OpenAI-compatible
// endpoint). The ingestor's classify worker calls them off the ingest path.
package classify

import (
	"context"
	"unicode/utf8"
)

// Teams a conversation can be routed to.
var Teams = []string{"finance", "support", "dispatch", "sales", "technical", "returns_refunds", "general"}

// TeamGeneral is where anything unclassifiable goes.
const TeamGeneral = "general"

// ValidTeam reports whether t is one of Teams.
func ValidTeam(t string) bool {
	for _, x := range Teams {
		if x == t {
			return true
		}
	}
	return false
}

// Result is a classification.
type Result struct {
	Summary string `json:"summary"`
	Team    string `json:"team"`
}

// Classifier classifies one message's text.
type Classifier interface {
	Classify(ctx context.Context, text string) (Result, error)
}

// Fallback is the result used when no classifier answers: the first 200 characters, team general.
func Fallback(text string) Result {
	return Result{Summary: truncate(text, 200), Team: TeamGeneral}
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n])
}
