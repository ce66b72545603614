package classify

import (
	"context"
	"strings"
	"unicode"
	"unicode/utf8"
)

// SummaryMaxRunes bounds the one-line summary the rules classifier derives from the text.
const SummaryMaxRunes = 120

// teamPriority breaks score ties deterministically: the more specific, more actionable teams win
// over the catch-all ones ("payment ka refund" is a refund before it is a payment question).
var teamPriority = []string{"returns_refunds", "finance", "dispatch", "technical", "sales", "support"}

// keywords per team. A keyword is one word or a phrase of words; a word ending in '*' matches any
// word starting with it. Matching is word-aware (never inside a word) and runs on normalized
// words (see normWord), so Hinglish spellings such as "aayega"/"ayega" or "paisaa"/"paisa" meet.
//
// Each match scores 2 plus 1 per extra word, so the phrase "paisa wapas" (returns, 3 + "wapas" 2)
// outweighs "paisa" (finance, 2). A keyword marked '~' is weak and scores 1: it says how, not
// what ("kab aayega" is asked of orders, refunds and money alike), so the subject decides.
var keywords = map[string][]string{
	"returns_refunds": {
		"refund*", "return*", "wapas", "vapas", "wapis", "vapis", "lauta*",
		"paisa wapas", "paise wapas", "paisa vapas", "paise vapas", "money back", "exchange*",
		"replace*", "damaged", "damage", "defective", "broken", "torn", "toota",
		"tuta", "tuta hua", "toota hua", "galat product", "galat item", "wrong item", "wrong product",
		"wrong size", "cancel*", "rifand",
		"रिफंड", "वापस", "वापसी", "बदलना", "खराब",
	},
	"finance": {
		"payment*", "pay", "paid", "paying", "paytm", "gpay", "phonepe", "upi", "invoice*", "bill",
		"billing", "bills", "gst", "emi", "transaction*", "txn", "debit*", "deduct*", "charged",
		"overcharged", "double charged", "credit card", "debit card", "bank", "wallet", "receipt",
		"paisa", "paise", "paisa kat", "paise kat", "paisa kata", "paise kate", "kat gaya",
		"kat gaye", "payment fail*", "payment nahi", "~amount", "~balance", "cashback",
		"भुगतान", "पेमेंट", "बिल",
	},
	"dispatch": {
		"deliver*", "shipping", "shipped", "shipment", "ship", "courier", "dispatch*", "track*",
		"parcel", "awb", "order kab", "order kab milega",
		"~kab aayega", "~kab aega", "~nahi aaya", "~abhi tak nahi", "pahunch*", "pohoch*",
		"where is my order", "order status", "~not received", "~not yet received", "~not arrived",
		"out for delivery", "~delay*", "~late", "~address", "~pincode", "~pin code",
		"डिलीवरी", "ऑर्डर कब", "~कब आएगा",
	},
	"technical": {
		"app", "application", "website", "site", "login", "log in", "logout", "otp", "password",
		"error", "bug", "crash*", "not working", "nahi chal", "nahi chal raha", "nahi chalta",
		"chal nahi", "kaam nahi", "kaam nahi kar", "band ho", "hang", "hanging", "freez*",
		"loading", "load nahi", "install*", "uninstall*", "server", "glitch", "technical",
		"link", "open nahi", "khul nahi", "nahi khul", "signup", "sign up", "sign in",
		"ऐप", "वेबसाइट", "लॉगिन",
	},
	"sales": {
		"price*", "pricing", "cost", "costs", "rate", "rates", "kitne", "kitna", "kitne ka",
		"kitne ki", "kitne ka hai", "how much", "buy", "buying", "purchase", "kharid*", "lena hai",
		"discount*", "offer*", "deal", "deals", "coupon*", "quote", "quotation", "bulk",
		"wholesale", "available", "availability", "in stock", "stock", "catalog*",
		"demo", "brochure", "daam", "kya rate", "price kya",
		"कीमत", "दाम", "खरीद*",
	},
	"support": {
		"help", "madad", "sahayata", "complaint", "complain", "problem", "issue", "dikkat",
		"pareshani", "samasya", "support", "agent", "executive", "customer care",
		"customer service", "call me", "call back", "callback", "baat karni", "baat karo",
		"contact", "speak to", "talk to", "query",
		"मदद", "शिकायत", "समस्या",
	},
}

// greetingWords make a sentence skippable when choosing the summary sentence: "Hi sir. My order
// is late." is summarized by its second sentence.
var greetingWords = normSet("hi", "hello", "hey", "namaste", "namaskar", "good", "morning",
	"afternoon", "evening", "sir", "madam", "maam", "ji", "dear", "team", "bhai", "bhaiya", "there",
	"all", "नमस्ते", "जी")

func normSet(ws ...string) map[string]bool {
	m := make(map[string]bool, len(ws))
	for _, w := range ws {
		m[normWord(w)] = true
	}
	return m
}

type keyword struct {
	team   string
	words  []string // normalized; a trailing '*' means prefix match
	weight int
}

// Rules is the offline, deterministic, keyword-based classifier (CLASSIFIER=rules, the default).
type Rules struct {
	byFirst map[string][]keyword // keywords whose first word is exact, by that word
	prefix  []keyword            // keywords whose first word is a prefix pattern
}

