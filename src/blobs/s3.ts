import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { Transform, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { S3Settings } from "../config.js";
import { assertKey, assertPrefix, BlobChangedError, compareKeys } from "./types.js";
import type { BlobEntry, BlobHandle, BlobInfo, BlobStore, ByteRange, ListPage, PutOptions, PutResult } from "./types.js";

// We pin the SDK version in package.json; its notice about future Node requirements is not for our operators.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

const MIN_PART = 8 * 1024 * 1024;
/** Incomplete multipart uploads older than this are aborted by `sweep` (a crashed server's uploads). */
const STALE_MULTIPART_MS = 24 * 3600 * 1000;

const unquote = (etag: string | undefined) => (etag ?? "").replace(/^W\//, "").replace(/^"|"$/g, "");
const status = (e: unknown) => (e as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
const isNotFound = (e: unknown) => status(e) === 404 || (e as Error)?.name === "NotFound" || (e as Error)?.name === "NoSuchKey";

export interface S3Location {
  bucket: string;
  /** "" or ending with "/". */
  prefix: string;
}

/** `s3://bucket/some/prefix` → { bucket, prefix: "some/prefix/" }. */
export function parseS3Url(url: string): S3Location {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (!m || !m[1]) throw new Error(`MESHAGENT_STORAGE_URL must look like s3://bucket/prefix, got "${url}"`);
  const prefix = m[2].replace(/^\/+|\/+$/g, "");
  return { bucket: m[1], prefix: prefix ? prefix + "/" : "" };
}

export function s3ClientConfig(s: S3Settings): S3ClientConfig {
  return {
    region: s.region,
    endpoint: s.endpoint,
    forcePathStyle: s.forcePathStyle,
    credentials:
      s.accessKeyId && s.secretAccessKey ? { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey, sessionToken: s.sessionToken } : undefined,
    // Newer SDKs add CRC checksums (and aws-chunked bodies) to every upload; many S3-compatible servers reject them.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  };
}

/**
 * Blobs as objects in an S3-compatible bucket: key `a/b` is object `<prefix>a/b`.
 *
 * Atomic publish, chosen over "upload to a temp key, then CopyObject": a multipart upload (lib-storage) straight to
 * the final key. S3 makes the object visible only when CompleteMultipartUpload succeeds, which lib-storage sends
 * only after the body stream ended normally; a body that errors (client abort, size limit, short body) makes
 * lib-storage abort the multipart upload instead. Bodies smaller than one part go up as a single PutObject, which is
 * atomic by itself. Until then readers keep getting the previous version. This writes every byte once (a copy
 * would write it twice and needs UploadPartCopy above 5 GiB), and memory stays bounded at about
 * (queueSize + 1) × partSize. A crash leaves an invisible incomplete upload: `sweep` aborts those older than a day,
 * and a bucket lifecycle rule (AbortIncompleteMultipartUpload) does the same on the server side.
 */
export class S3BlobStore implements BlobStore {
  readonly kind = "s3" as const;
  readonly maxKeyBytes: number;
  private readonly partSize: number;

  constructor(
    private readonly client: S3Client,
    private readonly loc: S3Location,
    opts: { maxUploadBytes: number },
  ) {
    this.maxKeyBytes = 1024 - Buffer.byteLength(loc.prefix);
    // At most 10,000 parts per upload: grow the part size with the upload limit.
    this.partSize = Math.max(MIN_PART, Math.ceil(opts.maxUploadBytes / 9000));
  }

  static create(url: string, settings: S3Settings, opts: { maxUploadBytes: number }) {
    return new S3BlobStore(new S3Client(s3ClientConfig(settings)), parseS3Url(url), opts);
  }

  private k(key: string) {
    assertKey(key);
    return this.loc.prefix + key;
  }

  async put(key: string, body: Readable, opts: PutOptions = {}): Promise<PutResult> {
    let bodyError: Error | undefined;
    let size = 0;
    const counted = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        size += chunk.length;
        cb(null, chunk);
      },
    });
    // pipeline forwards a body error into `counted`, which makes lib-storage abort instead of completing.
    counted.on("error", (e) => (bodyError ??= e));
    void pipeline(body, counted).catch((e: Error) => (bodyError ??= e));
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.loc.bucket, Key: this.k(key), Body: counted, ContentType: opts.contentType },
      partSize: this.partSize,
      queueSize: 2,
      leavePartsOnError: false,
    });
    try {
      const r = await upload.done();
      if (bodyError) throw bodyError;
      return { size, etag: unquote(r.ETag) };
    } catch (e) {
      // lib-storage reports the failure of its abort call when there is one; the body's error is the real cause.
      throw bodyError ?? e;
    }
  }

  async open(key: string): Promise<BlobHandle | null> {
    const info = await this.stat(key);
    if (!info) return null;
    const { bucket } = this.loc;
    const k = this.k(key);
    const client = this.client;
    return {
      info,
      async read(range?: ByteRange) {
        let res;
        try {
          res = await client.send(
            new GetObjectCommand({
              Bucket: bucket,
              Key: k,
              Range: range ? `bytes=${range.start}-${range.end}` : undefined,
              IfMatch: `"${info.etag}"`,
            }),
          );
        } catch (e) {
          if (status(e) === 412 || isNotFound(e)) throw new BlobChangedError("the object changed while it was being read");
          throw e;
        }
        const stream = res.Body as Readable;
        // Servers that ignore If-Match still tell which version they sent.
        if (unquote(res.ETag) !== info.etag) {
          stream.destroy();
          throw new BlobChangedError("the object changed while it was being read");
        }
        return stream;
      },
      async close() {},
    };
  }

  async stat(key: string): Promise<BlobInfo | null> {
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.loc.bucket, Key: this.k(key) }));
      return { key, size: Number(r.ContentLength ?? 0), etag: unquote(r.ETag), lastModified: r.LastModified?.getTime() ?? 0 };
    } catch (e) {
      if (isNotFound(e)) return null;
      throw e;
    }
  }

  async delete(key: string): Promise<boolean> {
    if (!(await this.stat(key))) return false;
    await this.client.send(new DeleteObjectCommand({ Bucket: this.loc.bucket, Key: this.k(key) }));
    return true;
  }

  async list(prefix: string, opts: { after?: string; limit: number }): Promise<ListPage | null> {
    assertPrefix(prefix);
    const full = this.loc.prefix + prefix;
    const entries: (BlobEntry & { sortKey: string })[] = [];
    let token: string | undefined;
    let more = false;
    let sawAny = false;
    do {
      const r = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.loc.bucket,
          Prefix: full,
          Delimiter: "/",
          StartAfter: token ? undefined : opts.after !== undefined ? full + opts.after : undefined,
          ContinuationToken: token,
          MaxKeys: Math.min(1000, opts.limit + 1),
        }),
      );
      const page: (BlobEntry & { sortKey: string })[] = [];
      for (const o of r.Contents ?? []) {
        const name = (o.Key ?? "").slice(full.length);
        if (!name || name.includes("/")) continue;
        page.push({ name, isFolder: false, sortKey: name, size: Number(o.Size ?? 0), etag: unquote(o.ETag), lastModified: o.LastModified?.getTime() });
      }
      for (const p of r.CommonPrefixes ?? []) {
        const rel = (p.Prefix ?? "").slice(full.length);
        if (!rel || rel === "/") continue;
        page.push({ name: rel.slice(0, -1), isFolder: true, sortKey: rel });
      }
      sawAny ||= page.length > 0 || (r.KeyCount ?? 0) > 0;
      page.sort((a, b) => compareKeys(a.sortKey, b.sortKey));
      for (const e of page) {
        // StartAfter can hand back the folder we stopped at (its keys sort after "name/"): skip what we already gave.
        if (opts.after !== undefined && compareKeys(e.sortKey, opts.after) <= 0) continue;
        if (entries.length && compareKeys(e.sortKey, entries[entries.length - 1].sortKey) <= 0) continue;
        entries.push(e);
      }
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
      if (entries.length > opts.limit) {
        more = true;
        break;
      }
    } while (token);
    if (!sawAny && opts.after === undefined && prefix !== "") return null;
    const pageEntries = entries.slice(0, opts.limit).map(({ sortKey: _s, ...e }) => e);
    const last = entries[opts.limit - 1];
    return { entries: pageEntries, next: more || entries.length > opts.limit ? last?.sortKey : undefined };
  }

  async *walk(prefix: string): AsyncIterable<BlobInfo> {
    assertPrefix(prefix);
    const full = this.loc.prefix + prefix;
    let token: string | undefined;
    do {
      const r = await this.client.send(new ListObjectsV2Command({ Bucket: this.loc.bucket, Prefix: full, ContinuationToken: token }));
      for (const o of r.Contents ?? []) {
        const key = (o.Key ?? "").slice(this.loc.prefix.length);
        if (!key || key.endsWith("/")) continue;
        yield { key, size: Number(o.Size ?? 0), etag: unquote(o.ETag), lastModified: o.LastModified?.getTime() ?? 0 };
      }
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
  }

  async hasChildren(prefix: string): Promise<boolean> {
    assertPrefix(prefix);
    const r = await this.client.send(new ListObjectsV2Command({ Bucket: this.loc.bucket, Prefix: this.loc.prefix + prefix, MaxKeys: 1 }));
    return (r.Contents ?? []).length > 0;
  }

  async sweep(now = Date.now()): Promise<void> {
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      let r;
      try {
        r = await this.client.send(
          new ListMultipartUploadsCommand({ Bucket: this.loc.bucket, Prefix: this.loc.prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
        );
      } catch (e) {
        // Some S3-compatible servers (s3rver among them) don't implement the listing: leave it to lifecycle rules.
        if (status(e) === 501 || status(e) === 405 || (e as Error)?.name === "NotImplemented") return;
        throw e;
      }
      for (const u of r.Uploads ?? []) {
        if (u.Initiated && now - u.Initiated.getTime() > STALE_MULTIPART_MS)
          await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.loc.bucket, Key: u.Key, UploadId: u.UploadId })).catch(() => {});
      }
      keyMarker = r.IsTruncated ? r.NextKeyMarker : undefined;
      uploadIdMarker = r.IsTruncated ? r.NextUploadIdMarker : undefined;
    } while (keyMarker);
  }

  async close() {
    this.client.destroy();
  }
}
