// Generated gRPC and message code (buf + ts-proto, see protos/buf.gen.yaml); never edited by hand.
export * as tensor from './gen/fedmm/v1/tensor.js';
export * as lineage from './gen/fedmm/v1/lineage.js';
export * as registry from './gen/fedmm/v1/registry.js';
export * as task from './gen/fedmm/v1/task.js';
export * as aggregator from './gen/fedmm/v1/aggregator.js';
export * as events from './gen/fedmm/v1/events.js';
export * as gateway from './gen/fedmm/v1/gateway.js';
export * as privacy from './gen/fedmm/v1/privacy.js';
export * as valuation from './gen/fedmm/v1/valuation.js';
export * as audit from './gen/fedmm/v1/audit.js';
export * as health from './gen/grpc/health/v1/health.js';
