package cutover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigateway"
	apitypes "github.com/aws/aws-sdk-go-v2/service/apigateway/types"
	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"

	"github.com/drbot/drbot/recovery"
)

// OutState (apply) is the JSON State apply journals as it goes and verify reads.
const OutState = "state"

// Row states in State.Rows.
const (
	rowStarted = "started" // a change call was about to be sent
	rowChanged = "changed" // the change is made; the stage's deployment is pending
	rowDone    = "done"    // changed (and deployed) by this cutover
	rowSkipped = "skipped" // already had the wanted value
)

// cfMaxAttempts bounds re-reads of a distribution changed under us.
const cfMaxAttempts = 5

// State is what apply (or a rollback) did, row by row.
type State struct {
	Rows          map[int]string    `json:"rows"`            // row N → state
	Changes       map[string]string `json:"route53_changes"` // zone → change id
	Distributions []string          `json:"distributions"`   // updated distributions
	Deployments   []Deployment      `json:"deployments"`
}

// Deployment is an API Gateway deployment made (or auto-made) for the cutover.
type Deployment struct {
	Kind  string `json:"kind"` // KindREST or KindHTTP
	APIID string `json:"api_id"`
	Stage string `json:"stage"`
	ID    string `json:"id"`
	Auto  bool   `json:"auto,omitempty"` // the stage deploys on its own
}

func (s *State) init() {
	if s.Rows == nil {
		s.Rows = map[int]string{}
	}
	if s.Changes == nil {
		s.Changes = map[string]string{}
	}
}

func (s *State) finished(n int) bool { return s.Rows[n] == rowDone || s.Rows[n] == rowSkipped }

func (s *State) addDeployment(d Deployment) {
	for i, x := range s.Deployments {
		if x.Kind == d.Kind && x.APIID == d.APIID && x.Stage == d.Stage {
			s.Deployments[i] = d
			return
		}
	}
	s.Deployments = append(s.Deployments, d)
}

func (s *State) addDistribution(id string) {
	for _, x := range s.Distributions {
		if x == id {
			return
		}
	}
	s.Distributions = append(s.Distributions, id)
}

// Apply is the endpoints.apply action.
func (c *Cutover) Apply(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
	tc, err := c.resolve(sc.Run().Target)
	if err != nil {
		return recovery.Result{}, err
	}
	rec, err := planRecord(sc)
	if err != nil {
		return recovery.Result{}, err
	}
	var st State
	if raw, ok := sc.Output(StepApply, OutState); ok {
		if err := json.Unmarshal([]byte(raw), &st); err != nil {
			return recovery.Result{}, recovery.Permanent(fmt.Errorf("decoding the journaled apply state: %w", err))
		}
	}
	st.init()
	cl, err := c.clients(ctx, rec.ELBRegion, rec.APIRegion)
	if err != nil {
		return recovery.Result{}, err
	}
	out := map[string]string{}
	if len(st.Rows) == 0 {
		// Checked before the first change only: a resumed apply finishes
		// what it started rather than leave the cutover half done.
		if o, err := c.criticalCheck(ctx, sc, tc.extra.CriticalServices, true); err != nil {
			return recovery.Result{}, err
		} else if o != nil {
			out[OutOverride] = o.By
		}
	} else {
		n := 0
		for _, s := range st.Rows {
			if s == rowDone || s == rowSkipped {
				n++
			}
		}
		sc.Progress("resuming the cutover: %d of %d rows finished in an earlier attempt are left alone", n, len(rec.Rows))
	}
	eps, err := upstreamEndpoints(sc)
	if err != nil {
		return recovery.Result{}, err
	}
	if err := checkTargets(ctx, cl.ELB, eps, rowBackends(rec)); err != nil {
		return recovery.Result{}, err
	}
	a := &applier{c: c, cl: cl, rec: rec, marker: "drbot cutover " + rec.RunID, st: st, say: sc.Progress,
		save: func(m map[string]string) error { return sc.SaveOutputs(m) }}
	if err := a.run(ctx); err != nil {
		return recovery.Result{}, err
	}
	raw, err := json.Marshal(a.st)
	if err != nil {
		return recovery.Result{}, fmt.Errorf("encoding the apply state: %w", err)
	}
	applied, skipped := a.st.counts()
	out[OutState] = string(raw)
	out["applied"] = fmt.Sprint(applied)
	out["skipped"] = fmt.Sprint(skipped)
	out["summary"] = fmt.Sprintf("%d row(s) changed, %d already in place", applied, skipped)
	sc.Progress("cutover applied: %s", out["summary"])
	return recovery.Result{Outputs: out}, nil
}

