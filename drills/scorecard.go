package drills

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

// Score is one finished run's numbers.
type Score struct {
	Run     state.Run
	TTR     time.Duration
	Phases  map[recovery.Phase]time.Duration
	Steps   map[string]time.Duration
	Slowest recovery.Phase
}

// Scores reads every finished run, oldest first; only succeeded drills
// feed the medians.
func Scores(store *state.Store, book *recovery.Runbook) ([]Score, error) {
	var out []Score
	err := store.View(func(tx *state.Tx) error {
		runs, err := tx.Runs()
		if err != nil {
			return err
		}
		for _, run := range runs {
			if !run.Status.Finished() || run.Mode == state.ModePlan {
				continue
			}
			recs, err := tx.Steps(run.ID)
			if err != nil {
				return err
			}
			mb := book.ForMode(run.Mode)
			sc := Score{Run: run, TTR: run.FinishedAt.Sub(run.StartedAt), Phases: recovery.PhaseDurations(mb, recs), Steps: map[string]time.Duration{}}
			for id, rec := range recs {
				if st, en := recovery.StepSpan(rec); !st.IsZero() && !en.IsZero() && rec.Status == state.StepSucceeded {
					sc.Steps[id] = en.Sub(st)
				}
			}
			for p, d := range sc.Phases {
				if d > sc.Phases[sc.Slowest] || sc.Slowest == "" {
					sc.Slowest = p
				}
			}
			out = append(out, sc)
		}
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Run.StartedAt.Before(out[j].Run.StartedAt) })
	return out, err
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// previousDrills are the last n succeeded drills that started before run.
func previousDrills(scores []Score, before time.Time, n int) []Score {
	var out []Score
	for i := len(scores) - 1; i >= 0 && len(out) < n; i-- {
		if scores[i].Run.Mode == state.ModeDrill && scores[i].Run.Status == state.RunSucceeded && scores[i].Run.StartedAt.Before(before) {
			out = append(out, scores[i])
		}
	}
	return out
}

// Regressions names the phases of a run more than 20 % slower than their
// median over the last five drills, with the numbers.
func Regressions(scores []Score, run Score) []string {
	prev := previousDrills(scores, run.Run.StartedAt, 5)
	if len(prev) == 0 {
		return nil
	}
	var out []string
	for _, p := range recovery.Phases {
		d, ok := run.Phases[p]
		if !ok {
			continue
		}
		var hist []time.Duration
		for _, s := range prev {
			if h, ok := s.Phases[p]; ok {
				hist = append(hist, h)
			}
		}
		m := median(hist)
		if m <= 0 || float64(d) <= 1.2*float64(m) {
			continue
		}
		out = append(out, fmt.Sprintf("phase %s took %s, %d%% slower than its median of %s over the last %d drill(s)",
			p, short(d), int(100*(float64(d)-float64(m))/float64(m)), short(m), len(hist)))
	}
	return out
}

// MeasuredEstimates are per-step medians over the last five drills, for
// plan's estimate once there is history.
func MeasuredEstimates(scores []Score) map[string]time.Duration {
	prev := previousDrills(scores, time.Now().Add(time.Hour*24*365*100), 5)
	hist := map[string][]time.Duration{}
	for _, s := range prev {
		for id, d := range s.Steps {
			hist[id] = append(hist[id], d)
		}
	}
	out := map[string]time.Duration{}
	for id, ds := range hist {
		out[id] = median(ds)
	}
	return out
}

// WriteHistory prints the scorecard: one line per run, newest first, with
// each phase's trend against the median of the drills before it.
func WriteHistory(w io.Writer, scores []Score, budget time.Duration) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DATE\tMODE\tTARGET\tMTTR\tBUDGET\tSLOWEST PHASE\tTREND (vs median of last 5 drills)")
	for i := len(scores) - 1; i >= 0; i-- {
		s := scores[i]
		pct := "-"
		if budget > 0 {
			pct = fmt.Sprintf("%d%%", int(100*s.TTR/budget))
		}
		var trend []string
		prev := previousDrills(scores, s.Run.StartedAt, 5)
		for _, p := range recovery.Phases {
			d, ok := s.Phases[p]
			if !ok || len(prev) == 0 {
				continue
			}
			var hist []time.Duration
			for _, q := range prev {
				if h, ok := q.Phases[p]; ok {
					hist = append(hist, h)
				}
			}
			if m := median(hist); m > 0 {
				trend = append(trend, fmt.Sprintf("%s %+d%%", p, int(100*(float64(d)-float64(m))/float64(m))))
			}
		}
		t := strings.Join(trend, ", ")
		if t == "" {
			t = "-"
		}
		mode := string(s.Run.Mode)
		if s.Run.Status != state.RunSucceeded {
			mode += " (" + string(s.Run.Status) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s %s\t%s\n", s.Run.StartedAt.UTC().Format("2006-01-02 15:04"), mode, s.Run.Target,
			short(s.TTR), pct, s.Slowest, short(s.Phases[s.Slowest]), t)
	}
	return tw.Flush()
}
