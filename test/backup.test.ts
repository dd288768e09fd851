import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync, spawn } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import SQLite from "better-sqlite3";
import { PG_URL } from "./helpers/server.js";
import { ROOT, TSX_LOADER, freePort, restartableData, spawnServer, type ServerProcess } from "./helpers/process.js";

const MAIN = join(ROOT, "src/main.ts");

/** Every table's rows, in a stable order: two stores are identical when their dumps are. */
function dump(file: string): Record<string, unknown[]> {
  const db = new SQLite(file, { readonly: true, fileMustExist: true });
  try {
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[];
    return Object.fromEntries(tables.map((t) => [t.name, db.prepare(`SELECT * FROM "${t.name}" ORDER BY rowid`).all()]));
  } finally {
    db.close();
  }
}

function cli(args: string[], env: Record<string, string>) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const c = spawn(process.execPath, ["--import", TSX_LOADER, MAIN, ...args], { cwd: ROOT, env: { ...process.env, MESHAGENT_LOG_LEVEL: "warn", ...env } });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d) => (stdout += d));
    c.stderr.on("data", (d) => (stderr += d));
    c.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

/** `npm run backup` (the same command): an online SQLite backup under write load, and `restore`. */
describe.skipIf(!!PG_URL)("backup and restore (SQLite)", () => {
  let env: Record<string, string>;
  let dataDir: string;
  let server: ServerProcess;
  let api: { api_key: string; project_id: string };
  beforeAll(async () => {
    const d = await restartableData("backup-");
    env = d.env;
    dataDir = d.dataDir;
    server = await spawnServer(env);
    api = JSON.parse(
      execFileSync(process.execPath, ["--import", TSX_LOADER, MAIN, "bootstrap", "--json", "--email", "backup@example.com"], {
        cwd: dataDir,
        env: { ...process.env, ...env, MESHAGENT_LOG_LEVEL: "warn" },
        encoding: "utf8",
      }),
    );
  }, 60_000);
  afterAll(async () => {
    await server?.kill("SIGTERM");
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("a backup taken under write load is intact and restores; one taken at rest is identical to the store", async () => {
    const created: string[] = [];
    let stop = false;
    // Writers: rooms created through the API, four at a time, until told to stop.
    const writer = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const name = `load-${w}-${i}`;
        const r = await fetch(`${server.url}/accounts/projects/${api.project_id}/rooms`, {
          method: "POST",
          headers: { authorization: `Bearer ${api.api_key}`, "content-type": "application/json" },
          body: JSON.stringify({ name, metadata: { pad: "x".repeat(2000) } }),
        });
        expect(r.status).toBe(201);
        created.push(name);
      }
    };
    const writers = [0, 1, 2, 3].map(writer);
    while (created.length < 200) await new Promise((r) => setTimeout(r, 20));
    const before = created.length;
    const hot = join(dataDir, "hot.db");
    const b = await cli(["backup", "--json", "--output", hot], env);
    expect(b.code, b.stderr).toBe(0);
    const during = created.length;
    stop = true;
    await Promise.all(writers);
    expect(during).toBeGreaterThan(before); // the writes went on while the backup ran
    const r = JSON.parse(b.stdout);
    expect(r).toMatchObject({ file: hot, bytes: expect.any(Number), pages: expect.any(Number) });
    expect(existsSync(`${hot}.partial`)).toBe(false);
    // A backup never overwrites one.
    const again = await cli(["backup", "--output", hot], env);
    expect([again.code, again.stderr]).toEqual([2, expect.stringContaining("exists already")]);

    // Intact, and a consistent prefix of the load: every room in it was created, and at least those done before.
    const check = new SQLite(hot, { readonly: true });
    expect(check.pragma("integrity_check", { simple: true })).toBe("ok");
    const inBackup = (check.prepare("SELECT name FROM rooms WHERE name LIKE 'load-%'").all() as { name: string }[]).map((x) => x.name);
    check.close();
    expect(inBackup.length).toBeGreaterThanOrEqual(before);
    expect(inBackup.every((n) => created.includes(n))).toBe(true);

    // At rest (the server stopped: a running one rewrites its heartbeat row every few seconds): the backup is
    // identical to the store, table by table, row by row.
    await server.kill("SIGTERM");
    const cold = join(dataDir, "cold.db");
    expect((await cli(["backup", "--json", "--output", cold], env)).code).toBe(0);
    const live = dump(join(dataDir, "meshagent.db"));
    expect(dump(cold)).toEqual(live);
    expect((live.rooms as { name: string }[]).filter((x) => x.name.startsWith("load-")).length).toBe(created.length);

    // Restore the hot backup into a copy of the data directory and serve it.
    const copy = mkdtempSync(join(tmpdir(), "restored-"));
    cpSync(dataDir, copy, { recursive: true });
    const port = await freePort();
    const renv = {
      ...env,
      MESHAGENT_DATA_DIR: copy,
      MESHAGENT_DATABASE_URL: `sqlite://${join(copy, "meshagent.db")}`,
      MESHAGENT_STORAGE_URL: join(copy, "storage"),
      MESHAGENT_PORT: String(port),
      MESHAGENT_PUBLIC_URL: `http://127.0.0.1:${port}`,
    };
    const res = await cli(["restore", "--json", join(copy, "hot.db")], renv);
    expect(res.code, res.stderr).toBe(0);
    const rj = JSON.parse(res.stdout);
    expect(rj.previous).toMatch(/before-restore-/);
    expect(readdirSync(copy).some((f) => f.includes("before-restore-"))).toBe(true);
    const restored = await spawnServer(renv);
    try {
      const names: string[] = [];
      for (let offset = 0; ; offset += 500) {
        const list = await fetch(`${restored.url}/accounts/projects/${api.project_id}/rooms?limit=500&offset=${offset}&filter=load-`, {
          headers: { authorization: `Bearer ${api.api_key}` },
        });
        expect(list.status).toBe(200);
        const page = ((await list.json()) as { rooms: { name: string }[] }).rooms.map((x) => x.name);
        names.push(...page);
        if (page.length < 500) break;
      }
      expect(names.sort()).toEqual([...inBackup].sort());
      // Restoring under a running server is refused.
      const refused = await cli(["restore", join(copy, "cold.db")], renv);
      expect([refused.code, refused.stderr]).toEqual([2, expect.stringContaining("stop every server")]);
    } finally {
      await restored.kill("SIGTERM");
      rmSync(copy, { recursive: true, force: true });
    }
  }, 180_000);
});

describe.skipIf(!PG_URL)("backup on PostgreSQL", () => {
  it("says to use pg_dump", async () => {
    const r = await cli(["backup"], { MESHAGENT_DATABASE_URL: PG_URL!, MESHAGENT_DATA_DIR: mkdtempSync(join(tmpdir(), "pgb-")) });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("pg_dump");
  });
});
