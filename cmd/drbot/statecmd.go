package main

import (
	"context"
	"errors"
	"fmt"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"io"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/drills"
	"github.com/drbot/drbot/recovery/postmortem"
	"github.com/drbot/drbot/recovery/standard"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/state/backup"
)

const stateUsage = `usage: drbot state [-config FILE | -state PATH] inspect [-run ID] | audit [-run ID] | history | postmortem RUN | backup PATH | restore [-force] s3://BUCKET/PREFIX[/KEY]`

func cmdState(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("state", stderr)
	cfgPath := configFlag(fs)
	statePath := fs.String("state", "", "state file (default: state.path from the config)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return &exitError{code: 2, msg: stateUsage}
	}
	path := *statePath
	if path == "" {
		if err := needConfig(*cfgPath); err != nil {
			return &exitError{code: 2, msg: "no state file: pass -state PATH, or -config FILE (or DRBOT_CONFIG) to use its state.path"}
		}
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return &exitError{code: 1, msg: err.Error()}
		}
		path = cfg.State.Path
	}
	sub := newFlags("state "+rest[0], stderr)
	runID := sub.String("run", "", "limit to one run")
	force := sub.Bool("force", false, "restore: replace a local state file even when it is newer than the copy")
	if err := sub.Parse(rest[1:]); err != nil {
		return err
	}
	switch rest[0] {
	case "inspect":
		return withStoreOrAdmin(path, "GET", "inspect", url.Values{"run": {*runID}}, stdout, func(s *state.Store) error { return inspect(s, *runID, stdout) })
	case "audit":
		return withStoreOrAdmin(path, "GET", "audit", url.Values{"run": {*runID}}, stdout, func(s *state.Store) error { return audit(s, *runID, stdout) })
	case "history":
		return withStoreOrAdmin(path, "GET", "history", nil, stdout, func(s *state.Store) error {
			return writeHistory(s, cfgForPostmortem(*cfgPath), stdout)
		})
	case "postmortem":
		if sub.NArg() != 1 {
			return &exitError{code: 2, msg: "usage: drbot state postmortem RUN"}
		}
		return withStoreOrAdmin(path, "GET", "postmortem", url.Values{"run": {sub.Arg(0)}}, stdout, func(s *state.Store) error {
			return writePostmortem(s, cfgForPostmortem(*cfgPath), sub.Arg(0), stdout)
		})
	case "restore":
		if sub.NArg() != 1 {
			return &exitError{code: 2, msg: "usage: drbot state restore [-force] s3://BUCKET/PREFIX[/KEY]"}
		}
		return restoreState(sub.Arg(0), path, cfgForPostmortem(*cfgPath), *force, stdout)
	case "backup":
		if sub.NArg() != 1 {
			return &exitError{code: 2, msg: "usage: drbot state backup PATH"}
		}
		dst, err := filepath.Abs(sub.Arg(0))
		if err != nil {
			return err
		}
		return withStoreOrAdmin(path, "POST", "backup", url.Values{"path": {dst}}, stdout, func(s *state.Store) error {
			n, err := s.Backup(dst)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "backed up %s to %s (%d bytes)\n", path, dst, n)
			return nil
		})
	default:
		return &exitError{code: 2, msg: fmt.Sprintf("unknown state command %q\n%s", rest[0], stateUsage)}
	}
}

