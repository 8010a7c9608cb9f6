package iam

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestShippedPoliciesRenderToValidDocumentsWithinIAMLimits(t *testing.T) {
	cluster := "payments-dr-eu-west-1-rehearsal-2026" // a realistic long name
	v := policyVars{Partition: "aws", Region: "eu-west-1", AccountID: "123456789012", ClusterName: cluster, NodeRoleName: "KarpenterNodeRole-" + cluster}
	for file, mustContain := range map[string][]string{
		lbcPolicyFile:       {`"elasticloadbalancing:CreateLoadBalancer"`, "arn:aws:elasticloadbalancing:*:*:targetgroup/*/*"},
		karpenterPolicyFile: {"arn:aws:eks:eu-west-1:123456789012:cluster/" + cluster, "arn:aws:iam::123456789012:role/KarpenterNodeRole-" + cluster, `"ec2:CreateFleet"`},
		podIdentityTrust:    {`"pods.eks.amazonaws.com"`, `"sts:TagSession"`},
		ec2Trust:            {`"ec2.amazonaws.com"`},
	} {
		doc, err := render(file, v)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		var parsed struct {
			Version   string
			Statement []map[string]any
		}
		if err := json.Unmarshal([]byte(doc), &parsed); err != nil || parsed.Version != "2012-10-17" || len(parsed.Statement) == 0 {
			t.Errorf("%s does not render to a policy document: %v", file, err)
		}
		for _, s := range mustContain {
			if !strings.Contains(doc, s) {
				t.Errorf("%s lacks %s", file, s)
			}
		}
		if len(doc) > maxManagedPolicySize {
			t.Errorf("%s renders to %d characters, over IAM's %d", file, len(doc), maxManagedPolicySize)
		}
	}
}

func TestPolicyTooLargeForIAMIsRefusedBeforeCallingAWS(t *testing.T) {
	// EKS names stop at 100 characters, which fits (checked here); the
	// guard is for documents that grow with a later version.
	max := strings.Repeat("x", 100)
	if _, err := render(karpenterPolicyFile, policyVars{Partition: "aws", Region: "eu-west-1", AccountID: "123456789012", ClusterName: max, NodeRoleName: "KarpenterNodeRole-" + max[:46]}); err != nil {
		t.Fatalf("a 100-character cluster name: %v", err)
	}
	huge := strings.Repeat("x", 300)
	_, err := render(karpenterPolicyFile, policyVars{Partition: "aws", Region: "eu-west-1", AccountID: "123456789012", ClusterName: huge, NodeRoleName: "n"})
	if err == nil || !strings.Contains(err.Error(), "over IAM's 6144") {
		t.Fatalf("render of an oversized document: %v", err)
	}
}

func TestPolicyFilesCarryTheirVersionInTheName(t *testing.T) {
	entries, err := policyFS.ReadDir("policies")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	for _, want := range []string{"aws-load-balancer-controller-" + LBCPolicyVersion + ".json", "karpenter-controller-" + KarpenterPolicyVersion + ".json"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("policies/ has %v, want %s", names, want)
		}
	}
}
