package gitlabfake_test

import (
	"net/http"
	"testing"

	"github.com/drbot/drbot/test/gitlabfake"
)

func TestInjectFaultsAnswers5xxToMatchingRequestsOnly(t *testing.T) {
	srv := gitlabfake.New(t)
	srv.AddToken("glpat-made-up-faults")
	srv.AddProject(project, "main")
	c := newClient(t, srv, "glpat-made-up-faults")

	srv.InjectFaults(gitlabfake.FaultPlan{Rate: 1, Seed: 3})
	_, _, err := c.Projects.GetProject(project, nil)
	if st := statusOf(t, err); st < 500 {
		t.Fatalf("GetProject at rate 1: status %d, want a 5xx", st)
	}
	if f := srv.InjectedFaults(); len(f) != 1 || f[0].Method != http.MethodGet {
		t.Errorf("InjectedFaults = %+v, want the one GET", f)
	}
	if n := len(srv.Calls()); n != 0 {
		t.Errorf("the failed request reached the stand-in (%d calls logged)", n)
	}

	srv.InjectFaults(gitlabfake.FaultPlan{Rate: 1, Only: func(r *http.Request) bool { return r.Method == http.MethodPost }})
	if _, _, err := c.Projects.GetProject(project, nil); err != nil {
		t.Errorf("GetProject outside Only: %v", err)
	}
}
