import { Topics, type Consumer } from '@fedmm/bus';
import { events as eventsPb } from '@fedmm/proto';
import type { ServiceModule } from '@fedmm/service-kit';
import { readGatewayConfig, type GatewayConfig } from './config.js';
import { RoundEventHub } from './domain/round-events.js';
import { SecAggRelay } from './domain/secagg-relay.js';
import { TenantLimits } from './domain/tenant-limits.js';
import { Uploads } from './domain/uploads.js';
import { gatewayBinding } from './handlers/gateway-handlers.js';
import { AggregatorClient, registryClient } from './peers.js';

/** How long start-up waits for the round-event consumer to own its partitions. */
const EVENTS_READY_MS = 30_000;

/** The gateway: the only client-facing endpoint, served with mutual TLS (the tenant is the client certificate's identity). */
export const gatewayModule: ServiceModule<GatewayConfig> = {
  name: 'gateway',
  readConfig: readGatewayConfig,
  async start(ctx) {
    const { config, log } = ctx;
    const aggregator = new AggregatorClient(ctx.base.peers.aggregator, ctx.peerCredentials, log);
    const registry = registryClient(ctx.base.peers.registry, ctx.peerCredentials);
    const uploads = new Uploads(ctx.bus, ctx.store, aggregator, { instanceId: config.instanceId, idleMs: config.uploadSessionIdleMs, leaseMs: config.uploadLeaseMs, windowBytes: config.uploadWindowBytes, log });
    const limits = new TenantLimits({ maxStreamsPerTenant: config.maxStreamsPerTenant, bytesPerSecond: config.bytesPerSecond, maxWaitMs: config.rateMaxWaitMs });
    const hub = new RoundEventHub(config.subscriberQueueLimit);
    const relay = new SecAggRelay(ctx.store);

    // A group of its own, starting at the end: every gateway sees every event from now on; late
    // subscribers learn the current round from the coordinator instead of from history.
    let ready!: () => void;
    const assigned = new Promise<void>((r) => (ready = r));
    let consumer: Consumer | undefined;
    try {
      consumer = await ctx.bus.subscribe({
        group: `fedmm-gateway-${config.instanceId}`,
        topics: [Topics.roundEvents],
        fromBeginning: false,
        onAssign: () => ready(),
        handler: async (msg) => {
          let event: eventsPb.RoundEvent;
          try {
            event = eventsPb.RoundEvent.decode(msg.value);
          } catch (err) {
            log.warn('skipping an undecodable round event', { partition: msg.partition, offset: msg.offset, err });
            return;
          }
          hub.deliver(event);
        },
      });
      const timer = setTimeout(() => {
        log.warn('the round-event consumer has no partitions yet; subscribers may miss events until it does', { waitedMs: EVENTS_READY_MS });
        ready();
      }, EVENTS_READY_MS);
      await assigned;
      clearTimeout(timer);
    } catch (e) {
      await uploads.close();
      aggregator.close();
      registry.close();
      throw e;
    }

    return {
      bindings: [gatewayBinding({ uploads, limits, hub, relay, aggregator, registry, secaggMaxWaitSeconds: config.secaggMaxWaitSeconds, log })],
      requireClientCertificates: true,
      async stop() {
        hub.close();
        await uploads.close();
        await consumer?.stop();
        aggregator.close();
        registry.close();
      },
    };
  },
};
