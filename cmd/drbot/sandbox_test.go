package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/drbot/drbot/bot"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/test/slackfake"
)

// sandboxRun runs `drbot sandbox args…` with stdin and returns what it
// printed; it skips when the control-plane binaries are not built (outside CI).
func sandboxRun(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs two Kubernetes control planes and a whole recovery")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	began := time.Now()
	err := runSandbox(ctx, append([]string{"-dir", t.TempDir()}, args...), strings.NewReader(stdin), &stdout, &stderr)
	t.Logf("drbot sandbox %s: %s, err %v", strings.Join(args, " "), time.Since(began).Round(100*time.Millisecond), err)
	if err != nil && strings.Contains(err.Error(), "make sandbox") && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	if stderr.Len() > 0 {
		t.Errorf("the sandbox wrote to stderr (drbot's logs belong in the file):\n%s", stderr.String())
	}
	return stdout.String(), err
}

func requireInTranscript(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("the transcript lacks %q", w)
		}
	}
	if t.Failed() {
		t.Logf("transcript:\n%s", out)
	}
}

func TestSandboxShowsEveryPhaseBothGatesAndThePostMortemAndExitsZero(t *testing.T) {
	out, err := sandboxRun(t, "", "-services", "20")
	if err != nil {
		t.Fatalf("sandbox: %v\n%s", err, out)
	}
	requireInTranscript(t, out,
		"/dr start prod-eu",
		"Phase 1 · Provision", "Phase 2 · Bootstrap", "Phase 3 · Deploy", "Phase 4 · Cutover", "Phase 5 · Close",
		"[provision] ✓ cluster.create succeeded", "[deploy] ✓ deploy.watch succeeded", "[cutover] ✓ endpoints.verify succeeded",
		"Approval needed — merge gate", "Approval needed — cutover gate",
		"→ Approved by @lead",
		"board │ ✓ SUCCEEDED",
		"# Post-mortem: DR recovery of prod-eu", "Outcome: **succeeded**",
		"Recovered 20 services in",
	)
	if n := strings.Count(out, "@lead pressed [Approve]"); n != 2 {
		t.Errorf("the lead approved %d times, want the merge and the cutover gate", n)
	}
	// Plain lines for a pipe: no cursor movement, and 80 columns.
	if strings.Contains(out, "\x1b[") {
		t.Error("the transcript for a non-terminal holds ANSI escapes")
	}
	for i, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "  /") || strings.HasPrefix(l, "  drbot ") {
			continue // paths and commands stay whole for copying
		}
		if n := utf8.RuneCountInString(l); n > sandboxWidth {
			t.Errorf("line %d is %d columns wide: %q", i+1, n, l)
		}
	}
	// It names the state file, and the file is there.
	i := strings.Index(out, "State file:\n")
	if i < 0 {
		t.Fatal("the transcript does not say where the state file is")
	}
	path := strings.TrimSpace(strings.SplitN(out[i+len("State file:\n"):], "\n", 2)[0])
	if st, err := os.Stat(path); err != nil || st.Size() == 0 {
		t.Errorf("state file %s: %v", path, err)
	}
}

func TestSandboxFailStopsNonInteractivelyAtTheFailedStep(t *testing.T) {
	out, err := sandboxRun(t, "", "-services", "4", "-fail", "addons.istio")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("sandbox -fail: err = %v, want exit code 1\n%s", err, out)
	}
	if !strings.Contains(ee.msg, "blocked at addons.istio") || !strings.Contains(ee.msg, "-interactive") {
		t.Errorf("the exit message %q does not say where the run stopped and what to do", ee.msg)
	}
	requireInTranscript(t, out, "addons.istio failed", "injected failure", "[Retry] [Skip] [Abort run]", "board │ !! BLOCKED")
	if strings.Contains(out, "Approval needed — merge gate") {
		t.Error("the merge gate opened although addons.istio, which it depends on, failed")
	}
}

func TestSandboxInteractiveRetryAtTheFailedStepCompletesTheRun(t *testing.T) {
	// r: retry addons.istio; a, a: approve the merge and the cutover gate.
	out, err := sandboxRun(t, "r\na\na\n", "-services", "4", "-fail", "addons.istio", "-interactive")
	if err != nil {
		t.Fatalf("sandbox -interactive: %v\n%s", err, out)
	}
	requireInTranscript(t, out,
		"addons.istio failed", "Your call as @oncall: [r]etry, [s]kip or [a]bort?", "@oncall pressed [Retry]",
		"→ Retried by @oncall", "[bootstrap] ✓ addons.istio succeeded",
		"Your call as @lead: [a]pprove or [r]eject?", "Outcome: **succeeded**", "Recovered 4 services in",
	)
	if n := strings.Count(out, "@lead pressed [Approve]"); n != 2 {
		t.Errorf("the keyboard approved %d gates, want 2", n)
	}
}

