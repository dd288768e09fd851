import { afterAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { createCipheriv, randomBytes } from "node:crypto";
import { existsSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { sql } from "kysely";
import { dialectName } from "./helpers/server.js";
import { ROOT, TSX_LOADER, restartableData, spawnServer, type ServerProcess } from "./helpers/process.js";
import { loadConfig } from "../src/config.js";
import { createContext } from "../src/wiring.js";
import { bootstrap } from "../src/bootstrap.js";
import { domains } from "../src/domains.js";
import { masterKeyId, Sealer, sha256Hex } from "../src/core/crypto.js";
import { openStore } from "../src/store/db.js";
import { formatApiKey } from "../src/api-keys/format.js";
import { newId } from "../src/core/ids.js";
import { KeyringError, resolveKeyring, wrapAad } from "../src/keyring/service.js";
import { readKeyFile } from "../src/keyring/rotate.js";
import type { MasterKeyRow } from "../src/keyring/repo.js";

/**
 * Master-key rotation (issue 14, item 5): `rotate-master-key` re-seals every sealed value while a real server keeps
 * serving reads and writes that open and seal them; kill -9 in the middle and a rerun resumes; afterwards a server
 * with only the new key reads everything. Plus the multi-key Sealer and the keyring resolution as units.
 */

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** `rotate-master-key` as a child process; `killOn` kills it with SIGKILL at the first stdout line matching it. */
function rotateCli(env: Record<string, string>, args: string[], killOn?: RegExp) {
  const child = spawn(process.execPath, ["--import", TSX_LOADER, join(ROOT, "src/main.ts"), "rotate-master-key", ...args], {
    cwd: ROOT,
    env: { ...process.env, MESHAGENT_LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  let killed = false;
  child.stdout!.on("data", (d) => {
    stdout += d;
    if (killOn && !killed && stdout.split("\n").some((l) => killOn.test(l))) {
      killed = true;
      child.kill("SIGKILL");
    }
  });
  child.stderr!.on("data", (d) => (stderr += d));
  return new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
}

/** Every declared sealed column's non-null values, read straight from the database. */
async function sealedValues(url: string) {
  const store = openStore(url, { pool: 2 });
  try {
    const out: { column: string; key: unknown[]; value: string; row: Record<string, unknown> }[] = [];
    for (const d of domains) {
      for (const c of d.sealed ?? []) {
        const keys = typeof c.key === "string" ? [c.key] : c.key;
        const rows = (await sql<Record<string, unknown>>`SELECT * FROM ${sql.table(c.table)} WHERE ${sql.ref(c.column)} IS NOT NULL`.execute(store.db)).rows;
        for (const r of rows) out.push({ column: `${c.table}.${c.column}`, key: keys.map((k) => r[k]), value: r[c.column] as string, row: r });
      }
    }
    return out;
  } finally {
    await store.close();
  }
}

/** Every sealed value is under `key` and opens with it alone; returns the count per column. */
async function expectAllUnder(url: string, key: Buffer) {
  const only = new Sealer(key);
  const kid = masterKeyId(key);
  const perColumn: Record<string, number> = {};
  const values = await sealedValues(url);
  const spec = new Map(domains.flatMap((d) => d.sealed ?? []).map((c) => [`${c.table}.${c.column}`, c]));
  const wrong = values.filter((v) => only.sealedWith(v.value) !== kid);
  expect(wrong.map((v) => `${v.column} ${v.value.slice(0, 20)}`)).toEqual([]);
  for (const v of values) {
    only.openBuffer(v.value, spec.get(v.column)!.aad?.(v.row));
    perColumn[v.column] = (perColumn[v.column] ?? 0) + 1;
  }
  return perColumn;
}

async function masterKeys(url: string) {
  const store = openStore(url, { pool: 1 });
  try {
    return await store.db.selectFrom("master_keys").selectAll().orderBy("started_at").execute();
  } finally {
    await store.close();
  }
}

function http(base: string, token: string) {
  return async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(base + path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, text, json: text ? JSON.parse(text) : undefined, replayed: res.headers.get("idempotent-replayed") };
  };
}

describe("the multi-key Sealer", () => {
  const A = randomBytes(32);
  const B = randomBytes(32);
  const v1 = (key: Buffer, pt: string) => {
    const iv = randomBytes(12);
    const c = createCipheriv("aes-256-gcm", key, iv);
    const body = Buffer.concat([c.update(pt), c.final()]);
    return "v1:" + Buffer.concat([iv, c.getAuthTag(), body]).toString("base64");
  };

  it("seals with one key and opens with every accepted one, by key id", () => {
    const a = new Sealer(A);
    const old = a.seal("under A", "row-1");
    expect(a.sealedWith(old)).toBe(masterKeyId(A));
    const ring = new Sealer(B, [A]);
    expect(ring.keyId).toBe(masterKeyId(B));
    expect(ring.keyIds).toEqual([masterKeyId(B), masterKeyId(A)]);
    expect(ring.open(old, "row-1")).toBe("under A");
    const fresh = ring.seal("under B", "row-1");
    expect(ring.sealedWith(fresh)).toBe(masterKeyId(B));
    expect(new Sealer(B).open(fresh, "row-1")).toBe("under B");
    a.setKeys(B, [A]);
    expect(a.sealedWith(a.seal("x"))).toBe(masterKeyId(B));
  });

  it("refuses the wrong AAD, an unknown key id and a tampered value, with clear errors", () => {
    const ring = new Sealer(B, [A]);
    const s = ring.seal("secret", "secret:1");
    expect(() => ring.open(s, "secret:2")).toThrow(/wrong additional data, or the value was altered/);
    expect(() => ring.open(s)).toThrow(/wrong additional data/);
    expect(() => new Sealer(A).open(s, "secret:1")).toThrow(new RegExp(`sealed with master key ${masterKeyId(B)}, which is not one of this keyring's keys`));
    const tampered = s.slice(0, -4) + (s.endsWith("AAAA") ? "BBBB" : "AAAA");
    expect(() => ring.open(tampered, "secret:1")).toThrow(/altered/);
    expect(() => ring.open("v3:whatever")).toThrow(/unknown sealed format/);
    expect(ring.sealedWith("v1:abc")).toBeNull();
  });

  it("still opens v1 values (no key id, no AAD) with any accepted key", () => {
    const legacy = v1(A, "legacy");
    expect(new Sealer(A).open(legacy)).toBe("legacy");
    expect(new Sealer(B, [A]).open(legacy, "ignored for v1")).toBe("legacy");
    expect(() => new Sealer(B).open(legacy)).toThrow(/v1 sealed value with any of this keyring's master keys/);
  });
});

describe("keyring resolution", () => {
  const [A, B, C] = [randomBytes(32), randomBytes(32), randomBytes(32)];
  const row = (from: Buffer, to: Buffer, state: MasterKeyRow["state"], at: number): MasterKeyRow => ({
    id: masterKeyId(to),
    old_key_id: masterKeyId(from),
    new_sealed: state === "retired" ? null : new Sealer(from).seal(to, wrapAad(masterKeyId(to), "new")),
    old_sealed: state === "retired" ? null : new Sealer(to).seal(from, wrapAad(masterKeyId(to), "old")),
    state,
    unfinished: state === "rotating" ? 1 : null,
    progress: "{}",
    resealed: 0,
    started_at: at,
    finished_at: null,
    updated_at: at,
  });

  it("follows the rotations from either end to the newest key", () => {
    const rows = [row(A, B, "done", 1), row(B, C, "rotating", 2)];
    for (const start of [A, B, C]) {
      const ring = resolveKeyring([start], rows);
      expect(masterKeyId(ring.current)).toBe(masterKeyId(C));
      expect([...ring.keys.keys()].sort()).toEqual([A, B, C].map(masterKeyId).sort());
    }
    expect(masterKeyId(resolveKeyring([A], []).current)).toBe(masterKeyId(A));
  });

  it("refuses a retired key and a key the database never had", () => {
    const rows = [row(A, B, "retired", 1)];
    expect(() => resolveKeyring([A], rows)).toThrow(KeyringError);
    expect(() => resolveKeyring([A], rows)).toThrow(/was retired by a master-key rotation/);
    expect(() => resolveKeyring([C], rows)).toThrow(/is not this database's master key/);
    expect(masterKeyId(resolveKeyring([B], rows).current)).toBe(masterKeyId(B));
    // A running process keeps what it knew before the retirement.
    expect(masterKeyId(resolveKeyring([A, B], rows).current)).toBe(masterKeyId(B));
  });
});

describe(`rotate-master-key (${dialectName})`, () => {
  it("re-seals everything under a concurrent read/write load; the server then runs on the new key alone", { timeout: 180_000 }, async () => {
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const { dataDir, db, baseUrl, env } = await restartableData("meshagent-rotation-", {
      MESHAGENT_WEBHOOK_ALLOW_PRIVATE: "1",
      MESHAGENT_RATE_LIMIT: "0",
      MESHAGENT_MASTER_KEY: oldKey.toString("hex"),
    });
    let server: ServerProcess | undefined;
    cleanups.push(async () => {
      await server?.kill("SIGKILL");
      await db.drop();
      rmSync(dataDir, { recursive: true, force: true });
    });
    const newKeyFile = join(dataDir, "new.key");
    writeFileSync(newKeyFile, newKey.toString("base64") + "\n", { mode: 0o600 });

    // The project, its API key, a user token and a room; plus enough API keys that the rotation takes a while.
    const ctx = await createContext(loadConfig({ ...env, MESHAGENT_LOG_LEVEL: "warn" }), { listen: false });
    const b = await bootstrap(ctx, { email: "rotate@example.com", project: "rotate" });
    await ctx.rooms.create(b.project_id, { name: "rot-room" });
    const keys: string[] = [];
    for (let i = 0; i < 600; i++) keys.push((await ctx.apiKeys.create(b.project_id, { name: `bulk-${i}` }, null)).value);
    await ctx.close();

    server = await spawnServer(env);
    const P = `/accounts/projects/${b.project_id}`;
    const admin = http(baseUrl, b.api_key);
    const failures: string[] = [];
    const webhooks = new Map<string, string>();
    // Project secrets (wire-contract §5), when the secrets area is part of this build.
    const withSecrets = domains.some((d) => d.sealed?.some((c) => c.table === "secrets"));
    const secretValues = new Map<string, string>();
    const replays: { key: string; body: unknown; text: string }[] = [];
    let ops = 0;
    const check = (what: string, r: { status: number; text: string }) => {
      ops++;
      if (r.status >= 300) failures.push(`${what}: ${r.status} ${r.text.slice(0, 200)}`);
      return r.status < 300;
    };
    let stop = false;
    const worker = async (w: number) => {
      for (let i = 0; !stop; i++) {
        try {
          // A new API key (half with an Idempotency-Key: its answer, the key included, is stored sealed) ...
          const idem = i % 2 === 0 ? `rot-${w}-${i}` : undefined;
          const body = { name: `load-${w}-${i}` };
          const created = await admin("POST", `${P}/api-keys`, body, idem ? { "idempotency-key": idem } : {});
          if (!check("create_api_key", created)) continue;
          keys.push(created.json.value);
          if (idem) replays.push({ key: idem, body, text: created.text });
          // ... that connect_room signs with (opens its sealed secret), and the token verifies.
          const as = http(baseUrl, created.json.value);
          const conn = await as("POST", `${P}/rooms/rot-room/connect`);
          if (check("connect_room (api key)", conn)) check("validate", await as("POST", "/api/participant-token/validate", { token: conn.json.jwt }));
          // A user's connect_room signs with the project's signing key.
          check("connect_room (user)", await http(baseUrl, b.user_token)("POST", `${P}/rooms/rot-room/connect`));
          // A webhook, then the list (opens every webhook secret).
          const hook = await admin("POST", `${P}/webhooks`, { name: `h-${w}-${i}`, url: "http://127.0.0.1:9/hook", events: ["api_key.deleted"] });
          if (check("create_webhook", hook)) webhooks.set(hook.json.id, hook.json.secret);
          const list = await admin("GET", `${P}/webhooks`);
          if (check("list_webhooks", list)) {
            for (const h of list.json.webhooks) if (webhooks.has(h.id) && webhooks.get(h.id) !== h.secret) failures.push(`webhook ${h.id}: secret changed`);
          }
          if (withSecrets) {
            const value = randomBytes(24).toString("base64");
            const sec = await admin("POST", `${P}/secrets`, { name: `s-${w}-${i}`, type: "opaque", data_base64: value });
            if (check("create_project_secret", sec)) {
              secretValues.set(sec.json.id, value);
              const got = await admin("GET", `${P}/secrets/${sec.json.id}`);
              if (check("get_project_secret", got) && got.json.data_base64 !== value) failures.push(`secret ${sec.json.id}: value changed`);
            }
          }
          // A replay of an earlier idempotent POST (opens its stored body).
          const earlier = replays[Math.floor(replays.length / 2)];
          if (earlier) {
            const again = await admin("POST", `${P}/api-keys`, earlier.body, { "idempotency-key": earlier.key });
            if (check("replay", again) && (again.replayed !== "true" || again.text !== earlier.text)) failures.push(`replay ${earlier.key}: different answer`);
          }
        } catch (err) {
          failures.push(`worker ${w}: ${(err as Error).message}`);
        }
      }
    };
    const workers = [0, 1, 2].map(worker);
    await new Promise((r) => setTimeout(r, 500));
    const opsBefore = ops;
    const run = await rotateCli(env, ["--new-key-file", newKeyFile, "--batch-size", "50", "--pause", "10"]);
    const opsDuring = ops - opsBefore;
    // Keep the load on a little after the rotation finished: new writes must be under the new key too.
    await new Promise((r) => setTimeout(r, 1000));
    stop = true;
    await Promise.all(workers);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toMatch(/pass 1: api_keys\.secret_sealed/);
    expect(run.stdout).toContain(`-> ${masterKeyId(newKey)}`);
    expect(failures).toEqual([]);
    expect(opsDuring).toBeGreaterThan(20);

    const perColumn = await expectAllUnder(db.url, newKey);
    const columns = ["api_keys.secret_sealed", "webhooks.secret_sealed", "project_signing_keys.secret_sealed", "idempotency_keys.body"];
    if (withSecrets) columns.push("secrets.value_sealed");
    for (const c of columns) {
      expect(perColumn[c], c).toBeGreaterThan(0);
    }
    const [rotation] = await masterKeys(db.url);
    expect(rotation).toMatchObject({ id: masterKeyId(newKey), old_key_id: masterKeyId(oldKey), state: "done", unfinished: null });

    // Restart with only the new key: everything reads back.
    await server.kill("SIGTERM");
    server = await spawnServer({ ...env, MESHAGENT_MASTER_KEY: newKey.toString("hex") });
    const sample = keys.filter((_, i) => i % 10 === 0);
    for (const k of sample) {
      const as = http(baseUrl, k);
      const conn = await as("POST", `${P}/rooms/rot-room/connect`);
      expect(conn.status, conn.text).toBe(200);
      expect((await as("POST", "/api/participant-token/validate", { token: conn.json.jwt })).status).toBe(200);
    }
    expect((await http(baseUrl, b.user_token)("POST", `${P}/rooms/rot-room/connect`)).status).toBe(200);
    const list = await admin("GET", `${P}/webhooks`);
    expect(list.status).toBe(200);
    expect(new Map(list.json.webhooks.map((h: any) => [h.id, h.secret]))).toEqual(webhooks);
    for (const [id, value] of secretValues) {
      const got = await admin("GET", `${P}/secrets/${id}`);
      expect(got.status, got.text).toBe(200);
      expect(got.json.data_base64).toBe(value);
    }
    for (const r of replays.slice(0, 20)) {
      const again = await admin("POST", `${P}/api-keys`, r.body, { "idempotency-key": r.key });
      expect(again.replayed).toBe("true");
      expect(again.text).toBe(r.text);
    }

    // Until --retire, a process with the old key still starts (it unwraps the new key); after it, it is refused.
    const withOld = await createContext(loadConfig({ ...env, MESHAGENT_LOG_LEVEL: "warn" }), { listen: false });
    expect(withOld.sealer.keyId).toBe(masterKeyId(newKey));
    await withOld.close();
    const retire = await rotateCli({ ...env, MESHAGENT_MASTER_KEY: newKey.toString("hex") }, ["--retire", "--json"]);
    expect(retire.code, retire.stdout + retire.stderr).toBe(0);
    expect(JSON.parse(retire.stdout)).toMatchObject({ ok: true, action: "retired", new_key_id: masterKeyId(newKey) });
    await expect(createContext(loadConfig({ ...env, MESHAGENT_LOG_LEVEL: "warn" }), { listen: false })).rejects.toThrow(/was retired by a master-key rotation/);
    expect((await masterKeys(db.url))[0]).toMatchObject({ state: "retired", new_sealed: null, old_sealed: null });
  });

  it("resumes after kill -9 mid-rotation and finishes; the data-dir key file then holds the new key", { timeout: 180_000 }, async () => {
    const { dataDir, db, baseUrl, env } = await restartableData("meshagent-rotation-kill-", { MESHAGENT_RATE_LIMIT: "0", MESHAGENT_MASTER_KEY: "" });
    let server: ServerProcess | undefined;
    cleanups.push(async () => {
      await server?.kill("SIGKILL");
      await db.drop();
      rmSync(dataDir, { recursive: true, force: true });
    });
    const newKey = randomBytes(32);
    const newKeyFile = join(dataDir, "..", `${dataDir.split("/").pop()}.new.key`);
    writeFileSync(newKeyFile, newKey, { mode: 0o600 }); // 32 raw bytes
    cleanups.push(() => rmSync(newKeyFile, { force: true }));

    // Many rows, written in bulk with the old key (generated into <data dir>/master.key).
    const ctx = await createContext(loadConfig({ ...env, MESHAGENT_LOG_LEVEL: "warn" }), { listen: false });
    const oldKey = readKeyFile(join(dataDir, "master.key"));
    const b = await bootstrap(ctx, { email: "kill@example.com", project: "kill" });
    await ctx.rooms.create(b.project_id, { name: "kill-room" });
    const secrets = new Map<string, string>();
    const N = 3000;
    for (let i = 0; i < N; i += 500) {
      const rows = Array.from({ length: 500 }, (_, j) => {
        const id = newId();
        const secret = randomBytes(24).toString("base64url");
        secrets.set(id, secret);
        return {
          id,
          project_id: b.project_id,
          name: `bulk-${i + j}`,
          description: "",
          secret_sealed: ctx.sealer.seal(secret),
          secret_hash: sha256Hex(secret),
          created_by: null,
          created_at: Date.now(),
        };
      });
      await ctx.store.db.insertInto("api_keys").values(rows).execute();
    }
    await ctx.close();
    server = await spawnServer(env);

    // A wrong configured key is refused before anything changes.
    const wrong = await rotateCli({ ...env, MESHAGENT_MASTER_KEY: randomBytes(32).toString("hex") }, ["--new-key-file", newKeyFile]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/does not open what this database stores; is it the right MESHAGENT_MASTER_KEY or data dir\? Nothing was changed/);
    expect(await masterKeys(db.url)).toEqual([]);

    // First run: killed at its first progress line.
    const first = await rotateCli(env, ["--new-key-file", newKeyFile, "--batch-size", "50", "--pause", "20", "--switch-wait", "1.5"], /^pass \d+:/);
    expect(first.signal, first.stdout + first.stderr).toBe("SIGKILL");
    const [rotating] = await masterKeys(db.url);
    expect(rotating).toMatchObject({ id: masterKeyId(newKey), state: "rotating", unfinished: 1 });
    expect(JSON.parse(rotating.progress)).toMatchObject({ pass: 1, column: "api_keys.secret_sealed" });
    const mid = await sealedValues(db.url);
    const underNew = mid.filter((v) => v.value.startsWith(`v2:${masterKeyId(newKey)}:`)).length;
    expect(underNew).toBeGreaterThan(0);
    expect(underNew).toBeLessThan(N);

    // A different new key is refused while this rotation is unfinished.
    const otherFile = join(dataDir, "other.key");
    writeFileSync(otherFile, randomBytes(32).toString("hex"), { mode: 0o600 });
    const refused = await rotateCli(env, ["--new-key-file", otherFile]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(new RegExp(`a rotation to master key ${masterKeyId(newKey)} .* is unfinished: rerun it with that key's file`));

    // The server kept serving with both keys meanwhile (it seals with the new one now).
    const admin = http(baseUrl, b.api_key);
    const P = `/accounts/projects/${b.project_id}`;
    expect((await admin("POST", `${P}/rooms/kill-room/connect`)).status).toBe(200);
    const extra = await admin("POST", `${P}/api-keys`, { name: "during" });
    expect(extra.status).toBe(201);

    // The rerun resumes at the cursor and finishes.
    const second = await rotateCli(env, ["--new-key-file", newKeyFile, "--batch-size", "200", "--json"]);
    expect(second.code, second.stdout + second.stderr).toBe(0);
    const summary = JSON.parse(second.stdout.trim());
    expect(summary).toMatchObject({ ok: true, action: "rotated", resumed: true, new_key_id: masterKeyId(newKey), old_key_id: masterKeyId(oldKey) });
    expect(summary.resealed).toBeGreaterThan(0);
    expect(summary.resealed).toBeLessThan(N);
    expect(summary.key_file).toBe(join(dataDir, "master.key"));
    expect(masterKeyId(readKeyFile(join(dataDir, "master.key")))).toBe(masterKeyId(newKey));
    expect(existsSync(join(dataDir, `master.key.${masterKeyId(oldKey)}.old`))).toBe(true);
    expect(readdirSync(dataDir).filter((f) => f.endsWith(".tmp"))).toEqual([]);

    // Nothing lost: every bulk secret opens with the new key alone and is what was written.
    await expectAllUnder(db.url, newKey);
    const only = new Sealer(newKey);
    const after = (await sealedValues(db.url)).filter((v) => v.column === "api_keys.secret_sealed" && secrets.has(v.key[0] as string));
    expect(after.length).toBe(N);
    for (const v of after) expect(only.open(v.value)).toBe(secrets.get(v.key[0] as string));
    expect((await masterKeys(db.url))[0]).toMatchObject({ state: "done", unfinished: null });

    // Restart: the server reads the replaced key file, and the keys sign and verify.
    await server.kill("SIGTERM");
    server = await spawnServer(env);
    for (const [id, secret] of [...secrets].slice(0, 50)) {
      const as = http(baseUrl, formatApiKey(id, b.project_id, secret));
      const conn = await as("POST", `${P}/rooms/kill-room/connect`);
      expect(conn.status, conn.text).toBe(200);
      expect((await as("POST", "/api/participant-token/validate", { token: conn.json.jwt })).status).toBe(200);
    }
    const during = http(baseUrl, extra.json.value);
    expect((await during("POST", `${P}/rooms/kill-room/connect`)).status).toBe(200);

    // Rerunning the finished rotation is harmless: it checks and changes nothing.
    const again = await rotateCli(env, ["--new-key-file", newKeyFile, "--json"]);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ action: "verified", resealed: 0 });
  });
});
