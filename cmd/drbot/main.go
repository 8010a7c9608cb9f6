// Command drbot recovers a lost EKS cluster into a DR region from Slack, and
// rehearses that recovery on a schedule. Only this package builds real
// clients from configuration.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
)

// Stamped at build time with -ldflags "-X main.version=… -X main.commit=… -X main.date=…".
var (
	version = "dev"
	commit  = "unknown"
	date    = "unknown"
)

const usage = `drbot — disaster recovery for EKS, driven from Slack

Usage:
  drbot serve    -config FILE [-listen :8080]
                                           run the bot (Socket Mode), resume unfinished runs;
                                           /healthz and /readyz on -listen
  drbot plan     -config FILE [-target T] [-drill] [-live]
                                           show what a run would do and how long it should take
                                           (-live: also read AWS, GitLab and the charts, read-only)
  drbot check    -config FILE [-target T]  read-only readiness checks: would a recovery work right now?
  drbot run      [-config FILE | -state PATH] -as NAME start|status|approve|reject|retry|skip|abort|rollback …
                                           break-glass: drive runs without Slack (audited)
  drbot sandbox  [-services N] [-speed X] [-fail STEP] [-interactive] [-dir DIR]
                                           a whole recovery on this machine against stand-ins
  drbot validate -config FILE [-secrets]   check a config file; every problem at once, with lines
  drbot state    -config FILE|-state PATH inspect [-run ID] | audit [-run ID] | history | postmortem RUN
                                           | backup PATH | restore [-force] s3://BUCKET/PREFIX[/KEY]
  drbot version                            print version, commit and build date

-config defaults to $DRBOT_CONFIG.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// exitError carries a process exit code with its message.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = cmdServe(args[1:], stdout, stderr)
	case "plan":
		err = cmdPlan(args[1:], stdout, stderr)
	case "validate":
		err = cmdValidate(args[1:], stdout, stderr)
	case "check":
		err = cmdCheck(args[1:], stdout, stderr)
	case "run":
		err = cmdRun(args[1:], stdout, stderr)
	case "sandbox":
		err = cmdSandbox(args[1:], stdout, stderr)
	case "state":
		err = cmdState(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "drbot %s (commit %s, built %s, %s)\n", version, commit, date, runtime.Version())
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "drbot: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(stderr, strings.TrimRight(ee.msg, "\n"))
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "drbot %s: %v\n", args[0], err)
	return 1
}

// newFlags makes a subcommand's flag set that reports to stderr.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("drbot "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// configFlag registers -config with $DRBOT_CONFIG as its default.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", os.Getenv("DRBOT_CONFIG"), "config file (default $DRBOT_CONFIG)")
}

func needConfig(path string) error {
	if path == "" {
		return &exitError{code: 2, msg: "no config file: pass -config FILE or set DRBOT_CONFIG"}
	}
	return nil
}