func TestSandboxInteractiveRejectAtTheMergeGateThenAbortEndsTheRunAborted(t *testing.T) {
	// r + reason: reject the merge gate; a: abort at the failure the rejection leaves.
	out, err := sandboxRun(t, "r\nnot today\na\n", "-services", "3", "-interactive")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(ee.msg, "aborted") {
		t.Fatalf("err = %v, want exit code 1 for an aborted run\n%s", err, out)
	}
	requireInTranscript(t, out,
		"@lead pressed [Reject…]", "→ Rejected by @lead", "not today",
		"Your call as @oncall: [r]etry, [s]kip or [a]bort?", "@oncall pressed [Abort run]",
		"board │ ⊘ ABORTED", "- Outcome: **aborted** by <@U0ONCALL> at ", "- Aborted at: ",
	)
	// The post-mortem step's upload after the abort (the line is wrapped at 80 columns).
	if !strings.Contains(strings.Join(strings.Fields(out), " "), "drbot uploaded it to the channel as postmortem-") {
		t.Error("the sandbox did not wait for the post-mortem the step uploaded after the abort")
	}
	// The post-mortem step still runs after the abort, though the steps it
	// depends on never ran.
	abort, written := strings.Index(out, "@oncall pressed [Abort run]"), strings.Index(out, "✓ postmortem succeeded")
	if written < 0 || written < abort {
		t.Errorf("the post-mortem step did not run after the abort (abort at %d, post-mortem at %d)\n%s", abort, written, out)
	}
}

func TestSandboxFailRejectsAnUnknownStepBeforeStartingAnything(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := runSandbox(context.Background(), []string{"-fail", "addons.nope"}, strings.NewReader(""), &stdout, &stderr)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(ee.msg, "addons.istio") {
		t.Fatalf("err = %v, want a usage error listing the steps", err)
	}
}

// The sandbox and the control planes it starts open sockets on loopback
// only: sampled from /proc while a whole run goes.
func TestSandboxOpensOnlyLoopbackSockets(t *testing.T) {
	if _, err := os.Stat("/proc/self/net/tcp"); err != nil {
		t.Skip("needs Linux /proc")
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[string]bool{}
	var bad []string
	wg.Go(func() {
		for ctx.Err() == nil {
			socks, err := processSockets()
			mu.Lock()
			if err != nil {
				bad = append(bad, err.Error())
			}
			for _, s := range socks {
				if !seen[s.String()] {
					seen[s.String()] = true
					if !s.loopbackOnly() {
						bad = append(bad, s.String())
					}
				}
			}
			mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	out, err := sandboxRun(t, "", "-services", "4")
	cancel()
	wg.Wait()
	if err != nil {
		t.Fatalf("sandbox: %v\n%s", err, out)
	}
	mu.Lock()
	defer mu.Unlock()
	var listeners, children int
	for k := range seen {
		if strings.Contains(k, " listen ") {
			listeners++
		}
		if !strings.HasPrefix(k, fmt.Sprintf("pid %d ", os.Getpid())) {
			children++
		}
	}
	// Slack, AWS, GitLab and Vault listen in this process, each cluster's
	// etcd and API server in its own.
	if listeners < 6 || children == 0 {
		t.Fatalf("sampled %d sockets, %d listening, %d of child processes: the sampler did not see the run", len(seen), listeners, children)
	}
	for _, b := range bad {
		t.Errorf("socket outside 127.0.0.0/8: %s", b)
	}
	t.Logf("%d sockets sampled, %d listening, %d of the control planes", len(seen), listeners, children)
}

// procSocket is one TCP or UDP socket of this process or a descendant.
type procSocket struct {
	pid           int
	proto         string
	local, remote net.IP
	lport, rport  int
	listen        bool
}

func (s procSocket) String() string {
	state := "conn"
	if s.listen {
		state = "listen"
	}
	return fmt.Sprintf("pid %d %s %s %s:%d → %s:%d", s.pid, s.proto, state, s.local, s.lport, s.remote, s.rport)
}

// loopbackOnly: bound to loopback, and talking to loopback or to no one
// (a listener, an unconnected UDP socket).
func (s procSocket) loopbackOnly() bool {
	return s.local.IsLoopback() && (s.remote.IsLoopback() || s.remote.IsUnspecified())
}

// processSockets lists the TCP/UDP sockets held by this process and its
// descendants (the control planes), matching their fds' inodes with the
// kernel's socket tables.
func processSockets() ([]procSocket, error) {
	inodes := map[string]int{} // inode → pid
	for _, pid := range processTree(os.Getpid()) {
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			continue // gone meanwhile
		}
		for _, fd := range fds {
			link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
			if err == nil && strings.HasPrefix(link, "socket:[") {
				inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = pid
			}
		}
	}
	var out []procSocket
	for _, proto := range []string{"tcp", "tcp6", "udp", "udp6"} {
		f, err := os.Open("/proc/self/net/" + proto)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 {
				continue
			}
			pid, ours := inodes[fields[9]]
			if !ours {
				continue
			}
			local, lport, err1 := procAddr(fields[1])
			remote, rport, err2 := procAddr(fields[2])
			if err := errors.Join(err1, err2); err != nil {
				f.Close()
				return nil, fmt.Errorf("%s: %w", proto, err)
			}
			out = append(out, procSocket{pid: pid, proto: proto, local: local, remote: remote, lport: lport, rport: rport,
				listen: strings.HasPrefix(proto, "tcp") && fields[3] == "0A"})
		}
		f.Close()
	}
	return out, nil
}

// procAddr decodes "0100007F:1F90": the address in the kernel's byte
// order, 32 bits at a time.
func procAddr(s string) (net.IP, int, error) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return nil, 0, fmt.Errorf("address %q", s)
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return nil, 0, fmt.Errorf("address %q", s)
	}
	for i := 0; i < len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return nil, 0, fmt.Errorf("port %q", s)
	}
	return net.IP(raw), int(port), nil
}

