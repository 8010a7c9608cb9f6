package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
)

// iamProfilesShim stands between drbot and awsfake's IAM: awsfake does not
// model instance profiles (no ListInstanceProfilesForRole), which the
// teardown's iam part reads before deleting a role. Nothing in the
// stand-ins can create an instance profile, so "none" is the true answer;
// the shim gives it and forwards every other request unchanged (the Host
// header is kept, so awsfake still checks drbot's SigV4 signature).
type iamProfilesShim struct {
	srv *httptest.Server

	mu    sync.Mutex
	roles []string // RoleName of each ListInstanceProfilesForRole
}

func startIAMProfilesShim(t *testing.T, awsURL string) *iamProfilesShim {
	t.Helper()
	target, err := url.Parse(awsURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	s := &iamProfilesShim{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		if r.Method != http.MethodPost || form.Get("Action") != "ListInstanceProfilesForRole" {
			proxy.ServeHTTP(w, r)
			return
		}
		s.mu.Lock()
		s.roles = append(s.roles, form.Get("RoleName"))
		s.mu.Unlock()
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprint(w, `<ListInstanceProfilesForRoleResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">`+
			`<ListInstanceProfilesForRoleResult><IsTruncated>false</IsTruncated><InstanceProfiles/></ListInstanceProfilesForRoleResult>`+
			`<ResponseMetadata><RequestId>iam-profiles-shim</RequestId></ResponseMetadata></ListInstanceProfilesForRoleResponse>`)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *iamProfilesShim) URL() string { return s.srv.URL }

// Roles are the roles whose instance profiles were asked for.
func (s *iamProfilesShim) Roles() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.roles...)
}
