package awsfake

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"sort"
	"time"
)

// ECR: repositories and images per region, read with DescribeRepositories
// and DescribeImages (JSON 1.1). Replication is not modelled: an image
// exists in a region only if a test put it there with AddImage.

type ecrRegion struct {
	repos map[string]*ecrRepo
	order []string
}

type ecrRepo struct {
	name, arn, uri string
	created        time.Time
	images         []*ecrImage
}

type ecrImage struct {
	digest string
	tags   []string
	pushed time.Time
	size   int64
}

// ImageDigest is the made-up digest AddImage gives an image with no
// digest of its own: stable per repository and tag.
func ImageDigest(repository, tag string) string {
	h := sha256.Sum256([]byte("awsfake-image\x00" + repository + "\x00" + tag))
	return "sha256:" + hex.EncodeToString(h[:])
}

// RegistryHost is the host of the account's ECR registry in region, as
// image references name it.
func (s *Server) RegistryHost(region string) string {
	return s.opts.AccountID + ".dkr.ecr." + region + ".amazonaws.com"
}

func (s *Server) ecrRegionLocked(region string) *ecrRegion {
	r := s.rd.ecr[region]
	if r == nil {
		r = &ecrRegion{repos: map[string]*ecrRepo{}}
		s.rd.ecr[region] = r
	}
	return r
}

func (s *Server) ecrRepoLocked(region, name string, now time.Time) *ecrRepo {
	reg := s.ecrRegionLocked(region)
	if r := reg.repos[name]; r != nil {
		return r
	}
	r := &ecrRepo{
		name: name, created: now,
		arn: "arn:aws:ecr:" + region + ":" + s.opts.AccountID + ":repository/" + name,
		uri: s.RegistryHost(region) + "/" + name,
	}
	reg.repos[name] = r
	reg.order = append(reg.order, name)
	sort.Strings(reg.order)
	return r
}

// AddRepository makes an empty ECR repository in region (a no-op if it exists).
func (s *Server) AddRepository(region, name string) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ecrRepoLocked(region, name, now)
}

