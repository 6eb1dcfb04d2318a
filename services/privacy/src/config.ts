import type { EnvReader } from '@fedmm/core';
import type { BaseConfig } from '@fedmm/service-kit';

export interface PrivacyConfig {
  /** Reserved for settings of the privacy service. */
  readonly name: 'privacy';
}

export function readPrivacyConfig(_read: EnvReader, _base: BaseConfig): PrivacyConfig {
  return { name: 'privacy' };
}
