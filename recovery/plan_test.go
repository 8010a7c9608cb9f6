package recovery

import (
	"strings"
	"testing"
	"time"
)

func TestScheduleFindsTheLongestChainAndTheSequentialSum(t *testing.T) {
	rb, err := NewRunbook([]Step{
		{ID: "slow", Phase: PhaseProvision, Estimate: 10 * time.Minute, Action: ok},
		{ID: "fast", Phase: PhaseProvision, Estimate: time.Minute, Action: ok},
		{ID: "join", Phase: PhaseDeploy, DependsOn: []string{"fast", "slow"}, Estimate: 2 * time.Minute, Action: ok},
		{ID: "side", Phase: PhaseDeploy, DependsOn: []string{"fast"}, Estimate: 3 * time.Minute, Action: ok},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := rb.Schedule()
	if s.Total != 12*time.Minute || s.Sequential != 16*time.Minute {
		t.Fatalf("total=%s sequential=%s, want 12m and 16m", s.Total, s.Sequential)
	}
	if strings.Join(s.CriticalPath, ",") != "slow,join" {
		t.Errorf("critical path = %v", s.CriticalPath)
	}
	var b strings.Builder
	if err := WritePlan(&b, "", s, 60*time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Critical path (*): slow → join", "Estimated time to recover: 12m", "Sequential sum:            16m", "within budget, 20%"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("plan output lacks %q:\n%s", want, b.String())
		}
	}
}
