import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { freshDatabase, PG_URL, type TestDatabase } from "./helpers/server.js";
import { spawnServer, TSX_LOADER } from "./helpers/process.js";
import { Meshagent } from "./helpers/official.js";

const ROOT = join(import.meta.dirname, "..");

describe("processes: bootstrap, kill -9, restart, SIGTERM", () => {
  let dataDir: string;
  let db: TestDatabase;
  let env: Record<string, string>;
  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "meshagent-dur-"));
    db = await freshDatabase(dataDir);
    env = { MESHAGENT_DATA_DIR: dataDir, MESHAGENT_DATABASE_URL: db.url };
  });
  afterAll(async () => {
    await db.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  function bootstrapJson(args: string[] = []) {
    const out = execFileSync(process.execPath, ["--import", TSX_LOADER, join(ROOT, "src/main.ts"), "bootstrap", "--json", ...args], {
      cwd: dataDir,
      env: { ...process.env, ...env, MESHAGENT_LOG_LEVEL: "warn" },
      encoding: "utf8",
    });
    return out;
  }

  it("acknowledged writes survive kill -9; bootstrap works while the server runs and is idempotent", async () => {
    const srv = await spawnServer(env);
    const out = bootstrapJson(["--email", "Root@Example.com", "--project", "main"]);
    const lines = out.split("\n").filter(Boolean);
    expect(lines).toHaveLength(1);
    const b = JSON.parse(lines[0]);
    expect(Object.keys(b).sort()).toEqual(["api_key", "api_url", "email", "project_id", "user_id", "user_token"]);
    const again = JSON.parse(bootstrapJson(["--email", "root@example.com", "--project", "main"]));
    expect(again.user_id).toBe(b.user_id);
    expect(again.project_id).toBe(b.project_id);
    expect(again.api_key).not.toBe(b.api_key);
    // --write-env: the same one line of JSON, and .env in the working directory holds its key.
    const written = JSON.parse(bootstrapJson(["--email", "root@example.com", "--project", "main", "--write-env"]));
    expect(readFileSync(join(dataDir, ".env"), "utf8")).toContain(`MESHAGENT_API_KEY=${written.api_key}\n`);

    const c = new Meshagent({ baseUrl: srv.url, token: b.api_key });
    await c.updateProjectSettings(b.project_id, { durable: true });
    const key: any = await c.createApiKey(b.project_id, "after-crash", "");
    const userClient = new Meshagent({ baseUrl: srv.url, token: b.user_token });
    const p: any = await userClient.createProject("acked", { n: 1 });
    await userClient.updateUserProfile("me", "Kill", "Nine");
    expect(await srv.kill("SIGKILL")).toBe(null);

    const srv2 = await spawnServer(env);
    try {
      const c2 = new Meshagent({ baseUrl: srv2.url, token: key.value });
      expect(((await c2.getProject(b.project_id)) as any).settings).toEqual({ durable: true });
      const u2 = new Meshagent({ baseUrl: srv2.url, token: again.user_token });
      expect(((await u2.getProject(p.id)) as any).settings).toEqual({ n: 1 });
      expect(await u2.getUserProfile("me")).toMatchObject({ first_name: "Kill", last_name: "Nine", email: "Root@Example.com" });
    } finally {
      expect(await srv2.kill("SIGTERM")).toBe(0);
    }
  });

  it.runIf(PG_URL)("a key deleted through one process stops working at once in another (Postgres)", async () => {
    const b = JSON.parse(bootstrapJson(["--email", "two@example.com"]));
    const [a, z] = await Promise.all([spawnServer(env), spawnServer(env)]);
    try {
      const admin = new Meshagent({ baseUrl: a.url, token: b.api_key });
      const k: any = await admin.createApiKey(b.project_id, "shared", "");
      const onZ = new Meshagent({ baseUrl: z.url, token: k.value });
      expect(await onZ.getStatus(b.project_id)).toBe(true); // now cached in process z
      await admin.deleteApiKey(b.project_id, k.id);
      let status = 0;
      for (let i = 0; i < 50; i++) {
        const r = await fetch(`${z.url}/accounts/projects/${b.project_id}/status`, { headers: { authorization: `Bearer ${k.value}` } });
        status = r.status;
        if (status === 401) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(status).toBe(401);
    } finally {
      await Promise.all([a.kill("SIGTERM"), z.kill("SIGTERM")]);
    }
  });
});
