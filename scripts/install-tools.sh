#!/usr/bin/env bash
# Installs the chart tooling into the fedmm cache (outside the work tree, reused by later clones):
#   helm          go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION
#   kubeconform   go install github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION
#   Kubernetes JSON schemas for kubeconform, converted from the OpenAPI document that the
#   k8s.io/kubernetes Go module ships (no schema download at validation time).
#
#   scripts/install-tools.sh            # idempotent; prints the exports to use
#   eval "$(scripts/install-tools.sh --env)"   # FEDMM_TOOLS_BIN, FEDMM_K8S_SCHEMAS, FEDMM_K8S_VERSION
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
KUBECONFORM_VERSION="${KUBECONFORM_VERSION:-v0.8.0}"
K8S_VERSION="${FEDMM_K8S_VERSION:-v1.37.2}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${FEDMM_CACHE:-$HOME/.cache/fedmm}"
bin="$cache/bin"
schemas="$cache/k8s-schemas"

say() { printf 'install-tools: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

env_only=false
[ "${1:-}" = "--env" ] && env_only=true

command -v go >/dev/null 2>&1 || die "go not found on PATH: install Go 1.24+ (the tools are built with go install)"
command -v node >/dev/null 2>&1 || die "node not found on PATH: the schema conversion runs on Node.js 20+"
mkdir -p "$bin" "$schemas"
exec 7>"$cache/.install-tools.lock"
flock 7

# Tools are installed under versioned names, so a version bump reinstalls and old clones keep theirs.
install_go_tool() {
  local name="$1" pkg="$2" version="$3"
  local target="$bin/$name-$version"
  if [ ! -x "$target" ]; then
    say "building $name $version with go install (first run only)"
    local tmp
    tmp="$(mktemp -d)"
    GOBIN="$tmp" GOFLAGS="${GOFLAGS:--buildvcs=false}" go install "$pkg@$version" >&2 \
      || { rm -rf "$tmp"; die "go install $pkg@$version failed"; }
    mv "$tmp/$name" "$target"
    rm -rf "$tmp"
  fi
  ln -sfn "$name-$version" "$bin/$name"
}

install_go_tool helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
install_go_tool kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION"

if [ ! -f "$schemas/$K8S_VERSION-standalone-strict/deployment-apps-v1.json" ]; then
  say "converting the Kubernetes $K8S_VERSION OpenAPI document into JSON schemas"
  info="$(cd "$cache" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION")" \
    || die "could not download k8s.io/kubernetes@$K8S_VERSION from the Go module proxy"
  dir="$(node -e 'const j=JSON.parse(require("fs").readFileSync(0,"utf8")); if(!j.Dir) { console.error(j.Error||"no Dir"); process.exit(1) } console.log(j.Dir)' <<<"$info")"
  node "$root/test/chart/openapi-to-jsonschema.mjs" "$dir/api/openapi-spec/swagger.json" "$schemas" "$K8S_VERSION" >&2
fi

if $env_only; then
  printf 'export FEDMM_TOOLS_BIN=%q FEDMM_K8S_SCHEMAS=%q FEDMM_K8S_VERSION=%q\n' "$bin" "$schemas" "${K8S_VERSION#v}"
else
  say "helm: $("$bin/helm" version --short)"
  say "kubeconform: $("$bin/kubeconform" -v)"
  say "schemas: $schemas/$K8S_VERSION-standalone-strict"
  printf 'export PATH=%q:$PATH FEDMM_K8S_SCHEMAS=%q FEDMM_K8S_VERSION=%q\n' "$bin" "$schemas" "${K8S_VERSION#v}"
fi
