import { metrics, type Attributes, type Counter, type Histogram, type ObservableGauge } from '@opentelemetry/api';

/**
 * Every domain metric fedmm exports, named in one place. Prometheus names replace dots with
 * underscores and add _total to counters (see docs/OBSERVABILITY.md). A name already holds its
 * unit's word (seconds, bytes), so the SDK's Prometheus exporter, which adds no unit suffix, and
 * the collector's, which adds one unless the name has it, give the same series names.
 */
export const MetricNames = Object.freeze({
  rounds: 'fedmm.rounds',
  roundDuration: 'fedmm.round.duration.seconds',
  updatesReceived: 'fedmm.updates.received',
  updatesRejected: 'fedmm.updates.rejected',
  bytesIn: 'fedmm.bytes.in',
  bytesOut: 'fedmm.bytes.out',
  aggregationBytes: 'fedmm.aggregation.bytes',
  consumerLag: 'fedmm.consumer.lag',
  epsilonSpent: 'fedmm.privacy.epsilon.spent',
  contribution: 'fedmm.contribution',
  auditChainLength: 'fedmm.audit.chain.length',
});

/**
 * Attribute keys used on fedmm metrics and spans. Metric labels are plain words because they
 * become Prometheus label names as they are (the dashboards query `tenant`, `task`, ...); a
 * dotted key would turn into `fedmm_tenant`.
 */
export const Attr = Object.freeze({
  task: 'task',
  round: 'round',
  tenant: 'tenant',
  state: 'state',
  reason: 'reason',
  service: 'service',
  shard: 'shard',
  topic: 'topic',
  partition: 'partition',
});

type GaugeValues = Map<string, { value: number; attributes: Attributes }>;

/** A gauge whose current values are set by the domain and read at each collection. */
export class SettableGauge {
  private readonly values: GaugeValues = new Map();
  readonly instrument: ObservableGauge;
  constructor(name: string, description: string, unit?: string) {
    this.instrument = metrics.getMeter('fedmm').createObservableGauge(name, { description, ...(unit ? { unit } : {}) });
    this.instrument.addCallback((r) => {
      for (const v of this.values.values()) r.observe(v.value, v.attributes);
    });
  }
  set(value: number, attributes: Attributes = {}): void {
    const key = JSON.stringify(Object.entries(attributes).sort());
    this.values.set(key, { value, attributes });
  }
}

export interface FedmmMetrics {
  rounds: SettableGauge;
  roundDuration: Histogram;
  updatesReceived: Counter;
  updatesRejected: Counter;
  bytesIn: Counter;
  bytesOut: Counter;
  aggregationBytes: Counter;
  consumerLag: SettableGauge;
  epsilonSpent: SettableGauge;
  contribution: SettableGauge;
  auditChainLength: SettableGauge;
}

let instance: FedmmMetrics | undefined;

/** The process's domain metrics (created on first use, after telemetry started). */
export function fedmmMetrics(): FedmmMetrics {
  if (instance) return instance;
  const meter = metrics.getMeter('fedmm');
  instance = {
    rounds: new SettableGauge(MetricNames.rounds, 'Rounds by state'),
    roundDuration: meter.createHistogram(MetricNames.roundDuration, { description: 'Round duration from open to publish or failure', unit: 's' }),
    updatesReceived: meter.createCounter(MetricNames.updatesReceived, { description: 'Client updates fully received' }),
    updatesRejected: meter.createCounter(MetricNames.updatesRejected, { description: 'Client updates rejected, by reason' }),
    bytesIn: meter.createCounter(MetricNames.bytesIn, { description: 'Bytes received from clients or peers', unit: 'By' }),
    bytesOut: meter.createCounter(MetricNames.bytesOut, { description: 'Bytes sent to clients or peers', unit: 'By' }),
    aggregationBytes: meter.createCounter(MetricNames.aggregationBytes, { description: 'Update bytes folded into accumulators', unit: 'By' }),
    consumerLag: new SettableGauge(MetricNames.consumerLag, 'Messages behind the end of each partition'),
    epsilonSpent: new SettableGauge(MetricNames.epsilonSpent, 'Committed epsilon per tenant and task'),
    contribution: new SettableGauge(MetricNames.contribution, 'Cumulative contribution per tenant and task'),
    auditChainLength: new SettableGauge(MetricNames.auditChainLength, 'Records in the audit chain per task'),
  };
  return instance;
}
