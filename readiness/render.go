package readiness

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Headline is the report's first line: score, counts, when and why.
func (r Report) Headline() string {
	passed, total := r.Score()
	parts := []string{fmt.Sprintf("%d/%d passed", passed, total)}
	if n := r.Count(Fail); n > 0 {
		parts = append(parts, fmt.Sprintf("%d %s", n, Fail.Emoji()))
	}
	if n := r.Count(Warn); n > 0 {
		parts = append(parts, fmt.Sprintf("%d %s", n, Warn.Emoji()))
	}
	return fmt.Sprintf("Readiness %s · %s (%s)", strings.Join(parts, " · "), r.At.UTC().Format("2006-01-02 15:04 UTC"), r.Trigger)
}

// Label is "check" or "check [target]".
func (r Result) Label() string {
	if r.Target == "" {
		return r.Check
	}
	return r.Check + " [" + r.Target + "]"
}

// WriteText writes the report for a terminal: the headline, the
// regressions, then one block per result, failing first, with evidence
// and fix for anything that did not pass.
func WriteText(w io.Writer, r Report) error {
	var b strings.Builder
	b.WriteString(r.Headline() + "\n")
	if len(r.Regressions) > 0 {
		labels := make([]string, len(r.Regressions))
		for i, res := range r.Regressions {
			labels[i] = res.Label()
		}
		fmt.Fprintf(&b, "Regressions since the last check: %s\n", strings.Join(labels, ", "))
	}
	for _, res := range r.Results {
		fmt.Fprintf(&b, "%s %s — %s\n", res.Status.Emoji(), res.Label(), res.Title)
		if res.Status == Pass {
			continue
		}
		for _, e := range res.Evidence {
			fmt.Fprintf(&b, "    - %s\n", e)
		}
		if res.Fix != "" {
			fmt.Fprintf(&b, "    fix: %s\n", res.Fix)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Summary is one line about the last report for the plan and /dr start:
// its score, what failed and how old it is.
func Summary(r Report, now time.Time) string {
	passed, total := r.Score()
	age := Age(now.Sub(r.At))
	if !r.Failed() {
		return fmt.Sprintf("Last readiness check %s ago: %d/%d passed, nothing would break.", age, passed, total)
	}
	var failing []string
	for _, res := range r.Results {
		if res.Status == Fail {
			failing = append(failing, res.Label())
		}
	}
	if len(failing) > 6 {
		failing = append(failing[:6], fmt.Sprintf("and %d more", len(failing)-6))
	}
	return fmt.Sprintf("Last readiness check %s ago: %d/%d passed; %s found: %s.", age, passed, total, Fail.Emoji(), strings.Join(failing, ", "))
}

// Age is a coarse age for people: "40s", "12m", "3h", "2d".
func Age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(max(d, 0)/time.Second)) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + "d"
}