// AddImage puts an image in an ECR repository of region (made if missing)
// under the given tags and returns its digest: digest when not empty, else
// ImageDigest(repository, first tag). Tags move from any other image of
// the repository, as a push does.
func (s *Server) AddImage(region, repository, digest string, tags ...string) string {
	if digest == "" {
		first := ""
		if len(tags) > 0 {
			first = tags[0]
		}
		digest = ImageDigest(repository, first)
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	repo := s.ecrRepoLocked(region, repository, now)
	var img *ecrImage
	for _, im := range repo.images {
		im.tags = removeStrings(im.tags, tags)
		if im.digest == digest {
			img = im
		}
	}
	if img == nil {
		img = &ecrImage{digest: digest, pushed: now, size: 1 << 20}
		repo.images = append(repo.images, img)
	}
	img.tags = append(img.tags, tags...)
	sort.Strings(img.tags)
	return digest
}

// RemoveImage deletes the image with the given tag or digest from a
// repository; it reports whether there was one.
func (s *Server) RemoveImage(region, repository, tagOrDigest string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	repo := s.rd.ecr[region].repoOrNil(repository)
	if repo == nil {
		return false
	}
	for i, im := range repo.images {
		if im.digest == tagOrDigest || containsString(im.tags, tagOrDigest) {
			repo.images = append(repo.images[:i], repo.images[i+1:]...)
			return true
		}
	}
	return false
}

func (r *ecrRegion) repoOrNil(name string) *ecrRepo {
	if r == nil {
		return nil
	}
	return r.repos[name]
}

func removeStrings(list, drop []string) []string {
	out := list[:0]
	for _, x := range list {
		if !containsString(drop, x) {
			out = append(out, x)
		}
	}
	return out
}

func containsString(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

type ecrImageID struct {
	ImageDigest string `json:"imageDigest,omitempty"`
	ImageTag    string `json:"imageTag,omitempty"`
}

type ecrImageDetail struct {
	RegistryID             string   `json:"registryId"`
	RepositoryName         string   `json:"repositoryName"`
	ImageDigest            string   `json:"imageDigest"`
	ImageTags              []string `json:"imageTags,omitempty"`
	ImageSizeInBytes       int64    `json:"imageSizeInBytes"`
	ImagePushedAt          epoch    `json:"imagePushedAt"`
	ImageManifestMediaType string   `json:"imageManifestMediaType"`
	ImageStatus            string   `json:"imageStatus"`
}

type ecrRepository struct {
	RepositoryArn      string `json:"repositoryArn"`
	RegistryID         string `json:"registryId"`
	RepositoryName     string `json:"repositoryName"`
	RepositoryURI      string `json:"repositoryUri"`
	CreatedAt          epoch  `json:"createdAt"`
	ImageTagMutability string `json:"imageTagMutability"`
}

func (s *Server) ecrOps() map[string]jsonOp {
	return map[string]jsonOp{
		"DescribeImages":       s.ecrDescribeImages,
		"DescribeRepositories": s.ecrDescribeRepositories,
	}
}

func (s *Server) noSuchRepository(name string) *apiError {
	return errorf(http.StatusBadRequest, "RepositoryNotFoundException",
		"The repository with name '%s' does not exist in the registry with id '%s'", name, s.opts.AccountID)
}

func (s *Server) ecrDescribeImages(region string, body []byte) (any, *apiError) {
	var in struct {
		RegistryID     string       `json:"registryId"`
		RepositoryName string       `json:"repositoryName"`
		ImageIDs       []ecrImageID `json:"imageIds"`
		Filter         *struct {
			TagStatus   string `json:"tagStatus"`
			ImageStatus string `json:"imageStatus"`
		} `json:"filter"`
		MaxResults int    `json:"maxResults"`
		NextToken  string `json:"nextToken"`
	}
	if aerr := decodeStrict(body, &in); aerr != nil {
		return nil, aerr
	}
	if in.RepositoryName == "" {
		return nil, errorf(http.StatusBadRequest, "InvalidParameterException", "repositoryName is required")
	}
	if len(in.ImageIDs) > 0 && (in.MaxResults != 0 || in.NextToken != "" || in.Filter != nil) {
		return nil, errorf(http.StatusBadRequest, "InvalidParameterException", "imageIds cannot be combined with maxResults, nextToken or filter")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	repo := s.rd.ecr[region].repoOrNil(in.RepositoryName)
	if repo == nil || (in.RegistryID != "" && in.RegistryID != s.opts.AccountID) {
		return nil, s.noSuchRepository(in.RepositoryName)
	}
	detail := func(im *ecrImage) ecrImageDetail {
		return ecrImageDetail{
			RegistryID: s.opts.AccountID, RepositoryName: repo.name, ImageDigest: im.digest,
			ImageTags: append([]string(nil), im.tags...), ImageSizeInBytes: im.size, ImagePushedAt: epoch(im.pushed),
			ImageManifestMediaType: "application/vnd.oci.image.manifest.v1+json", ImageStatus: "ACTIVE",
		}
	}
	out := []ecrImageDetail{}
	if len(in.ImageIDs) > 0 {
		// Like ECR, one missing image fails the whole call.
		for _, id := range in.ImageIDs {
			var found *ecrImage
			for _, im := range repo.images {
				if (id.ImageDigest == "" || im.digest == id.ImageDigest) && (id.ImageTag == "" || containsString(im.tags, id.ImageTag)) {
					found = im
					break
				}
			}
			if found == nil || (id.ImageDigest == "" && id.ImageTag == "") {
				return nil, errorf(http.StatusBadRequest, "ImageNotFoundException",
					"The image with imageId {imageDigest:'%s', imageTag:'%s'} does not exist within the repository with name '%s' in the registry with id '%s'",
					nullable(id.ImageDigest), nullable(id.ImageTag), repo.name, s.opts.AccountID)
			}
			out = append(out, detail(found))
		}
		return map[string]any{"imageDetails": out}, nil
	}
	tagStatus := "ANY"
	if in.Filter != nil && in.Filter.TagStatus != "" {
		tagStatus = in.Filter.TagStatus
	}
	for _, im := range repo.images {
		if (tagStatus == "TAGGED" && len(im.tags) == 0) || (tagStatus == "UNTAGGED" && len(im.tags) > 0) {
			continue
		}
		out = append(out, detail(im))
	}
	return ecrPage("imageDetails", out, in.NextToken, in.MaxResults)
}

// ecrPage is one page of a List/Describe answer under key, with ECR's
// default page size of 100 and its nextToken.
func ecrPage[T any](key string, items []T, token string, max int) (any, *apiError) {
	if max <= 0 {
		max = 100
	}
	page, next, ok := paginate(items, token, max)
	if !ok {
		return nil, errorf(http.StatusBadRequest, "InvalidParameterException", "invalid nextToken")
	}
	res := map[string]any{key: page}
	if next != "" {
		res["nextToken"] = next
	}
	return res, nil
}

func nullable(s string) string {
	if s == "" {
		return "null"
	}
	return s
}

func (s *Server) ecrDescribeRepositories(region string, body []byte) (any, *apiError) {
	var in struct {
		RegistryID      string   `json:"registryId"`
		RepositoryNames []string `json:"repositoryNames"`
		MaxResults      int      `json:"maxResults"`
		NextToken       string   `json:"nextToken"`
	}
	if aerr := decodeStrict(body, &in); aerr != nil {
		return nil, aerr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	reg := s.rd.ecr[region]
	repoOut := func(r *ecrRepo) ecrRepository {
		return ecrRepository{RepositoryArn: r.arn, RegistryID: s.opts.AccountID, RepositoryName: r.name, RepositoryURI: r.uri,
			CreatedAt: epoch(r.created), ImageTagMutability: "MUTABLE"}
	}
	out := []ecrRepository{}
	if len(in.RepositoryNames) > 0 {
		for _, n := range in.RepositoryNames {
			r := reg.repoOrNil(n)
			if r == nil || (in.RegistryID != "" && in.RegistryID != s.opts.AccountID) {
				return nil, s.noSuchRepository(n)
			}
			out = append(out, repoOut(r))
		}
		return map[string]any{"repositories": out}, nil
	}
	if reg != nil && (in.RegistryID == "" || in.RegistryID == s.opts.AccountID) {
		for _, n := range reg.order {
			out = append(out, repoOut(reg.repos[n]))
		}
	}
	return ecrPage("repositories", out, in.NextToken, in.MaxResults)
}
