package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
)

// PutRun writes a run.
func (t *Tx) PutRun(r Run) error {
	if r.ID == "" {
		return fmt.Errorf("writing run: empty id")
	}
	return t.putJSON(bucketRuns, []byte(r.ID), r)
}

// Run reads one run.
func (t *Tx) Run(id string) (Run, bool, error) {
	var r Run
	ok, err := t.getJSON(bucketRuns, []byte(id), &r)
	return r, ok, err
}

// Runs lists every run, oldest first.
func (t *Tx) Runs() ([]Run, error) {
	var out []Run
	err := t.tx.Bucket(bucketRuns).ForEach(func(k, v []byte) error {
		var r Run
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("decoding run %s: %w", k, err)
		}
		out = append(out, r)
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, err
}

// UnfinishedRuns lists runs that are not succeeded, failed or aborted.
func (t *Tx) UnfinishedRuns() ([]Run, error) {
	all, err := t.Runs()
	if err != nil {
		return nil, err
	}
	var out []Run
	for _, r := range all {
		if !r.Status.Finished() {
			out = append(out, r)
		}
	}
	return out, nil
}

func stepKey(runID, stepID string) []byte { return []byte(runID + "\x00" + stepID) }

// PutStep writes a step's journal entry.
func (t *Tx) PutStep(rec StepRecord) error {
	if rec.RunID == "" || rec.StepID == "" {
		return fmt.Errorf("writing step journal: run id %q and step id %q must both be set", rec.RunID, rec.StepID)
	}
	return t.putJSON(bucketSteps, stepKey(rec.RunID, rec.StepID), rec)
}

// Step reads a step's journal entry.
func (t *Tx) Step(runID, stepID string) (StepRecord, bool, error) {
	var rec StepRecord
	ok, err := t.getJSON(bucketSteps, stepKey(runID, stepID), &rec)
	return rec, ok, err
}

// Steps lists a run's journal entries, keyed by step id.
func (t *Tx) Steps(runID string) (map[string]StepRecord, error) {
	out := map[string]StepRecord{}
	prefix := []byte(runID + "\x00")
	c := t.tx.Bucket(bucketSteps).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var rec StepRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return nil, fmt.Errorf("decoding step %q: %w", k, err)
		}
		out[rec.StepID] = rec
	}
	return out, nil
}
