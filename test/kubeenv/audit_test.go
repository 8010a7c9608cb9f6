package kubeenv

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

func TestAuditLogRecordsEachCallsVerbObjectAndUserAgentButNoBodies(t *testing.T) {
	c := Start(t, WithName("audit"), WithCRDs(""), WithNodes(0, "1", "1Gi", 1), WithAuditLog(""))
	cfg := c.AdminConfig()
	cfg.UserAgent = "audit-test/1 drbot-step/namespaces"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const secretValue = "made-up-licence-value"
	if _, err := cs.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "newrelic-license"},
		StringData: map[string]string{"license_key": secretValue},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}

	events, err := c.AuditEvents()
	if err != nil {
		t.Fatal(err)
	}
	var created, listed bool
	for _, e := range events {
		if e.UserAgent != cfg.UserAgent {
			continue
		}
		switch {
		case e.Verb == "create" && e.Resource == "secrets" && e.Namespace == "default" && e.Group == "":
			created = e.Code == 201 && e.Name == "newrelic-license" && e.User != ""
		case e.Verb == "list" && e.Resource == "namespaces" && e.Namespace == "":
			listed = e.Code == 200
		}
	}
	if !created || !listed {
		t.Errorf("audit log lacks the test's calls (create secret %v, list namespaces %v) among %d events", created, listed, len(events))
	}
	raw, err := os.ReadFile(c.AuditLogPath())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), secretValue) || strings.Contains(string(raw), "bWFkZS11cC1saWNlbmNlLXZhbHVl") {
		t.Error("the audit log holds the Secret's value: Metadata level must not log bodies")
	}
}

func TestReadAuditLogOfAMissingFileIsEmpty(t *testing.T) {
	events, err := ReadAuditLog(t.TempDir() + "/none.log")
	if err != nil || len(events) != 0 {
		t.Errorf("got %v, %v", events, err)
	}
}
