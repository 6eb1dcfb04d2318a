export { registryModule } from './main.js';
export { Registry } from './domain/registry.js';
export { BlobStore } from './domain/blobs.js';
export type * from './domain/types.js';
export { RoundStaging } from './domain/round-staging.js';
