import type { ServiceModule } from '@fedmm/service-kit';
import { readValuationConfig, type ValuationConfig } from './config.js';

/** The valuation service. */
export const valuationModule: ServiceModule<ValuationConfig> = {
  name: 'valuation',
  readConfig: readValuationConfig,
  async start() {
    return { bindings: [], async stop() {} };
  },
};
