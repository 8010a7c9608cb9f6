#!/usr/bin/env bash
# kube-bins.sh builds the real control-plane binaries that test/kubeenv runs (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kwok) from the Go module proxy alone, and caches them under
# .cache/kube/<version-key>/bin. A second run finds the stamp and does nothing.
#
# Usage: hack/kube-bins.sh          (prints the bin directory on its last line)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GO=${GO:-go}

# Versions come from the nested tools modules (their go.sum is committed) so the cache key cannot drift from them.
modversion() { awk -v m="$2" '($1 == m || ($1 == "require" && $2 == m)) { v = ($1 == m) ? $2 : $3 } END { print v }' "$1"; }
K8S_VERSION=$(modversion "$ROOT/tools/kube/go.mod" k8s.io/kubernetes)
ETCD_VERSION=$(modversion "$ROOT/tools/etcd/go.mod" go.etcd.io/etcd/server/v3)
KWOK_VERSION=v0.8.0
if [[ -z $K8S_VERSION || -z $ETCD_VERSION ]]; then
	echo "kube-bins: cannot read versions from tools/kube/go.mod or tools/etcd/go.mod" >&2
	exit 1
fi

KEY="k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}-kwok-${KWOK_VERSION}"
DIR="$ROOT/.cache/kube/$KEY"
BIN="$DIR/bin"
STAMP="$DIR/.complete"
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok stages.yaml)

# The stamp records what the binaries were built from (modules and this script's build flags), so changing either
# rebuilds them; Go's build cache keeps such a rebuild short.
want_stamp() {
	{
		echo "$KEY"
		cat "$ROOT/tools/etcd/go.sum" "$ROOT/tools/kube/go.sum" "$ROOT/tools/kube/go.mod" "${BASH_SOURCE[0]}"
	} | sha256sum | cut -d' ' -f1
}

cached() {
	[[ -f $STAMP && $(cat "$STAMP") == "$(want_stamp)" ]] || return 1
	local b
	for b in "${BINARIES[@]}"; do [[ -s $BIN/$b ]] || return 1; done
}

if cached; then
	echo "kube-bins: cached in $BIN (nothing to do)"
	echo "$BIN"
	exit 0
fi

mkdir -p "$BIN"
# Two concurrent runs (say, two make targets) must not build into the same directory at once.
if command -v flock >/dev/null; then
	exec 9>"$DIR/.lock"
	flock 9
	if cached; then
		echo "kube-bins: cached in $BIN (built by a concurrent run)"
		echo "$BIN"
		exit 0
	fi
fi
rm -f "$STAMP"

start=$SECONDS
step() { echo "kube-bins: [$((SECONDS - start))s] $*"; }

# -mod=readonly: the committed go.mod/go.sum must be complete; a GOFLAGS=-mod=mod from the caller must not rewrite them.
# CGO_ENABLED=0 gives static binaries, the way Kubernetes releases are built.
export CGO_ENABLED=0

step "etcd $ETCD_VERSION (tools/etcd)"
(cd "$ROOT/tools/etcd" && "$GO" mod download && "$GO" build -mod=readonly -trimpath -ldflags='-s -w' -o "$BIN/etcd" .)

step "kube-apiserver, kube-controller-manager, kube-scheduler $K8S_VERSION (tools/kube; several minutes the first time)"
# Stamp the version the way Kubernetes' release build does, so /version (and Helm's kubeVersion checks) see
# v1.37.2 rather than v0.0.0-master.
K8S_MINOR=${K8S_VERSION#v1.}
K8S_MINOR=${K8S_MINOR%%.*}
KUBE_LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	KUBE_LDFLAGS+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$K8S_MINOR -X $pkg.gitTreeState=clean"
done
(cd "$ROOT/tools/kube" && "$GO" mod download && "$GO" build -mod=readonly -trimpath -ldflags="$KUBE_LDFLAGS" -o "$BIN/" \
	k8s.io/kubernetes/cmd/kube-apiserver \
	k8s.io/kubernetes/cmd/kube-controller-manager \
	k8s.io/kubernetes/cmd/kube-scheduler)

step "kwok $KWOK_VERSION"
# go install pkg@version builds outside any module; GOFLAGS such as -mod=mod do not apply there. It runs in a scratch
# directory so that nothing touches the main module's go.mod/go.sum.
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
(cd "$SCRATCH" && GOFLAGS='' GOBIN="$BIN" "$GO" install -trimpath -ldflags='-s -w' "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION")

step "kwok stages (node fast, node heartbeat-with-lease, pod fast)"
KWOK_MOD=$(cd "$SCRATCH" && GOFLAGS='' "$GO" mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | awk -F'"' '$2 == "Dir" { print $4 }')
if [[ -z $KWOK_MOD || ! -d $KWOK_MOD/kustomize/stage ]]; then
	echo "kube-bins: kwok module source not found in the module cache" >&2
	exit 1
fi
{
	for f in "$KWOK_MOD"/kustomize/stage/node/fast/*.yaml \
		"$KWOK_MOD"/kustomize/stage/node/heartbeat-with-lease/*.yaml \
		"$KWOK_MOD"/kustomize/stage/pod/fast/*.yaml; do
		case $(basename "$f") in kustomization.yaml) continue ;; esac
		echo "---"
		echo "# from sigs.k8s.io/kwok@$KWOK_VERSION/${f#"$KWOK_MOD"/}"
		cat "$f"
	done
} >"$BIN/stages.yaml.tmp"
mv "$BIN/stages.yaml.tmp" "$BIN/stages.yaml"

want_stamp >"$STAMP"
step "done in $((SECONDS - start))s"
echo "$BIN"
