import type { EnvReader } from '@fedmm/core';
import type { BaseConfig } from '@fedmm/service-kit';

export interface RegistryConfig {
  blobDir: string;
  maxArtifactBytes: number;
  /** Staged round shards untouched this long are removed by garbage collection. */
  stagedTtlSeconds: number;
}

export function readRegistryConfig(read: EnvReader, base: BaseConfig): RegistryConfig {
  return {
    blobDir: read.string('FEDMM_REGISTRY_BLOB_DIR', `${base.dataDir}/blobs`),
    maxArtifactBytes: read.int('FEDMM_REGISTRY_MAX_ARTIFACT_BYTES', 8 * 1024 ** 3, { min: 1 }),
    stagedTtlSeconds: read.int('FEDMM_REGISTRY_STAGED_TTL_SECONDS', 7 * 24 * 3600, { min: 60 }),
  };
}
