import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import pg from "pg";
import { WebSocket } from "ws";
import { freshDatabase, PG_URL, type TestDatabase } from "./helpers/server.js";
import { spawnServer, TSX_LOADER, type ServerProcess } from "./helpers/process.js";
import { Meshagent } from "./helpers/official.js";
import { joinRoom, mintToken, until, within, type OfficialRoom } from "./helpers/room-client.js";
import { RawRoomClient } from "./helpers/raw-room.js";

const ROOT = join(import.meta.dirname, "..");
const wsUrl = (srv: ServerProcess, room: string) => `${srv.url.replace(/^http/, "ws")}/rooms/${room}`;

function setup(name: string) {
  const st: { dataDir: string; db: TestDatabase; env: Record<string, string>; b: any } = {} as never;
  beforeAll(async () => {
    st.dataDir = mkdtempSync(join(tmpdir(), `meshagent-${name}-`));
    st.db = await freshDatabase(st.dataDir);
    st.env = { MESHAGENT_DATA_DIR: st.dataDir, MESHAGENT_DATABASE_URL: st.db.url, MESHAGENT_ROOM_LEASE: "1.5", MESHAGENT_ROOM_EMPTY_TIMEOUT: "0.5" };
    const out = execFileSync(process.execPath, ["--import", TSX_LOADER, join(ROOT, "src/main.ts"), "bootstrap", "--json", "--email", `${name}@example.com`], {
      cwd: st.dataDir,
      env: { ...process.env, ...st.env, MESHAGENT_LOG_LEVEL: "warn" },
      encoding: "utf8",
    });
    st.b = JSON.parse(out.trim());
  });
  afterAll(async () => {
    await st.db.drop();
    rmSync(st.dataDir, { recursive: true, force: true });
  });
  return st;
}

async function session(srv: ServerProcess, b: any, id: string) {
  return (await new Meshagent({ baseUrl: srv.url, token: b.api_key }).getSession(b.project_id, id)) as any;
}

describe("kill -9 during a session", () => {
  const st = setup("kill");

  it("after a restart, the session the dead process left active is marked ended", async () => {
    const srv = await spawnServer(st.env);
    let srv2: ServerProcess | undefined;
    let room: OfficialRoom | undefined;
    try {
      await new Meshagent({ baseUrl: srv.url, token: st.b.api_key }).createRoom({ projectId: st.b.project_id, name: "crash" });
      room = await joinRoom(wsUrl(srv, "crash"), await mintToken(st.b.api_key, "crash"));
      const id = room.sessionId!;
      await room.queues.send("durable", { before: "crash" }, { create: true });
      expect(await session(srv, st.b, id)).toMatchObject({ is_active: true, participants: { agent: 1 } });
      await new Promise((r) => setTimeout(r, 700)); // a heartbeat or two
      expect(await srv.kill("SIGKILL")).toBe(null);
      room.dispose();

      srv2 = await spawnServer(st.env);
      const s = await session(srv2, st.b, id);
      expect(s).toMatchObject({
        is_active: false,
        end_reason: "server_process_died",
        participant_list: [expect.objectContaining({ left_at: expect.any(String) })],
      });
      expect(new Date(s.ended_at).getTime()).toBeGreaterThanOrEqual(new Date(s.created_at).getTime());
      const evs = await new Meshagent({ baseUrl: srv2.url, token: st.b.api_key }).listSessionEvents(st.b.project_id, id);
      expect(evs.map((e) => e.type)).toEqual(["room.started", "participant.joined", "participant.left", "room.ended"]);
      // the room works again, in a new session; the acknowledged queue message survived
      const again = await joinRoom(wsUrl(srv2, "crash"), await mintToken(st.b.api_key, "crash"));
      expect(again.sessionId).not.toBe(id);
      expect(await again.queues.receive("durable", { create: false, wait: false })).toEqual({ before: "crash" });
      again.dispose();
    } finally {
      room?.dispose();
      await srv.kill("SIGKILL");
      await srv2?.kill("SIGTERM");
    }
  });
});

