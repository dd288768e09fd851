import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import Database from "better-sqlite3";
import { dialectName, type TestDatabase } from "./helpers/server.js";
import { restartableData, spawnServer, type ServerProcess } from "./helpers/process.js";
import { ApiScope, Meshagent } from "./helpers/official.js";
import { joinRoom, within, type OfficialRoom } from "./helpers/room-client.js";
import { loadConfig } from "../src/config.js";
import { createContext } from "../src/wiring.js";
import { bootstrap } from "../src/bootstrap.js";

/**
 * Crash safety (issue 13, part 7): the real server runs as a child process on one data directory and one database
 * (SQLite file, or one fresh PostgreSQL database for every round). Each round starts it, runs a mixed write workload
 * against it from several concurrent workers (the official client and raw HTTP: rooms, room grants, project-storage
 * uploads, webhooks, scheduled tasks, room-queue messages over the room WebSocket), kills it with SIGKILL at a random
 * moment, restarts it and checks that every write that got a success answer, in this round or any earlier one, is
 * there and whole; a write that got no answer may be there or not, but only ever complete. Answered POSTs sent with
 * an Idempotency-Key replay their answer after the restart. The database's file rows and usage agree with the blob
 * store. On SQLite the database file passes `PRAGMA integrity_check` (and `foreign_key_check`) as the killed process
 * left it and after the restart.
 *
 * MESHAGENT_CRASH_ROUNDS sets the number of rounds (default 20), MESHAGENT_CRASH_SEED the random seed (kill moments
 * and the mix of operations), printed in the summary so a failing run can be repeated.
 */
const ROUNDS = Number(process.env.MESHAGENT_CRASH_ROUNDS ?? 20);
const SEED = Number(process.env.MESHAGENT_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));
const WORKERS = 6;
const KILL_MIN_MS = 100;
const KILL_MAX_MS = 1500;
const USERS = 12;

/** mulberry32: a small seeded PRNG, so that a failing mix can be replayed with MESHAGENT_CRASH_SEED. */
function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Kind = "rooms" | "grants" | "files" | "webhooks" | "tasks" | "messages";
const KINDS: Kind[] = ["rooms", "grants", "files", "webhooks", "tasks", "messages"];

interface RoomW {
  name: string;
  marker: string;
  id?: string;
}
interface GrantW {
  roomId: string;
  roomName: string;
  /** Known up front for a grant by user id; from the answer for a grant by email. */
  userId?: string;
  email?: string;
  marker: string;
}
interface FileW {
  name: string;
  data: Buffer;
}
interface WebhookW {
  name: string;
  marker: string;
  id?: string;
}
interface TaskW {
  name: string;
  roomName: string;
  marker: string;
  id?: string;
}
/** A POST sent with an Idempotency-Key and answered: after a restart the same request must get the same answer. */
interface ReplayW {
  round: number;
  path: string;
  body: unknown;
  key: string;
  status: number;
  text: string;
}
interface MessageW {
  queue: string;
  id: string;
  pad: string;
}

/** Every write a worker tried (attempted) and the ones that got a success answer (acked), by kind. */
class Ledger {
  attempted = { rooms: new Map<string, RoomW>(), grants: new Map<string, GrantW>(), files: new Map<string, FileW>() };
  webhooks = new Map<string, WebhookW>();
  tasks = new Map<string, TaskW>();
  messages = new Map<string, MessageW>();
  replays: ReplayW[] = [];
  acked: { [K in Kind]: Set<string> } = {
    rooms: new Set(),
    grants: new Set(),
    files: new Set(),
    webhooks: new Set(),
    tasks: new Set(),
    messages: new Set(),
  };
  /** Acked rooms that grants, tasks and messages may target. */
  usableRooms: { id: string; name: string }[] = [];
  /** (room id, user id) pairs taken by a grant attempt, so that no two attempts collide (a 409 is a workload bug). */
  grantPairs = new Set<string>();
}

