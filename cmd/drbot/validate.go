package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/standard"
)

// loadConfig loads and checks a config file, including what only the
// engine knows (step ids in runbook.estimates).
func loadConfig(path string) (*config.Config, *recovery.Runbook, error) {
	if err := needConfig(path); err != nil {
		return nil, nil, err
	}
	cfg, err := config.Load(path)
	if err != nil {
		var ce *config.Errors
		if errors.As(err, &ce) {
			return nil, nil, &exitError{code: 1, msg: fmt.Sprintf("%s\n%d problem(s) in %s", ce.Error(), len(ce.List), path)}
		}
		return nil, nil, err
	}
	book, err := standard.Runbook()
	if err != nil {
		return nil, nil, err
	}
	est := map[string]time.Duration{}
	for id, d := range cfg.Runbook.Estimates {
		est[id] = d.Std()
	}
	if book, err = book.WithEstimates(est); err != nil {
		return nil, nil, &exitError{code: 1, msg: fmt.Sprintf("%s: runbook.estimates: %v", path, err)}
	}
	return cfg, book, nil
}

func cmdValidate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("validate", stderr)
	path := configFlag(fs)
	secrets := fs.Bool("secrets", false, "also resolve every secret (environment variables and files) now")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, _, err := loadConfig(*path)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if *secrets {
		if err := cfg.CheckSecrets(); err != nil {
			return &exitError{code: 1, msg: err.Error()}
		}
	}
	fmt.Fprintf(stdout, "%s is valid: %d target(s), %d drill schedule(s), MTTR budget %s\n", *path, len(cfg.Targets), len(cfg.Drills), cfg.MTTR.Budget.Std())
	return nil
}
