import type { EnvReader } from '@fedmm/core';
import type { BaseConfig } from '@fedmm/service-kit';

export interface PrivacyConfig {
  /** Budget of tenants and tasks without an explicit one; undefined: unlimited, spend still accounted. */
  readonly defaultEpsilon?: number;
  /** Delta of accounts created without a budget when the request names none. */
  readonly defaultDelta: number;
}

/** Reads FEDMM_PRIVACY_DEFAULT_EPSILON (optional) and FEDMM_PRIVACY_DEFAULT_DELTA (default 1e-5). */
export function readPrivacyConfig(read: EnvReader, _base: BaseConfig): PrivacyConfig {
  const defaultDelta = read.number('FEDMM_PRIVACY_DEFAULT_DELTA', 1e-5, { min: 1e-300, max: 0.999999 });
  const hasDefault = read.optionalString('FEDMM_PRIVACY_DEFAULT_EPSILON') !== undefined;
  return hasDefault ? { defaultEpsilon: read.number('FEDMM_PRIVACY_DEFAULT_EPSILON', 1, { min: 1e-6, max: 1e4 }), defaultDelta } : { defaultDelta };
}
