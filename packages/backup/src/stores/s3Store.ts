import { createRequire } from 'node:module';
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { BackupError, isBackupError } from '../errors.js';
import { defaultRetryOptions, withRetry, type RetryOptions } from '../retry.js';
import { checkKey, type ObjectStore, type PutOptions } from './objectStore.js';

// The AWS SDK (~70-90 ms to load) is loaded when the first S3Store is made, not with the package:
// a restore or backup to a local directory never needs it (`kyrodb restore` starts ~0.1 s sooner).
// The SDK's packages are CommonJS (`main` only), so `require` loads what `import` would.
const requireSdk = createRequire(import.meta.url);
let sdkS3: typeof import('@aws-sdk/client-s3') | undefined;
const s3 = (): typeof import('@aws-sdk/client-s3') => (sdkS3 ??= requireSdk('@aws-sdk/client-s3') as typeof import('@aws-sdk/client-s3'));

/** Options of the S3 store. Absent fields fall back to the SDK's defaults (env, shared config, instance roles). */
export interface S3StoreOptions {
  /** Endpoint URL of an S3-compatible server (e.g. `http://127.0.0.1:9000`). Default: AWS. */
  endpoint?: string;
  /** Region. Default: `AWS_REGION` or `us-east-1`. */
  region?: string;
  /** Path-style addressing (`endpoint/bucket/key`), needed by most S3-compatible servers. Default false. */
  forcePathStyle?: boolean;
  /** Static credentials. Default: the SDK's default provider chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Bodies at least this large go through multipart upload, bytes. Default 16 MiB. */
  multipartThresholdBytes?: number;
  /** Multipart part size, bytes (≥ 5 MiB). Default 8 MiB. */
  partSizeBytes?: number;
  /** Retries on 5xx and network errors (exponential backoff with jitter). */
  retry?: Partial<RetryOptions>;
  /** Per-request timeout, ms. Default 30 000. */
  requestTimeoutMs?: number;
  /** Told about each retried failure. */
  onRetry?: (err: unknown, attempt: number, op: string) => void;
}

/** Defaults of S3StoreOptions. */
export const defaultS3StoreOptions: Readonly<{ multipartThresholdBytes: number; partSizeBytes: number; requestTimeoutMs: number }> = Object.freeze({ multipartThresholdBytes: 16 << 20, partSizeBytes: 8 << 20, requestTimeoutMs: 30_000 });

/** True for failures worth retrying: 5xx, throttling, timeouts, connection resets. */
export function isRetryableS3Error(err: unknown): boolean {
  if (isBackupError(err)) return false;
  const e = err as { $metadata?: { httpStatusCode?: number }; name?: string; code?: string; $retryable?: unknown };
  const status = e.$metadata?.httpStatusCode;
  if (status !== undefined && (status >= 500 || status === 429 || status === 408)) return true;
  if (e.$retryable !== undefined) return true;
  const name = `${e.name ?? ''} ${e.code ?? ''}`;
  if (/ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|socket hang up|TimeoutError|RequestTimeout|NetworkingError|AbortError|SlowDown|InternalError|ServiceUnavailable/i.test(name)) return true;
  if (status === undefined) return true; // no HTTP response at all: a network failure
  return false;
}

function isNotFound(err: unknown): boolean {
  const e = err as { $metadata?: { httpStatusCode?: number }; name?: string };
  return e.$metadata?.httpStatusCode === 404 || e.name === 'NoSuchKey' || e.name === 'NotFound';
}

/**
 * An object store in an S3 bucket under a prefix (`s3://bucket/prefix`), through
 * `@aws-sdk/client-s3`; works with any S3-compatible server. Large bodies use multipart upload;
 * 5xx and network failures are retried with exponential backoff and jitter (the SDK's own
 * retries are off so there is one policy). Immutability is enforced by a HEAD + compare before
 * each put (best effort: S3 has no portable create-if-absent).
 */
export class S3Store implements ObjectStore {
  readonly url: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly client: S3Client;
  private readonly retry: RetryOptions;
  private readonly o: S3StoreOptions & typeof defaultS3StoreOptions;
  /** Set once the server refused a conditional put (501): puts are plain from then on. */
  private noConditionalPuts = false;

