import type { EnvReader } from '@fedmm/core';
import type { BaseConfig } from '@fedmm/service-kit';

export interface GatewayConfig {
  /** Reserved for settings of the gateway service. */
  readonly name: 'gateway';
}

export function readGatewayConfig(_read: EnvReader, _base: BaseConfig): GatewayConfig {
  return { name: 'gateway' };
}
