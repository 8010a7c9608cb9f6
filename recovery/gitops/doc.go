// Package gitops implements phase 3 of the runbook up to the merge: the DR
// Argo CD Application templates derived from the primary's templates in
// GitLab (templates.generate), the branch, single commit and merge request
// that carry them (gitops.mr), and the merge behind the merge gate
// (gitops.merge). Package deploywatch implements deploy.watch.
//
// # Generation
//
// Every *.yaml / *.yml file under gitlab.templates_path at the default
// branch's head is read (recursive tree, paginated). Each document of kind
// Application (apiVersion argoproj.io/…) becomes one file
// <dr_path>/<destination namespace>/<name>.yaml: spec.destination.name (or
// .server, per argocd.destination_by) switched to the DR cluster, status
// dropped, every other field kept (chart, version, repoURL, path,
// targetRevision, Helm values, sync policy, labels, finalizers, comments).
// Keys are sorted and scalars keep their source form, so the output is
// byte-identical for the same input. Other kinds are listed as skipped. A
// file with any unusable document (invalid YAML, no metadata.name, no
// destination, no source, a name defined twice) is left out whole; all such
// files are reported in one error unless gitlab.fail_on_unparseable is false.
//
// Generation is pure: templates.generate journals the source commit and a
// content hash, not the files, and gitops.mr regenerates the same set from
// that commit.
//
// # Overrides (gitlab.overrides)
//
// gitlab.overrides maps an Application name (the primary's) to a map:
//
//	overrides:
//	  payments:
//	    replicaCount: 4            # Helm values: merged into helm.valuesObject
//	    image: {tag: 2.3.1-dr}     #   (deep merge; lists replace)
//	    valueFiles: [values-dr.yaml]   # appended to helm.valueFiles
//	    spec:                      # merged into the Application's spec
//	      syncPolicy: {automated: {selfHeal: false}}
//
// "valueFiles" and "spec" are reserved; every other key is a Helm value.
// When the template carries its values as the helm.values string (and no
// valuesObject), the values are merged into that string instead, because
// Argo CD lets valuesObject replace values entirely. Helm parameters in the
// template still win over values, as in Argo CD. Overrides naming no
// Application are reported (a likely typo) without failing.
//
// # Waves (Options.Waves; proposed config key argocd.waves)
//
//	waves:
//	  - {name: tier-0, selector: {tier: tier-0}}     # Application labels
//	  - {name: edge, apps: [gateway, auth]}          # or names
//
// The Application of wave i of n gets argocd.argoproj.io/sync-wave "i-n",
// so the tiers sync in order before every unlisted service (wave 0). Argo
// CD waits for a wave's health before the next only if the app of apps
// assesses Application health (the resource.customizations health check
// for argoproj.io/Application, off by default since Argo CD 1.8); without
// it waves order creation only. deploywatch reports per-wave counts when
// given the same list. Staged merges (one MR per tier) are not built.
//
// # Merge
//
// gitops.merge accepts the merge request with the SHA gitops.mr journaled;
// GitLab refuses it if the branch moved since (409), and the step fails
// naming both SHAs. Retry after that merges the head named in the error
// (it is journaled on the step): people review the new diff, then Retry.
// A merge request someone merged in GitLab counts as done.
package gitops