  constructor(url: string, options: S3StoreOptions = {}) {
    const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
    if (m === null || m[1] === undefined) throw new BackupError('BACKUP_INVALID_URL', `not an s3://bucket/prefix URL: ${url}`, { url });
    if (m[1].length < 3 || m[1].length > 63) throw new BackupError('BACKUP_INVALID_URL', `the bucket name ${JSON.stringify(m[1])} in ${url} has ${m[1].length} characters; S3 bucket names have 3 to 63`, { url });
    this.bucket = m[1];
    // The prefix's empty segments are dropped (`/prod`, `a//b/`, as a config or a URL may write
    // them): a key with an empty segment is one some S3 servers refuse and others store apart.
    const p = (m[2] ?? '').split('/').filter((seg) => seg !== '').join('/');
    this.prefix = p === '' ? '' : p + '/';
    this.url = `s3://${this.bucket}/${p}`;
    this.o = { ...defaultS3StoreOptions, ...options };
    this.retry = { ...defaultRetryOptions, ...options.retry };
    const cfg: S3ClientConfig = {
      region: options.region ?? process.env['AWS_REGION'] ?? 'us-east-1',
      forcePathStyle: options.forcePathStyle ?? false,
      maxAttempts: 1,
      // throwOnRequestTimeout: without it the SDK's handler (4.x) only logs a warning when a request
      // passes requestTimeout, and a store that accepts connections but never answers (a stopped
      // or black-holed server) hung every command, and a server's shutdown, for as long as it did.
      requestHandler: { requestTimeout: this.o.requestTimeoutMs, connectionTimeout: Math.min(this.o.requestTimeoutMs, 5000), throwOnRequestTimeout: true },
    };
    if (options.endpoint !== undefined) cfg.endpoint = options.endpoint;
    if (options.credentials !== undefined) cfg.credentials = options.credentials;
    this.client = new (s3().S3Client)(cfg);
  }

  private k(key: string): string {
    checkKey(key);
    return this.prefix + key;
  }

  private run<T>(op: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return withRetry(fn, (err) => signal?.aborted !== true && isRetryableS3Error(err), this.retry, (err, attempt) => this.o.onRetry?.(err, attempt, op)).catch((err: unknown) => {
      if (isBackupError(err)) throw err;
      // The HTTP status, when there was an answer: a HEAD's has no body, and the SDK named a 503 only `Unknown UnknownError`.
      const status = (err as { $metadata?: { httpStatusCode?: unknown } }).$metadata?.httpStatusCode;
      const http = typeof status === 'number' ? ` (HTTP ${status})` : '';
      throw new BackupError('BACKUP_STORE_ERROR', `S3 ${op} failed${http}: ${(err as Error).name ?? ''} ${(err as Error).message ?? String(err)}`, { op, url: this.url, ...(typeof status === 'number' ? { httpStatus: status } : {}) }, { cause: err });
    });
  }

  async put(key: string, body: Buffer, options: PutOptions = {}): Promise<void> {
    const Key = this.k(key);
    const { signal } = options;
    signal?.throwIfAborted();
    const existing = await this.head(key, signal);
    if (existing !== undefined) {
      if (existing.size === body.length && (await this.get(key)).equals(body)) return;
      throw new BackupError('BACKUP_OBJECT_CONFLICT', `object ${key} already exists with different bytes`, { key });
    }
    await this.run('put', async () => {
      if (body.length >= this.o.multipartThresholdBytes) {
        const { Upload } = requireSdk('@aws-sdk/lib-storage') as typeof import('@aws-sdk/lib-storage');
        const up = new Upload({ client: this.client, params: { Bucket: this.bucket, Key, Body: body }, partSize: Math.max(5 << 20, this.o.partSizeBytes), queueSize: 4, leavePartsOnError: false });
        const onAbort = (): void => void up.abort().catch(() => undefined);
        signal?.addEventListener('abort', onAbort, { once: true });
        try {
          await up.done();
        } finally {
          signal?.removeEventListener('abort', onAbort);
        }
      } else {
        const conditional = options.exclusive === true && !this.noConditionalPuts;
        try {
          await this.client.send(new (s3().PutObjectCommand)({ Bucket: this.bucket, Key, Body: body, ContentLength: body.length, ...(conditional ? { IfNoneMatch: '*' } : {}) }), signal !== undefined ? { abortSignal: signal } : {});
        } catch (err) {
          const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
          if (conditional && (status === 412 || status === 409)) throw new BackupError('BACKUP_OBJECT_CONFLICT', `object ${key} appeared while it was put`, { key });
          if (!conditional || status !== 501) throw err;
          // A server that does not take conditional puts: plain ones from now on (the caller reads back what won).
          this.noConditionalPuts = true;
          await this.client.send(new (s3().PutObjectCommand)({ Bucket: this.bucket, Key, Body: body, ContentLength: body.length }), signal !== undefined ? { abortSignal: signal } : {});
        }
      }
    }, signal);
  }

