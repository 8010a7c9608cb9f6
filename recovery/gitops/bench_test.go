package gitops_test

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/drbot/drbot/recovery/gitops"
	"github.com/drbot/drbot/recovery/gitops/gitopstest"
)

// BenchmarkGenerate measures templates.generate's pure part and gitops.mr's
// commit payload (the JSON body of the one commit) for 150 and 1,500
// services. Reading GitLab is not included: it is network-bound.
func BenchmarkGenerate(b *testing.B) {
	for _, n := range []int{150, 1500} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			srcs := sources(gitopstest.Templates(gitopstest.Options{Dir: "apps/primary", Services: n}))
			opts := gitops.GenerateOptions{DRPath: "apps/dr", Destination: gitops.Destination{Name: drCluster},
				Overrides: map[string]map[string]any{"svc-0003": {"replicaCount": 3}}}
			b.ReportAllocs()
			var bytes int
			for b.Loop() {
				set := gitops.Generate(srcs, opts)
				if len(set.Files) != n {
					b.Fatalf("%d files, want %d", len(set.Files), n)
				}
				body, err := json.Marshal(gitops.CommitPayload(set, "drbot/run", "DR"))
				if err != nil {
					b.Fatal(err)
				}
				bytes = len(body)
			}
			b.ReportMetric(float64(bytes), "payload-bytes")
		})
	}
}