func (s State) counts() (applied, skipped int) {
	for _, v := range s.Rows {
		switch v {
		case rowDone:
			applied++
		case rowSkipped:
			skipped++
		}
	}
	return applied, skipped
}

func planRecord(sc *recovery.StepContext) (Record, error) {
	raw, ok := sc.Output(StepPlan, OutRollback)
	if !ok {
		return Record{}, recovery.Permanent(fmt.Errorf("%s left no %q output; nothing to apply without a journaled rollback record", StepPlan, OutRollback))
	}
	rec, err := ParseRecord(raw)
	if err != nil {
		return Record{}, recovery.Permanent(err)
	}
	if rec.RunID != sc.Run().ID {
		return Record{}, recovery.Permanent(fmt.Errorf("the change set belongs to run %s, not %s; re-run %s", rec.RunID, sc.Run().ID, StepPlan))
	}
	return rec, nil
}

func rowBackends(rec Record) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range rec.Rows {
		if !seen[r.Backend] {
			seen[r.Backend] = true
			out = append(out, r.Backend)
		}
	}
	return out
}

// applier moves every row of a record to its new value (apply) or its old
// one (rollback), journaling each row's state through save.
type applier struct {
	c      *Cutover
	cl     Clients
	rec    Record
	back   bool
	marker string // description of Route 53 batches and deployments
	st     State
	save   func(map[string]string) error // nil: nothing journaled
	say    func(string, ...any)
}

func (a *applier) journal() error {
	if a.save == nil {
		return nil
	}
	raw, err := json.Marshal(a.st)
	if err != nil {
		return fmt.Errorf("encoding the apply state: %w", err)
	}
	return a.save(map[string]string{OutState: string(raw)})
}

func (a *applier) set(n int, s string) { a.st.Rows[n] = s }

// settled marks a row that already has the wanted value: done when an
// earlier attempt sent its change, skipped otherwise.
func (a *applier) settled(r Row) {
	if s := a.st.Rows[r.N]; s == rowStarted || s == rowChanged {
		a.set(r.N, rowDone)
		a.say("%d. %s: already %s (changed by an earlier attempt)", r.N, r.Resource, a.wantLabel(r))
		return
	}
	a.set(r.N, rowSkipped)
	a.say("%d. %s: already %s, skipped", r.N, r.Resource, a.wantLabel(r))
}

func (a *applier) wantLabel(r Row) string {
	if a.back {
		return r.Current
	}
	return r.New
}

func (a *applier) fromLabel(r Row) string {
	if a.back {
		return r.New
	}
	return r.Current
}

func (a *applier) pending(kind string) []Row {
	var out []Row
	for _, r := range a.rec.Rows {
		// A row an earlier attempt finished is left alone.
		if r.Kind == kind && !a.st.finished(r.N) {
			out = append(out, r)
		}
	}
	return out
}

