import type { EnvReader } from '@fedmm/core';
import type { BaseConfig } from '@fedmm/service-kit';

export interface ValuationConfig {
  /** Reserved for settings of the valuation service. */
  readonly name: 'valuation';
}

export function readValuationConfig(_read: EnvReader, _base: BaseConfig): ValuationConfig {
  return { name: 'valuation' };
}
