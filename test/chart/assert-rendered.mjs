#!/usr/bin/env node
// Assertions on the objects the fedmm chart renders, one case per ci/*-values.yaml file.
//
//   node assert-rendered.mjs <rendered dir> <chart dir>
//
// <rendered dir> holds <case>.yaml files written by `helm template` (run.sh makes them).
// Prints one line per check and a closing "N passed, M failed"; exits 1 on any failure.
import { readFileSync, readdirSync } from 'node:fs';
import { join, basename } from 'node:path';
import { parseAllDocuments, parseDocument, isMap, isScalar, isSeq } from 'yaml';
import { assert, check, finish } from './checks.mjs';

const [renderedDir, chartDir] = process.argv.slice(2);
if (!renderedDir || !chartDir) {
  console.error('usage: assert-rendered.mjs <rendered dir> <chart dir>');
  process.exit(2);
}

function eq(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

const RELEASE = 'ci';
const FULL = 'ci-fedmm';
const SERVICES = ['gateway', 'registry', 'aggregator', 'aggregator-worker', 'privacy', 'valuation'];
// Every variable the services read (docs/DEPLOYMENT.md); a typo in the chart fails here.
const KNOWN_ENV = new Set([
  'FEDMM_GRPC_PORT', 'FEDMM_HEALTH_PORT', 'FEDMM_BUS', 'FEDMM_KAFKA_BROKERS', 'FEDMM_KAFKA_SSL',
  'FEDMM_KAFKA_SASL_MECHANISM', 'FEDMM_KAFKA_SASL_USERNAME', 'FEDMM_KAFKA_SASL_PASSWORD', 'FEDMM_STORE',
  'FEDMM_REDIS_URL', 'FEDMM_REDIS_PASSWORD', 'FEDMM_DATA_DIR', 'FEDMM_TLS_CERT', 'FEDMM_TLS_KEY', 'FEDMM_TLS_CA',
  'FEDMM_REGISTRY_ADDR', 'FEDMM_AGGREGATOR_ADDR', 'FEDMM_PRIVACY_ADDR', 'FEDMM_VALUATION_ADDR', 'FEDMM_LOG_LEVEL',
  'FEDMM_PROMETHEUS_PORT', 'OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_SERVICE_NAME', 'OTEL_RESOURCE_ATTRIBUTES',
  'FEDMM_COMPUTE', 'NODE_EXTRA_CA_CERTS', 'K8S_POD_NAME', 'K8S_NODE_NAME', 'GLIBC_TUNABLES',
  // ...and every setting docs/CONFIGURATION.md documents.
  ...Array.from(readFileSync(join(chartDir, '../../docs/CONFIGURATION.md'), 'utf8').matchAll(/`(FEDMM_[A-Z0-9_]+)`/g), (m) => m[1]),
]);

function load(caseName) {
  const text = readFileSync(join(renderedDir, `${caseName}.yaml`), 'utf8');
  const objects = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length) throw new Error(`${caseName}: YAML error ${doc.errors[0].message}`);
    const obj = doc.toJS();
    if (obj && typeof obj === 'object') objects.push(obj);
  }
  const find = (kind, name) => objects.find((o) => o.kind === kind && o.metadata?.name === name);
  const all = (kind) => objects.filter((o) => o.kind === kind);
  const get = (kind, name) => {
    const o = find(kind, name);
    if (!o) throw new Error(`${caseName}: no ${kind} ${name} rendered (have: ${all(kind).map((x) => x.metadata.name).join(', ') || 'none'})`);
    return o;
  };
  const workloads = objects.filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet');
  const fedmmWorkloads = workloads.filter((o) => o.metadata.labels?.['fedmm.dev/service']);
  const config = get('ConfigMap', `${FULL}-env`).data;
  return { objects, find, all, get, workloads, fedmmWorkloads, config };
}
const container = (w) => w.spec.template.spec.containers[0];
const envOf = (c) => Object.fromEntries((c.env ?? []).map((e) => [e.name, e]));
const matches = (selector, labels) => Object.entries(selector).every(([k, v]) => labels?.[k] === v);

const cases = readdirSync(renderedDir).filter((f) => f.endsWith('.yaml') && !f.startsWith('fail-')).map((f) => basename(f, '.yaml')).sort();
check('every ci/*-values.yaml case rendered', () => {
  const expected = readdirSync(join(chartDir, 'ci')).filter((f) => f.endsWith('-values.yaml')).map((f) => f.replace(/-values\.yaml$/, '')).sort();
  eq(cases, expected, 'rendered cases');
});

