import { startLagProbe, type ServiceModule } from '@fedmm/service-kit';
import { Topics } from '@fedmm/bus';
import { UnmaskPool } from '@fedmm/secagg';
import { readAggregatorConfig, type AggregatorConfig } from './config.js';
import { Coordinator } from './domain/coordinator.js';
import { LeaderLease } from './domain/lease.js';
import { aggregatorBinding } from './handlers/aggregator-handlers.js';
import { AggregationWorker } from './worker/worker.js';
import { GrpcRegistryPort, allowAllPrivacy, noAudit, noValuation, type AuditPort, type PrivacyPort, type ValuationPort } from './ports/index.js';

/** Optional peers the composition root may pass (other services' clients). */
export interface AggregatorPeers {
  privacy?: PrivacyPort;
  valuation?: ValuationPort;
  audit?: AuditPort;
}

let peerFactory: ((cfg: AggregatorConfig, addr: { privacy: string; valuation: string }, adapters: { store: import('@fedmm/store').Store; bus: import('@fedmm/bus').Bus }) => AggregatorPeers) | undefined;

/** Lets the process that hosts the aggregator supply clients of the privacy and valuation services and the audit log. */
export function setAggregatorPeers(factory: typeof peerFactory): void {
  peerFactory = factory;
}

async function ensureTopics(bus: import('@fedmm/bus').Bus): Promise<void> {
  await bus.ensureTopic(Topics.updates, { partitions: 8, maxMessageBytes: 2 * 1024 * 1024 });
  await bus.ensureTopic(Topics.roundEvents, { partitions: 4 });
  await bus.ensureTopic(Topics.shardResults, { partitions: 4 });
}

/** The aggregator: the round coordinator, with in-process workers unless they run as their own Deployment. */
export const aggregatorModule: ServiceModule<AggregatorConfig> = {
  name: 'aggregator',
  readConfig: readAggregatorConfig,
  async start(ctx) {
    await ensureTopics(ctx.bus);
    const registry = new GrpcRegistryPort(ctx.base.peers.registry, ctx.peerCredentials);
    const peers = peerFactory?.(ctx.config, ctx.base.peers, { store: ctx.store, bus: ctx.bus }) ?? {};
    const lease = new LeaderLease(ctx.store, ctx.log, ctx.config.leaseMs);
    const coordinator = new Coordinator({
      store: ctx.store,
      bus: ctx.bus,
      registry,
      privacy: ctx.config.usePrivacyService ? (peers.privacy ?? allowAllPrivacy) : allowAllPrivacy,
      valuation: ctx.config.useValuationService ? (peers.valuation ?? noValuation) : noValuation,
      audit: peers.audit ?? noAudit,
      lease,
      log: ctx.log.child({ role: 'coordinator' }),
      shardElements: ctx.config.shardElements,
      tickMs: ctx.config.tickMs,
      maxAttempts: ctx.config.maxAttempts,
      autoAdvance: ctx.config.autoAdvance,
    });
    const workers: AggregationWorker[] = [];
    const unmaskPool = ctx.config.inProcessWorkers > 0 ? createUnmaskPool(ctx.config) : undefined;
    for (let i = 0; i < ctx.config.inProcessWorkers; i++) {
      const w = new AggregationWorker({ bus: ctx.bus, store: ctx.store, registry, log: ctx.log.child({ role: 'worker' }), tickMs: ctx.config.tickMs, group: ctx.config.workerGroup, ...(unmaskPool ? { unmaskPool } : {}) });
      await w.start();
      workers.push(w);
    }
    coordinator.start();
    const lag = workers.length > 0 ? startLagProbe({ bus: ctx.bus, group: ctx.config.workerGroup, topics: [Topics.updates], log: ctx.log }) : undefined;
    return {
      bindings: [aggregatorBinding(coordinator, ctx.log)],
      async stop() {
        await lag?.stop();
        await coordinator.stop();
        for (const w of workers) await w.stop();
        await unmaskPool?.close();
        registry.close();
      },
    };
  },
};

/** An aggregation worker as its own process (`fedmm serve aggregator-worker`). */
export const aggregatorWorkerModule: ServiceModule<AggregatorConfig> = {
  name: 'aggregator-worker',
  readConfig: readAggregatorConfig,
  async start(ctx) {
    await ensureTopics(ctx.bus);
    const registry = new GrpcRegistryPort(ctx.base.peers.registry, ctx.peerCredentials);
    const unmaskPool = createUnmaskPool(ctx.config);
    const worker = new AggregationWorker({ bus: ctx.bus, store: ctx.store, registry, log: ctx.log.child({ role: 'worker' }), tickMs: ctx.config.tickMs, group: ctx.config.workerGroup, ...(unmaskPool ? { unmaskPool } : {}) });
    await worker.start();
    const lag = startLagProbe({ bus: ctx.bus, group: ctx.config.workerGroup, topics: [Topics.updates], log: ctx.log });
    return {
      bindings: [],
      async stop() {
        await lag.stop();
        await worker.stop();
        await unmaskPool?.close();
        registry.close();
      },
    };
  },
};

/** The threads a process's workers share for unmasking secure shards; none when one thread is configured. */
function createUnmaskPool(config: AggregatorConfig): UnmaskPool | undefined {
  return config.unmaskThreads > 1 ? new UnmaskPool({ threads: config.unmaskThreads }) : undefined;
}
