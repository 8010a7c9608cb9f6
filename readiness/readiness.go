// Package readiness proves, read-only, that a recovery would work right
// now: images in the DR region, quotas, permissions, sources, cutover
// targets and Slack. Each check reports pass, warn or fail with the
// evidence and what to do; nothing here writes to any far end.
package readiness

import (
	"context"
	"time"

	"github.com/drbot/drbot/config"
)

// Status is a check's verdict.
type Status string

const (
	Pass Status = "pass" // ✅
	Warn Status = "warn" // ⚠️ works, but look at it
	Fail Status = "fail" // ❌ a recovery would break here
)

// Result is one check's verdict about one target.
type Result struct {
	Check    string   `json:"check"`  // stable id, e.g. "images", "quota.vcpu", "permissions.aws"; regressions are tracked by check+target
	Target   string   `json:"target"` // "" for checks that are not about one target (Slack)
	Title    string   `json:"title"`  // what was checked, for people
	Status   Status   `json:"status"`
	Evidence []string `json:"evidence,omitempty"` // what was looked at and what is wrong, naming the resources
	Fix      string   `json:"fix,omitempty"`      // what to do about a warn or fail
}

// Check is one read-only readiness check. Run returns one Result per
// target it was asked about (or one with Target "" for global checks).
type Check interface {
	ID() string
	Run(ctx context.Context, targets []*config.Target) []Result
}

// Report is one readiness run.
type Report struct {
	At      time.Time `json:"at"`
	Trigger string    `json:"trigger"` // "schedule", "cli", "slack:<user>"
	Results []Result  `json:"results"`
	// Regressions are the results that passed in the previous report and
	// fail in this one (filled when the report is saved).
	Regressions []Result `json:"regressions,omitempty"`
}
