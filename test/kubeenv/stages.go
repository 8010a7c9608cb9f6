package kubeenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// PodReadyDelay makes KWOK hold some pods Pending before its pod-ready
// stage marks them Running and Ready, the way real pods wait for their
// image pull and readiness probe. A pod becomes Ready Min after KWOK
// first sees it scheduled, plus a uniformly random part of Max-Min
// (KWOK's Stage delay: durationMilliseconds and
// jitterDurationMilliseconds).
type PodReadyDelay struct {
	// Namespaces are the pods' namespaces; with Except, every namespace
	// but these. Empty Namespaces without Except: every pod.
	Namespaces []string
	Except     bool
	Min, Max   time.Duration
}

// WithPodReadyDelays replaces KWOK's immediate pod-ready stage by one
// delayed stage per entry. Pods that no entry selects never become Ready,
// so the entries should cover every namespace (one with Except does).
func WithPodReadyDelays(delays ...PodReadyDelay) Option {
	return func(o *options) { o.podReady = append(o.podReady, delays...) }
}

// stagesFile is the KWOK stage configuration for o: the prepared
// stages.yaml as it is, or a copy in dir with the pod-ready stage
// replaced by the delayed ones.
func stagesFile(bins, dir string, o *options) (string, error) {
	base := filepath.Join(bins, "stages.yaml")
	if len(o.podReady) == 0 {
		return base, nil
	}
	data, err := os.ReadFile(base)
	if err != nil {
		return "", fmt.Errorf("reading kwok stages: %w", err)
	}
	out, err := delayPodReady(string(data), o.podReady)
	if err != nil {
		return "", fmt.Errorf("%s: %w", base, err)
	}
	path := filepath.Join(dir, "stages.yaml")
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		return "", fmt.Errorf("writing kwok stages: %w", err)
	}
	return path, nil
}

// delayPodReady rewrites the multi-document stage YAML: the pod-ready
// document is replaced by one copy per delay, each renamed, narrowed to
// its namespaces and given a delay. The document is edited as text at
// two anchors the KWOK v0.8 stage has; a changed upstream stage fails
// here instead of silently losing the delay.
func delayPodReady(stages string, delays []PodReadyDelay) (string, error) {
	const (
		nameLine  = "  name: pod-ready\n"
		exprsLine = "    matchExpressions:\n"
		nextLine  = "  next:\n"
	)
	docs := strings.Split(stages, "\n---\n")
	found := false
	var out []string
	for _, doc := range docs {
		if !strings.Contains(doc, nameLine) {
			out = append(out, doc)
			continue
		}
		if found || strings.Count(doc, exprsLine) != 1 || strings.Count(doc, nextLine) != 1 {
			return "", fmt.Errorf("the pod-ready stage is not in the expected shape (one matchExpressions, one next)")
		}
		found = true
		for i, d := range delays {
			if d.Min < 0 || d.Max < d.Min {
				return "", fmt.Errorf("pod-ready delay %d: want 0 <= min <= max, got %s..%s", i, d.Min, d.Max)
			}
			s := strings.Replace(doc, nameLine, fmt.Sprintf("  name: pod-ready-%d\n", i), 1)
			if len(d.Namespaces) > 0 {
				op := "In"
				if d.Except {
					op = "NotIn"
				}
				var expr strings.Builder
				fmt.Fprintf(&expr, "%s    - key: '.metadata.namespace'\n      operator: '%s'\n      values:\n", exprsLine, op)
				for _, ns := range d.Namespaces {
					fmt.Fprintf(&expr, "      - %s\n", strconv.Quote(ns))
				}
				s = strings.Replace(s, exprsLine, expr.String(), 1)
			}
			delay := fmt.Sprintf("  delay:\n    durationMilliseconds: %d\n    jitterDurationMilliseconds: %d\n%s",
				d.Min.Milliseconds(), d.Max.Milliseconds(), nextLine)
			out = append(out, strings.Replace(s, nextLine, delay, 1))
		}
	}
	if !found {
		return "", fmt.Errorf("no pod-ready stage to delay")
	}
	return strings.Join(out, "\n---\n"), nil
}
