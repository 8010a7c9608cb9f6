package gitlabfake

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"
)

// file is one blob in a tree snapshot.
type file struct {
	content string
	exec    bool
}

func (f file) mode() string {
	if f.exec {
		return "100755"
	}
	return "100644"
}

// commit is a full snapshot of the tree plus history links.
type commit struct {
	id          string
	parents     []string
	files       map[string]file
	treeID      string
	dirIDs      map[string]string // directory path ("" = root) -> tree id
	message     string
	authorName  string
	authorEmail string
	at          time.Time
	seq         int64 // creation order; parents always have a lower seq
}

func (c *commit) title() string {
	t, _, _ := strings.Cut(c.message, "\n")
	return t
}

// project holds one repository and its merge requests.
type project struct {
	ID                   int64
	PathWithNamespace    string
	DefaultBranch        string
	CreatedAt            time.Time
	branches             map[string]string // name -> commit id
	commits              map[string]*commit
	mrs                  []*mergeRequest // index i holds iid i+1
	approvalsRequired    int64
	mergeMethod          string // "merge" or "ff"
	resetApprovalsOnPush bool
}

// gitHash hashes a git object of the given type.
func gitHash(kind string, body []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "%s %d\x00", kind, len(body))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

func blobID(content string) string { return gitHash("blob", []byte(content)) }

