package cutover_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/drbot/drbot/recovery/cutover"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/awsfake/edge"
)

const (
	crashDirEnv  = "DRBOT_CUTOVER_CRASH_DIR"
	crashModeEnv = "DRBOT_CUTOVER_CRASH_MODE"
)

// crashModes say where the child dies: at the second hosted zone's batch
// (before sending it, or after AWS applied it but before the answer was
// journaled), or right after AWS made the REST or HTTP API deployment.
var crashModes = map[string]struct {
	method, pathPrefix, pathSuffix string
	nth                            int32
	send                           bool
	batches                        int    // Route 53 batches AWS got before the kill
	resumed                        string // apply's resume line
}{
	"before-send":       {"POST", "/2013-04-01/hostedzone/", "/rrset", 2, false, 1, "4 of 14 rows"},
	"after-send":        {"POST", "/2013-04-01/hostedzone/", "/rrset", 2, true, 2, "4 of 14 rows"},
	"after-rest-deploy": {"POST", "/restapis/", "/deployments", 1, true, 3, "12 of 14 rows"},
	"after-http-deploy": {"POST", "/v2/apis/", "/deployments", 1, true, 3, "13 of 14 rows"},
}

// TestCrashChild is not a test on its own: TestApplyResumesAfterSIGKILL
// runs the test binary as a child that starts a cutover against the
// parent's AWS stand-in and SIGKILLs itself where crashModes says.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("child process of TestApplyResumesAfterSIGKILL only")
	}
	raw, err := os.ReadFile(filepath.Join(dir, "world.json"))
	if err != nil {
		t.Fatal(err)
	}
	var w world
	if err := json.Unmarshal(raw, &w); err != nil {
		t.Fatal(err)
	}
	mode := crashModes[os.Getenv(crashModeEnv)]
	h := newHook()
	var seen atomic.Int32
	h.set(func(r *http.Request, send func() (*http.Response, error)) (*http.Response, error) {
		if r.Method != mode.method || !strings.HasPrefix(r.URL.Path, mode.pathPrefix) || !strings.HasSuffix(r.URL.Path, mode.pathSuffix) || seen.Add(1) != mode.nth {
			return send()
		}
		if mode.send {
			if _, err := send(); err != nil {
				t.Logf("sending the batch: %v", err)
			}
		}
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	})
	store, err := state.Open(filepath.Join(dir, "drbot.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hn := newHarness(t, store, steps(newCutover(t, w, fastOptions(w, h)), healthy))
	res := hn.settle(hn.start())
	t.Fatalf("the child was meant to die (%s); the run ended %s", os.Getenv(crashModeEnv), res.Run.Status)
}

func TestApplyResumesAfterSIGKILL(t *testing.T) {
	for _, mode := range []string{"before-send", "after-send", "after-rest-deploy", "after-http-deploy"} {
		t.Run(mode, func(t *testing.T) {
			srv := newServer(t, edge.Options{Route53SyncDelay: 50 * time.Millisecond})
			w := seedWorld(t, srv)
			before := take(srv, w)
			dir := t.TempDir()
			raw, _ := json.Marshal(w)
			if err := os.WriteFile(filepath.Join(dir, "world.json"), raw, 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashModeEnv+"="+mode)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child: %v, want killed by SIGKILL; output:\n%s", err, out)
			}
			if got := mutations(srv.Calls())["route53:ChangeResourceRecordSets"]; got != crashModes[mode].batches {
				t.Fatalf("batches before the kill = %d, want %d", got, crashModes[mode].batches)
			}

			// drbot restarts: a new process resumes the run from the same state file.
			store, err := state.Open(filepath.Join(dir, "drbot.db"), state.Options{LockTimeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = store.Close() })
			c := newCutover(t, w, fastOptions(w, newHook()))
			hn := newHarness(t, store, steps(c, healthy))
			resumed, err := hn.eng.Resume()
			if err != nil || len(resumed) != 1 {
				t.Fatalf("resume = %v, %v; want the killed run", resumed, err)
			}
			res := hn.settle(resumed[0].ID)
			mustSucceed(t, res)

			if got := mutations(srv.Calls()); !reflect.DeepEqual(got, wantMutations) {
				t.Errorf("change calls over both lives = %v, want %v: every row changed once", got, wantMutations)
			}
			if got := changedRecords(before, take(srv, w)); len(got) != 10 {
				t.Errorf("changed records = %v, want the 10 configured", got)
			}
			p := strings.Join(res.Progress(cutover.StepApply), "\n")
			if !strings.Contains(p, "resuming the cutover: "+crashModes[mode].resumed) {
				t.Errorf("apply progress does not show the resume:\n%s", p)
			}
			if mode == "after-send" && !strings.Contains(p, "(changed by an earlier attempt)") {
				t.Errorf("apply progress does not show the second zone's rows as sent before the kill:\n%s", p)
			}

			// The journaled rollback record still holds the originals: rolling back restores them exactly.
			if _, err := c.Rollback(ctxT(t), res.Run.ID, res.Steps[cutover.StepPlan].Outputs[cutover.OutRollback], nil); err != nil {
				t.Fatalf("rollback: %v", err)
			}
			after := take(srv, w)
			if !reflect.DeepEqual(after, before) {
				t.Errorf("after rollback the world differs from before the cutover; records changed: %v", changedRecords(before, after))
			}
		})
	}
}
