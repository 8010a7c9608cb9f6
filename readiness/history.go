package readiness

import (
	"encoding/json"
	"fmt"

	"github.com/drbot/drbot/state"
)

// Save records rep in the state, with its regressions against the
// previous report filled in, and returns it as saved.
func Save(store *state.Store, rep Report) (Report, error) {
	err := store.Update(func(tx *state.Tx) (err error) {
		rep, err = SaveTx(tx, rep)
		return err
	})
	if err != nil {
		return rep, fmt.Errorf("saving the readiness report: %w", err)
	}
	return rep, nil
}

// SaveTx is Save inside a transaction (the scheduler enqueues the
// report's message in the same one).
func SaveTx(tx *state.Tx, rep Report) (Report, error) {
	var prev Report
	ok, err := tx.LatestReadiness(&prev)
	if err != nil {
		return rep, err
	}
	if ok {
		rep.Regressions = Regressions(&prev, rep)
	}
	return rep, tx.SaveReadiness(rep.At, rep)
}

// Latest is the newest saved report.
func Latest(store *state.Store) (Report, bool, error) {
	var rep Report
	var ok bool
	err := store.View(func(tx *state.Tx) (err error) {
		ok, err = tx.LatestReadiness(&rep)
		return err
	})
	return rep, ok, err
}

// List is the newest limit saved reports (all when limit ≤ 0), oldest first.
func List(store *state.Store, limit int) ([]Report, error) {
	var raws []json.RawMessage
	_ = store.View(func(tx *state.Tx) error { raws = tx.ReadinessReports(limit); return nil })
	out := make([]Report, 0, len(raws))
	for _, raw := range raws {
		var r Report
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("decoding a readiness report: %w", err)
		}
		out = append(out, r)
	}
	return out, nil
}