for (const name of cases) {
  const r = load(name);
  const { objects, find, all, get, workloads, fedmmWorkloads, config } = r;

  check(`${name}: every object carries the app.kubernetes.io labels and the chart label`, () => {
    for (const o of objects) {
      const l = o.metadata.labels ?? {};
      for (const key of ['app.kubernetes.io/name', 'app.kubernetes.io/instance', 'app.kubernetes.io/managed-by', 'app.kubernetes.io/version', 'app.kubernetes.io/part-of', 'helm.sh/chart']) {
        assert(l[key], `${o.kind}/${o.metadata.name} lacks label ${key}`);
      }
      eq(l['app.kubernetes.io/instance'], RELEASE, `${o.kind}/${o.metadata.name} instance label`);
    }
  });

  check(`${name}: selectors omit version labels and match their pod templates`, () => {
    const selecting = [...workloads, ...all('Service'), ...all('PodDisruptionBudget'), ...all('NetworkPolicy')];
    for (const o of selecting) {
      const sel = o.spec.selector?.matchLabels ?? o.spec.selector ?? o.spec.podSelector?.matchLabels;
      assert(sel && Object.keys(sel).length > 0, `${o.kind}/${o.metadata.name} has no selector`);
      for (const k of Object.keys(sel)) assert(!['helm.sh/chart', 'app.kubernetes.io/version'].includes(k), `${o.kind}/${o.metadata.name} selects on ${k}, which changes on upgrade`);
      const targets = workloads.filter((w) => matches(sel, w.spec.template.metadata.labels));
      assert(targets.length >= 1, `${o.kind}/${o.metadata.name} selects no pods: ${JSON.stringify(sel)}`);
      if (o.kind !== 'NetworkPolicy' || sel['app.kubernetes.io/component']) {
        assert(targets.length === 1, `${o.kind}/${o.metadata.name} selects pods of ${targets.length} workloads: ${targets.map((t) => t.metadata.name).join(', ')}`);
      }
    }
    for (const w of workloads) assert(matches(w.spec.selector.matchLabels, w.spec.template.metadata.labels), `${w.metadata.name}: selector does not match its own pods`);
  });

  check(`${name}: every service has gRPC startup, liveness and readiness probes on a declared port`, () => {
    assert(fedmmWorkloads.length >= 6, `expected at least 6 fedmm workloads, got ${fedmmWorkloads.length}`);
    for (const w of fedmmWorkloads) {
      const c = container(w);
      const ports = new Map(c.ports.map((p) => [p.containerPort, p.name]));
      for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
        const p = c[probe];
        assert(p?.grpc?.port, `${w.metadata.name}: ${probe} is not a gRPC probe`);
        assert(ports.has(p.grpc.port), `${w.metadata.name}: ${probe} targets port ${p.grpc.port}, which the container does not declare`);
      }
      const env = envOf(c);
      const grpcPort = Number(env.FEDMM_GRPC_PORT.value);
      eq(c.ports.find((p) => p.name === 'grpc').containerPort, grpcPort, `${w.metadata.name}: grpc port vs FEDMM_GRPC_PORT`);
      if (env.FEDMM_TLS_CERT) {
        // Kubelet gRPC probes are plaintext: an mTLS port cannot be probed.
        assert(c.readinessProbe.grpc.port !== grpcPort, `${w.metadata.name} serves mTLS on ${grpcPort} but is probed there`);
        eq(c.readinessProbe.grpc.port, Number(env.FEDMM_HEALTH_PORT?.value), `${w.metadata.name}: probe port vs FEDMM_HEALTH_PORT`);
      }
    }
  });

  check(`${name}: each service runs its own fedmm serve command on its default port`, () => {
    const defaults = { gateway: 7443, registry: 7001, aggregator: 7002, privacy: 7003, valuation: 7004, 'aggregator-worker': 7005 };
    const seen = new Set();
    for (const w of fedmmWorkloads) {
      const c = container(w);
      const serve = w.metadata.labels['fedmm.dev/service'];
      eq(c.args, ['serve', serve], `${w.metadata.name} args`);
      eq(Number(envOf(c).FEDMM_GRPC_PORT.value), defaults[serve], `${w.metadata.name} FEDMM_GRPC_PORT`);
      seen.add(serve);
    }
    eq([...seen].sort(), [...SERVICES].sort(), 'services deployed');
  });

  check(`${name}: containers use only documented environment variables, with values or references`, () => {
    for (const w of fedmmWorkloads) {
      for (const e of container(w).env) {
        assert(KNOWN_ENV.has(e.name), `${w.metadata.name}: unknown variable ${e.name}`);
        assert(typeof e.value === 'string' || e.valueFrom, `${w.metadata.name}: ${e.name} has neither a string value nor valueFrom`);
      }
    }
    for (const k of Object.keys(config)) assert(KNOWN_ENV.has(k), `ConfigMap: unknown variable ${k}`);
  });

  check(`${name}: peer addresses point at rendered Services and their gRPC ports`, () => {
    for (const [key, serve] of [['FEDMM_REGISTRY_ADDR', 'registry'], ['FEDMM_AGGREGATOR_ADDR', 'aggregator'], ['FEDMM_PRIVACY_ADDR', 'privacy'], ['FEDMM_VALUATION_ADDR', 'valuation']]) {
      const [host, port] = String(config[key]).split(':');
      const svc = get('Service', host);
      assert(svc.spec.ports.some((p) => p.port === Number(port) && p.targetPort === 'grpc'), `${key}=${config[key]}: Service has no gRPC port ${port}`);
      const w = fedmmWorkloads.find((x) => matches(svc.spec.selector, x.spec.template.metadata.labels));
      eq(w?.metadata.labels['fedmm.dev/service'], serve, `${key} reaches`);
    }
  });

  check(`${name}: pods run as non-root with a read-only root filesystem and no capabilities`, () => {
    for (const w of workloads) {
      const pod = w.spec.template.spec;
      const c = pod.containers[0];
      eq(pod.securityContext.runAsNonRoot, true, `${w.metadata.name} runAsNonRoot`);
      eq(pod.securityContext.seccompProfile?.type, 'RuntimeDefault', `${w.metadata.name} seccomp`);
      eq(c.securityContext.allowPrivilegeEscalation, false, `${w.metadata.name} allowPrivilegeEscalation`);
      eq(c.securityContext.capabilities.drop, ['ALL'], `${w.metadata.name} capabilities`);
      if (w.metadata.labels['fedmm.dev/service']) eq(c.securityContext.readOnlyRootFilesystem, true, `${w.metadata.name} readOnlyRootFilesystem`);
      assert(c.resources?.requests?.cpu && c.resources?.requests?.memory && c.resources?.limits?.memory, `${w.metadata.name}: missing cpu/memory requests or memory limit`);
    }
  });

  check(`${name}: the gateway serves mTLS from a mounted certificate Secret`, () => {
    const w = get('Deployment', `${FULL}-gateway`);
    const c = container(w);
    const env = envOf(c);
    const mount = c.volumeMounts.find((m) => m.name === 'tls');
    assert(mount?.readOnly, 'gateway has no read-only tls mount');
    for (const [k, file] of [['FEDMM_TLS_CERT', 'tls.crt'], ['FEDMM_TLS_KEY', 'tls.key'], ['FEDMM_TLS_CA', 'ca.crt']]) eq(env[k]?.value, `${mount.mountPath}/${file}`, k);
    const vol = w.spec.template.spec.volumes.find((v) => v.name === 'tls');
    assert(vol?.secret?.secretName, 'tls volume is not a Secret');
    const cert = find('Certificate', `${FULL}-gateway`);
    if (cert) eq(cert.spec.secretName, vol.secret.secretName, 'cert-manager Certificate secretName vs mounted Secret');
  });

  check(`${name}: the registry is a StatefulSet whose data directory is a claim`, () => {
    const s = get('StatefulSet', `${FULL}-registry`);
    const c = container(s);
    const dataDir = config.FEDMM_DATA_DIR;
    const mount = c.volumeMounts.find((m) => m.mountPath === dataDir);
    assert(mount, `no volume mounted at FEDMM_DATA_DIR ${dataDir}`);
    const claim = (s.spec.volumeClaimTemplates ?? []).find((t) => t.metadata.name === mount.name);
    assert(claim, `volume ${mount.name} is not a volumeClaimTemplate`);
    assert(claim.spec.resources.requests.storage, 'claim has no size');
    eq(s.spec.replicas, 1, 'registry replicas');
    get('Service', s.spec.serviceName);
  });

  check(`${name}: autoscalers target rendered workloads with the configured bounds`, () => {
    const scaled = new Set();
    for (const h of all('HorizontalPodAutoscaler')) {
      const t = get(h.spec.scaleTargetRef.kind, h.spec.scaleTargetRef.name);
      assert(h.spec.minReplicas >= 1 && h.spec.maxReplicas >= h.spec.minReplicas, `${h.metadata.name}: bounds ${h.spec.minReplicas}..${h.spec.maxReplicas}`);
      assert(h.spec.metrics.some((m) => m.resource?.name === 'cpu' && m.resource.target.averageUtilization > 0), `${h.metadata.name}: no CPU target`);
      assert(t.spec.replicas === undefined, `${t.metadata.name} sets replicas although an HPA owns them`);
      scaled.add(t.metadata.name);
    }
    for (const so of all('ScaledObject')) {
      const t = get(so.spec.scaleTargetRef.kind, so.spec.scaleTargetRef.name);
      assert(!scaled.has(t.metadata.name), `${t.metadata.name} has both an HPA and a ScaledObject`);
      assert(t.spec.replicas === undefined, `${t.metadata.name} sets replicas although KEDA owns them`);
      const trig = so.spec.triggers[0];
      eq(trig.type, 'kafka', `${so.metadata.name} trigger type`);
      eq(trig.metadata.bootstrapServers, config.FEDMM_KAFKA_BROKERS, `${so.metadata.name} bootstrapServers`);
      for (const k of ['consumerGroup', 'topic', 'lagThreshold']) assert(typeof trig.metadata[k] === 'string' && trig.metadata[k], `${so.metadata.name}: metadata.${k} must be a non-empty string`);
      if (config.FEDMM_KAFKA_SASL_MECHANISM || config.FEDMM_KAFKA_SSL === 'true') {
        const ta = get('TriggerAuthentication', trig.authenticationRef?.name);
        for (const ref of ta.spec.secretTargetRef) assert(ref.name && ref.key, `${ta.metadata.name}: incomplete secretTargetRef`);
      }
      scaled.add(t.metadata.name);
    }
  });

  check(`${name}: Secrets referenced by pods are rendered or named in values as existing`, () => {
    const rendered = new Set(all('Secret').map((s) => s.metadata.name));
    const certs = new Set(all('Certificate').map((c) => c.spec.secretName));
    const values = parseDocument(readFileSync(join(chartDir, 'ci', `${name}-values.yaml`), 'utf8')).toJS() ?? {};
    const existing = new Set([values.kafka?.sasl?.existingSecret, values.redis?.auth?.existingSecret, values.extraCaSecret?.name, ...Object.values(values.components ?? {}).map((c) => c?.tlsSecretName)].filter(Boolean));
    for (const w of workloads) {
      const pod = w.spec.template.spec;
      const refs = [
        ...pod.containers.flatMap((c) => (c.env ?? []).map((e) => e.valueFrom?.secretKeyRef?.name)),
        ...(pod.volumes ?? []).map((v) => v.secret?.secretName),
      ].filter(Boolean);
      for (const ref of refs) {
        const ok = rendered.has(ref) || certs.has(ref) || existing.has(ref) || (ref.endsWith('-tls') && !values.tls?.certManager?.enabled);
        assert(ok, `${w.metadata.name} references Secret ${ref}, which is neither rendered, issued by cert-manager nor given as existing`);
      }
    }
  });

  check(`${name}: each service has a PodDisruptionBudget and a NetworkPolicy`, () => {
    for (const w of fedmmWorkloads) {
      const labels = w.spec.template.metadata.labels;
      assert(all('PodDisruptionBudget').some((p) => matches(p.spec.selector.matchLabels, labels)), `${w.metadata.name}: no PodDisruptionBudget`);
      const np = all('NetworkPolicy').find((p) => matches(p.spec.podSelector.matchLabels, labels));
      assert(np, `${w.metadata.name}: no NetworkPolicy`);
      const grpcRule = np.spec.ingress.find((rule) => rule.ports.some((p) => p.port === 'grpc'));
      if (w.metadata.labels['fedmm.dev/service'] !== 'gateway') {
        assert(grpcRule.from?.length && grpcRule.from.every((f) => f.podSelector?.matchLabels?.['app.kubernetes.io/instance'] === RELEASE), `${np.metadata.name}: internal gRPC is open beyond the release`);
      }
    }
  });

  check(`${name}: the helm test pod health-checks every service through its Service`, () => {
    const pod = get('Pod', `${FULL}-test-health`);
    eq(pod.metadata.annotations['helm.sh/hook'], 'test', 'hook annotation');
    const targets = pod.spec.containers[0].args;
    eq(targets.length, fedmmWorkloads.length, 'targets');
    for (const t of targets) {
      const [host, port] = t.split(':');
      const svc = get('Service', host);
      assert(svc.spec.ports.some((p) => p.port === Number(port)), `${t}: Service ${host} has no port ${port}`);
      assert(svc.spec.ports.every((p) => p.appProtocol !== 'grpcs' || p.port !== Number(port)), `${t} is an mTLS port; the test speaks plaintext health`);
    }
  });

  check(`${name}: GPU pools request GPUs, use the GPU image and land on GPU nodes; CPU pods do not`, () => {
    for (const w of fedmmWorkloads) {
      const c = container(w);
      const pod = w.spec.template.spec;
      const compute = envOf(c).FEDMM_COMPUTE.value;
      const gpus = c.resources.limits?.['nvidia.com/gpu'];
      if (compute === 'tfjs-node-gpu') {
        assert(gpus >= 1, `${w.metadata.name}: GPU compute without nvidia.com/gpu limit`);
        eq(c.resources.requests['nvidia.com/gpu'], gpus, `${w.metadata.name} GPU request vs limit`);
        assert(/fedmm-gpu:/.test(c.image), `${w.metadata.name}: image ${c.image} is not the GPU image`);
        assert(Object.keys(pod.nodeSelector ?? {}).length > 0, `${w.metadata.name}: no node selector`);
        assert((pod.tolerations ?? []).some((t) => t.key === 'nvidia.com/gpu'), `${w.metadata.name}: no toleration for GPU taints`);
      } else {
        eq(compute, 'cpu', `${w.metadata.name} FEDMM_COMPUTE`);
        assert(gpus === undefined && c.resources.requests?.['nvidia.com/gpu'] === undefined, `${w.metadata.name}: CPU pod requests GPUs`);
        assert(!/fedmm-gpu:/.test(c.image), `${w.metadata.name}: CPU pod uses the GPU image`);
      }
    }
  });

  check(`${name}: pods restart when the shared configuration changes`, () => {
    const sums = new Set(fedmmWorkloads.map((w) => w.spec.template.metadata.annotations['checksum/config']));
    eq(sums.size, 1, 'distinct config checksums');
    assert(/^[0-9a-f]{64}$/.test([...sums][0]), 'checksum is not a sha256');
  });
}

