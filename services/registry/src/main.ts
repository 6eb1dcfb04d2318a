import type { ServiceModule } from '@fedmm/service-kit';
import { readRegistryConfig, type RegistryConfig } from './config.js';
import { BlobStore } from './domain/blobs.js';
import { Registry } from './domain/registry.js';
import { RoundStaging } from './domain/round-staging.js';
import { registryBinding } from './handlers/registry-handlers.js';

/** The registry service: models, versions, artifacts and lineage. */
export const registryModule: ServiceModule<RegistryConfig> = {
  name: 'registry',
  readConfig: readRegistryConfig,
  async start(ctx) {
    const blobs = new BlobStore(ctx.config.blobDir);
    await blobs.init();
    const staging = new RoundStaging(ctx.config.blobDir);
    await staging.init();
    const registry = new Registry(ctx.store, blobs, ctx.log, staging, { stagedTtlMs: ctx.config.stagedTtlSeconds * 1000 });
    return {
      bindings: [registryBinding(registry, ctx.log, { maxArtifactBytes: ctx.config.maxArtifactBytes })],
      async stop() {},
    };
  },
};
