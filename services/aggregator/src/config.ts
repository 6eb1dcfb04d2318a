import type { EnvReader } from '@fedmm/core';
import type { BaseConfig } from '@fedmm/service-kit';

export interface AggregatorConfig {
  /** Reserved for settings of the aggregator service. */
  readonly name: 'aggregator';
}

export function readAggregatorConfig(_read: EnvReader, _base: BaseConfig): AggregatorConfig {
  return { name: 'aggregator' };
}
