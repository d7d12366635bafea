/**
 * Auditing: as-of reads, history, the log by seq/time, digests and chain verification, and the
 * state export as of an instant. Wire-in points for the server and CLI:
 * `app.register(auditRoutes, { log })` and `registerAuditCommands(program)`.
 */
export { AuditError, AuditErrorCodes, auditErrorStatus, isAuditError } from './errors.js';
export type { AuditErrorCode } from './errors.js';
export { AS_OF_RULE, MAX_INSTANT_MICROS, formatMicros, parseAsOf, parseInstant, parseIsoInstant, presentMicros } from './time.js';
export { digestFromParts, formatDigest, parseDigest, verifyDigest, verifyDigestAsync } from './digest.js';
export type { Digest, DigestVerifyResult } from './digest.js';
export { collectionAsOf, collectionAsOfAsync, collectionLiveAt, docHistory, docToJson, searchAsOf, stateAsOfAsync, docValueAsOf, eventToJson, headAtSeq, headToJson, stateAsOf } from './state.js';
export type { AuditCollection, AuditCollectionInfo, AuditDoc, AuditState, EventJson, HeadJson } from './state.js';
export { STATE_FORMAT, STATE_FORMAT_VERSION, exportStateAsOf, importState, writeState } from './exportState.js';
export type { ExportProgress, ExportSummary, ImportedState } from './exportState.js';
export { auditRoutes } from './routes.js';
export type { AuditRoutesOptions } from './routes.js';
export { AUDIT_EXIT, registerAuditCommands } from './cli.js';
