export { privacyModule } from './main.js';
export { PrivacyClient, type PrivacyClientOptions } from './client.js';
export { PrivacyLedger, type PrivacyLedgerOptions } from './domain/ledger.js';
export { roundEvents, resolveNoiseMultiplier, type RoundMechanism } from './domain/mechanisms.js';
export { composedEpsilon } from './domain/accounting.js';
export type * from './domain/types.js';
