import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import { Meshagent } from "./helpers/official.js";
import type { TestDatabase } from "./helpers/server.js";
import { restartableData, ROOT, spawnServer, TSX_LOADER, type ServerProcess } from "./helpers/process.js";
import { BACKENDS, backendEnv, q, rawUpload, until, type Backend } from "./helpers/storage.js";
import type { TestS3 } from "./helpers/s3.js";
import { openStore, type Store } from "../src/store/db.js";

/**
 * Durability of storage across `kill -9`: the real server runs as a child process (src/main.ts serve, one process)
 * on a fixed data directory and database, is killed with SIGKILL in the middle of a large slow upload, and restarted.
 */
describe.each(BACKENDS)("storage survives kill -9 (%s backend)", (backend: Backend) => {
  let s3: TestS3 | undefined;
  let dataDir: string;
  let db: TestDatabase;
  let store: Store;
  let env: Record<string, string>;
  let baseUrl: string;
  let projectId: string;
  let apiKey: string;
  let child: ServerProcess | undefined;
  const restart = async () => (child = await spawnServer(env));
  const storageDir = () => join(dataDir, "storage");
  const http = (path: string) => fetch(baseUrl + path, { headers: { authorization: `Bearer ${apiKey}` } });

  beforeAll(async () => {
    const b = await backendEnv(backend, "kill");
    s3 = b.s3;
    ({ dataDir, db, baseUrl, env } = await restartableData("meshagent-kill-", b.env));
    const out = execFileSync(
      process.execPath,
      ["--import", TSX_LOADER, join(ROOT, "src/main.ts"), "bootstrap", "--json", "--email", "kill@example.com", "--project", "kill"],
      {
        cwd: dataDir,
        env: { ...process.env, ...env, MESHAGENT_LOG_LEVEL: "warn" },
        encoding: "utf8",
      },
    );
    const j = JSON.parse(out.trim().split("\n").pop()!) as { project_id: string; api_key: string };
    projectId = j.project_id;
    apiKey = j.api_key;
    store = openStore(db.url);
  });

  afterAll(async () => {
    await child?.kill("SIGKILL");
    await store?.close();
    await db?.drop();
    await s3?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it("a server killed mid-upload restarts with no partial file and the old version intact", async () => {
    await restart();
    const client = new Meshagent({ baseUrl, token: apiKey });
    const v1 = randomBytes(1024 * 1024);
    await client.upload({ projectId, path: "big/file.bin", data: v1 });
    const stat1 = await (await http(`/projects/${projectId}/storage/stat?path=big/file.bin`)).json();
    const usage1 = await (await http(`/projects/${projectId}/storage/usage`)).json();

    // A large upload of a new version, fed slowly.
    const up = rawUpload(`${baseUrl}/projects/${projectId}/storage/upload?path=${q("big/file.bin")}`, apiKey, { declared: 256 * 1024 * 1024 });
    const chunk = randomBytes(256 * 1024);
    let sent = 0;
    const feeding = (async () => {
      try {
        for (;;) {
          await up.write(chunk);
          sent += chunk.length;
          await new Promise((r) => setTimeout(r, 5));
        }
      } catch {
        // the server died
      }
    })();
    // The server is in the middle of it: its pending row exists and megabytes went through.
    await until(async () => (await store.db.selectFrom("storage_pending").selectAll().execute()).length > 0, "the upload to start");
    await until(() => sent >= 16 * 1024 * 1024, "16 MiB to be sent");
    if (backend === "file") {
      const parts = readdirSync(join(storageDir(), ".tmp"));
      expect(parts).toHaveLength(1);
      expect(statSync(join(storageDir(), ".tmp", parts[0])).size).toBeGreaterThan(0);
    }
    expect(await child!.kill("SIGKILL")).toBe(null);
    await up.response;
    await feeding;

    await restart();
    const back = Buffer.from(await client.download({ projectId, path: "big/file.bin" }));
    expect(back.equals(v1)).toBe(true);
    expect(await (await http(`/projects/${projectId}/storage/stat?path=big/file.bin`)).json()).toEqual(stat1);
    const list = await (await http(`/projects/${projectId}/storage/list?path=big`)).json();
    expect(list.files.map((f: { name: string }) => f.name)).toEqual(["file.bin"]);
    expect(await (await http(`/projects/${projectId}/storage/usage`)).json()).toEqual(usage1);

    if (backend === "file") {
      // The dead process's temp file is swept at start; nothing else is on disk.
      await until(() => readdirSync(join(storageDir(), ".tmp")).length === 0, "the temp file to be swept");
      const files = readdirSync(storageDir(), { recursive: true, withFileTypes: true }).filter((d) => d.isFile());
      expect(files.map((d) => join(d.parentPath ?? (d as unknown as { path: string }).path, d.name))).toEqual([
        join(storageDir(), "projects", projectId, "big", "file.bin"),
      ]);
    } else {
      const c = s3!.client();
      const objects = await c.send(new ListObjectsV2Command({ Bucket: s3!.bucket, Prefix: "kill/" }));
      c.destroy();
      expect((objects.Contents ?? []).map((o) => o.Key)).toEqual([`kill/projects/${projectId}/big/file.bin`]);
    }
  });

  it("an acknowledged upload survives kill -9 right after the answer", async () => {
    if (!child || child.child.exitCode !== null || child.child.signalCode !== null) await restart();
    const client = new Meshagent({ baseUrl, token: apiKey });
    const v2 = randomBytes(3 * 1024 * 1024);
    await client.upload({ projectId, path: "big/file.bin", data: v2 });
    await client.upload({ projectId, path: "big/second.bin", data: Buffer.from("acknowledged") });
    expect(await child!.kill("SIGKILL")).toBe(null);
    await restart();
    expect(Buffer.from(await client.download({ projectId, path: "big/file.bin" })).equals(v2)).toBe(true);
    expect(Buffer.from(await client.download({ projectId, path: "big/second.bin" })).toString()).toBe("acknowledged");
    expect(await (await http(`/projects/${projectId}/storage/usage`)).json()).toMatchObject({ bytes: v2.length + 12, files: 2 });
    await child!.kill("SIGKILL");
    child = undefined;
  });
});
