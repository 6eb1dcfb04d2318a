export { gatewayModule } from './main.js';
export { readGatewayConfig, type GatewayConfig } from './config.js';
export { planUpdate, roundLayoutOf, type UpdatePlan, type PlannedRecord } from './domain/update-plan.js';
export { UpdateDecoder, type FilledRecord } from './domain/update-decoder.js';
export { TenantLimits } from './domain/tenant-limits.js';
export type * from './domain/types.js';