// treeIDs computes git tree ids for the root and every directory.
func treeIDs(files map[string]file) (string, map[string]string) {
	type entry struct {
		name string
		mode string
		id   string
		tree bool
	}
	children := map[string][]entry{"": nil}
	var dirs []string
	seen := map[string]bool{"": true}
	for p, f := range files {
		dir, name := path.Split(p)
		dir = strings.TrimSuffix(dir, "/")
		children[dir] = append(children[dir], entry{name: name, mode: f.mode(), id: blobID(f.content)})
		for d := dir; d != "" && !seen[d]; d = parentDir(d) {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	// Deepest directories first so each subtree id exists before its parent needs it.
	sort.Slice(dirs, func(i, j int) bool { return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/") })
	ids := map[string]string{}
	hashDir := func(d string) string {
		es := children[d]
		sort.Slice(es, func(i, j int) bool {
			a, b := es[i].name, es[j].name
			if es[i].tree {
				a += "/"
			}
			if es[j].tree {
				b += "/"
			}
			return a < b
		})
		var body []byte
		for _, e := range es {
			raw, _ := hex.DecodeString(e.id)
			body = append(body, e.mode+" "+e.name+"\x00"...)
			body = append(body, raw...)
		}
		return gitHash("tree", body)
	}
	for _, d := range dirs {
		ids[d] = hashDir(d)
		parent := parentDir(d)
		children[parent] = append(children[parent], entry{name: path.Base(d), mode: "40000", id: ids[d], tree: true})
	}
	ids[""] = hashDir("")
	return ids[""], ids
}

func parentDir(d string) string {
	if i := strings.LastIndex(d, "/"); i >= 0 {
		return d[:i]
	}
	return ""
}

// newCommit builds a commit object with a real git commit id.
func (s *Server) newCommit(p *project, parents []string, files map[string]file, msg, authorName, authorEmail string) *commit {
	s.commitSeq++
	c := &commit{
		parents: parents, files: files, message: msg,
		authorName: authorName, authorEmail: authorEmail,
		at: time.Now().UTC(), seq: s.commitSeq,
	}
	c.treeID, c.dirIDs = treeIDs(files)
	var b strings.Builder
	fmt.Fprintf(&b, "tree %s\n", c.treeID)
	for _, par := range parents {
		fmt.Fprintf(&b, "parent %s\n", par)
	}
	sig := fmt.Sprintf("%s <%s> %d +0000", authorName, authorEmail, c.at.Unix())
	fmt.Fprintf(&b, "author %s\ncommitter %s\n\n%s", sig, sig, msg)
	if !strings.HasSuffix(msg, "\n") {
		b.WriteString("\n")
	}
	c.id = gitHash("commit", []byte(b.String()))
	if existing, ok := p.commits[c.id]; ok {
		// Same tree, parents, message and second: git makes the same object.
		s.commitSeq--
		return existing
	}
	p.commits[c.id] = c
	return c
}

// setBranch moves a branch and tells subscribers and open merge requests.
func (s *Server) setBranch(p *project, name, sha string) {
	old, existed := p.branches[name]
	if sha == "" {
		delete(p.branches, name)
	} else {
		p.branches[name] = sha
	}
	if existed && old == sha {
		return
	}
	if p.resetApprovalsOnPush && sha != "" {
		for _, mr := range p.mrs {
			if mr.state == "opened" && mr.source == name {
				mr.approvedBy = nil
			}
		}
	}
	for _, ch := range s.subs[subKey{p.ID, name}] {
		notify(ch, sha)
	}
}

// notify delivers the newest head without blocking the server: when the
// subscriber lags, the oldest queued value is dropped.
func notify(ch chan string, sha string) {
	for {
		select {
		case ch <- sha:
			return
		default:
		}
		select {
		case <-ch:
		default:
		}
	}
}

// resolve finds the commit a ref names: a branch, "HEAD", or a (short) sha.
func (p *project) resolve(ref string) *commit {
	if ref == "" || ref == "HEAD" {
		ref = p.DefaultBranch
	}
	if id, ok := p.branches[ref]; ok {
		return p.commits[id]
	}
	if c, ok := p.commits[ref]; ok {
		return c
	}
	if len(ref) >= 7 && isHex(ref) {
		var found *commit
		for id, c := range p.commits {
			if strings.HasPrefix(id, ref) {
				if found != nil {
					return nil // ambiguous
				}
				found = c
			}
		}
		return found
	}
	return nil
}

func isHex(s string) bool {
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}

// ancestors returns the commit ids reachable from id, including id.
func (p *project) ancestors(id string) map[string]bool {
	seen := map[string]bool{}
	stack := []string{id}
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[c] {
			continue
		}
		seen[c] = true
		if cm := p.commits[c]; cm != nil {
			stack = append(stack, cm.parents...)
		}
	}
	return seen
}

// mergeBase returns the best common ancestor of a and b (nil if none). The
// common ancestor created last cannot be an ancestor of another one.
func (p *project) mergeBase(a, b string) *commit {
	inA := p.ancestors(a)
	var best *commit
	for id := range p.ancestors(b) {
		if inA[id] {
			if c := p.commits[id]; best == nil || c.seq > best.seq {
				best = c
			}
		}
	}
	return best
}

// isAncestor reports whether a is reachable from b.
func (p *project) isAncestor(a, b string) bool { return p.ancestors(b)[a] }

// threeWayMerge merges whole files; a path changed differently on both sides
// is a conflict.
func threeWayMerge(base, ours, theirs map[string]file) (map[string]file, []string) {
	paths := map[string]bool{}
	for _, m := range []map[string]file{base, ours, theirs} {
		for p := range m {
			paths[p] = true
		}
	}
	merged := map[string]file{}
	var conflicts []string
	for p := range paths {
		b, bok := base[p]
		o, ook := ours[p]
		t, tok := theirs[p]
		same := func(x file, xok bool, y file, yok bool) bool { return xok == yok && x == y }
		var f file
		var present bool
		switch {
		case same(o, ook, t, tok):
			f, present = o, ook
		case same(o, ook, b, bok):
			f, present = t, tok
		case same(t, tok, b, bok):
			f, present = o, ook
		default:
			conflicts = append(conflicts, p)
			continue
		}
		if present {
			merged[p] = f
		}
	}
	sort.Strings(conflicts)
	return merged, conflicts
}

// lastCommitFor returns the newest commit reachable from c that changed path,
// following git's history simplification (move to a parent with the same blob).
func (p *project) lastCommitFor(c *commit, filePath string) *commit {
	for {
		f, ok := c.files[filePath]
		var next *commit
		for _, par := range c.parents {
			pc := p.commits[par]
			if pf, pok := pc.files[filePath]; pok == ok && pf == f {
				next = pc
				break
			}
		}
		if next == nil {
			return c
		}
		c = next
	}
}

// history lists commits reachable from head, newest first.
func (p *project) history(head string) []*commit {
	var out []*commit
	for id := range p.ancestors(head) {
		out = append(out, p.commits[id])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq > out[j].seq })
	return out
}

func copyFiles(m map[string]file) map[string]file {
	out := make(map[string]file, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