// Case-specific expectations: what each values file exists to exercise.
const expectations = {
  default(r) {
    check('default: gateway is a LoadBalancer on 443 to the mTLS port, autoscaled 2..6', () => {
      const svc = r.get('Service', `${FULL}-gateway`);
      eq(svc.spec.type, 'LoadBalancer', 'type');
      eq(svc.spec.ports[0].port, 443, 'port');
      eq(svc.spec.ports[0].appProtocol, 'grpcs', 'appProtocol');
      eq(svc.spec.externalTrafficPolicy, 'Local', 'externalTrafficPolicy');
      const h = r.get('HorizontalPodAutoscaler', `${FULL}-gateway`);
      eq([h.spec.minReplicas, h.spec.maxReplicas], [2, 6], 'bounds');
    });
    check('default: workers autoscale 2..8 on CPU, no GPU pool, no KEDA', () => {
      const h = r.get('HorizontalPodAutoscaler', `${FULL}-aggregator-worker`);
      eq([h.spec.minReplicas, h.spec.maxReplicas], [2, 8], 'bounds');
      assert(!r.find('Deployment', `${FULL}-aggregator-worker-gpu`), 'GPU pool rendered by default');
      eq(r.all('ScaledObject').length, 0, 'ScaledObjects');
    });
    check('default: external Kafka and Redis, nothing bundled, no chart-made Secrets', () => {
      eq(r.config.FEDMM_KAFKA_BROKERS, 'kafka-0.kafka.data.svc:9092,kafka-1.kafka.data.svc:9092,kafka-2.kafka.data.svc:9092', 'brokers');
      eq(r.config.FEDMM_REDIS_URL, 'redis://redis-master.data.svc:6379', 'redis url');
      eq(r.config.FEDMM_PROMETHEUS_PORT, '9464', 'prometheus port');
      assert(!r.find('StatefulSet', `${FULL}-kafka`) && !r.find('StatefulSet', `${FULL}-redis`), 'bundled stores rendered');
      eq(r.all('Secret').length, 0, 'Secrets');
    });
  },
  bundled(r) {
    check('bundled: single-node KRaft Kafka with the broker settings fedmm needs', () => {
      const s = r.get('StatefulSet', `${FULL}-kafka`);
      const env = envOf(container(s));
      eq(env.KAFKA_PROCESS_ROLES.value, 'broker,controller', 'roles');
      assert(Number(env.KAFKA_MESSAGE_MAX_BYTES.value) >= 2 * 1024 * 1024, 'message.max.bytes below 2 MiB');
      assert(/^[A-Za-z0-9_-]{22}$/.test(env.CLUSTER_ID.value), `cluster id ${env.CLUSTER_ID.value} is not 22 URL-safe base64 characters`);
      eq(env.KAFKA_ADVERTISED_LISTENERS.value, `PLAINTEXT://${FULL}-kafka:9092`, 'advertised listener');
      eq(r.config.FEDMM_KAFKA_BROKERS, `${FULL}-kafka:9092`, 'brokers');
      eq(r.config.FEDMM_KAFKA_SSL, 'false', 'ssl');
    });
    check('bundled: Redis fsyncs every write, keeps it on a claim, and requires the chart-made password', () => {
      const s = r.get('StatefulSet', `${FULL}-redis`);
      const args = container(s).args.join(' ');
      assert(/--appendonly yes/.test(args) && /--appendfsync always/.test(args), `args: ${args}`);
      assert(/--requirepass \$\(REDISCLI_AUTH\)/.test(args), 'no requirepass');
      eq(s.spec.volumeClaimTemplates[0].metadata.name, 'data', 'claim');
      const secret = r.get('Secret', `${FULL}-redis-auth`);
      eq(Buffer.from(secret.data['redis-password'], 'base64').toString(), 'dev-only-password', 'password');
      for (const w of r.fedmmWorkloads) eq(envOf(container(w)).FEDMM_REDIS_PASSWORD?.valueFrom?.secretKeyRef, { name: `${FULL}-redis-auth`, key: 'redis-password' }, `${w.metadata.name} FEDMM_REDIS_PASSWORD`);
      eq(r.config.FEDMM_REDIS_URL, `redis://${FULL}-redis:6379`, 'redis url');
    });
    check('bundled: fixed replicas without autoscalers for the services switched off', () => {
      eq(r.get('Deployment', `${FULL}-gateway`).spec.replicas, 1, 'gateway replicas');
      assert(!r.find('HorizontalPodAutoscaler', `${FULL}-gateway`), 'gateway HPA rendered');
      eq(r.get('Service', `${FULL}-gateway`).spec.type, 'ClusterIP', 'gateway Service type');
      eq(r.config.OTEL_EXPORTER_OTLP_ENDPOINT, 'http://otel-collector.observability.svc:4318', 'OTLP endpoint');
    });
  },
  'gpu-keda'(r) {
    check('gpu-keda: GPU pool requests 2 GPUs on the nvidia runtime and joins the worker consumer group', () => {
      const w = r.get('Deployment', `${FULL}-aggregator-worker-gpu`);
      const c = container(w);
      eq(c.resources.limits['nvidia.com/gpu'], 2, 'GPU limit');
      eq(w.spec.template.spec.runtimeClassName, 'nvidia', 'runtimeClassName');
      eq(c.image, 'ghcr.io/fedmm/fedmm-gpu:0.1.0-cuda12', 'image');
      eq(c.args, ['serve', 'aggregator-worker'], 'args');
      eq(w.spec.template.spec.nodeSelector, { 'nvidia.com/gpu.present': 'true' }, 'nodeSelector');
    });
    check('gpu-keda: both worker pools scale on lag of the updates topic, with no HPA of their own', () => {
      for (const [pool, min, max, lag] of [['aggregator-worker', 2, 8, '128'], ['aggregator-worker-gpu', 0, 4, '64']]) {
        const so = r.get('ScaledObject', `${FULL}-${pool}`);
        eq([so.spec.minReplicaCount, so.spec.maxReplicaCount], [min, max], `${pool} bounds`);
        eq(so.spec.triggers[0].metadata.topic, 'fedmm.updates', `${pool} topic`);
        eq(so.spec.triggers[0].metadata.consumerGroup, 'fedmm-aggregator-workers', `${pool} group`);
        eq(so.spec.triggers[0].metadata.lagThreshold, lag, `${pool} lagThreshold`);
        assert(!r.find('HorizontalPodAutoscaler', `${FULL}-${pool}`), `${pool}: chart HPA rendered next to KEDA`);
      }
    });
    check('gpu-keda: SASL/SCRAM over TLS with the password from the existing Secret', () => {
      eq(r.config.FEDMM_KAFKA_SSL, 'true', 'ssl');
      eq(r.config.FEDMM_KAFKA_SASL_MECHANISM, 'scram-sha-512', 'mechanism');
      eq(r.config.FEDMM_KAFKA_SASL_USERNAME, 'fedmm', 'username');
      assert(!JSON.stringify(r.config).includes('password'), 'a password leaked into the ConfigMap');
      for (const w of r.fedmmWorkloads) {
        const env = envOf(container(w));
        eq(env.FEDMM_KAFKA_SASL_PASSWORD?.valueFrom?.secretKeyRef, { name: 'fedmm-kafka-credentials', key: 'kafka-password' }, `${w.metadata.name} SASL password`);
        eq(env.FEDMM_REDIS_PASSWORD?.valueFrom?.secretKeyRef, { name: 'fedmm-redis-credentials', key: 'redis-password' }, `${w.metadata.name} Redis password`);
        eq(env.NODE_EXTRA_CA_CERTS?.value, '/etc/fedmm/extra-ca/ca.crt', `${w.metadata.name} NODE_EXTRA_CA_CERTS`);
      }
      const keda = r.get('Secret', `${FULL}-keda-kafka`);
      eq(Buffer.from(keda.data.sasl, 'base64').toString(), 'scram_sha512', 'KEDA sasl mode');
      eq(Buffer.from(keda.data.tls, 'base64').toString(), 'enable', 'KEDA tls');
      const ta = r.get('TriggerAuthentication', `${FULL}-kafka`);
      eq(ta.spec.secretTargetRef.find((x) => x.parameter === 'password'), { parameter: 'password', name: 'fedmm-kafka-credentials', key: 'kafka-password' }, 'KEDA password ref');
      assert(!r.find('Secret', `${FULL}-kafka-sasl`), 'chart made a SASL Secret although one exists');
    });
  },
  mtls(r) {
    check('mtls: every service gets a cert-manager certificate for its Service names, except the one given', () => {
      for (const w of r.fedmmWorkloads) {
        const name = w.metadata.name;
        const env = envOf(container(w));
        assert(env.FEDMM_TLS_CERT, `${name} has no TLS`);
        const vol = w.spec.template.spec.volumes.find((v) => v.name === 'tls');
        if (name === `${FULL}-registry`) {
          eq(vol.secret.secretName, 'registry-tls-from-vault', 'registry Secret');
          assert(!r.find('Certificate', name), 'Certificate rendered for a component with its own Secret');
          continue;
        }
        const cert = r.get('Certificate', name);
        assert(cert.spec.dnsNames.includes(`${name}.default.svc`), `${name}: dnsNames ${cert.spec.dnsNames}`);
        assert(cert.spec.usages.includes('client auth') && cert.spec.usages.includes('server auth'), `${name}: usages`);
        eq(cert.spec.issuerRef, { group: 'cert-manager.io', kind: 'ClusterIssuer', name: 'fedmm-ca' }, `${name} issuer`);
      }
      const gw = r.get('Certificate', `${FULL}-gateway`);
      assert(gw.spec.dnsNames.includes('fl.example.com'), 'gateway certificate lacks its public name');
    });
    check('mtls: the gateway Ingress passes TLS through to the pods', () => {
      const ing = r.get('Ingress', `${FULL}-gateway`);
      eq(ing.metadata.annotations['nginx.ingress.kubernetes.io/ssl-passthrough'], 'true', 'passthrough');
      eq(ing.spec.tls, undefined, 'Ingress tls section (would terminate TLS)');
      eq(ing.spec.rules[0].http.paths[0].backend.service.name, `${FULL}-gateway`, 'backend');
    });
    check('mtls: network policies admit only the given client and monitoring networks', () => {
      const np = r.get('NetworkPolicy', `${FULL}-gateway`);
      const grpc = np.spec.ingress.find((x) => x.ports.some((p) => p.port === 'grpc'));
      eq(grpc.from, [{ ipBlock: { cidr: '203.0.113.0/24' } }], 'gateway from');
      const metrics = np.spec.ingress.find((x) => x.ports.some((p) => p.port === 'metrics'));
      eq(metrics.from[0].namespaceSelector.matchLabels, { 'kubernetes.io/metadata.name': 'monitoring' }, 'metrics from');
    });
    check('mtls: ServiceMonitor scrapes the metrics port of the services only', () => {
      const sm = r.get('ServiceMonitor', FULL);
      eq(sm.metadata.labels.release, 'kube-prometheus-stack', 'selector label');
      eq(sm.spec.endpoints[0].port, 'metrics', 'port');
      eq(sm.spec.endpoints[0].relabelings[0].targetLabel, 'service_name', 'service_name relabeling');
    });
    check('mtls: a component switches off what the default block switches on', () => {
      for (const name of ['privacy', 'valuation', 'aggregator', 'aggregator-worker', 'gateway']) r.get('HorizontalPodAutoscaler', `${FULL}-${name}`);
      assert(!r.find('HorizontalPodAutoscaler', `${FULL}-registry`), 'registry HPA rendered although components.registry.autoscaling.enabled=false');
      eq(r.get('StatefulSet', `${FULL}-registry`).spec.replicas, 1, 'registry replicas');
    });
    check('mtls: topology spread constraints get the component selector filled in', () => {
      const w = r.get('Deployment', `${FULL}-privacy`);
      const t = w.spec.template.spec.topologySpreadConstraints[0];
      eq(t.labelSelector.matchLabels['app.kubernetes.io/component'], 'privacy', 'component');
      eq(t.topologyKey, 'topology.kubernetes.io/zone', 'topologyKey');
    });
  },
};
for (const name of cases) {
  if (expectations[name]) expectations[name](load(name));
  else check(`${name}: has case-specific expectations in assert-rendered.mjs`, () => assert(false, 'add expectations for this case'));
}