  async get(key: string): Promise<Buffer> {
    return this.fetch(key);
  }

  async readPrefix(key: string, bytes: number): Promise<Buffer> {
    // Its size first: an empty object has no byte 0 to range over (S3 answers 416; s3rver drops
    // the connection), and a range past the end is best not asked of every server.
    const h = await this.head(key);
    if (h === undefined) throw new BackupError('BACKUP_FILE_MISSING', `object ${key} is missing from ${this.url}`, { key });
    const n = Math.min(bytes, h.size);
    return n === 0 ? Buffer.alloc(0) : this.fetch(key, n);
  }

  /** The object's bytes, or its first `firstBytes` (a ranged GET); a short read is retried as a dropped connection. */
  private fetch(key: string, firstBytes?: number): Promise<Buffer> {
    const Key = this.k(key);
    return this.run('get', async () => {
      try {
        const r = await this.client.send(new (s3().GetObjectCommand)({ Bucket: this.bucket, Key, ...(firstBytes !== undefined ? { Range: `bytes=0-${firstBytes - 1}` } : {}) }));
        if (r.Body === undefined) throw new Error('empty body');
        const bytes = Buffer.from(await r.Body.transformToByteArray());
        const want = firstBytes ?? r.ContentLength;
        if (want !== undefined && bytes.length !== want) throw Object.assign(new Error(`short read: ${bytes.length} of ${want} bytes`), { name: 'ECONNRESET' });
        return bytes;
      } catch (err) {
        if (isNotFound(err)) throw new BackupError('BACKUP_FILE_MISSING', `object ${key} is missing from ${this.url}`, { key });
        throw err;
      }
    });
  }

  async head(key: string, signal?: AbortSignal): Promise<{ size: number } | undefined> {
    const Key = this.k(key);
    return this.run(
      'head',
      async () => {
        try {
          const r = await this.client.send(new (s3().HeadObjectCommand)({ Bucket: this.bucket, Key }), signal !== undefined ? { abortSignal: signal } : {});
          return { size: r.ContentLength ?? 0 };
        } catch (err) {
          if (isNotFound(err)) return undefined;
          throw err;
        }
      },
      signal,
    );
  }

  async list(prefix: string): Promise<string[]> {
    const out: string[] = [];
    let token: string | undefined;
    do {
      const t = token;
      const r = await this.run('list', () => this.client.send(new (s3().ListObjectsV2Command)({ Bucket: this.bucket, Prefix: this.prefix + prefix, ...(t !== undefined ? { ContinuationToken: t } : {}) })));
      for (const o of r.Contents ?? []) if (o.Key !== undefined) out.push(o.Key.slice(this.prefix.length));
      token = r.IsTruncated === true ? r.NextContinuationToken : undefined;
    } while (token !== undefined);
    return out.sort();
  }

  async delete(key: string): Promise<void> {
    const Key = this.k(key);
    await this.run('delete', () => this.client.send(new (s3().DeleteObjectCommand)({ Bucket: this.bucket, Key })));
  }

  /** A presigned GET URL valid for `expiresSec` seconds. */
  presignGet(key: string, expiresSec: number): Promise<string> {
    const { getSignedUrl } = requireSdk('@aws-sdk/s3-request-presigner') as typeof import('@aws-sdk/s3-request-presigner');
    return getSignedUrl(this.client, new (s3().GetObjectCommand)({ Bucket: this.bucket, Key: this.k(key) }), { expiresIn: expiresSec });
  }

  /** Closes the HTTP connections. */
  destroy(): void {
    this.client.destroy();
  }
}
