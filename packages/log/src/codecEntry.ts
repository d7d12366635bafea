// `@kyrodb/log/codec`: the record and frame codec alone — no LMDB, rxjs or prom-client — for
// threads that only encode, decode and check records (the backup's codec worker starts ~0.1 s
// sooner without loading the rest). The same modules as the package's main entry, so classes
// (LogError) are the same in both.
export { LogError, LogErrorCodes, isLogError } from './errors.js';
export type { LogErrorCode } from './errors.js';
export { GENESIS_HASH, fromHex, toHex } from './events.js';
export type { LogEvent, Metric } from './events.js';
export { RECORD_FORMAT_VERSION, chainHash, checkRecord, checkRecordInPlace, indexDocId, recordHashOk, recordIndexFields, recordIndexFieldsAt, decodePayload, indexFieldsOf, decodePayloadHeader, payloadHeaderAt, decodeRecord, encodeEvent, encodePayload, sealEvent, splitRecord } from './codec.js';
export type { IndexFields } from './codec.js';
export { FRAME_HEADER_BYTES, crc32Combine, encodeFrame, sealFrame, splitRun } from './wal.js';
export type { RecordRun } from './wal.js';
export { startWorker } from './worker.js';