func (a *applier) run(ctx context.Context) error {
	a.st.init()
	for _, step := range []func(context.Context) error{a.route53, a.cloudfront, a.rest, a.http} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

// ---- Route 53: one UPSERT batch per hosted zone ---------------------------

func (a *applier) route53(ctx context.Context) error {
	rows := a.pending(KindRoute53)
	var zones []string
	byZone := map[string][]Row{}
	for _, r := range rows {
		z := r.Route53.ZoneID
		if _, ok := byZone[z]; !ok {
			zones = append(zones, z)
		}
		byZone[z] = append(byZone[z], r)
	}
	for _, zone := range zones {
		var changes []r53types.Change
		var changing []Row
		for _, r := range byZone[zone] {
			old := r.Route53.Old
			live, err := readRecord(ctx, a.cl.Route53, zone, aws.ToString(old.Name), string(old.Type), aws.ToString(old.SetIdentifier))
			if err != nil {
				return err
			}
			if live == nil {
				return recovery.Permanent(fmt.Errorf("%d. %s is gone from the zone; someone deleted it since the plan: restore it by hand (old value %s) and press Retry",
					r.N, r.Resource, r.Current))
			}
			desired, same := a.desiredRecord(r, *live)
			if same {
				a.settled(r)
				continue
			}
			changes = append(changes, r53types.Change{Action: r53types.ChangeActionUpsert, ResourceRecordSet: &desired})
			changing = append(changing, r)
		}
		if len(changing) == 0 {
			if err := a.journal(); err != nil {
				return err
			}
			continue
		}
		for _, r := range changing {
			a.set(r.N, rowStarted)
		}
		if err := a.journal(); err != nil {
			return err
		}
		out, err := a.cl.Route53.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{
			HostedZoneId: aws.String(zone),
			ChangeBatch:  &r53types.ChangeBatch{Comment: aws.String(a.marker), Changes: changes},
		})
		if err != nil {
			return fmt.Errorf("changing %d record(s) in route53 zone %s: %w", len(changes), zone, err)
		}
		id := ""
		if out.ChangeInfo != nil {
			id = aws.ToString(out.ChangeInfo.Id)
		}
		a.st.Changes[zone] = id
		for _, r := range changing {
			a.set(r.N, rowDone)
		}
		if err := a.journal(); err != nil {
			return err
		}
		for _, r := range changing {
			a.say("%d. %s: %s → %s (change %s)", r.N, r.Resource, a.fromLabel(r), a.wantLabel(r), id)
		}
	}
	return nil
}

// desiredRecord is what a row's record set should become. Apply keeps the
// live record's other members (someone may have changed a weight since the
// plan) and sets the target; rollback restores the journaled record whole.
func (a *applier) desiredRecord(r Row, live r53types.ResourceRecordSet) (r53types.ResourceRecordSet, bool) {
	if a.back {
		return cloneRRSet(r.Route53.Old), sameRecord(live, r.Route53.Old)
	}
	next := r.Route53.New
	d := cloneRRSet(live)
	d.AliasTarget, d.ResourceRecords, d.TTL = next.AliasTarget, next.ResourceRecords, next.TTL
	return d, sameTarget(live, d)
}

// ---- CloudFront: read-modify-write with If-Match --------------------------

