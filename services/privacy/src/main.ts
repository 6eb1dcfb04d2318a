import type { ServiceModule } from '@fedmm/service-kit';
import { readPrivacyConfig, type PrivacyConfig } from './config.js';

/** The privacy service. */
export const privacyModule: ServiceModule<PrivacyConfig> = {
  name: 'privacy',
  readConfig: readPrivacyConfig,
  async start() {
    return { bindings: [], async stop() {} };
  },
};
