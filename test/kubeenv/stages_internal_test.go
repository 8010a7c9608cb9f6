package kubeenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDelayPodReadyReplacesTheStageWithOneDelayedCopyPerNamespaceSet(t *testing.T) {
	bins, err := binDir()
	if err != nil {
		t.Skipf("no prepared stages.yaml: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(bins, "stages.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := delayPodReady(string(data), []PodReadyDelay{
		{Namespaces: []string{"payments"}, Min: 0, Max: 6 * time.Minute},
		{Namespaces: []string{"payments"}, Except: true, Min: 90 * time.Second, Max: 90 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "  name: pod-ready\n") {
		t.Error("the immediate pod-ready stage is still there")
	}
	for _, want := range []string{
		"  name: pod-ready-0\n", "  name: pod-ready-1\n",
		"operator: 'In'\n      values:\n      - \"payments\"\n", "operator: 'NotIn'\n      values:\n      - \"payments\"\n",
		"durationMilliseconds: 0\n    jitterDurationMilliseconds: 360000\n",
		"durationMilliseconds: 90000\n    jitterDurationMilliseconds: 90000\n",
		"  name: node-initialize\n", "  name: pod-delete\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the rewritten stages lack %q", want)
		}
	}
	if _, err := delayPodReady("kind: Stage\n", []PodReadyDelay{{}}); err == nil {
		t.Error("stages without pod-ready: want an error, got none")
	}
	if _, err := delayPodReady(string(data), []PodReadyDelay{{Min: time.Second}}); err == nil {
		t.Error("max below min: want an error, got none")
	}
}
