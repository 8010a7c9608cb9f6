package standard

import (
	"slices"
	"testing"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/permissions"
)

func TestEveryStepHasADeclarationAndNoDeclarationNamesAnUnknownStep(t *testing.T) {
	ids := map[string]bool{}
	for _, s := range Steps() {
		ids[s.ID] = true
		if _, ok := declarations[s.ID]; !ok {
			t.Errorf("step %s has no permission declaration in permissions.go", s.ID)
		}
	}
	for id := range declarations {
		if !ids[id] {
			t.Errorf("permissions.go declares %q, which is not a step of the table", id)
		}
	}
}

func TestEveryStepDocumentsWhatItDoesAndHowToUndoIt(t *testing.T) {
	for _, s := range Permissions().Steps {
		if s.Doc.Does == "" || s.Doc.Idempotent == "" || s.Doc.Rollback == "" {
			t.Errorf("step %s: Doc needs Does, Idempotent and Rollback", s.ID)
		}
	}
	for _, s := range Steps() {
		d, _ := Permissions().Step(s.ID)
		if (s.Gate != "") != (d.Doc.Gate != "") {
			t.Errorf("step %s: gate %q but Doc.Gate %q", s.ID, s.Gate, d.Doc.Gate)
		}
	}
}

func TestTheDeclarationIsWellFormed(t *testing.T) {
	if err := Permissions().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestCutoverStepsDeclareTheRoute53WriteOnlyWhereTheyChangeRecords(t *testing.T) {
	p := Permissions()
	if !p.AllowsAction("route53:ChangeResourceRecordSets", EndpointsApply) || !p.AllowsAction("route53:ChangeResourceRecordSets", "rollback") {
		t.Error("endpoints.apply and rollback must be allowed to change records")
	}
	for _, id := range []string{EndpointsDiscover, EndpointsPlan, EndpointsVerify} {
		if p.AllowsAction("route53:ChangeResourceRecordSets", id) {
			t.Errorf("%s is read-only but declares route53:ChangeResourceRecordSets", id)
		}
	}
	if got := p.AWSActions(EndpointsDiscover); !slices.Equal(got, []string{"elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeTags"}) {
		t.Errorf("endpoints.discover actions = %v", got)
	}
}

func TestPermissionVarsExpandTheExampleTargetsARNs(t *testing.T) {
	cfg, err := config.Load("../../examples/drbot.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for i := range cfg.Targets {
		tg := &cfg.Targets[i]
		vars := PermissionVars(cfg, tg)
		for _, want := range []string{"DR_REGION", "DR_CLUSTER", "ACCOUNT_ID", "DRBOT_ROLE_NAME", "ARGOCD_NAMESPACE", "VAULT_TARGET_MOUNT"} {
			if vars[want] == "" {
				t.Errorf("target %s: no value for ${%s}", tg.Name, want)
			}
		}
		arn := permissions.Expand("arn:aws:eks:${DR_REGION}:${ACCOUNT_ID}:cluster/${DR_CLUSTER}", vars)
		if want := "arn:aws:eks:" + tg.DR.Region + ":" + vars["ACCOUNT_ID"] + ":cluster/" + tg.DR.ClusterName; arn != want {
			t.Errorf("target %s: %s, want %s", tg.Name, arn, want)
		}
		if tg.Cluster.EKS != nil && vars["EKS_NODE_ROLE_NAME"] == "" {
			t.Errorf("target %s: the node role's name is not taken from node_role_arn", tg.Name)
		}
	}
}
