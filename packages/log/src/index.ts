export { LogError, LogErrorCodes, isLogError } from './errors.js';
export type { LogErrorCode } from './errors.js';
export {
  COLLECTION_NAME_RE,
  DOC_ID_RE,
  EVENT_TYPES,
  GENESIS_HASH,
  MAX_DIMENSION,
  METRICS,
  defaultHnswParams,
  eventDocId,
  fromHex,
  isValidMetadata,
  MAX_METADATA_DEPTH,
  toHex,
  validateEventInput,
} from './events.js';
export type {
  CollectionCreatedBody,
  CommitFields,
  EventInput,
  EventType,
  HnswParams,
  LogEvent,
  Metadata,
  MetadataValue,
  Metric,
  VectorDeletedBody,
  VectorUpsertedBody,
} from './events.js';
export { RECORD_FORMAT_VERSION, chainHash, checkRecord, checkRecordInPlace, indexDocId, recordHashOk, recordIndexFields, recordIndexFieldsAt, decodePayload, indexFieldsOf, decodePayloadHeader, payloadHeaderAt, decodeRecord, encodeEvent, encodePayload, sealEvent, splitRecord } from './codec.js';
export type { IndexFields } from './codec.js';
export { EventLog, defaultWalOptions, makeDir } from './eventLog.js';
export { docsInKeyOrder, sortDocEntries } from './store.js';
export type { DocEntry, IndexRow } from './store.js';
export type { AppendResult, CheckedIndex, EventLogOptions, ImportOptions, LogHead, LogSink, TailOptions, VerifyOptions, VerifyProblem, VerifyReport, WalOptions } from './eventLog.js';
export { Failpoints, failpointError, parseFailpointAction } from './failpoints.js';
export type { FailpointAction } from './failpoints.js';
export { BREAKER_STATES, CircuitBreaker, defaultCircuitBreakerOptions } from './circuitBreaker.js';
export type { BreakerPermit, BreakerState, CircuitBreakerOptions } from './circuitBreaker.js';
export { FakeClock, microsToIso, systemClock } from './clock.js';
export type { Clock } from './clock.js';
export { WAL_ERROR_TYPES, classifyWalError, errnoName, isRetryable, refineByFreeSpace, toWalError, unwrapStorageError } from './walErrors.js';
export type { WalErrorType } from './walErrors.js';
export { acquireWriterLock, lockHolder, lockPath, processAlive, writerRunning } from './writerLock.js';
export type { WriterLock } from './writerLock.js';
export { startWorker } from './worker.js';
export { seededRandom } from './random.js';
export { DocKeyFingerprint } from './docFingerprint.js';
export { makeScratchDir, registerScratch, removeRegisteredScratch, sweepDeadScratch } from './scratch.js';
export { rxjs } from './rx.js';
export { DEFAULT_SEGMENT_BYTES, FRAME_HEADER_BYTES, FrameArena, FrameBuilder, encodeFrame, frameRecordCount, frameViews, fsyncPath, listSegments, readSegments, readWholeFile, segmentName, segmentRuns, segmentsChain, splitRun, walDirOf } from './wal.js';
export type { RecordRun, WalRecord } from './wal.js';
