package classify

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestRulesTeam(t *testing.T) {
	r := NewRules()
	cases := []struct {
		text, team string
	}{
		// Hinglish
		{"mera order kab aayega", "dispatch"},
		{"Mera order kab ayega??", "dispatch"},
		{"order abhi tak nahi aaya, 5 din ho gaye", "dispatch"},
		{"parcel kab pahunchega bhai", "dispatch"},
		{"paisa wapas chahiye", "returns_refunds"},
		{"paise wapas karo", "returns_refunds"},
		{"refund kab milega", "returns_refunds"},
		{"refund kab aayega", "returns_refunds"}, // "kab aayega" is weak: the subject decides
		{"mera paisa kab aayega", "finance"},
		{"payment error aa raha hai", "finance"}, // tie with technical, broken by priority
		{"product toota hua aaya hai, return karna hai", "returns_refunds"},
		{"payment ka refund chahiye", "returns_refunds"},
		{"payment fail ho gaya", "finance"},
		{"paisa kat gaya lekin order nahi hua", "finance"},
		{"UPI se pay kiya, paise kat gaye", "finance"},
		{"app nahi chal raha", "technical"},
		{"OTP nahi aa raha login ke liye", "technical"},
		{"website khul nahi rahi", "technical"},
		{"price kya hai", "sales"},
		{"iska daam kitna hai?", "sales"},
		{"kitne ka hai ye", "sales"},
		{"mujhe madad chahiye, kisi agent se baat karni hai", "support"},
		// English
		{"When will my order be delivered?", "dispatch"},
		{"Where is my order? Tracking shows nothing", "dispatch"},
		{"I want to return this shirt, it is damaged", "returns_refunds"},
		{"Please cancel my order and refund the money", "returns_refunds"},
		{"My payment was deducted twice", "finance"},
		{"Please send the GST invoice for my last bill", "finance"},
		{"The app keeps crashing on login", "technical"},
		{"Website is not working, showing an error", "technical"},
		{"How much does the premium pack cost?", "sales"},
		{"Do you have any discount offers for bulk purchase?", "sales"},
		{"I need to speak to customer care", "support"},
		{"I have a complaint", "support"},
		// Devanagari
		{"मेरा रिफंड कब आएगा", "returns_refunds"},
		{"इसकी कीमत क्या है", "sales"},
		// Nothing to go on
		{"Hi", "general"},
		{"Hello, good morning!", "general"},
		{"", "general"},
		{"👍", "general"},
		// Word-aware: keywords never match inside other words.
		{"happy birthday", "general"},     // not "app", not "pay"
		{"lately I feel good", "general"}, // not "late"
		{"separate topic", "general"},     // not "rate"
	}
	for _, c := range cases {
		t.Run(c.text, func(t *testing.T) {
			got, err := r.Classify(context.Background(), c.text)
			if err != nil {
				t.Fatal(err)
			}
			if got.Team != c.team {
				t.Errorf("team(%q) = %s, want %s", c.text, got.Team, c.team)
			}
		})
	}
}

func TestRulesTieBreakIsFixed(t *testing.T) {
	r := NewRules()
	// One keyword each for returns_refunds ("refund") and finance ("payment"): the fixed
	// priority picks returns_refunds, whatever the word order, every time.
	for range 50 {
		for _, s := range []string{"refund payment", "payment refund"} {
			if got := r.Team(s); got != "returns_refunds" {
				t.Fatalf("Team(%q) = %s, want returns_refunds", s, got)
			}
		}
	}
	// support is the least specific team: "issue" plus a specific word goes to the specific team.
	if got := r.Team("issue with delivery"); got != "dispatch" {
		t.Errorf("Team(issue with delivery) = %s, want dispatch", got)
	}
}

func TestSummarize(t *testing.T) {
	long := strings.Repeat("very long complaint about the order ", 10)
	cases := []struct{ in, want string }{
		{"mera order kab aayega", "mera order kab aayega"},
		{"Hi sir.\nMy order has not arrived yet. It was due Monday.", "My order has not arrived yet."},
		{"Hello! refund kab milega? order id 123", "refund kab milega?"},
		{"  lots   of\tspaces  ", "lots of spaces"},
		{"Hi", "Hi"},
		{"", ""},
		{"Version 2.5 of the app crashes", "Version 2.5 of the app crashes"},
		{"पैसे वापस चाहिए। ऑर्डर रद्द करें", "पैसे वापस चाहिए।"},
	}
	for _, c := range cases {
		if got := Summarize(c.in); got != c.want {
			t.Errorf("Summarize(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	got := Summarize(long)
	if n := utf8.RuneCountInString(got); n > SummaryMaxRunes || n < SummaryMaxRunes/2 {
		t.Errorf("long summary has %d runes: %q", n, got)
	}
	if !strings.HasSuffix(got, "…") || strings.Contains(got, "  ") {
		t.Errorf("long summary not cut at a word with an ellipsis: %q", got)
	}
}

func TestRulesThroughNew(t *testing.T) {
	c, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name() != KindRules {
		t.Fatalf("default classifier = %s, want rules", c.Name())
	}
	r, err := c.Classify(context.Background(), "Hi.\nPayment fail ho gaya, paise kat gaye")
	if err != nil || OutcomeOf(err) != OutcomeOK {
		t.Fatalf("Classify: %v", err)
	}
	want := Result{Summary: "Payment fail ho gaya, paise kat gaye", Team: "finance"}
	if r != want {
		t.Errorf("got %+v, want %+v", r, want)
	}
}
