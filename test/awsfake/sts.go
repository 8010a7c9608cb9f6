package awsfake

import (
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const stsNS = "https://sts.amazonaws.com/doc/2011-06-15/"

var stsOps = map[string]bool{"GetCallerIdentity": true, "AssumeRole": true}

func (s *Server) serveSTS(q *request) *apiError {
	switch q.op {
	case "GetCallerIdentity":
		return s.stsGetCallerIdentity(q)
	case "AssumeRole":
		return s.stsAssumeRole(q)
	}
	return unsupported("InvalidAction", "sts operation %s is not modelled", q.op)
}

type getCallerIdentityResult struct {
	XMLName xml.Name `xml:"GetCallerIdentityResult"`
	Arn     string   `xml:"Arn"`
	UserID  string   `xml:"UserId"`
	Account string   `xml:"Account"`
}

func (s *Server) stsGetCallerIdentity(q *request) *apiError {
	// authenticate insists on a known key for STS, so q.caller is set.
	id := q.caller
	return writeQuery(q, stsNS, getCallerIdentityResult{Arn: id.arn, UserID: id.userID, Account: accountOf(id.arn)})
}

type assumeRoleResult struct {
	XMLName         xml.Name `xml:"AssumeRoleResult"`
	AccessKeyID     string   `xml:"Credentials>AccessKeyId"`
	SecretAccessKey string   `xml:"Credentials>SecretAccessKey"`
	SessionToken    string   `xml:"Credentials>SessionToken"`
	Expiration      string   `xml:"Credentials>Expiration"`
	AssumedRoleArn  string   `xml:"AssumedRoleUser>Arn"`
	AssumedRoleID   string   `xml:"AssumedRoleUser>AssumedRoleId"`
	PackedPolicy    int      `xml:"PackedPolicySize,omitempty"`
}

// stsAssumeRole issues temporary credentials for a role that exists in the
// IAM stand-in. Trust policies are not evaluated; DenyAction(caller,
// "sts:AssumeRole") is the way to refuse.
func (s *Server) stsAssumeRole(q *request) *apiError {
	if bad := unknownParams(q.form, "RoleArn", "RoleSessionName", "DurationSeconds", "ExternalId", "Policy", "PolicyArns.", "Tags.", "TransitiveTagKeys.", "SourceIdentity"); len(bad) > 0 {
		return unsupported("InvalidParameterValue", "AssumeRole parameters %v are not modelled", bad)
	}
	roleArn := q.form.Get("RoleArn")
	session := q.form.Get("RoleSessionName")
	if len(session) < 2 || len(session) > 64 || strings.ContainsAny(session, " /:*") {
		return errorf(http.StatusBadRequest, "ValidationError", "1 validation error detected: Value '%s' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*", session)
	}
	duration := 3600
	if d := q.form.Get("DurationSeconds"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n < 900 || n > 43200 {
			return errorf(http.StatusBadRequest, "ValidationError", "1 validation error detected: Value '%s' at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 43200", d)
		}
		duration = n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	role := s.iam.roleByArn(roleArn)
	if role == nil {
		return errorf(http.StatusForbidden, "AccessDenied", "User: %s is not authorized to perform: sts:AssumeRole on resource: %s", q.caller.arn, roleArn)
	}
	if duration > role.maxSession {
		return errorf(http.StatusBadRequest, "ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
	}
	id := &identity{
		akid:    "ASIA" + randomString(16, alphaUpperNum),
		secret:  randomString(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"),
		token:   "IQoJb3JpZ2luX2Vj" + randomString(200, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"),
		arn:     "arn:aws:sts::" + accountOf(role.arn) + ":assumed-role/" + role.name + "/" + session,
		userID:  role.id + ":" + session,
		expires: q.now.Add(time.Duration(duration) * time.Second),
	}
	s.identities[id.akid] = id
	return writeQuery(q, stsNS, assumeRoleResult{
		AccessKeyID: id.akid, SecretAccessKey: id.secret, SessionToken: id.token,
		Expiration:     id.expires.Format(time.RFC3339),
		AssumedRoleArn: id.arn, AssumedRoleID: id.userID,
	})
}