describe(`crash safety: kill -9 during a mixed write workload (${dialectName})`, () => {
  let dataDir: string;
  let db: TestDatabase;
  let env: Record<string, string>;
  let baseUrl: string;
  let projectId: string;
  let apiKey: string;
  let sqliteFile: string | undefined;
  const users: string[] = [];
  let base: { id: string; name: string };
  let child: ServerProcess | undefined;
  const warn = console.warn;

  beforeAll(async () => {
    // The official RoomClient warns each time its socket drops, which here is every kill.
    console.warn = (...a: unknown[]) => {
      if (typeof a[0] === "string" && a[0].startsWith("room connection lost")) return;
      warn(...a);
    };
    ({ dataDir, db, baseUrl, env } = await restartableData("meshagent-crash-", {
      // Webhook URLs on loopback (never called: they listen to an event the workload does not cause).
      MESHAGENT_WEBHOOK_ALLOW_PRIVATE: "1",
      // The workload is about crashes, not budgets: no rate limit may refuse one of its writes.
      MESHAGENT_RATE_LIMIT: "0",
    }));
    if (db.url.startsWith("sqlite://")) sqliteFile = db.url.slice("sqlite://".length);
    // The project, its API key, the users grants go to and the room queue messages go to, made once in-process.
    const ctx = await createContext(loadConfig({ ...env, MESHAGENT_LOG_LEVEL: "warn" }), { listen: false });
    try {
      const b = await bootstrap(ctx, { email: "crash@example.com", project: "crash" });
      projectId = b.project_id;
      apiKey = b.api_key;
      for (let i = 0; i < USERS; i++) users.push((await ctx.users.create({ email: `grantee${i}@example.com`, first_name: "G", last_name: String(i) })).id);
      const { room } = await ctx.rooms.create(projectId, { name: "crash-base" });
      base = { id: room.id, name: room.name };
    } finally {
      await ctx.close();
    }
  });

  afterAll(async () => {
    console.warn = warn;
    await child?.kill("SIGKILL");
    await db?.drop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const P = () => `/accounts/projects/${projectId}`;
  async function http(method: string, path: string, body?: unknown, raw?: Buffer, extra: Record<string, string> = {}) {
    const headers: Record<string, string> = { authorization: `Bearer ${apiKey}`, ...extra };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (raw) headers["content-type"] = "application/octet-stream";
    const res = await fetch(baseUrl + path, { method, headers, body: raw ? new Uint8Array(raw) : body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : undefined, text, replayed: res.headers.get("idempotent-replayed") };
  }
  async function ok(method: string, path: string, body?: unknown) {
    const r = await http(method, path, body);
    if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${r.text.slice(0, 300)}`);
    return r.json;
  }

  /** SQLite: the file as it is on disk passes integrity_check and foreign_key_check (read-only connection). */
  function checkSqlite(when: string) {
    if (!sqliteFile) return;
    const s = new Database(sqliteFile, { readonly: true, fileMustExist: true });
    try {
      expect(s.pragma("integrity_check"), `integrity_check ${when}`).toEqual([{ integrity_check: "ok" }]);
      expect(s.pragma("foreign_key_check"), `foreign_key_check ${when}`).toEqual([]);
    } finally {
      s.close();
    }
  }

  it(`survives ${ROUNDS} kills with every acknowledged write intact`, { timeout: 60_000 + ROUNDS * 20_000 }, async () => {
    const rand = prng(SEED);
    const L = new Ledger();
    L.usableRooms.push(base);
    const client = new Meshagent({ baseUrl, token: apiKey });
    const unexpected: string[] = [];
    const unackedPresent: Record<Kind, number> = { rooms: 0, grants: 0, files: 0, webhooks: 0, tasks: 0, messages: 0 };
    const opsPerRound: number[] = [];
    const killDelays: number[] = [];
    /** Files whose bytes were read back once (an unacknowledged one is read the first time it shows up). */
    const contentChecked = new Set<string>();
    let kills = 0;
    let storageChecks = 0;
    let replaysVerified = 0;
    let pendingSeen = 0;
    const phases: Record<string, number> = {};
    const timed = async <T>(phase: string, fn: () => Promise<T>): Promise<T> => {
      const t = Date.now();
      try {
        return await fn();
      } finally {
        phases[phase] = (phases[phase] ?? 0) + Date.now() - t;
      }
    };
    const started = Date.now();

    for (let round = 0; round < ROUNDS; round++) {
      child = await timed("start", () => spawnServer(env));
      // One room connection per process: it reads the last round's queue back, then carries this round's messages.
      const room = await timed("connect", connectBase);
      if (round > 0) await timed("verify", () => verify(round - 1, room));
      await timed("integrity", async () => checkSqlite(`after restart ${round}`));

      // ---- the workload -----------------------------------------------------------------------------------------
      const queue = `crash-r${round}`;
      let killing = false;
      let seq = 0;
      let ops = 0;
      const tag = (k: string) => `r${round}-${k}-${++seq}-${randomBytes(3).toString("hex")}`;
      const pick = <T>(a: T[]) => a[Math.floor(rand() * a.length)];

      /** Run one write: acked when it resolves; an error is expected only once the kill began, never an HTTP status. */
      const attempt = async (what: string, fn: () => Promise<void>) => {
        ops++;
        try {
          await fn();
        } catch (e) {
          const msg = (e as Error).message ?? String(e);
          if (!killing || /status code|: [1-5]\d\d /i.test(msg)) unexpected.push(`round ${round} ${what}: ${msg}`);
        }
      };

      /** A raw POST; half of them with an Idempotency-Key, whose answer is recorded to be replayed after the restart. */
      const post = async (path: string, body: unknown) => {
        const key = rand() < 0.5 ? `crash-${tag("key")}` : undefined;
        const r = await http("POST", path, body, undefined, key ? { "idempotency-key": key } : {});
        if (r.status >= 300) throw new Error(`POST ${path}: ${r.status} ${r.text.slice(0, 300)}`);
        if (key) L.replays.push({ round, path, body, key, status: r.status, text: r.text });
        return r.json;
      };

      const writes: Record<Kind, () => Promise<void>> = {
        rooms: () => {
          const w: RoomW = { name: `crash-${tag("room")}`, marker: randomBytes(8).toString("hex") };
          L.attempted.rooms.set(w.name, w);
          return attempt(`create room ${w.name}`, async () => {
            const r = await client.createRoom({ projectId, name: w.name, metadata: { marker: w.marker } });
            w.id = r.id;
            L.acked.rooms.add(w.name);
            L.usableRooms.push({ id: r.id, name: w.name });
          });
        },
        grants: () => {
          const target = pick(L.usableRooms);
          const marker = `m-${tag("grant")}`;
          const permissions = { queues: { send: [marker], receive: [], list: false } };
          // Half by user id through the official client, half by email (a new invited user) over raw HTTP.
          const free = users.filter((u) => !L.grantPairs.has(`${target.id}/${u}`));
          if (free.length && rand() < 0.5) {
            const userId = pick(free);
            L.grantPairs.add(`${target.id}/${userId}`);
            const w: GrantW = { roomId: target.id, roomName: target.name, userId, marker };
            L.attempted.grants.set(marker, w);
            return attempt(`grant ${marker}`, async () => {
              await client.createRoomGrant({ projectId, roomId: target.id, userId, permissions: ApiScope.fromJSON(permissions) });
              L.acked.grants.add(marker);
            });
          }
          const w: GrantW = { roomId: target.id, roomName: target.name, email: `${marker}@example.com`, marker };
          L.attempted.grants.set(marker, w);
          return attempt(`grant ${marker}`, async () => {
            const g = await post(`${P()}/room-grants`, { room_id: target.name, email: w.email, permissions });
            w.userId = g.user_id;
            L.acked.grants.add(marker);
          });
        },
        files: () => {
          const w: FileW = { name: `${tag("file")}.bin`, data: randomBytes(200 + Math.floor(rand() * 32 * 1024)) };
          L.attempted.files.set(w.name, w);
          const path = `crash/${w.name}`;
          if (rand() < 0.5)
            return attempt(`upload ${path}`, async () => {
              await client.upload({ projectId, path, data: w.data });
              L.acked.files.add(w.name);
            });
          return attempt(`upload ${path} (raw)`, async () => {
            const r = await http("POST", `/projects/${projectId}/storage/upload?path=${encodeURIComponent(path)}`, undefined, w.data);
            if (r.status !== 200) throw new Error(`upload: ${r.status} ${r.text.slice(0, 300)}`);
            if (r.json.size !== w.data.length) unexpected.push(`round ${round} upload ${path}: answered size ${r.json.size}, sent ${w.data.length}`);
            L.acked.files.add(w.name);
          });
        },
        webhooks: () => {
          const w: WebhookW = { name: `hook-${tag("hook")}`, marker: randomBytes(8).toString("hex") };
          L.webhooks.set(w.name, w);
          // An event the workload never causes, so no delivery traffic; the URL is never called.
          const params = { name: w.name, url: `http://127.0.0.1:9/hook/${w.marker}`, events: ["api_key.created"], payload: { marker: w.marker } };
          if (rand() < 0.5)
            return attempt(`webhook ${w.name}`, async () => {
              const h = (await client.createWebhook(projectId, params)) as { id: string };
              w.id = h.id;
              L.acked.webhooks.add(w.name);
            });
          return attempt(`webhook ${w.name} (raw)`, async () => {
            const h = await post(`${P()}/webhooks`, params);
            w.id = h.id;
            L.acked.webhooks.add(w.name);
          });
        },
        tasks: () => {
          const target = pick(L.usableRooms);
          const w: TaskW = { name: `task-${tag("task")}`, roomName: target.name, marker: randomBytes(8).toString("hex") };
          L.tasks.set(w.name, w);
          // Yearly, so it never fires during the test.
          const spec = { schedule: "0 0 1 1 *", metadata: { name: w.name, annotations: {} }, queue: { name: "scheduled", payload: { marker: w.marker } } };
          return attempt(`task ${w.name}`, async () => {
            const r = await post(`${P()}/rooms/${encodeURIComponent(target.name)}/scheduled-tasks`, { spec });
            w.id = r.task_id;
            L.acked.tasks.add(w.name);
          });
        },
        messages: () => {
          const w: MessageW = { queue, id: tag("msg"), pad: randomBytes(16 + Math.floor(rand() * 200)).toString("base64") };
          L.messages.set(w.id, w);
          return attempt(`queue message ${w.id}`, async () => {
            await within(room.queues.send(queue, { id: w.id, pad: w.pad }, { create: true }), 10_000, "queues.send");
            L.acked.messages.add(w.id);
          });
        },
      };

      const killAfter = KILL_MIN_MS + Math.floor(rand() * (KILL_MAX_MS - KILL_MIN_MS));
      killDelays.push(killAfter);
      const worker = async () => {
        while (!killing) await writes[pick(KINDS)]();
      };
      const workers = Array.from({ length: WORKERS }, worker);
      await new Promise((r) => setTimeout(r, killAfter));
      killing = true;
      expect(await child.kill("SIGKILL")).toBe(null);
      kills++;
      child = undefined;
      await timed("settle", () => Promise.all(workers));
      room.dispose();
      opsPerRound.push(ops);
      await timed("integrity", async () => checkSqlite(`as round ${round}'s killed process left it`));
      expect(unexpected).toEqual([]);
    }

    // The last round's kill is checked like the others.
    child = await timed("start", () => spawnServer(env));
    const last = await timed("connect", connectBase);
    await timed("verify", () => verify(ROUNDS - 1, last));
    last.dispose();
    checkSqlite("at the end");
    expect(await child.kill("SIGTERM"), "a clean shutdown at the end").toBe(0);
    child = undefined;

    const acked = Object.fromEntries(KINDS.map((k) => [k, L.acked[k].size])) as Record<Kind, number>;
    const total = KINDS.reduce((t, k) => t + acked[k], 0);
    const sum = (a: number[]) => a.reduce((t, x) => t + x, 0);
    console.log(
      `crash-safety (${dialectName}): ${ROUNDS} rounds, ${kills} kills survived (seed ${SEED}, kill after ${Math.min(...killDelays)}–${Math.max(...killDelays)} ms), ` +
        `${sum(opsPerRound)} writes sent, ${total} acknowledged writes verified (${KINDS.map((k) => `${k} ${acked[k]}`).join(", ")}); ` +
        `unacknowledged but present, whole: ${KINDS.map((k) => `${k} ${unackedPresent[k]}`).join(", ")}; ` +
        `${replaysVerified} idempotent replays matched; file rows and usage matched the store ${storageChecks} times (at most ${pendingSeen} paths in flight); integrity_check ${sqliteFile ? `ok ${2 * ROUNDS + 1} times` : "n/a (PostgreSQL)"}; ` +
        `${((Date.now() - started) / 1000).toFixed(1)} s (${Object.entries(phases)
          .map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`)
          .join(", ")}, workload ${(sum(killDelays) / 1000).toFixed(1)} s)`,
    );
    for (const k of KINDS) expect(acked[k], `acknowledged ${k}`).toBeGreaterThan(0);

    /** The official RoomClient in the base room, on the running server. */
    async function connectBase(): Promise<OfficialRoom> {
      const info = await client.connectRoom(projectId, base.name);
      return joinRoom(info.roomUrl, info.jwt);
    }

    /**
     * Every acked write of every round so far is there and whole; anything else that is there is one the workload
     * tried, and whole too. `round`: the round whose kill this restart follows (its queue is read back through `r`).
     */
    /** Every item of a paged list (a page holds at most 1000; by the later rounds there are more). */
    async function everyPage(path: string, key: string): Promise<unknown[]> {
      const all: unknown[] = [];
      for (;;) {
        const page = await ok("GET", `${path}?limit=1000&offset=${all.length}`);
        all.push(...(page[key] as unknown[]));
        if (!(page[key] as unknown[]).length || all.length >= page.total) return all;
      }
    }

    async function verify(round: number, r: OfficialRoom) {
      // Rooms: every room of the project is the base room or one the workload tried, with its metadata whole.
      const rooms = (await everyPage(`${P()}/rooms`, "rooms")) as { id: string; name: string; metadata: Record<string, unknown> }[];
      const roomsByName = new Map(rooms.map((r) => [r.name, r]));
      for (const name of L.acked.rooms) {
        const r = roomsByName.get(name);
        expect(r, `acked room ${name}`).toBeDefined();
        expect(r!.id).toBe(L.attempted.rooms.get(name)!.id);
      }
      for (const r of rooms) {
        if (r.name === base.name) continue;
        const w = L.attempted.rooms.get(r.name);
        expect(w, `unknown room ${r.name}`).toBeDefined();
        expect(r.metadata).toEqual({ marker: w!.marker });
        if (!L.acked.rooms.has(r.name) && !L.usableRooms.some((u) => u.name === r.name)) L.usableRooms.push({ id: r.id, name: r.name }); // there now: later grants and tasks may target it
      }
      unackedPresent.rooms = rooms.filter((r) => r.name !== base.name && !L.acked.rooms.has(r.name)).length;
      for (const name of [...L.acked.rooms].filter((n) => n.startsWith(`crash-r${round}-`)))
        expect((await client.getRoom(projectId, name)).id).toBe(L.attempted.rooms.get(name)!.id);

      // Grants: every acked one with its permissions exactly; every grant there is one the workload tried.
      const grants = (await everyPage(`${P()}/room-grants`, "room_grants")) as {
        room: { id: string };
        user_id: string;
        permissions: { queues: { send: string[] } };
      }[];
      const grantsByMarker = new Map<string, (typeof grants)[number]>();
      for (const g of grants) {
        const marker = g.permissions?.queues?.send?.[0];
        const w = L.attempted.grants.get(marker);
        expect(w, `unknown grant ${JSON.stringify(g)}`).toBeDefined();
        expect(g.permissions).toEqual({ queues: { send: [marker], receive: [], list: false } });
        expect(g.room.id).toBe(w!.roomId);
        if (w!.userId) expect(g.user_id).toBe(w!.userId);
        if (!L.acked.grants.has(marker) && !grantsByMarker.has(marker) && !w!.userId) w!.userId = g.user_id;
        grantsByMarker.set(marker, g);
      }
      for (const marker of L.acked.grants) expect(grantsByMarker.get(marker), `acked grant ${marker}`).toBeDefined();
      unackedPresent.grants = [...grantsByMarker.keys()].filter((m) => !L.acked.grants.has(m)).length;
      for (const marker of [...L.acked.grants].filter((m) => m.startsWith(`m-r${round}-`))) {
        const w = L.attempted.grants.get(marker)!;
        const g = await client.getRoomGrant(projectId, w.roomId, w.userId!);
        expect(g.permissions.toJSON()).toEqual({ queues: { send: [marker], receive: [], list: false } });
      }

      // Files: every acked file listed with its size and byte-equal when read; any other file there is whole.
      const listed = new Map<string, number>();
      for (let after: string | null = null; ;) {
        const r = await http("GET", `/projects/${projectId}/storage/list?path=crash&limit=10000${after ? `&after=${encodeURIComponent(after)}` : ""}`);
        if (r.status === 404 && !after) break; // no upload made it yet: no folder
        expect(r.status, r.text).toBe(200);
        const page = r.json;
        for (const f of page.files as { name: string; size: number; is_folder: boolean }[]) {
          expect(f.is_folder).toBe(false);
          listed.set(f.name, f.size);
        }
        if (!page.next) break;
        after = page.next;
      }
      for (const name of L.acked.files) expect(listed.get(name), `acked file ${name}`).toBe(L.attempted.files.get(name)!.data.length);
      let unackedFiles = 0;
      for (const [name, size] of listed) {
        const w = L.attempted.files.get(name);
        expect(w, `unknown file ${name}`).toBeDefined();
        expect(size, `size of ${name}`).toBe(w!.data.length);
        if (!L.acked.files.has(name)) unackedFiles++;
        // This round's acked files and every unacked one: the bytes themselves.
        if ((!L.acked.files.has(name) && !contentChecked.has(name)) || name.startsWith(`r${round}-`)) {
          contentChecked.add(name);
          const back = Buffer.from(await client.download({ projectId, path: `crash/${name}` }));
          expect(back.equals(w!.data), `content of ${name}`).toBe(true);
        }
      }
      unackedPresent.files = unackedFiles;
      // The database's file rows agree with the store for every path no write of a killed process left in flight
      // (those are reconciled once their lease runs out), and the project's usage is the sum of its file rows.
      const book = await storageBook();
      expect(book.usage, "storage usage = the sum of the file rows").toEqual({
        bytes: [...book.files.values()].reduce((t, x) => t + x, 0),
        files: book.files.size,
      });
      for (const [name, size] of listed) if (!book.pending.has(name)) expect(book.files.get(name), `file row of ${name}`).toBe(size);
      for (const name of book.files.keys()) if (!book.pending.has(name)) expect(listed.has(name), `file row of ${name} without a file`).toBe(true);
      pendingSeen = Math.max(pendingSeen, book.pending.size);
      storageChecks++;

      // Webhooks: every acked one; every one there whole.
      const hooks = (await ok("GET", `${P()}/webhooks`)).webhooks as { id: string; name: string; url: string; events: string[]; payload: unknown }[];
      const hooksByName = new Map(hooks.map((h) => [h.name, h]));
      for (const name of L.acked.webhooks) expect(hooksByName.get(name)?.id, `acked webhook ${name}`).toBe(L.webhooks.get(name)!.id);
      for (const h of hooks) {
        const w = L.webhooks.get(h.name);
        expect(w, `unknown webhook ${h.name}`).toBeDefined();
        expect(h).toMatchObject({ url: `http://127.0.0.1:9/hook/${w!.marker}`, events: ["api_key.created"], payload: { marker: w!.marker } });
      }
      unackedPresent.webhooks = hooks.filter((h) => !L.acked.webhooks.has(h.name)).length;

      // Scheduled tasks: every acked one, in its room, with its spec whole.
      const tasks: { id: string; room_name: string; schedule: string; queue_name: string; payload: unknown; spec: { metadata: { name: string } } }[] = [];
      for (let offset = 0; ; offset += 1000) {
        const page = await ok("GET", `${P()}/scheduled-tasks?limit=1000&offset=${offset}`);
        tasks.push(...page.tasks);
        if (tasks.length >= page.total || !page.tasks.length) break;
      }
      const tasksByName = new Map(tasks.map((t) => [t.spec.metadata.name, t]));
      for (const name of L.acked.tasks) expect(tasksByName.get(name)?.id, `acked task ${name}`).toBe(L.tasks.get(name)!.id);
      for (const t of tasks) {
        const w = L.tasks.get(t.spec.metadata.name);
        expect(w, `unknown task ${t.spec.metadata.name}`).toBeDefined();
        expect(t).toMatchObject({ room_name: w!.roomName, schedule: "0 0 1 1 *", queue_name: "scheduled", payload: { marker: w!.marker } });
      }
      unackedPresent.tasks = tasks.filter((t) => !L.acked.tasks.has(t.spec.metadata.name)).length;

      // Queue messages: the round's queue gives back every acked message, whole, once; nothing it never sent.
      {
        const queue = `crash-r${round}`;
        const got = new Set<string>();
        for (;;) {
          const m = (await within(r.queues.receive(queue, { create: true, wait: false }), 10_000, "queues.receive")) as { id: string; pad: string } | null;
          if (!m) break;
          const w = L.messages.get(m.id);
          expect(w, `unknown message ${JSON.stringify(m).slice(0, 200)}`).toBeDefined();
          expect(m).toEqual({ id: w!.id, pad: w!.pad });
          expect(w!.queue).toBe(queue);
          expect(got.has(m.id), `message ${m.id} twice`).toBe(false);
          got.add(m.id);
          if (!L.acked.messages.has(m.id)) unackedPresent.messages++;
        }
        for (const w of L.messages.values()) if (w.queue === queue && L.acked.messages.has(w.id)) expect(got.has(w.id), `acked message ${w.id}`).toBe(true);
      }

      // Idempotency keys of answered POSTs: the same request with the same key gets the stored answer, not a new run.
      for (const w of L.replays.filter((x) => x.round === round)) {
        const again = await http("POST", w.path, w.body, undefined, { "idempotency-key": w.key });
        expect({ status: again.status, text: again.text, replayed: again.replayed }, `replay of ${w.key}`).toEqual({
          status: w.status,
          text: w.text,
          replayed: "true",
        });
        replaysVerified++;
      }
    }
  });

  /**
   * What the database says about the project's storage, read in one snapshot: file rows (name under crash/ → size),
   * the usage row, and the paths of writes in flight (pending rows a killed process left).
   */
  async function storageBook() {
    const scope = `projects/${projectId}`;
    const queries = {
      files: "select path, size from storage_files where project_id = ? and scope = ?",
      usage: "select bytes, files from storage_usage where project_id = ?",
      pending: "select path from storage_pending where project_id = ?",
    };
    const params = { files: [projectId, scope], usage: [projectId], pending: [projectId] };
    let got: Record<keyof typeof queries, Record<string, unknown>[]>;
    if (sqliteFile) {
      const s = new Database(sqliteFile, { readonly: true });
      try {
        got = s.transaction(() => ({
          files: s.prepare(queries.files).all(...params.files) as Record<string, unknown>[],
          usage: s.prepare(queries.usage).all(...params.usage) as Record<string, unknown>[],
          pending: s.prepare(queries.pending).all(...params.pending) as Record<string, unknown>[],
        }))();
      } finally {
        s.close();
      }
    } else {
      const pg = (await import("pg")).default;
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      try {
        await c.query("begin isolation level repeatable read read only");
        const q = async (k: keyof typeof queries) => {
          let n = 0;
          return (
            await c.query(
              queries[k].replace(/\?/g, () => `$${++n}`),
              params[k],
            )
          ).rows as Record<string, unknown>[];
        };
        got = { files: await q("files"), usage: await q("usage"), pending: await q("pending") };
        await c.query("commit");
      } finally {
        await c.end();
      }
    }
    const name = (path: unknown) => String(path).replace(/^crash\//, "");
    return {
      files: new Map(got.files.map((r) => [name(r.path), Number(r.size)])),
      usage: { bytes: Number(got.usage[0]?.bytes ?? 0), files: Number(got.usage[0]?.files ?? 0) },
      pending: new Set(got.pending.map((r) => name(r.path))),
    };
  }
});
