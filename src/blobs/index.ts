import { fileURLToPath } from "node:url";
import type { Config } from "../config.js";
import { FileBlobStore } from "./file.js";
import type { BlobStore } from "./types.js";

export * from "./types.js";
export * from "./keys.js";

/** MESHAGENT_STORAGE_URL: `s3://bucket/prefix`, `file:///abs/dir`, or a plain directory (default `<data dir>/storage`). */
export async function openBlobStore(config: Config): Promise<BlobStore> {
  const url = config.storageUrl;
  // The AWS SDK is loaded only for an S3 store.
  if (url.startsWith("s3://")) return (await import("./s3.js")).S3BlobStore.create(url, config.s3, { maxUploadBytes: config.maxUploadBytes });
  const dir = url.startsWith("file://") ? fileURLToPath(url) : url;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(dir)) throw new Error(`MESHAGENT_STORAGE_URL: unsupported scheme in "${url}" (use a directory or s3://bucket/prefix)`);
  const store = new FileBlobStore(dir);
  await store.init();
  return store;
}
