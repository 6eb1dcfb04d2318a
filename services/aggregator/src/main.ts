import type { ServiceModule } from '@fedmm/service-kit';
import { readAggregatorConfig, type AggregatorConfig } from './config.js';

/** The aggregator service. */
export const aggregatorModule: ServiceModule<AggregatorConfig> = {
  name: 'aggregator',
  readConfig: readAggregatorConfig,
  async start() {
    return { bindings: [], async stop() {} };
  },
};
