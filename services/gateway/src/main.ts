import type { ServiceModule } from '@fedmm/service-kit';
import { readGatewayConfig, type GatewayConfig } from './config.js';

/** The gateway service. */
export const gatewayModule: ServiceModule<GatewayConfig> = {
  name: 'gateway',
  readConfig: readGatewayConfig,
  async start() {
    return { bindings: [], async stop() {} };
  },
};
