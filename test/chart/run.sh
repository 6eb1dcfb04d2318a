#!/usr/bin/env bash
# Checks the Helm chart: helm lint, helm template for every charts/fedmm/ci/*-values.yaml case,
# kubeconform -strict against the Kubernetes JSON schemas (converted offline by
# scripts/install-tools.sh), values that must be rejected, and assertions on the rendered objects.
# Closes with "N passed, M failed" and exits non-zero on any failure.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
chart="$root/charts/fedmm"
eval "$("$root/scripts/install-tools.sh" --env)" || { echo "chart tests: tool installation failed"; echo "0 passed, 1 failed"; exit 1; }
helm="$FEDMM_TOOLS_BIN/helm"
kubeconform="$FEDMM_TOOLS_BIN/kubeconform"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

passed=0
failed=0
step() {
  local name="$1"; shift
  local log="$out/step.log"
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1)); echo "ok   $name"
  else
    failed=$((failed + 1)); echo "FAIL $name"; sed 's/^/     /' "$log" | tail -n 40
  fi
}

# CRDs of optional integrations (KEDA, cert-manager, Prometheus Operator) have no upstream
# schema here; assert-rendered.mjs checks their fields instead.
crds="ScaledObject,TriggerAuthentication,Certificate,ServiceMonitor"
mkdir -p "$out/rendered"
for values in "$chart"/ci/*-values.yaml; do
  case_name="$(basename "$values" -values.yaml)"
  step "helm lint --strict ($case_name)" "$helm" lint --strict "$chart" --kube-version "$FEDMM_K8S_VERSION" -f "$values"
  step "helm template ($case_name)" sh -c '"$1" template ci "$2" --namespace default --kube-version "$3" -f "$4" > "$5"' _ \
    "$helm" "$chart" "$FEDMM_K8S_VERSION" "$values" "$out/rendered/$case_name.yaml"
  step "kubeconform -strict, Kubernetes $FEDMM_K8S_VERSION ($case_name)" "$kubeconform" -strict -summary \
    -schema-location "$FEDMM_K8S_SCHEMAS" -kubernetes-version "$FEDMM_K8S_VERSION" -skip "$crds" \
    "$out/rendered/$case_name.yaml"
done

# Values that cannot work: rendering must fail (the assertions read each message).
reject() {
  local name="$1"; shift
  "$helm" template ci "$chart" --kube-version "$FEDMM_K8S_VERSION" "$@" >/dev/null 2>"$out/rendered/fail-$name.err"
  [ $? -ne 0 ] || echo "(rendered without error)" >"$out/rendered/fail-$name.err"
}
reject no-brokers --set redis.url=redis://r:6379
reject registry-replicas -f "$chart/ci/default-values.yaml" --set components.registry.replicas=2
reject mtls-without-health-port -f "$chart/ci/default-values.yaml" --set tls.internal=true
reject sasl-without-password -f "$chart/ci/default-values.yaml" --set kafka.sasl.enabled=true --set kafka.sasl.username=u
reject bad-bus-type -f "$chart/ci/default-values.yaml" --set bus.type=rabbitmq

node "$root/test/chart/assert-rendered.mjs" "$out/rendered" "$chart" >"$out/assert.log" 2>&1
assert_rc=$?
grep -v -E '^[0-9]+ passed, [0-9]+ failed$' "$out/assert.log"
summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out/assert.log" | tail -n 1)"
if [ -n "$summary" ]; then
  passed=$((passed + $(cut -d' ' -f1 <<<"$summary")))
  failed=$((failed + $(cut -d' ' -f3 <<<"$summary")))
fi
if [ "$assert_rc" -ne 0 ] && { [ -z "$summary" ] || [ "$(cut -d' ' -f3 <<<"$summary")" = 0 ]; }; then
  failed=$((failed + 1)); echo "FAIL assert-rendered.mjs exited with status $assert_rc"
fi

# Dashboards ship next to the chart; their queries must stay plain PromQL over the metric names.
node "$root/test/chart/check-dashboards.mjs" "$root/deploy/grafana/dashboards" >"$out/dash.log" 2>&1
dash_rc=$?
grep -v -E '^[0-9]+ passed, [0-9]+ failed$' "$out/dash.log"
dash="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out/dash.log" | tail -n 1)"
if [ -n "$dash" ]; then
  passed=$((passed + $(cut -d' ' -f1 <<<"$dash")))
  failed=$((failed + $(cut -d' ' -f3 <<<"$dash")))
fi
if [ "$dash_rc" -ne 0 ] && { [ -z "$dash" ] || [ "$(cut -d' ' -f3 <<<"$dash")" = 0 ]; }; then
  failed=$((failed + 1)); echo "FAIL check-dashboards.mjs exited with status $dash_rc"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
