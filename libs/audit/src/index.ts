export { type JsonValue, canonicalJson } from './canonical-json.js';
export {
  AUDIT_KINDS,
  type AuditKind,
  type AuditRecord,
  type AuditInput,
  type ChainHead,
  GENESIS_HASH,
  isAuditKind,
  recordHash,
  appendRecord,
} from './record.js';
export { type TamperKind, type ChainVerification, type VerifyOptions, verifyChain, isRecordShape } from './verify-chain.js';
export { type AuditSink, MemoryAuditSink, checkExtends } from './sink.js';
export { JsonlFileAuditSink } from './jsonl-file-sink.js';
export { type AuditLogOptions, AuditLog, KeyedMutex } from './audit-log.js';
export { type HeadStore, type CasAppendOptions, auditHeadKey, appendWithCas } from './cas-append.js';
export {
  EXPORT_FORMAT,
  EXPORT_VERSION,
  type ExportHeader,
  type ExportVerification,
  exportChain,
  exportTask,
  verifyExport,
} from './export.js';
export {
  type ConsortiumTerms,
  type TermsAcceptance,
  type SignatureAlgorithm,
  type AcceptanceCheck,
  termsDigest,
  signAcceptance,
  verifyAcceptance,
  membersMissingAcceptance,
  termsRecordedInput,
  termsAcceptedInput,
  termsStateFromChain,
} from './terms.js';
export {
  type PlatformAuditLogOptions,
  PlatformAuditLog,
  PlatformAuditSink,
  StoreAuditSink,
  StoreHeadStore,
  auditRecordKey,
  auditRecordPrefix,
} from './platform.js';
