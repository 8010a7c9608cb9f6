package awsfake

import (
	"encoding/xml"
	"net/http"
	"time"
)

// Instance profiles: Karpenter makes one per node role, and a role in a
// profile cannot be deleted until it is taken out (a drill's teardown).

type iamProfile struct {
	name, path, arn, id string
	created             time.Time
	role                string // a profile holds at most one role
}

type xmlProfile struct {
	Path                string    `xml:"Path"`
	InstanceProfileName string    `xml:"InstanceProfileName"`
	InstanceProfileID   string    `xml:"InstanceProfileId"`
	Arn                 string    `xml:"Arn"`
	CreateDate          string    `xml:"CreateDate"`
	Roles               []xmlRole `xml:"Roles>member"`
}

func (s *Server) xmlProfileOf(p *iamProfile) xmlProfile {
	x := xmlProfile{Path: p.path, InstanceProfileName: p.name, InstanceProfileID: p.id, Arn: p.arn, CreateDate: isoTime(p.created), Roles: []xmlRole{}}
	if r := s.iam.roles[p.role]; r != nil {
		x.Roles = append(x.Roles, xmlRoleOf(r, false))
	}
	return x
}

type profileResult struct {
	XMLName xml.Name
	Profile xmlProfile `xml:"InstanceProfile"`
}

type profilesResult struct {
	XMLName     xml.Name
	Profiles    []xmlProfile `xml:"InstanceProfiles>member"`
	IsTruncated bool         `xml:"IsTruncated"`
	Marker      string       `xml:"Marker,omitempty"`
}

func noSuchProfile(name string) *apiError {
	return errorf(http.StatusNotFound, "NoSuchEntity", "Instance Profile %s cannot be found.", name)
}

func (s *Server) serveIAMProfiles(q *request) *apiError {
	if s.iam.profiles == nil {
		s.iam.profiles = map[string]*iamProfile{}
	}
	name := q.form.Get("InstanceProfileName")
	switch q.op {
	case "CreateInstanceProfile":
		if _, ok := s.iam.profiles[name]; ok {
			return errorf(http.StatusConflict, "EntityAlreadyExists", "Instance Profile %s already exists.", name)
		}
		if !iamNameRE.MatchString(name) || len(name) > 128 {
			return errorf(http.StatusBadRequest, "ValidationError", "invalid instance profile name %q", name)
		}
		path, aerr := iamPath(q.form.Get("Path"))
		if aerr != nil {
			return aerr
		}
		p := &iamProfile{name: name, path: path, arn: "arn:aws:iam::" + s.opts.AccountID + ":instance-profile" + path + name,
			id: "AIPA" + hashID(17, alphaUpperNum, "profile", name, s.nextSeq()), created: q.now}
		s.iam.profiles[name] = p
		s.iam.profileOrder = append(s.iam.profileOrder, name)
		return writeQuery(q, iamNS, profileResult{XMLName: xml.Name{Local: "CreateInstanceProfileResult"}, Profile: s.xmlProfileOf(p)})
	case "GetInstanceProfile":
		p := s.iam.profiles[name]
		if p == nil {
			return noSuchProfile(name)
		}
		return writeQuery(q, iamNS, profileResult{XMLName: xml.Name{Local: "GetInstanceProfileResult"}, Profile: s.xmlProfileOf(p)})
	case "DeleteInstanceProfile":
		p := s.iam.profiles[name]
		if p == nil {
			return noSuchProfile(name)
		}
		if p.role != "" {
			return errorf(http.StatusConflict, "DeleteConflict", "Cannot delete entity, must remove roles from instance profile first.")
		}
		delete(s.iam.profiles, name)
		s.iam.profileOrder = removeString(s.iam.profileOrder, name)
		return writeQuery(q, iamNS, nil)
	case "AddRoleToInstanceProfile", "RemoveRoleFromInstanceProfile":
		p := s.iam.profiles[name]
		if p == nil {
			return noSuchProfile(name)
		}
		role := q.form.Get("RoleName")
		if s.iam.roles[role] == nil {
			return noSuchRole(role)
		}
		if q.op == "AddRoleToInstanceProfile" {
			if p.role != "" {
				return errorf(http.StatusConflict, "LimitExceeded", "Cannot exceed quota for InstanceSessionsPerInstanceProfile: 1")
			}
			p.role = role
		} else {
			if p.role != role {
				return errorf(http.StatusNotFound, "NoSuchEntity", "The role with name %s cannot be found in instance profile %s.", role, name)
			}
			p.role = ""
		}
		return writeQuery(q, iamNS, nil)
	case "ListInstanceProfilesForRole", "ListInstanceProfiles":
		role := q.form.Get("RoleName")
		if q.op == "ListInstanceProfilesForRole" && s.iam.roles[role] == nil {
			return noSuchRole(role)
		}
		var all []xmlProfile
		for _, n := range s.iam.profileOrder {
			p := s.iam.profiles[n]
			if q.op == "ListInstanceProfiles" || p.role == role {
				all = append(all, s.xmlProfileOf(p))
			}
		}
		page, next, aerr := iamPage(q, all)
		if aerr != nil {
			return aerr
		}
		return writeQuery(q, iamNS, profilesResult{XMLName: xml.Name{Local: q.op + "Result"}, Profiles: page, IsTruncated: next != "", Marker: next})
	}
	return unsupported("InvalidAction", "iam operation %s is not modelled", q.op)
}

// inProfile reports whether a role is in an instance profile. Callers hold s.mu.
func (st *iamState) inProfile(role string) bool {
	for _, p := range st.profiles {
		if p.role == role {
			return true
		}
	}
	return false
}
