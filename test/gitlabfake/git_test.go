package gitlabfake

import (
	"reflect"
	"testing"
)

func TestTreeIDsMatchGitWriteTree(t *testing.T) {
	if root, _ := treeIDs(map[string]file{}); root != "4b825dc642cb6eb9a060e54bf8d69288fbee4904" {
		t.Errorf("empty tree = %s, want git's empty tree id", root)
	}
	// Expected ids come from `git write-tree` / `git ls-tree -r -t` on the same files.
	root, dirs := treeIDs(map[string]file{
		"README.md":       {content: "hello\n"},
		"apps/a.yaml":     {content: "a\n"},
		"apps/sub/b.yaml": {content: "b"},
		"apps-x/x":        {content: "x\n"},
		"run.sh":          {content: "#!/bin/sh\n", exec: true},
	})
	want := map[string]string{
		"":         "33ecca692da36caf1c8623c9052f10238cec9b9b",
		"apps":     "34084defcb4c5899abb28fb703388755076ce3d1",
		"apps/sub": "643c6521dff07e057b8eecaeb9f402f13711e78d",
		"apps-x":   "ab69b4abf3bb84d4e268bd42d84e4a9a5e242bd3",
	}
	if root != want[""] || !reflect.DeepEqual(dirs, want) {
		t.Errorf("tree ids = %s %v, want %v", root, dirs, want)
	}
	if id := blobID("#!/bin/sh\n"); id != "1a2485251c33a70432394c93fb89330ef214bfc9" {
		t.Errorf("blob id = %s", id)
	}
}

func TestUnifiedDiffHunks(t *testing.T) {
	cases := []struct {
		name, a, b, want string
		adds, dels       int
	}{
		{"new file", "", "x\ny\n", "@@ -0,0 +1,2 @@\n+x\n+y\n", 2, 0},
		{"deleted file", "x\n", "", "@@ -1 +0,0 @@\n-x\n", 0, 1},
		{"no newline at end", "a\n", "a", "@@ -1 +1 @@\n-a\n+a\n\\ No newline at end of file\n", 1, 1},
		{
			"two hunks far apart",
			"1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n",
			"1\nTWO\n3\n4\n5\n6\n7\n8\n9\n10\n11\nTWELVE\n",
			"@@ -1,5 +1,5 @@\n 1\n-2\n+TWO\n 3\n 4\n 5\n@@ -9,4 +9,4 @@\n 9\n 10\n 11\n-12\n+TWELVE\n",
			2, 2,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, adds, dels := unifiedDiff(tc.a, tc.b)
			if got != tc.want || adds != tc.adds || dels != tc.dels {
				t.Errorf("diff = %q (+%d -%d), want %q (+%d -%d)", got, adds, dels, tc.want, tc.adds, tc.dels)
			}
		})
	}
}

func TestThreeWayMergeTakesOneSidedChangesAndReportsConflicts(t *testing.T) {
	base := map[string]file{"a": {content: "1"}, "b": {content: "1"}, "c": {content: "1"}}
	ours := map[string]file{"a": {content: "2"}, "b": {content: "1"}, "c": {content: "2"}}
	theirs := map[string]file{"a": {content: "1"}, "b": {content: "3"}, "c": {content: "3"}, "d": {content: "new"}}
	merged, conflicts := threeWayMerge(base, ours, theirs)
	if !reflect.DeepEqual(conflicts, []string{"c"}) {
		t.Errorf("conflicts = %v, want [c]", conflicts)
	}
	if merged["a"].content != "2" || merged["b"].content != "3" || merged["d"].content != "new" {
		t.Errorf("merged = %v", merged)
	}
}
