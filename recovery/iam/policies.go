package iam

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"strings"
)

// The policy documents drbot ships. A policy's version is part of its file
// name and of the IAM policy name made from it, so a newer document
// becomes a new policy (attached in place of the old one) instead of
// silently changing one that other clusters may use.
//
//go:embed policies/*.json
var policyFS embed.FS

const (
	// LBCPolicyVersion is the AWS Load Balancer Controller release whose
	// IAM policy is shipped (policies/aws-load-balancer-controller-v2.13.json).
	LBCPolicyVersion = "v2.13"
	// KarpenterPolicyVersion is the Karpenter release whose controller
	// policy is shipped (policies/karpenter-controller-v1.6.json).
	KarpenterPolicyVersion = "v1.6"

	lbcPolicyFile       = "policies/aws-load-balancer-controller-" + LBCPolicyVersion + ".json"
	karpenterPolicyFile = "policies/karpenter-controller-" + KarpenterPolicyVersion + ".json"
	podIdentityTrust    = "policies/trust-eks-pod-identity.json"
	ec2Trust            = "policies/trust-ec2.json"

	// maxManagedPolicySize is IAM's limit on a managed policy document
	// (characters, whitespace excluded).
	maxManagedPolicySize = 6144
)

// policyVars fill the ${…} placeholders of a document.
type policyVars struct {
	Partition, Region, AccountID, ClusterName, NodeRoleName string
}

// render reads a shipped document, fills its placeholders and compacts it.
func render(file string, v policyVars) (string, error) {
	raw, err := policyFS.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("reading shipped policy %s: %w", file, err)
	}
	doc := strings.NewReplacer(
		"${AWS_PARTITION}", v.Partition,
		"${AWS_REGION}", v.Region,
		"${AWS_ACCOUNT_ID}", v.AccountID,
		"${CLUSTER_NAME}", v.ClusterName,
		"${NODE_ROLE_NAME}", v.NodeRoleName,
	).Replace(string(raw))
	if i := strings.Index(doc, "${"); i >= 0 {
		return "", fmt.Errorf("policy %s has an unfilled placeholder near %q", file, doc[i:min(len(doc), i+30)])
	}
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(doc)); err != nil {
		return "", fmt.Errorf("policy %s is not valid JSON: %w", file, err)
	}
	if b.Len() > maxManagedPolicySize {
		return "", fmt.Errorf("policy %s is %d characters for cluster %q, over IAM's %d; use a shorter cluster name",
			file, b.Len(), v.ClusterName, maxManagedPolicySize)
	}
	return b.String(), nil
}

// sameDocument compares two policy documents as JSON values, so formatting
// and IAM's URL-encoding of returned documents do not count as changes.
func sameDocument(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}
