{{/* Chart name, truncated to the 63 characters a label allows. */}}
{{- define "fedmm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name prefix of every object. */}}
{{- define "fedmm.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "fedmm.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object; selectors use fedmm.selectorLabels, which never carry the chart version. */}}
{{- define "fedmm.labels" -}}
helm.sh/chart: {{ include "fedmm.chart" . }}
{{ include "fedmm.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fedmm
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "fedmm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fedmm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of one component: pass (dict "root" $ "name" $name). */}}
{{- define "fedmm.componentLabels" -}}
{{ include "fedmm.labels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{- define "fedmm.componentSelectorLabels" -}}
{{ include "fedmm.selectorLabels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/* Object name of one component: pass (dict "root" $ "name" $name). */}}
{{- define "fedmm.componentName" -}}
{{- printf "%s-%s" (include "fedmm.fullname" .root) .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "fedmm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "fedmm.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The effective settings of one component: its own block merged over `default`.
Returns YAML; use `include "fedmm.component" (dict "root" $ "name" $name) | fromYaml`.
*/}}
{{- define "fedmm.component" -}}
{{- $own := index .root.Values.components .name | default dict }}
{{- $merged := deepCopy .root.Values.default }}
{{- include "fedmm.mergeInto" (dict "dst" $merged "src" (deepCopy $own)) }}
{{- if not $merged.serve }}{{ $_ := set $merged "serve" .name }}{{ end }}
{{- toYaml $merged }}
{{- end }}

{{/*
Deep merge of src into dst, in place. Unlike sprig's merge functions, a false, 0 or "" in src
overrides dst, so a component can switch off what the default block switches on. Lists replace.
*/}}
{{- define "fedmm.mergeInto" -}}
{{- $dst := .dst }}
{{- range $k, $v := .src }}
{{- if and (kindIs "map" $v) (kindIs "map" (get $dst $k)) }}
{{- include "fedmm.mergeInto" (dict "dst" (get $dst $k) "src" $v) }}
{{- else }}
{{- $_ := set $dst $k $v }}
{{- end }}
{{- end }}
{{- end }}

{{/* Image reference; pass (dict "root" $ "gpu" bool). */}}
{{- define "fedmm.image" -}}
{{- $img := ternary .root.Values.gpuImage .root.Values.image .gpu }}
{{- $tag := default .root.Chart.AppVersion $img.tag }}
{{- if $img.digest }}
{{- printf "%s:%s@%s" $img.repository $tag $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository $tag }}
{{- end }}
{{- end }}

{{/* Whether a component serves mTLS: the gateway always, the others when tls.internal. */}}
{{- define "fedmm.componentTls" -}}
{{- if or .c.tls .root.Values.tls.internal }}true{{ end }}
{{- end }}

{{- define "fedmm.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "fedmm.componentName" (dict "root" .root "name" .name))) .c.tlsSecretName }}
{{- end }}

{{/* host:port a peer dials to reach the first enabled component running `service`. */}}
{{- define "fedmm.serviceAddr" -}}
{{- $root := .root }}
{{- $want := .service }}
{{- $found := "" }}
{{- range $name := keys $root.Values.components | sortAlpha }}
{{- $c := include "fedmm.component" (dict "root" $root "name" $name) | fromYaml }}
{{- if and (not $found) $c.enabled (eq $c.serve $want) }}
{{- $found = printf "%s:%v" (include "fedmm.componentName" (dict "root" $root "name" $name)) (default $c.grpcPort $c.service.port | int) }}
{{- end }}
{{- end }}
{{- $found }}
{{- end }}

{{- define "fedmm.kafkaBrokers" -}}
{{- if .Values.kafka.bundled.enabled }}
{{- printf "%s-kafka:9092" (include "fedmm.fullname" .) }}
{{- else }}
{{- join "," .Values.kafka.brokers }}
{{- end }}
{{- end }}

{{- define "fedmm.redisUrl" -}}
{{- if .Values.redis.bundled.enabled }}
{{- printf "redis://%s-redis:6379" (include "fedmm.fullname" .) }}
{{- else }}
{{- .Values.redis.url }}
{{- end }}
{{- end }}

{{- define "fedmm.kafkaSaslSecretName" -}}
{{- default (printf "%s-kafka-sasl" (include "fedmm.fullname" .)) .Values.kafka.sasl.existingSecret }}
{{- end }}

{{- define "fedmm.redisSecretName" -}}
{{- default (printf "%s-redis-auth" (include "fedmm.fullname" .)) .Values.redis.auth.existingSecret }}
{{- end }}

{{/* Fails rendering with a message that says what to set when the values cannot work. */}}
{{- define "fedmm.validate" -}}
{{- if and (eq .Values.bus.type "kafka") (not .Values.kafka.bundled.enabled) (empty .Values.kafka.brokers) }}
{{- fail "bus.type is kafka but no brokers are set: set kafka.brokers to your cluster's bootstrap addresses, or kafka.bundled.enabled=true for a development cluster" }}
{{- end }}
{{- if and (eq .Values.store.type "redis") (not .Values.redis.bundled.enabled) (empty .Values.redis.url) }}
{{- fail "store.type is redis but no Redis is set: set redis.url (redis:// or rediss://), or redis.bundled.enabled=true for a development cluster" }}
{{- end }}
{{- if and .Values.kafka.sasl.enabled (empty .Values.kafka.sasl.existingSecret) (empty .Values.kafka.sasl.password) }}
{{- fail "kafka.sasl.enabled needs a password: set kafka.sasl.existingSecret (preferred) or kafka.sasl.password" }}
{{- end }}
{{- if and .Values.kafka.sasl.enabled (empty .Values.kafka.sasl.username) }}
{{- fail "kafka.sasl.enabled needs kafka.sasl.username" }}
{{- end }}
{{- if and .Values.redis.auth.enabled (empty .Values.redis.auth.existingSecret) (empty .Values.redis.auth.password) }}
{{- fail "redis.auth.enabled needs a password: set redis.auth.existingSecret (preferred) or redis.auth.password" }}
{{- end }}
{{- if and .Values.tls.certManager.enabled (empty .Values.tls.certManager.issuerRef.name) }}
{{- fail "tls.certManager.enabled needs tls.certManager.issuerRef.name (a CA Issuer or ClusterIssuer)" }}
{{- end }}
{{- range $name := keys .Values.components | sortAlpha }}
{{- $c := include "fedmm.component" (dict "root" $ "name" $name) | fromYaml }}
{{- if and $c.enabled (eq $c.serve "registry") (gt (int $c.replicas) 1) $c.persistence.enabled }}
{{- fail (printf "components.%s: the registry keeps blobs on a ReadWriteOnce volume and must run one replica" $name) }}
{{- end }}
{{- if and $c.enabled (include "fedmm.componentTls" (dict "root" $ "c" $c)) (not $c.healthPort) }}
{{- fail (printf "components.%s serves mTLS, which kubelet gRPC probes cannot speak: set components.%s.healthPort to a plaintext health port" $name $name) }}
{{- end }}
{{- end }}
{{- end }}

{{/* OTEL_RESOURCE_ATTRIBUTES of one component; K8S_* are expanded by the kubelet from earlier env entries. */}}
{{- define "fedmm.resourceAttributes" -}}
{{- $attrs := list "service.namespace=fedmm" (printf "service.version=%s" .root.Chart.AppVersion) (printf "k8s.namespace.name=%s" .root.Release.Namespace) "k8s.pod.name=$(K8S_POD_NAME)" "k8s.node.name=$(K8S_NODE_NAME)" (printf "fedmm.component=%s" .name) }}
{{- range $k, $v := .root.Values.observability.resourceAttributes }}
{{- $attrs = append $attrs (printf "%s=%v" $k $v) }}
{{- end }}
{{- join "," $attrs }}
{{- end }}
