import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { s3ClientConfig } from "../../src/blobs/s3.js";

/**
 * A real S3-compatible server on loopback for the S3 backend's tests: s3rver (npm), in its own process, speaking the
 * S3 REST API over HTTP and keeping objects in a temp directory. Path-style addressing and a fixed region; any
 * credentials. Not implemented by s3rver (so not exercised here): AbortMultipartUpload, ListMultipartUploads and
 * If-Match; the backend treats them as optional (an aborted upload never completes, so it stays invisible anyway).
 */
export interface TestS3 {
  endpoint: string;
  bucket: string;
  /** MESHAGENT_* / AWS_* variables that point a server at this bucket (under `prefix`). */
  env(prefix?: string): Record<string, string>;
  client(): S3Client;
  close(): Promise<void>;
}

const script = fileURLToPath(new URL("./s3rver-process.mjs", import.meta.url));

export async function startS3(): Promise<TestS3> {
  const dir = mkdtempSync(join(tmpdir(), "meshagent-s3-"));
  const child: ChildProcess = spawn(process.execPath, ["--openssl-legacy-provider", script, dir], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once("line", (line) => resolve((JSON.parse(line) as { port: number }).port));
    child.once("exit", (code) => reject(new Error(`s3rver exited with ${code}`)));
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const bucket = "meshagent-test";
  const settings = { endpoint, region: "us-east-1", forcePathStyle: true, accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };
  const client = () => new S3Client(s3ClientConfig(settings));
  const c = client();
  await c.send(new CreateBucketCommand({ Bucket: bucket }));
  c.destroy();
  return {
    endpoint,
    bucket,
    env: (prefix = "blobs") => ({
      MESHAGENT_STORAGE_URL: `s3://${bucket}/${prefix}`,
      AWS_ENDPOINT_URL_S3: endpoint,
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: "S3RVER",
      AWS_SECRET_ACCESS_KEY: "S3RVER",
      MESHAGENT_S3_PATH_STYLE: "true",
    }),
    client,
    async close() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