func (a *applier) cloudfront(ctx context.Context) error {
	rows := a.pending(KindCloudFront)
	var dists []string
	byDist := map[string][]Row{}
	for _, r := range rows {
		d := r.CloudFront.DistributionID
		if _, ok := byDist[d]; !ok {
			dists = append(dists, d)
		}
		byDist[d] = append(byDist[d], r)
	}
	for _, dist := range dists {
		if err := a.updateDistribution(ctx, dist, byDist[dist]); err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) updateDistribution(ctx context.Context, dist string, rows []Row) error {
	for attempt := 1; ; attempt++ {
		out, err := a.cl.CloudFront.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: aws.String(dist)})
		if err != nil {
			return fmt.Errorf("reading CloudFront distribution %s: %w", dist, err)
		}
		cfg := out.DistributionConfig
		var changing []Row
		for _, r := range rows {
			o := findOrigin(cfg, r.CloudFront.OriginID)
			if o == nil {
				return recovery.Permanent(fmt.Errorf("%d. %s: the origin is gone from the distribution; someone removed it since the plan: restore it by hand and press Retry", r.N, r.Resource))
			}
			want := r.CloudFront.New
			if a.back {
				want = r.CloudFront.Old
			}
			if strings.EqualFold(aws.ToString(o.DomainName), want) {
				if !a.st.finished(r.N) {
					a.settled(r)
				}
				continue
			}
			o.DomainName = aws.String(want)
			changing = append(changing, r)
		}
		if len(changing) == 0 {
			return a.journal()
		}
		for _, r := range changing {
			a.set(r.N, rowStarted)
		}
		if err := a.journal(); err != nil {
			return err
		}
		_, err = a.cl.CloudFront.UpdateDistribution(ctx, &cloudfront.UpdateDistributionInput{
			Id: aws.String(dist), IfMatch: out.ETag, DistributionConfig: cfg,
		})
		var pf *cftypes.PreconditionFailed
		if errors.As(err, &pf) && attempt < cfMaxAttempts {
			a.say("CloudFront distribution %s changed since it was read (ETag %s); re-reading it", dist, aws.ToString(out.ETag))
			continue
		}
		if err != nil {
			return fmt.Errorf("updating CloudFront distribution %s (ETag %s, attempt %d): %w", dist, aws.ToString(out.ETag), attempt, err)
		}
		a.st.addDistribution(dist)
		for _, r := range changing {
			a.set(r.N, rowDone)
		}
		if err := a.journal(); err != nil {
			return err
		}
		for _, r := range changing {
			a.say("%d. %s: %s → %s", r.N, r.Resource, a.fromLabel(r), a.wantLabel(r))
		}
		return nil
	}
}

func findOrigin(cfg *cftypes.DistributionConfig, id string) *cftypes.Origin {
	if cfg == nil || cfg.Origins == nil {
		return nil
	}
	for i := range cfg.Origins.Items {
		if aws.ToString(cfg.Origins.Items[i].Id) == id {
			return &cfg.Origins.Items[i]
		}
	}
	return nil
}

// ---- API Gateway ------------------------------------------------------------

// stageGroup is the rows published by one stage of one API.
type stageGroup struct {
	kind, api, stage string
	rows             []Row
	changedNow       bool // an integration was changed in this attempt
	resumed          bool // an earlier attempt changed one and may have deployed
}

func groupOf(groups *[]*stageGroup, kind, api, stage string) *stageGroup {
	for _, g := range *groups {
		if g.kind == kind && g.api == api && g.stage == stage {
			return g
		}
	}
	g := &stageGroup{kind: kind, api: api, stage: stage}
	*groups = append(*groups, g)
	return g
}