func inspect(s *state.Store, runID string, w io.Writer) error {
	// Read before View: a second read transaction inside the first can
	// deadlock bbolt against a writer that must grow the file (a serving
	// drbot froze that way).
	v, _ := s.SchemaVersion()
	return s.View(func(tx *state.Tx) error {
		runs, err := tx.Runs()
		if err != nil {
			return err
		}
		pending, err := tx.Outbox(true, 0)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		if runID == "" {
			fmt.Fprintf(w, "state %s (schema %d): %d run(s), %d undelivered message(s)\n\n", s.Path(), v, len(runs), len(pending))
			fmt.Fprintln(tw, "RUN\tTARGET\tMODE\tSTATUS\tINITIATOR\tSTARTED\tFINISHED")
			for _, r := range runs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Target, r.Mode, r.Status, r.Initiator, stamp(r.StartedAt), stamp(r.FinishedAt))
			}
			return tw.Flush()
		}
		run, ok, err := tx.Run(runID)
		if err != nil {
			return err
		}
		if !ok {
			return &exitError{code: 1, msg: fmt.Sprintf("no run %q in %s", runID, s.Path())}
		}
		fmt.Fprintf(w, "run %s: target %s, %s, %s, started %s by %s", run.ID, run.Target, run.Mode, run.Status, stamp(run.StartedAt), run.Initiator)
		if run.Resumes > 0 {
			fmt.Fprintf(w, ", resumed %d time(s)", run.Resumes)
		}
		fmt.Fprintln(w)
		steps, err := tx.Steps(runID)
		if err != nil {
			return err
		}
		ids := make([]string, 0, len(steps))
		for id := range steps {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return steps[ids[i]].StartedAt.Before(steps[ids[j]].StartedAt) })
		fmt.Fprintln(tw, "\nSTEP\tSTATUS\tATTEMPT\tSTARTED\tFINISHED\tHANDLE\tERROR")
		for _, id := range ids {
			r := steps[id]
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", id, r.Status, r.Attempt, stamp(r.StartedAt), stamp(r.FinishedAt), r.Handle, firstLine(r.Error))
		}
		return tw.Flush()
	})
}

func audit(s *state.Store, runID string, w io.Writer) error {
	return s.View(func(tx *state.Tx) error {
		entries, err := tx.AuditLog(runID)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "#\tTIME\tACTOR\tACTION\tRUN\tSTEP\tRESULT")
		for _, e := range entries {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, stamp(e.Time), e.Actor, e.Action, e.RunID, e.Step, e.Result)
		}
		return tw.Flush()
	})
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// cfgForPostmortem loads the config when one is given: it adds the budget
// and the target's description; without it the post-mortem still renders.
func cfgForPostmortem(path string) *config.Config {
	if path == "" {
		return nil
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil
	}
	return cfg
}

func writePostmortem(s *state.Store, cfg *config.Config, runID string, w io.Writer) error {
	book, err := standard.Runbook()
	if err != nil {
		return err
	}
	in, err := postmortem.Load(s, book, runID)
	if err != nil {
		return &exitError{code: 1, msg: err.Error()}
	}
	if cfg != nil {
		opts := postmortemOptions(cfg, book)
		in.Budget, in.PhaseBudgets, in.Description = opts.Budget, opts.PhaseBudgets, opts.Describe(in.Run.Target)
	}
	_, err = io.WriteString(w, postmortem.Render(in))
	return err
}

func writeHistory(s *state.Store, cfg *config.Config, w io.Writer) error {
	book, err := standard.Runbook()
	if err != nil {
		return err
	}
	scores, err := drills.Scores(s, book)
	if err != nil {
		return err
	}
	if len(scores) == 0 {
		_, err := fmt.Fprintln(w, "no finished runs yet")
		return err
	}
	budget := time.Hour
	if cfg != nil {
		budget = cfg.MTTR.Budget.Std()
	}
	return drills.WriteHistory(w, scores, budget)
}

// restoreState fetches the newest (or the named) copy of the state from S3
// into path. A local file that is newer is kept unless force.
func restoreState(url, path string, cfg *config.Config, force bool, w io.Writer) error {
	bucket, key, err := backup.ParseS3URL(url)
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var opts []func(*awsconfig.LoadOptions) error
	pathStyle := false
	if cfg != nil && cfg.State.Backup != nil {
		opts = append(opts, awsconfig.WithRegion(cfg.State.Backup.Region))
		pathStyle = cfg.State.Backup.PathStyle
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return fmt.Errorf("loading AWS configuration: %w", err)
	}
	client := s3.NewFromConfig(ac, func(o *s3.Options) { o.UsePathStyle = o.UsePathStyle || pathStyle })
	restored, err := backup.Restore(ctx, client, bucket, key, path, force)
	if errors.Is(err, backup.ErrLocalNewer) {
		return &exitError{code: 1, msg: fmt.Sprintf("%s is newer than the copy in %s: keeping it (use -force to replace it)", path, url)}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "restored s3://%s/%s into %s\n", bucket, restored, path)
	return nil
}