// NewRules builds the rules classifier from the built-in keyword table.
func NewRules() *Rules {
	r := &Rules{byFirst: map[string][]keyword{}}
	// Walk teams in a fixed order so the keyword list never depends on map iteration order, and
	// drop keywords that normalize to the same words ("aayega", "ayega") so none counts twice.
	seen := map[string]bool{}
	for _, team := range teamPriority {
		for _, k := range keywords[team] {
			k, weak := strings.CutPrefix(k, "~")
			ws := words(k)
			if len(ws) == 0 {
				continue
			}
			if strings.HasSuffix(k, "*") {
				ws[len(ws)-1] += "*"
			}
			key := strings.Join(ws, " ")
			if seen[key] {
				continue
			}
			seen[key] = true
			w := 1 + len(ws)
			if weak {
				w = 1
			}
			kw := keyword{team: team, words: ws, weight: w}
			if strings.HasSuffix(ws[0], "*") {
				r.prefix = append(r.prefix, kw)
			} else {
				r.byFirst[ws[0]] = append(r.byFirst[ws[0]], kw)
			}
		}
	}
	return r
}

// Classify never fails and never blocks.
func (r *Rules) Classify(_ context.Context, text string) (Result, error) {
	return Result{Summary: Summarize(text), Team: r.Team(text)}, nil
}

// Team returns the team whose keywords score highest in text, ties broken by teamPriority, and
// general when nothing matches.
func (r *Rules) Team(text string) string {
	ws := words(clip(text))
	if len(ws) == 0 {
		return TeamGeneral
	}
	score := make(map[string]int, len(teamPriority))
	for i := range ws {
		for _, k := range r.byFirst[ws[i]] {
			if len(k.words) <= len(ws)-i && matchAt(ws[i:], k.words) {
				score[k.team] += k.weight
			}
		}
		for _, k := range r.prefix {
			if len(k.words) <= len(ws)-i && matchAt(ws[i:], k.words) {
				score[k.team] += k.weight
			}
		}
	}
	best, bestScore := TeamGeneral, 0
	for _, team := range teamPriority {
		if score[team] > bestScore {
			best, bestScore = team, score[team]
		}
	}
	return best
}

func matchAt(ws, pattern []string) bool {
	for j, p := range pattern {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if !strings.HasPrefix(ws[j], prefix) {
				return false
			}
		} else if ws[j] != p {
			return false
		}
	}
	return true
}

// words splits s into normalized words: letters, digits and combining marks (Devanagari vowel
// signs are marks, not letters) form words; everything else separates them.
func words(s string) []string {
	var out []string
	start := -1
	for i, c := range s {
		in := unicode.IsLetter(c) || unicode.IsDigit(c) || unicode.IsMark(c)
		if in && start < 0 {
			start = i
		}
		if !in && start >= 0 {
			out = append(out, normWord(s[start:i]))
			start = -1
		}
	}
	if start >= 0 {
		out = append(out, normWord(s[start:]))
	}
	return out
}

// normWord lowercases w and collapses runs of the same letter, because romanized Hindi has no
// fixed spelling ("aayega", "ayega", "paisaa", "plzzz"). Keywords go through the same function,
// so "refund" and "call" still match themselves.
func normWord(w string) string {
	var b strings.Builder
	b.Grow(len(w))
	var prev rune = -1
	for _, c := range strings.ToLower(w) {
		if c == prev {
			continue
		}
		b.WriteRune(c)
		prev = c
	}
	return b.String()
}

// Summarize returns one line describing text: its first sentence that is not only a greeting,
// whitespace collapsed, cut at a word boundary to about SummaryMaxRunes.
func Summarize(text string) string {
	sentences := splitSentences(clip(text))
	if len(sentences) == 0 {
		return ""
	}
	pick := sentences[0]
	for _, s := range sentences {
		if !onlyGreeting(s) {
			pick = s
			break
		}
	}
	return cutWords(pick, SummaryMaxRunes)
}

func onlyGreeting(s string) bool {
	for _, w := range words(s) {
		if !greetingWords[w] {
			return false
		}
	}
	return true
}

// splitSentences splits at line breaks and at '.', '?', '!' or the Devanagari danda followed by
// a space, keeping the punctuation; each sentence is returned as one clean line.
func splitSentences(text string) []string {
	var out []string
	var cur []rune
	flush := func() {
		if s := oneLine(string(cur)); s != "" {
			out = append(out, s)
		}
		cur = cur[:0]
	}
	rs := []rune(text)
	for i, c := range rs {
		if c == '\n' || c == '\r' || c == '\u2028' || c == '\u2029' {
			flush()
			continue
		}
		cur = append(cur, c)
		if (c == '.' || c == '?' || c == '!' || c == '।') && (i+1 == len(rs) || unicode.IsSpace(rs[i+1])) {
			flush()
		}
		if len(out) >= 8 { // the summary only ever looks at the first few sentences
			break
		}
	}
	flush()
	return out
}

// oneLine collapses all whitespace runs into one space, drops control and invalid characters and
// trims the ends.
func oneLine(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, c := range s {
		switch {
		case c == utf8.RuneError:
			continue
		case unicode.IsSpace(c):
			space = true
			continue
		case unicode.IsControl(c) || c == '\u200b' || c == '\ufeff':
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(c)
	}
	return b.String()
}

// cutWords shortens a one-line s to at most n runes, at the last word boundary when there is one
// in the second half, ending with an ellipsis.
func cutWords(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)[:n-1]
	if i := lastSpace(r); i > n/2 {
		r = r[:i]
	}
	return strings.TrimRightFunc(string(r), func(c rune) bool {
		return unicode.IsSpace(c) || unicode.IsPunct(c)
	}) + "…"
}

func lastSpace(r []rune) int {
	for i := len(r) - 1; i >= 0; i-- {
		if r[i] == ' ' {
			return i
		}
	}
	return -1
}