func (a *applier) rest(ctx context.Context) error {
	var groups []*stageGroup
	for _, r := range a.pending(KindREST) {
		x := r.REST
		g := groupOf(&groups, KindREST, x.APIID, x.Stage)
		prev := a.st.Rows[r.N]
		out, err := a.cl.REST.GetIntegration(ctx, &apigateway.GetIntegrationInput{
			RestApiId: aws.String(x.APIID), ResourceId: aws.String(x.ResourceID), HttpMethod: aws.String(x.HTTPMethod),
		})
		if err != nil {
			return fmt.Errorf("reading REST API %s integration %s %s: %w", x.APIID, x.HTTPMethod, x.ResourceID, err)
		}
		want := x.New
		if a.back {
			want = x.Old
		}
		if aws.ToString(out.Uri) == want {
			if prev == rowStarted || prev == rowChanged {
				a.set(r.N, rowChanged)
				g.rows, g.resumed = append(g.rows, r), true
				continue
			}
			a.settled(r)
			continue
		}
		a.set(r.N, rowStarted)
		if err := a.journal(); err != nil {
			return err
		}
		_, err = a.cl.REST.UpdateIntegration(ctx, &apigateway.UpdateIntegrationInput{
			RestApiId: aws.String(x.APIID), ResourceId: aws.String(x.ResourceID), HttpMethod: aws.String(x.HTTPMethod),
			PatchOperations: []apitypes.PatchOperation{{Op: apitypes.OpReplace, Path: aws.String("/uri"), Value: aws.String(want)}},
		})
		if err != nil {
			return fmt.Errorf("updating REST API %s integration %s %s uri: %w", x.APIID, x.HTTPMethod, x.ResourceID, err)
		}
		a.set(r.N, rowChanged)
		g.rows, g.changedNow = append(g.rows, r), true
		if err := a.journal(); err != nil {
			return err
		}
		a.say("%d. %s: %s → %s (deploying stage %s next)", r.N, r.Resource, a.fromLabel(r), a.wantLabel(r), x.Stage)
	}
	if err := a.journal(); err != nil {
		return err
	}
	for _, g := range groups {
		if len(g.rows) == 0 {
			continue
		}
		id := ""
		if g.resumed && !g.changedNow {
			var err error
			if id, err = a.restDeployedByUs(ctx, g); err != nil {
				return err
			}
		}
		if id == "" {
			out, err := a.cl.REST.CreateDeployment(ctx, &apigateway.CreateDeploymentInput{
				RestApiId: aws.String(g.api), StageName: aws.String(g.stage), Description: aws.String(a.marker),
			})
			if err != nil {
				return fmt.Errorf("deploying REST API %s to stage %s: %w", g.api, g.stage, err)
			}
			id = aws.ToString(out.Id)
		}
		if err := a.deployed(g, Deployment{Kind: KindREST, APIID: g.api, Stage: g.stage, ID: id}); err != nil {
			return err
		}
	}
	return nil
}

// restDeployedByUs finds a deployment an earlier attempt made just before
// it was interrupted: the stage serves one carrying this cutover's marker.
func (a *applier) restDeployedByUs(ctx context.Context, g *stageGroup) (string, error) {
	st, err := a.cl.REST.GetStage(ctx, &apigateway.GetStageInput{RestApiId: aws.String(g.api), StageName: aws.String(g.stage)})
	if err != nil {
		return "", fmt.Errorf("reading REST API %s stage %s: %w", g.api, g.stage, err)
	}
	if aws.ToString(st.DeploymentId) == "" {
		return "", nil
	}
	d, err := a.cl.REST.GetDeployment(ctx, &apigateway.GetDeploymentInput{RestApiId: aws.String(g.api), DeploymentId: st.DeploymentId})
	if err != nil {
		return "", fmt.Errorf("reading REST API %s deployment %s: %w", g.api, aws.ToString(st.DeploymentId), err)
	}
	if aws.ToString(d.Description) == a.marker {
		return aws.ToString(d.Id), nil
	}
	return "", nil
}

func (a *applier) deployed(g *stageGroup, d Deployment) error {
	a.st.addDeployment(d)
	for _, r := range g.rows {
		a.set(r.N, rowDone)
	}
	if err := a.journal(); err != nil {
		return err
	}
	how := "deployed"
	if d.Auto {
		how = "auto-deployed"
	}
	kind := "REST"
	if d.Kind == KindHTTP {
		kind = "HTTP"
	}
	a.say("%s API %s stage %s %s (deployment %s)", kind, d.APIID, d.Stage, how, d.ID)
	return nil
}

