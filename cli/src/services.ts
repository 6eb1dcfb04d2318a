import type { ServiceModule, ServiceName } from '@fedmm/service-kit';
import { gatewayModule } from '@fedmm/gateway-service';
import { registryModule } from '@fedmm/registry-service';
import { aggregatorModule, aggregatorWorkerModule, setAggregatorPeers } from '@fedmm/aggregator-service';
import { privacyModule, PrivacyClient } from '@fedmm/privacy-service';
import { valuationModule, ValuationClient, PlatformAuditLog } from '@fedmm/valuation-service';

/** Every service the fedmm binary can run, by name. */
export const serviceModules: Partial<Record<ServiceName, ServiceModule<unknown>>> = {
  registry: registryModule,
  privacy: privacyModule,
  valuation: valuationModule,
  aggregator: aggregatorModule,
  'aggregator-worker': aggregatorWorkerModule,
  gateway: gatewayModule,
};

/** Start order: a service starts after the ones it calls. */
export const startOrder: ServiceName[] = ['registry', 'privacy', 'valuation', 'aggregator', 'gateway'];

// The coordinator reaches the privacy and valuation services through their clients and appends
// to the platform audit trail on its own store and bus.
setAggregatorPeers((_cfg, addr, adapters) => {
  const audit = new PlatformAuditLog({ store: adapters.store, bus: adapters.bus });
  return {
    privacy: new PrivacyClient(addr.privacy),
    valuation: new ValuationClient(addr.valuation),
    audit: { append: async (task, kind, payload, actor) => { await audit.append(task, kind, payload, actor); } },
  };
});