// Values that cannot work must fail to render with a message that says what to set.
for (const f of readdirSync(renderedDir).filter((x) => x.startsWith('fail-') && x.endsWith('.err'))) {
  const [, expected] = /^fail-(.*)\.err$/.exec(f);
  check(`rejected values: ${expected}`, () => {
    const text = readFileSync(join(renderedDir, f), 'utf8');
    assert(/Error:/.test(text), `helm template did not fail:\n${text.slice(0, 400)}`);
    const needles = { 'no-brokers': 'set kafka.brokers', 'registry-replicas': 'must run one replica', 'mtls-without-health-port': 'healthPort', 'sasl-without-password': 'kafka.sasl.existingSecret', 'bad-bus-type': 'bus' };
    assert(text.includes(needles[expected] ?? '\u0000'), `message lacks "${needles[expected]}":\n${text.slice(0, 600)}`);
  });
}

// values.yaml is the chart's reference (helm-docs style): every key has a comment above it, and
// a "# --" comment documents the key's whole value, so keys inside it need none of their own.
check('values.yaml: every key is documented', () => {
  const doc = parseDocument(readFileSync(join(chartDir, 'values.yaml'), 'utf8'));
  const missing = [];
  const walk = (node, path, covered) => {
    if (!isMap(node)) return;
    node.items.forEach((pair, i) => {
      const key = isScalar(pair.key) ? String(pair.key.value) : '?';
      // The parser attaches a map's first comment to the map itself rather than to its first key.
      const comment = pair.key?.commentBefore ?? (i === 0 ? node.commentBefore : undefined);
      if (!comment && !covered) missing.push([...path, key].join('.'));
      const documentsValue = /(^|\n)\s*-- /.test(comment ?? '');
      walk(pair.value, [...path, key], covered || documentsValue);
    });
  };
  walk(doc.contents, [], false);
  assert(missing.length === 0, `undocumented keys:\n${missing.join('\n')}`);
});

finish();
