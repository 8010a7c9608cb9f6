package main

import (
	"io"
	"log/slog"
	"reflect"
	"testing"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery/standard"
	"github.com/drbot/drbot/state"
)

// wiredSteps are the steps whose integrations have landed; the rest still
// say "not built yet".
var wiredSteps = []string{
	standard.ClusterCreate, standard.ClusterAccess, standard.IAMRoles, standard.ArgoCDRegister, standard.AddonsKarpenter,
	standard.VaultAuth, standard.Namespaces, standard.AddonsLBC, standard.AddonsIstio, standard.AddonsVaultInject, standard.EndpointsDiscover, standard.EndpointsPlan, standard.EndpointsApply,
	standard.EndpointsVerify, standard.Postmortem, standard.TemplatesGenerate, standard.GitOpsMR, standard.GitOpsMerge, standard.DeployWatch,
}

func TestEveryBuiltIntegrationIsWiredIntoTheRunbook(t *testing.T) {
	cfg, err := config.Load(example)
	if err != nil {
		t.Fatal(err)
	}
	book, err := standard.Runbook()
	if err != nil {
		t.Fatal(err)
	}
	wired, rollback, err := wireActions(cfg, book, slog.New(slog.NewTextHandler(io.Discard, nil)), func() *state.Store { return nil })
	if err != nil || rollback == nil {
		t.Fatalf("wiring: %v (rollback wired: %v)", err, rollback != nil)
	}
	// Every "not built yet" action is the same closure code; a wired step's
	// action is different code.
	notBuilt, _ := book.Step(standard.Teardown)
	stub := reflect.ValueOf(notBuilt.Action).Pointer()
	for _, id := range wiredSteps {
		s, ok := wired.Step(id)
		if !ok {
			t.Fatalf("no step %s", id)
		}
		if reflect.ValueOf(s.Action).Pointer() == stub {
			t.Errorf("%s still has its not-built-yet action", id)
		}
	}
}