// processTree is root and every process descended from it.
func processTree(root int) []int {
	children := map[int][]int{}
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		rest := string(data[bytes.LastIndexByte(data, ')')+1:])
		fields := strings.Fields(rest)
		if len(fields) < 2 {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		ppid, _ := strconv.Atoi(fields[1])
		children[ppid] = append(children[ppid], pid)
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

func TestProcAddrDecodesTheKernelByteOrder(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:1F90":                         "127.0.0.1:8080",
		"00000000:0000":                         "0.0.0.0:0",
		"00000000000000000000000001000000:0050": "::1:80",
		"0000000000000000FFFF00000100007F:01BB": "127.0.0.1:443", // v4-mapped
	} {
		ip, port, err := procAddr(in)
		if err != nil || fmt.Sprintf("%s:%d", ip, port) != want {
			t.Errorf("procAddr(%q) = %s:%d, %v; want %s", in, ip, port, err, want)
		}
	}
}

func TestSandboxRendersAGateAsPlainLinesWithItsButtons(t *testing.T) {
	ev := recovery.Event{RunID: "r1", StepID: "gitops.merge", Title: "Merge the merge request", Gate: recovery.GateMerge,
		Fields: map[string]string{"merge_request": "<https://gitlab.example/mr/1|!1> by <@U0ONCALL>"}}
	raw, err := json.Marshal(bot.GateBlocks(ev, 1, nil))
	if err != nil {
		t.Fatal(err)
	}
	text, buttons := messageText(slackfake.Message{Blocks: raw})
	want := "? Approval needed — merge gate before gitops.merge (Merge the merge request).\n" +
		"• merge_request: !1 (https://gitlab.example/mr/1) by @oncall\n" +
		"[Approve] [Reject…]"
	if text != want {
		t.Errorf("text =\n%s\nwant\n%s", text, want)
	}
	value := bot.ButtonValue{RunID: "r1", StepID: "gitops.merge", Round: 1}.String()
	if len(buttons) != 2 || buttons[0] != (button{bot.ActionApprove, "Approve", value}) || buttons[1].ActionID != bot.ActionReject {
		t.Errorf("buttons = %+v, want Approve and Reject… carrying %q", buttons, value)
	}
	for _, l := range wrap(strings.Repeat("word ", 40), sandboxWidth, "    ") {
		if utf8.RuneCountInString(l) > sandboxWidth {
			t.Errorf("wrapped line of %d columns: %q", utf8.RuneCountInString(l), l)
		}
	}
}
