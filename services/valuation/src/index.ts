export { valuationModule, createValuationModule, type ValuationModuleOptions } from './main.js';
export { readValuationConfig, type ValuationConfig } from './config.js';
export { ValuationClient } from './client.js';
export { Scorer, consensusDistance, contributionTable, standing, termsOf, flatten, unflatten, layoutOf } from './domain/scorer.js';
export type * from './domain/types.js';
export type * from './domain/ports.js';
export { UpdateFiles, type StoredUpdateMeta } from './updates/update-files.js';
export { UpdateCollector } from './updates/collector.js';
export { contributionsKey, storeSecureAggregates, wholeRoundSecureAggregates, validationDirOf } from './adapters.js';
export { recordToPb } from './handlers/audit-handlers.js';
/** The aggregator's AuditPort: the platform audit trail on the store and bus ports. */
export { PlatformAuditLog } from '@fedmm/audit';
