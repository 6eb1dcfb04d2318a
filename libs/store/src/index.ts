export * from './port.js';
export * from './json.js';
export { SqliteStore } from './sqlite.js';
export { RedisStore } from './redis.js';
export { runStoreContract, type StoreHarness } from './contract.js';
