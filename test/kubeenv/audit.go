package kubeenv

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// auditPolicy logs every request at Metadata level (who, what, which
// object, the User-Agent; never bodies, so no Secret data), once it
// completes.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
  - level: Metadata
`

// WithAuditLog makes the API server write its audit log (Metadata level,
// JSON lines) to path, or to audit.log in the cluster's directory when
// path is "". Read it with AuditEvents or ReadAuditLog.
func WithAuditLog(path string) Option {
	return func(o *options) { o.audit, o.auditPath = true, path }
}

// AuditEvent is one request the API server completed.
type AuditEvent struct {
	Verb        string // get, list, watch, create, update, patch, delete, deletecollection
	Group       string // "" for the core group
	Resource    string
	Subresource string
	Namespace   string
	Name        string
	User        string
	UserAgent   string
	Code        int // HTTP status
	URI         string
}

// AuditLogPath is where the audit log is written, "" without WithAuditLog.
func (c *Cluster) AuditLogPath() string { return c.auditPath }

// AuditEvents reads the audit log so far.
func (c *Cluster) AuditEvents() ([]AuditEvent, error) {
	if c.auditPath == "" {
		return nil, errors.New("kubeenv: the cluster was started without WithAuditLog")
	}
	return ReadAuditLog(c.auditPath)
}

// ReadAuditLog parses an API server audit log (audit.k8s.io/v1 events, one
// JSON object a line). A missing file is an empty log.
func ReadAuditLog(path string) ([]AuditEvent, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	defer f.Close()
	var out []AuditEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		var ev struct {
			Verb       string `json:"verb"`
			RequestURI string `json:"requestURI"`
			UserAgent  string `json:"userAgent"`
			User       struct {
				Username string `json:"username"`
			} `json:"user"`
			ObjectRef *struct {
				Resource    string `json:"resource"`
				Namespace   string `json:"namespace"`
				Name        string `json:"name"`
				APIGroup    string `json:"apiGroup"`
				Subresource string `json:"subresource"`
			} `json:"objectRef"`
			ResponseStatus *struct {
				Code int `json:"code"`
			} `json:"responseStatus"`
		}
		if len(sc.Bytes()) == 0 {
			continue
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return nil, fmt.Errorf("audit log line %q: %w", sc.Bytes(), err)
		}
		e := AuditEvent{Verb: ev.Verb, URI: ev.RequestURI, UserAgent: ev.UserAgent, User: ev.User.Username}
		if r := ev.ObjectRef; r != nil {
			e.Group, e.Resource, e.Subresource, e.Namespace, e.Name = r.APIGroup, r.Resource, r.Subresource, r.Namespace, r.Name
		}
		if ev.ResponseStatus != nil {
			e.Code = ev.ResponseStatus.Code
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading audit log: %w", err)
	}
	return out, nil
}

// auditArgs writes the policy and returns the API server's audit flags.
func (c *Cluster) auditArgs(o *options) ([]string, error) {
	if !o.audit {
		return nil, nil
	}
	c.auditPath = o.auditPath
	if c.auditPath == "" {
		c.auditPath = filepath.Join(c.dir, "audit.log")
	}
	policy := filepath.Join(c.dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		return nil, fmt.Errorf("writing the audit policy: %w", err)
	}
	return []string{
		"--audit-policy-file=" + policy,
		"--audit-log-path=" + c.auditPath,
		"--audit-log-format=json",
		"--audit-log-mode=blocking", // written before the response, so a test reads every call it made
	}, nil
}
