package helm

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/kube"
	"github.com/drbot/drbot/recovery/steptest"
	"github.com/drbot/drbot/state"
)

func TestMergeValuesSetsRequiredValuesAndKeepsTheRestOfTheConfig(t *testing.T) {
	cfgVals := map[string]any{
		"replicaCount":   2,
		"serviceAccount": map[string]any{"annotations": map[string]any{"team": "platform"}},
		"region":         "eu-west-1", // the same as drbot's: accepted
	}
	got, err := MergeValues("addons.x.values", cfgVals, []Required{
		{Path: "clusterName", Value: "dr-eks"},
		{Path: "region", Value: "eu-west-1"},
		{Path: "serviceAccount.name", Value: "aws-load-balancer-controller"},
		{Path: "serviceAccount.create", Value: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"replicaCount": float64(2),
		"clusterName":  "dr-eks",
		"region":       "eu-west-1",
		"serviceAccount": map[string]any{
			"annotations": map[string]any{"team": "platform"},
			"name":        "aws-load-balancer-controller",
			"create":      true,
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("merged values\n got %#v\nwant %#v", got, want)
	}
	if _, ok := cfgVals["clusterName"]; ok {
		t.Fatal("MergeValues changed the config's own map")
	}
}

func TestMergeValuesRefusesAConflictingConfigValueNamingTheKey(t *testing.T) {
	_, err := MergeValues("addons.vault-injector.values", map[string]any{
		"injector": map[string]any{"authPath": "auth/kubernetes", "replicas": 2},
	}, []Required{{Path: "injector.authPath", Value: "auth/k8s-dr-prod-eu", Why: "the DR cluster's own mount"}})
	if err == nil {
		t.Fatal("a config authPath pointing at the primary's mount was accepted")
	}
	for _, want := range []string{"addons.vault-injector.values.injector.authPath", `"auth/kubernetes"`, `"auth/k8s-dr-prod-eu"`, "remove it"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestMergeValuesRefusesAScalarWhereARequiredMapGoes(t *testing.T) {
	_, err := MergeValues("addons.lbc.values", map[string]any{"serviceAccount": "mine"},
		[]Required{{Path: "serviceAccount.name", Value: "aws-load-balancer-controller"}})
	if err == nil || !strings.Contains(err.Error(), "addons.lbc.values.serviceAccount is not a map") {
		t.Fatalf("err = %v, want it to name addons.lbc.values.serviceAccount", err)
	}
}

func TestMergeValuesNeedsTheConfigWhenDrbotCannotWorkAValueOut(t *testing.T) {
	req := []Required{{Path: "vpcId", Value: nil, Why: "cluster.create gave no vpc_id"}}
	if _, err := MergeValues("addons.lbc.values", nil, req); err == nil || !strings.Contains(err.Error(), "addons.lbc.values.vpcId is not set") {
		t.Fatalf("err = %v, want it to ask for addons.lbc.values.vpcId", err)
	}
	got, err := MergeValues("addons.lbc.values", map[string]any{"vpcId": "vpc-0abc"}, req)
	if err != nil || got["vpcId"] != "vpc-0abc" {
		t.Fatalf("got %v, %v; want the config's vpcId kept", got, err)
	}
}

func TestParseManifestsReadsEveryDocumentAndSkipsEmptyOnes(t *testing.T) {
	objs, err := ParseManifests("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\n{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"b\"}}\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || objs[0]["kind"] != "ConfigMap" || objs[1]["kind"] != "Service" {
		t.Fatalf("objects = %v, want a ConfigMap and a Service", objs)
	}
	if _, err := ParseManifests("kind: [unclosed"); err == nil {
		t.Fatal("malformed YAML was accepted")
	}
}

// noCluster fails the test if a step reaches for the cluster: refusals
// must come before anything is installed.
func noCluster(t *testing.T) kube.ConfigSource {
	return kube.ConfigFunc(func(context.Context, *recovery.StepContext) (*rest.Config, error) {
		t.Error("the step connected to the cluster before refusing")
		return nil, context.Canceled
	})
}

func TestStepsRefuseConflictingConfigValuesBeforeTouchingTheCluster(t *testing.T) {
	cfg := &config.Config{
		Targets: []config.Target{{Name: "prod-eu", DR: config.DR{Region: "eu-west-1", ClusterName: "dr-eks"}}},
		Vault:   config.Vault{Address: "https://vault.example.com:8200", TargetMount: "k8s-dr-{target}"},
		Addons: map[string]config.Addon{
			config.AddonLoadBalancerController: {Version: "1.13.4", Values: map[string]any{"clusterName": "prod-eks"}},
			config.AddonVaultInjector:          {Version: "0.30.1", Values: map[string]any{"server": map[string]any{"enabled": true}}},
		},
	}
	steps, err := New(Options{Config: cfg, Kube: noCluster(t)})
	if err != nil {
		t.Fatal(err)
	}
	res := steptest.Run(t, steptest.Options{},
		steptest.Stub("cluster.create", recovery.PhaseProvision, map[string]string{"cluster_name": "dr-eks", "region": "eu-west-1", "vpc_id": "vpc-0dr"}),
		recovery.Step{ID: StepLBC, Phase: recovery.PhaseBootstrap, DependsOn: []string{"cluster.create"}, Action: steps.LBC},
		recovery.Step{ID: StepVaultInjector, Phase: recovery.PhaseBootstrap, Action: steps.VaultInjector},
	)
	for step, key := range map[string]string{
		StepLBC:           "addons.aws-load-balancer-controller.values.clusterName",
		StepVaultInjector: "addons.vault-injector.values.server.enabled",
	} {
		rec := res.Steps[step]
		if rec.Status != state.StepFailed {
			t.Errorf("%s is %s, want failed", step, rec.Status)
		}
		if !strings.Contains(rec.Error, key) {
			t.Errorf("%s error %q does not name %s", step, rec.Error, key)
		}
		if rec.Attempt != 1 {
			t.Errorf("%s ran %d attempts; a config conflict is permanent", step, rec.Attempt)
		}
	}
}

func TestStepsRefuseAnAddonMissingFromTheConfig(t *testing.T) {
	cfg := &config.Config{Targets: []config.Target{{Name: "prod-eu"}}}
	steps, err := New(Options{Config: cfg, Kube: noCluster(t)})
	if err != nil {
		t.Fatal(err)
	}
	res := steptest.Run(t, steptest.Options{}, recovery.Step{ID: StepIstio, Phase: recovery.PhaseBootstrap, Action: steps.Istio})
	if rec := res.Steps[StepIstio]; rec.Status != state.StepFailed || !strings.Contains(rec.Error, "addons.istio-base is not configured") {
		t.Fatalf("istio step = %s %q, want failed naming addons.istio-base", rec.Status, rec.Error)
	}
}

func TestPlanBeforeTheClusterExistsInstallsEverythingAndFlagsAMissingChart(t *testing.T) {
	repo := "file://" + chartsDir(t)
	cfg := &config.Config{
		Targets: []config.Target{{Name: "prod-eu", DR: config.DR{Region: "eu-west-1", ClusterName: "dr-eks"}}},
		Vault:   config.Vault{Address: "https://vault.example.com:8200", TargetMount: "k8s-dr-{target}"},
		Addons: map[string]config.Addon{
			config.AddonLoadBalancerController: {Chart: "aws-load-balancer-controller", Repo: repo, Version: "1.13.4"},
			config.AddonIstioBase:              {Chart: "base", Repo: repo, Version: "1.27.1"},
			config.AddonIstiod:                 {Chart: "istiod", Repo: repo, Version: "1.27.0"}, // not what the chart is
			config.AddonIstioGateway:           {Chart: "gateway", Repo: repo, Version: "1.27.1"},
		},
	}
	steps, err := New(Options{Config: cfg, Kube: noCluster(t)})
	if err != nil {
		t.Fatal(err)
	}
	lines, err := steps.Plan(context.Background(), "prod-eu", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := lines[StepLBC]; len(got) != 1 || got[0] != "aws-load-balancer-controller 1.13.4 in kube-system: install (the DR cluster does not exist yet)" {
		t.Errorf("lbc plan = %q", got)
	}
	if got := lines[StepIstio]; len(got) != 2 || !strings.Contains(got[1], "istiod 1.27.0 in istio-system: cannot install") || !strings.Contains(got[1], "config pins 1.27.0") {
		t.Errorf("istio plan = %q, want istiod flagged for its version", got)
	}
	if got := lines[StepIstioGateway]; len(got) != 1 || got[0] != "istio-gateway 1.27.1 in istio-ingress: install (the DR cluster does not exist yet)" {
		t.Errorf("istio gateway plan = %q", got)
	}
	if got := lines[StepVaultInjector]; len(got) != 1 || !strings.Contains(got[0], "cannot run: addons.vault-injector is not configured") {
		t.Errorf("vault plan = %q", got)
	}
}
