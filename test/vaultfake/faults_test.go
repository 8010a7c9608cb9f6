package vaultfake_test

import (
	"errors"
	"net/http"
	"testing"

	vault "github.com/hashicorp/vault/api"

	"github.com/drbot/drbot/test/vaultfake"
)

func TestInjectFaultsAnswers5xxBeforeAnyEffectUntilCleared(t *testing.T) {
	srv := vaultfake.New(t)
	c := newClient(t, srv, srv.RootToken())
	srv.InjectFaults(vaultfake.FaultPlan{Rate: 1, Seed: 1})
	_, err := c.Logical().Write("secret/data/app", map[string]any{"data": map[string]any{"k": "v"}})
	var re *vault.ResponseError
	if !errors.As(err, &re) || (re.StatusCode != http.StatusInternalServerError && re.StatusCode != http.StatusServiceUnavailable) {
		t.Fatalf("write at rate 1: err = %v, want a 500 or 503", err)
	}
	if f := srv.InjectedFaults(); len(f) != 1 || f[0].Path != "/v1/secret/data/app" {
		t.Errorf("InjectedFaults = %+v, want the one write", f)
	}
	srv.InjectFaults(vaultfake.FaultPlan{})
	if s, err := c.Logical().Read("secret/data/app"); err != nil || s != nil {
		t.Errorf("read after clearing = %v, %v; want nothing stored by the failed write", s, err)
	}
}