func (a *applier) http(ctx context.Context) error {
	var groups []*stageGroup
	for _, r := range a.pending(KindHTTP) {
		x := r.HTTP
		prev := a.st.Rows[r.N]
		out, err := a.cl.HTTP.GetIntegration(ctx, &apigatewayv2.GetIntegrationInput{ApiId: aws.String(x.APIID), IntegrationId: aws.String(x.IntegrationID)})
		if err != nil {
			return fmt.Errorf("reading HTTP API %s integration %s: %w", x.APIID, x.IntegrationID, err)
		}
		want := x.New
		if a.back {
			want = x.Old
		}
		var g *stageGroup
		if x.Stage != "" {
			g = groupOf(&groups, KindHTTP, x.APIID, x.Stage)
		}
		if aws.ToString(out.IntegrationUri) == want {
			if (prev == rowStarted || prev == rowChanged) && g != nil {
				a.set(r.N, rowChanged)
				g.rows, g.resumed = append(g.rows, r), true
				continue
			}
			a.settled(r)
			continue
		}
		a.set(r.N, rowStarted)
		if err := a.journal(); err != nil {
			return err
		}
		_, err = a.cl.HTTP.UpdateIntegration(ctx, &apigatewayv2.UpdateIntegrationInput{
			ApiId: aws.String(x.APIID), IntegrationId: aws.String(x.IntegrationID), IntegrationUri: aws.String(want),
		})
		if err != nil {
			return fmt.Errorf("updating HTTP API %s integration %s uri: %w", x.APIID, x.IntegrationID, err)
		}
		if g == nil {
			// No stage named: the API's stages publish it on their own (auto-deploy).
			a.set(r.N, rowDone)
		} else {
			a.set(r.N, rowChanged)
			g.rows, g.changedNow = append(g.rows, r), true
		}
		if err := a.journal(); err != nil {
			return err
		}
		a.say("%d. %s: %s → %s", r.N, r.Resource, a.fromLabel(r), a.wantLabel(r))
	}
	if err := a.journal(); err != nil {
		return err
	}
	for _, g := range groups {
		if len(g.rows) == 0 {
			continue
		}
		st, err := a.cl.HTTP.GetStage(ctx, &apigatewayv2.GetStageInput{ApiId: aws.String(g.api), StageName: aws.String(g.stage)})
		if err != nil {
			return fmt.Errorf("reading HTTP API %s stage %s: %w", g.api, g.stage, err)
		}
		if aws.ToBool(st.AutoDeploy) {
			if err := a.deployed(g, Deployment{Kind: KindHTTP, APIID: g.api, Stage: g.stage, ID: aws.ToString(st.DeploymentId), Auto: true}); err != nil {
				return err
			}
			continue
		}
		id := ""
		if g.resumed && !g.changedNow {
			if id, err = a.httpDeployedByUs(ctx, g, aws.ToString(st.DeploymentId)); err != nil {
				return err
			}
		}
		if id == "" {
			out, err := a.cl.HTTP.CreateDeployment(ctx, &apigatewayv2.CreateDeploymentInput{
				ApiId: aws.String(g.api), StageName: aws.String(g.stage), Description: aws.String(a.marker),
			})
			if err != nil {
				return fmt.Errorf("deploying HTTP API %s to stage %s: %w", g.api, g.stage, err)
			}
			id = aws.ToString(out.DeploymentId)
		}
		if err := a.deployed(g, Deployment{Kind: KindHTTP, APIID: g.api, Stage: g.stage, ID: id}); err != nil {
			return err
		}
	}
	return nil
}

// httpDeployedByUs reports the stage's deployment when it carries this
// cutover's marker (made by an attempt interrupted before journaling it).
func (a *applier) httpDeployedByUs(ctx context.Context, g *stageGroup, current string) (string, error) {
	if current == "" {
		return "", nil
	}
	in := &apigatewayv2.GetDeploymentsInput{ApiId: aws.String(g.api)}
	for {
		out, err := a.cl.HTTP.GetDeployments(ctx, in)
		if err != nil {
			return "", fmt.Errorf("listing HTTP API %s deployments: %w", g.api, err)
		}
		for _, d := range out.Items {
			if aws.ToString(d.DeploymentId) == current && aws.ToString(d.Description) == a.marker {
				return current, nil
			}
		}
		if aws.ToString(out.NextToken) == "" {
			return "", nil
		}
		in.NextToken = out.NextToken
	}
}
