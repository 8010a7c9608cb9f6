package state

import "fmt"

// Decide records d under d.Key unless a decision is already there
// (compare-and-set). It returns the decision that stands and whether d won;
// a later decision is a no-op that reports who decided first.
func (t *Tx) Decide(d Decision) (Decision, bool, error) {
	if d.Key == "" {
		return Decision{}, false, fmt.Errorf("recording decision: empty key")
	}
	var prior Decision
	ok, err := t.getJSON(bucketDecisions, []byte(d.Key), &prior)
	if err != nil {
		return Decision{}, false, err
	}
	if ok {
		return prior, false, nil
	}
	if d.DecidedAt.IsZero() {
		d.DecidedAt = t.now
	}
	if err := t.putJSON(bucketDecisions, []byte(d.Key), d); err != nil {
		return Decision{}, false, err
	}
	return d, true, nil
}

// Decision reads the decision recorded under key.
func (t *Tx) Decision(key string) (Decision, bool, error) {
	var d Decision
	ok, err := t.getJSON(bucketDecisions, []byte(key), &d)
	return d, ok, err
}
