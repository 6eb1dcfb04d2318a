export { aggregatorModule, aggregatorWorkerModule, setAggregatorPeers, type AggregatorPeers } from './main.js';
export { Coordinator } from './domain/coordinator.js';
export { AggregationWorker, WORKER_GROUP } from './worker/worker.js';
export type * from './domain/types.js';
export * from './domain/keys.js';
export type { AuditPort, PrivacyPort, ValuationPort, MechanismEvent } from './ports/peers.js';
export { GrpcRegistryPort, type RegistryPort } from './ports/registry-port.js';