describe.runIf(PG_URL)("several processes on PostgreSQL: one owner per room", () => {
  const st = setup("cluster");
  const procs: ServerProcess[] = [];
  const clients: OfficialRoom[] = [];
  afterAll(async () => {
    for (const c of clients) c.dispose();
    for (const p of procs) await p.kill("SIGKILL");
  });

  it("a connection reaching a non-owner is proxied to the owner; terminate anywhere closes both; refusal names the owner; the owner's death hands the room over", async () => {
    const [a, b] = await Promise.all([spawnServer(st.env), spawnServer(st.env)]);
    procs.push(a, b);
    const api = new Meshagent({ baseUrl: a.url, token: st.b.api_key });
    await api.createRoom({ projectId: st.b.project_id, name: "shared" });

    const one = await joinRoom(wsUrl(a, "shared"), await mintToken(st.b.api_key, "shared", { name: "one" }), { reconnectTimeout: null });
    const two = await joinRoom(wsUrl(b, "shared"), await mintToken(st.b.api_key, "shared", { name: "two" }), { reconnectTimeout: null });
    clients.push(one, two);
    // the same session: b proxied the connection to a, the owner
    expect(two.sessionId).toBe(one.sessionId);
    const db = new pg.Client({ connectionString: st.db.url });
    await db.connect();
    try {
      const owner = await db.query(
        "SELECT n.url FROM room_leases l JOIN room_server_nodes n ON n.id = l.node_id JOIN rooms r ON r.id = l.room_id WHERE r.name = 'shared'",
      );
      expect(owner.rows).toEqual([{ url: a.url }]);
    } finally {
      await db.end();
    }

    // presence and messages across the two entry points
    one.messaging.start();
    two.messaging.start();
    one.messaging.enable();
    two.messaging.enable();
    await until(() => one.messaging.getParticipants().length === 1 && two.messaging.getParticipants().length === 1, 5000, "presence");
    expect(one.messaging.getParticipants()[0].getAttribute("name")).toBe("two");
    const got: any[] = [];
    one.messaging.on("message", (e: any) => got.push(e.message));
    await two.messaging.broadcastMessage({ type: "via-proxy", message: { hello: "one" } });
    await until(() => got.some((m) => m.type === "via-proxy"), 5000, "broadcast through the proxy");
    const waiting = one.queues.receive("work", { create: true, wait: true });
    await two.queues.send("work", { job: 1 }, { create: true });
    expect(await within(waiting)).toEqual({ job: 1 });
    // storage through the proxy: a 200 KB round trip
    const blob = Buffer.alloc(200 * 1024, 7);
    await within(two.storage.upload("p/blob.bin", blob));
    expect(Buffer.from((await within(one.storage.download("p/blob.bin"))).data).equals(blob)).toBe(true);

    // terminate through b's REST API: a serves the session, both clients are closed with 1000
    const apiB = new Meshagent({ baseUrl: b.url, token: st.b.api_key });
    const sid = one.sessionId!;
    await apiB.terminateSession(st.b.project_id, sid);
    await within(one.waitForClose(), 5000, "one closed");
    await within(two.waitForClose(), 5000, "two closed");
    expect([one.closeKind, two.closeKind]).toEqual(["server", "server"]);
    expect(await session(b, st.b, sid)).toMatchObject({ is_active: false, end_reason: "terminated" });

    // with proxying off, a non-owner refuses with 1013 and names the owner
    const c = await spawnServer({ ...st.env, MESHAGENT_ROOM_PROXY: "false" });
    procs.push(c);
    const owner = await RawRoomClient.connect(wsUrl(a, "shared"), await mintToken(st.b.api_key, "shared"));
    const refused = await new Promise<{ code: number; reason: string }>((resolve, reject) => {
      mintToken(st.b.api_key, "shared").then((t) => {
        const ws = new WebSocket(`${wsUrl(c, "shared")}?token=${t}`);
        ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() }));
        ws.on("error", reject);
      }, reject);
    });
    expect(refused.code).toBe(1013);
    expect(refused.reason).toContain("1013");
    expect(refused.reason).toContain(a.url);

    // the owner dies (kill -9): a connection to b takes the room over at once (a's pid is gone on this host)
    const oldSession = owner.sessionId;
    expect(await a.kill("SIGKILL")).toBe(null);
    const three = await joinRoom(wsUrl(b, "shared"), await mintToken(st.b.api_key, "shared"), { reconnectTimeout: 0 });
    clients.push(three);
    expect(three.sessionId).not.toBe(oldSession);
    expect(await session(b, st.b, oldSession)).toMatchObject({ is_active: false, end_reason: "server_process_died" });
    await three.queues.send("after", { ok: 1 }, { create: true });
    expect(await three.queues.receive("after", { create: false, wait: false })).toEqual({ ok: 1 });
  });
});
