package recovery

import (
	"time"

	"github.com/drbot/drbot/state"
)

// StepSpan is when a step first started and when it finished (zero
// times when it did not).
func StepSpan(rec state.StepRecord) (start, end time.Time) {
	start = rec.StartedAt
	if len(rec.History) > 0 {
		start = rec.History[0].StartedAt
	}
	return start, rec.FinishedAt
}

// PhaseDurations measures each phase of a run from its journal: from the
// first start of one of its steps to the last finish.
func PhaseDurations(book *Runbook, recs map[string]state.StepRecord) map[Phase]time.Duration {
	starts, ends := map[Phase]time.Time{}, map[Phase]time.Time{}
	for _, s := range book.Steps() {
		st, en := StepSpan(recs[s.ID])
		if st.IsZero() || en.IsZero() {
			continue
		}
		if cur, ok := starts[s.Phase]; !ok || st.Before(cur) {
			starts[s.Phase] = st
		}
		if en.After(ends[s.Phase]) {
			ends[s.Phase] = en
		}
	}
	out := map[Phase]time.Duration{}
	for p, st := range starts {
		out[p] = ends[p].Sub(st)
	}
	return out
}
