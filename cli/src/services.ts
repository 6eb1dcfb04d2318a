import type { ServiceModule, ServiceName } from '@fedmm/service-kit';
import { gatewayModule } from '@fedmm/gateway-service';
import { registryModule } from '@fedmm/registry-service';
import { aggregatorModule, aggregatorWorkerModule, setAggregatorPeers } from '@fedmm/aggregator-service';
import { privacyModule, PrivacyClient } from '@fedmm/privacy-service';
import { valuationModule } from '@fedmm/valuation-service';

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

// The coordinator reaches the privacy service through its client.
setAggregatorPeers((_cfg, addr) => ({ privacy: new PrivacyClient(addr.privacy) }));
