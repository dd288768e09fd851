import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { createServer as netServer } from "node:net";
import { decodeJwt } from "jose";
import { WebSocket, WebSocketServer } from "ws";
import { Webhook as StandardWebhook } from "standardwebhooks";
import { PG_URL, startServer, type TestServer } from "./helpers/server.js";
import { pythonVerify } from "./helpers/webhook-verify.js";
import { connectAndJoin, joinRoom, official, until, within, type OfficialRoom } from "./helpers/room-client.js";
import { ApiError } from "../src/core/errors.js";
import { callsDomain } from "../src/calls/index.js";

const { Protocol, RoomClient } = official as any;
const ALLOW = {
  MESHAGENT_WEBHOOK_ALLOW_PRIVATE: "1",
  MESHAGENT_CALL_TIMEOUT_MS: "3000",
  MESHAGENT_WEBHOOK_POLL_MS: "50",
  MESHAGENT_ROOM_EMPTY_TIMEOUT: "0.3",
};

interface Got {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  /** The POST body, or the Meshagent-Webhook header of a WebSocket handoff. */
  body: string;
  json: any;
}

/**
 * A call target on loopback: records what it gets and answers as told. POSTs get `answer(n)` (status, or "hang");
 * WebSocket upgrades (`GET` with Meshagent-Webhook) are accepted and the socket is handed to `onSocket`, which runs
 * the official RoomClient over it: the target speaks the room protocol, as the Python WebhookServer does.
 */
class Target {
  readonly got: Got[] = [];
  answer: (n: number) => number | "hang" = () => 200;
  onSocket: (ws: WebSocket, got: Got) => void = () => {};
  private server!: Server;
  private wss = new WebSocketServer({ noServer: true });
  private waiters: (() => void)[] = [];
  port = 0;

  static async start() {
    const t = new Target();
    t.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        const n = t.got.length;
        t.record({ method: req.method!, url: req.url!, headers: req.headers, body, json: body ? JSON.parse(body) : null });
        const a = t.answer(n);
        if (a === "hang") return;
        res.writeHead(a, { "content-type": "application/json" }).end(a === 200 ? '{"ok": true}' : '{"error": "no"}');
      });
    });
    t.server.on("upgrade", (req, socket, head) => {
      const body = String(req.headers["meshagent-webhook"] ?? "");
      const got = { method: req.method!, url: req.url!, headers: req.headers, body, json: body ? JSON.parse(body) : null };
      t.record(got);
      t.wss.handleUpgrade(req, socket, head, (ws) => t.onSocket(ws, got));
    });
    await new Promise<void>((r) => t.server.listen(0, "127.0.0.1", r));
    t.port = (t.server.address() as { port: number }).port;
    return t;
  }

  private record(g: Got) {
    this.got.push(g);
    for (const w of this.waiters.splice(0)) w();
  }

  async next(n: number, ms = 10_000): Promise<Got> {
    await until(() => this.got.length >= n, ms, `request ${n} at the target`);
    return this.got[n - 1];
  }

  url(path = "/webhook", scheme = "http") {
    return `${scheme}://127.0.0.1:${this.port}${path}`;
  }

  async close() {
    for (const ws of this.wss.clients) ws.terminate();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** The official client's Protocol over a socket the target accepted (the receiver side of the WebSocket handoff). */
function socketProtocol(ws: WebSocket) {
  const channel = {
    start(onData: (d: Uint8Array) => void, { onDone, onError }: { onDone?: () => void; onError?: (e: Error) => void }) {
      ws.on("message", (d: Buffer) => onData(new Uint8Array(d)));
      ws.on("close", (code, reason) => (code === 1000 ? onDone?.() : onError?.(new Error(`closed ${code} ${reason}`))));
    },
    dispose() {
      if (ws.readyState === WebSocket.OPEN) ws.close(1000);
    },
    async sendData(d: Uint8Array) {
      ws.send(d);
    },
  };
  return new Protocol({ channel });
}

/** Every RoomClient a target ran over a handoff socket (disposed after the file). */
const handedOff: OfficialRoom[] = [];
const disposeHandedOff = () => {
  for (const r of handedOff.splice(0)) r.dispose();
};

/** The target's side of a WebSocket handoff: the official RoomClient over the accepted socket, pushed to `joined` once started. */
function roomOver(ws: WebSocket, joined: OfficialRoom[], opts: { messaging?: boolean } = {}) {
  const room = new RoomClient({ protocolFactory: () => socketProtocol(ws), reconnectTimeout: 0 }) as OfficialRoom;
  handedOff.push(room);
  void within(room.start(), 10_000, "RoomClient over the handoff socket").then(
    () => {
      joined.push(room);
      if (opts.messaging) {
        room.messaging.start();
        room.messaging.enable();
      }
    },
    () => {}, // the test waiting for `joined` reports it
  );
}

/** Both signatures of a delivery, checked with the reference algorithms: Python's WebhookServer and Standard Webhooks. */
function verifySignatures(g: Got, secret: string) {
  expect(pythonVerify([{ body: g.body, headers: g.headers, secret }])).toEqual(["ok"]);
  expect(() =>
    new StandardWebhook(secret).verify(g.body, {
      "webhook-id": String(g.headers["webhook-id"]),
      "webhook-timestamp": String(g.headers["webhook-timestamp"]),
      "webhook-signature": String(g.headers["webhook-signature"]),
    }),
  ).not.toThrow();
  // The body is what Python's json.dumps writes, so the receiver's re-serialization hashes the same bytes.
  expect(g.headers["meshagent-event"]).toBe("room.call");
  expect(g.headers["meshagent-delivery"]).toBe(g.headers["webhook-id"]);
}

async function expectApiError(p: Promise<unknown>, status: number, message: RegExp) {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ApiError);
  expect((e as ApiError).status).toBe(status);
  expect((e as ApiError).message).toMatch(message);
}

describe("room.call handoffs (src/calls)", () => {
  let s: TestServer;
  let t: Target;
  let P: string;
  const rooms: OfficialRoom[] = [];
  const track = (r: OfficialRoom) => (rooms.push(r), r);
  let roomId: string;

  beforeAll(async () => {
    s = await startServer({ env: ALLOW });
    t = await Target.start();
    P = s.admin.projectId;
    for (const name of ["calls", "hooked", "sockets"]) await s.client().createRoom({ projectId: P, name } as any);
    roomId = (await s.ctx.rooms.byName(P, "calls")).id;
  });
  afterAll(async () => {
    disposeHandedOff();
    for (const r of rooms) r.dispose();
    await t.close();
    await s.close();
  });

  const call = (o: { name?: string; url: string; arguments?: unknown; room?: string }) =>
    s.ctx.calls.call({
      projectId: P,
      roomId,
      roomName: o.room ?? "calls",
      name: o.name ?? "helper",
      url: o.url,
      arguments: o.arguments,
      callerId: "test-caller",
    });

  /** A user in the room who watches who else is there (messaging presence: id, role, name). */
  async function watcher(room: string) {
    const { room: w } = await connectAndJoin(s, room);
    track(w);
    w.messaging.start();
    w.messaging.enable();
    await until(() => w.messaging.online, 5000, "watcher online");
    return w;
  }
  const seen = (w: OfficialRoom, name: string): any => w.messaging.getParticipants().find((p: any) => p.getAttribute("name") === name);

  it("POSTs the signed room.call event; the target joins the room with the token and room_url (role agent)", async () => {
    const secret = (await s.http("GET", `/accounts/projects/${P}/calls/secret`)).json.secret;
    expect(secret).toMatch(/^whsec_/);
    const w = await watcher("calls");
    const before = t.got.length;
    const res = await call({ name: "helper", url: t.url(), arguments: { task: "summarize", n: 1.5, text: "é" } });
    expect(res).toEqual({ status: 200, via: "post" });
    const g = await t.next(before + 1);
    expect(g.method).toBe("POST");
    expect(g.url).toBe("/webhook");
    expect(g.headers["content-type"]).toBe("application/json");
    verifySignatures(g, secret);
    expect(Object.keys(g.json)).toEqual(["event", "data"]);
    expect(g.json.event).toBe("room.call");
    expect(Object.keys(g.json.data)).toEqual(["room_name", "room_url", "token", "arguments"]);
    expect(g.json.data).toMatchObject({
      room_name: "calls",
      room_url: `${s.url.replace(/^http/, "ws")}/rooms/calls`,
      arguments: { task: "summarize", n: 1.5, text: "é" },
    });
    expect(g.body).toContain('"text": "\\u00e9"');
    const claims = decodeJwt(g.json.data.token) as any;
    expect(claims).toMatchObject({ name: "helper", sub: P, version: "0.39.9" });
    expect(claims.grants).toEqual([
      { name: "room", scope: "calls" },
      { name: "role", scope: "agent" },
      { name: "api", scope: expect.objectContaining({ agents: {}, llm: {}, storage: {} }) },
    ]);
    expect(claims.grants[2].scope.admin).toBeUndefined();
    expect(claims.grants[2].scope.tunnels).toBeUndefined();

    const agent = track(await joinRoom(g.json.data.room_url, g.json.data.token));
    agent.messaging.start();
    agent.messaging.enable();
    await until(() => !!seen(w, "helper"), 5000, "the called agent seen by the watcher");
    expect(seen(w, "helper").role).toBe("agent");
    agent.dispose();
  });

  it("end to end through the official client: room.agents.call({name, url, arguments}) hands the call off; failures reach the caller", async () => {
    const secret = await s.ctx.calls.secret(P);
    const { room: caller } = await connectAndJoin(s, "calls");
    track(caller);
    caller.messaging.start();
    caller.messaging.enable();
    await until(() => caller.messaging.online, 5000, "caller online");
    const before = t.got.length;
    await within(caller.agents.call({ name: "e2e-agent", url: t.url("/e2e"), arguments: { question: "why?" } }), 10_000, "room.agents.call");
    const g = await t.next(before + 1);
    verifySignatures(g, secret);
    expect(g.json.data).toMatchObject({ room_name: "calls", arguments: { question: "why?" } });
    const agent = track(await joinRoom(g.json.data.room_url, g.json.data.token));
    agent.messaging.start();
    agent.messaging.enable();
    await until(() => !!seen(caller, "e2e-agent"), 5000, "the called agent seen by the caller");
    expect(seen(caller, "e2e-agent").role).toBe("agent");
    agent.dispose();

    t.answer = () => 503;
    try {
      const err = await within(caller.agents.call({ name: "e2e-agent", url: t.url("/e2e"), arguments: {} }), 10_000, "failing room.agents.call").then(
        () => null,
        (e: Error) => e,
      );
      expect(err?.message).toMatch(/answered HTTP 503/);
    } finally {
      t.answer = () => 200;
    }
  });

  it("arguments may be absent (null is sent: the key is always there)", async () => {
    const before = t.got.length;
    await call({ url: t.url("/hook?x=1") });
    const g = await t.next(before + 1);
    expect(g.url).toBe("/hook?x=1");
    expect(g.json.data.arguments).toBeNull();
    expect(g.body).toContain('"arguments": null}');
  });

  it("a target that answers non-2xx is an error naming the status; a closed port, a timeout and bad input are errors too", async () => {
    t.answer = () => 500;
    await expectApiError(call({ url: t.url() }), 502, /answered HTTP 500/);
    t.answer = () => 302;
    await expectApiError(call({ url: t.url() }), 502, /answered HTTP 302/);
    t.answer = () => "hang";
    const t0 = Date.now();
    await expectApiError(call({ url: t.url() }), 504, /did not accept within 3000 ms/);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2900);
    t.answer = () => 200;

    const closed = await new Promise<number>((resolve) => {
      const srv = netServer().listen(0, "127.0.0.1", () => {
        const port = (srv.address() as { port: number }).port;
        srv.close(() => resolve(port));
      });
    });
    await expectApiError(call({ url: `http://127.0.0.1:${closed}/webhook` }), 502, /could not reach the target http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/);
    await expectApiError(call({ url: `ws://127.0.0.1:${closed}/webhook` }), 502, /could not reach the target ws:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/);

    await expectApiError(call({ url: "ftp://example.com/x" }), 400, /http, https, ws or wss/);
    await expectApiError(call({ url: "not a url" }), 400, /valid absolute URL/);
    await expectApiError(call({ url: "http://user:pw@127.0.0.1/" }), 400, /credentials/);
    await expectApiError(call({ name: "", url: t.url() }), 400, /name/);
    await expectApiError(call({ name: "x".repeat(300), url: t.url() }), 400, /at most 256/);
    await expectApiError(call({ url: t.url(), arguments: { big: "x".repeat(300 * 1024) } }), 413, /arguments/);
  });

  it("the WebSocket handoff (a ws:// target): Meshagent-Webhook on a GET upgrade, then the target speaks the room protocol over that socket", async () => {
    const secret = await s.ctx.calls.secret(P);
    const w = await watcher("sockets");
    const joined: OfficialRoom[] = [];
    t.onSocket = (ws) => roomOver(ws, joined, { messaging: true });
    const before = t.got.length;
    const res = await call({ room: "sockets", name: "socket-agent", url: t.url("/webhook", "ws"), arguments: { via: "ws" } });
    expect(res).toEqual({ status: 101, via: "websocket" });
    const g = t.got[before];
    expect(g.method).toBe("GET");
    expect(g.headers.upgrade).toBe("websocket");
    verifySignatures(g, secret);
    expect(g.json.data).toMatchObject({ room_name: "sockets", arguments: { via: "ws" } });
    expect(decodeJwt(g.json.data.token)).toMatchObject({ name: "socket-agent" });
    await until(() => joined.length === 1, 10_000, "RoomClient started over the handoff socket");
    expect(joined[0].roomName).toBe("sockets");
    await until(() => !!seen(w, "socket-agent"), 5000, "the socket agent seen by the watcher");
    expect(seen(w, "socket-agent").role).toBe("agent");
    // The room works both ways over the handed-off socket: a message from the watcher arrives.
    const got: any[] = [];
    joined[0].messaging.on("message", (e: any) => got.push(e.message));
    await within(w.messaging.sendMessage({ to: seen(w, "socket-agent"), type: "ping", message: { hello: 1 } }));
    await until(() => got.some((m) => m.type === "ping"), 5000, "a message over the handoff socket");
    joined[0].dispose();
    await until(() => !seen(w, "socket-agent"), 5000, "the socket agent left");
  });

  it("an http(s) target that answers the POST with 426 Upgrade Required gets the WebSocket handoff", async () => {
    const joined: OfficialRoom[] = [];
    t.onSocket = (ws) => roomOver(ws, joined);
    const before = t.got.length;
    t.answer = () => 426;
    try {
      const res = await call({ room: "sockets", name: "upgraded", url: t.url() });
      expect(res).toEqual({ status: 101, via: "websocket" });
    } finally {
      t.answer = () => 200;
    }
    expect(t.got.slice(before).map((g) => g.method)).toEqual(["POST", "GET"]);
    expect(t.got[before].headers["webhook-id"]).toBe(t.got[before + 1].headers["webhook-id"]);
    await until(() => joined.length === 1, 10_000, "RoomClient started after the 426");
    joined[0].dispose();
  });

  it("a WebSocket target that refuses the upgrade is an error naming the status", async () => {
    const srv = createServer((_req, res) => res.writeHead(403).end("no"));
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const port = (srv.address() as { port: number }).port;
    try {
      await expectApiError(call({ url: `ws://127.0.0.1:${port}/webhook` }), 502, /answered HTTP 403/);
    } finally {
      srv.close();
    }
  });

  it('webhooks with action "call": room.started becomes a room.call to the webhook URL, signed with its secret', async () => {
    const hook = await s.http("POST", `/accounts/projects/${P}/webhooks`, {
      json: {
        name: "hooked agent",
        url: t.url("/hooked"),
        events: ["room.started", "room.ended"],
        action: "call",
        payload: { participant_name: "hook-agent", team: "blue" },
      },
    });
    expect(hook.status, hook.text).toBe(201);
    const before = t.got.length;
    const w = await watcher("hooked"); // starts the room: room.started
    const g = await t.next(before + 1);
    expect(g.method).toBe("POST");
    expect(g.url).toBe("/hooked");
    verifySignatures(g, hook.json.secret);
    expect(g.json).toEqual({
      event: "room.call",
      data: {
        room_name: "hooked",
        room_url: `${s.url.replace(/^http/, "ws")}/rooms/hooked`,
        token: expect.any(String),
        arguments: {
          event: "room.started",
          data: { room_name: "hooked", room_url: `${s.url.replace(/^http/, "ws")}/rooms/hooked`, room_id: expect.any(String), session_id: expect.any(String) },
          participant_name: "hook-agent",
          team: "blue",
        },
      },
    });
    expect(decodeJwt(g.json.data.token)).toMatchObject({ name: "hook-agent", sub: P });
    const agent = track(await joinRoom(g.json.data.room_url, g.json.data.token));
    agent.messaging.start();
    agent.messaging.enable();
    await until(() => !!seen(w, "hook-agent"), 5000, "the hooked agent seen by the watcher");
    expect(seen(w, "hook-agent").role).toBe("agent");

    // Recorded like any delivery: event room.call, delivered, the stored body without the token.
    await s.ctx.webhookDispatcher.idle();
    const list = (await s.http("GET", `/accounts/projects/${P}/webhooks/${hook.json.id}/deliveries`)).json;
    const d = list.deliveries.find((x: any) => x.event === "room.call");
    expect(d).toMatchObject({ status: "delivered", attempts: 1, last_status_code: 200 });
    expect(d.payload.data.token).toBeUndefined();
    expect(JSON.stringify(list)).not.toContain(g.json.data.token);

    // room.ended is delivered as a plain webhook (with "action": "call"), not as a call into the emptied room.
    agent.dispose();
    w.dispose();
    await until(
      async () =>
        (await s.http("GET", `/accounts/projects/${P}/webhooks/${hook.json.id}/deliveries`)).json.deliveries.some((x: any) => x.event === "room.ended"),
      20_000,
      "room.ended delivery",
    );
    await until(() => t.got.some((x) => x.json?.event === "room.ended" && x.json?.action === "call"), 10_000, "room.ended at the target");
    await s.http("DELETE", `/accounts/projects/${P}/webhooks/${hook.json.id}`);
  }, 40_000);

  it("a call webhook whose target answers 426 gets the WebSocket handoff (with the webhook secret); the participant defaults to the webhook name", async () => {
    const joined: OfficialRoom[] = [];
    t.onSocket = (ws) => roomOver(ws, joined);
    await s.client().createRoom({ projectId: P, name: "hooked-ws" } as any);
    const hook = await s.http("POST", `/accounts/projects/${P}/webhooks`, {
      json: { name: "ws-agent", url: t.url("/upgrade-me"), events: ["room.started"], action: "call" },
    });
    expect(hook.status, hook.text).toBe(201);
    const before = t.got.length;
    t.answer = () => 426;
    try {
      const w = await watcher("hooked-ws");
      await until(() => joined.length === 1, 15_000, "RoomClient over the webhook's handoff socket");
      const [post, get] = t.got.slice(before);
      expect([post.method, get.method]).toEqual(["POST", "GET"]);
      verifySignatures(get, hook.json.secret);
      expect(decodeJwt(get.json.data.token)).toMatchObject({ name: "ws-agent" });
      joined[0].messaging.start();
      joined[0].messaging.enable();
      await until(() => !!seen(w, "ws-agent"), 5000, "the ws agent seen by the watcher");
      await s.ctx.webhookDispatcher.idle();
      const list = (await s.http("GET", `/accounts/projects/${P}/webhooks/${hook.json.id}/deliveries`)).json;
      expect(list.deliveries.find((x: any) => x.event === "room.call")).toMatchObject({ status: "delivered", last_status_code: 101 });
    } finally {
      t.answer = () => 200;
      await s.http("DELETE", `/accounts/projects/${P}/webhooks/${hook.json.id}`);
    }
  }, 30_000);

  it("the call secret: admins read it, POST replaces it (and the next call is signed with the new one)", async () => {
    const a = (await s.http("GET", `/accounts/projects/${P}/calls/secret`)).json.secret;
    expect((await s.http("GET", `/accounts/projects/${P}/calls/secret`)).json.secret).toBe(a);
    const rotated = await s.http("POST", `/accounts/projects/${P}/calls/secret`);
    expect(rotated.status).toBe(200);
    expect(rotated.json.secret).toMatch(/^whsec_/);
    expect(rotated.json.secret).not.toBe(a);
    const before = t.got.length;
    await call({ url: t.url() });
    verifySignatures(await t.next(before + 1), rotated.json.secret);
    expect(pythonVerify([{ body: t.got[before].body, headers: t.got[before].headers, secret: a }])).toEqual(["invalid jwt"]);
    // sealed at rest
    const row = await s.ctx.store.db.selectFrom("call_secrets").selectAll().where("project_id", "=", P).executeTakeFirstOrThrow();
    expect(row.secret_sealed).not.toContain(rotated.json.secret.slice(6, 20));
    // ...and declared for rotate-master-key with the AAD it was sealed with (the rotation re-seals it with that).
    const spec = callsDomain.sealed!.find((c) => c.table === "call_secrets")!;
    expect(s.ctx.sealer.open(row.secret_sealed, spec.aad!(row as unknown as Record<string, unknown>))).toBe(rotated.json.secret);
    expect(() => s.ctx.sealer.open(row.secret_sealed)).toThrow();
    const member = await s.user({});
    expect((await s.http("GET", `/accounts/projects/${P}/calls/secret`, { token: member.token })).status).toBe(403);
  });
});

describe("room.call handoffs without MESHAGENT_WEBHOOK_ALLOW_PRIVATE", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer();
    await s.client().createRoom({ projectId: s.admin.projectId, name: "closed" } as any);
  });
  afterAll(async () => {
    await s.close();
  });

  it("refuses loopback, private and link-local targets before connecting", async () => {
    const room = await s.ctx.rooms.byName(s.admin.projectId, "closed");
    for (const url of ["http://127.0.0.1:9/webhook", "ws://10.0.0.1/webhook", "https://169.254.169.254/", "http://[::1]:8080/", "wss://localhost/x"])
      await expectApiError(
        s.ctx.calls.call({ projectId: s.admin.projectId, roomId: room.id, roomName: room.name, name: "a", url, arguments: null, callerId: "c" }),
        400,
        /private, loopback or link-local/,
      );
  });
});

describe.skipIf(!PG_URL)("the WebSocket handoff when another process owns the room (PostgreSQL)", () => {
  let a: TestServer;
  let b: TestServer;
  let t: Target;
  const rooms: OfficialRoom[] = [];
  beforeAll(async () => {
    a = await startServer({ env: ALLOW });
    // Same data directory: the same master key, so each process opens what the other sealed (the signing key).
    b = await startServer({ env: ALLOW, databaseUrl: a.databaseUrl, keepDatabase: true, keepData: a.dataDir });
    t = await Target.start();
    await a.client().createRoom({ projectId: a.admin.projectId, name: "owned" } as any);
  });
  afterAll(async () => {
    disposeHandedOff();
    for (const r of rooms) r.dispose();
    await t.close();
    await b.close();
    await a.close();
  });

  it("the socket a call opened in one process is piped to the process that serves the room", async () => {
    const P = a.admin.projectId;
    const { room: w } = await connectAndJoin(a, "owned"); // process A now serves the room
    rooms.push(w);
    w.messaging.start();
    w.messaging.enable();
    await until(() => w.messaging.online, 5000, "watcher online");
    expect(a.ctx.roomServer.activeRooms().map((r) => r.room_name)).toContain("owned");
    const joined: OfficialRoom[] = [];
    t.onSocket = (ws) => roomOver(ws, joined, { messaging: true });
    const room = await b.ctx.rooms.byName(P, "owned");
    const res = await b.ctx.calls.call({
      projectId: P,
      roomId: room.id,
      roomName: "owned",
      name: "piped",
      url: t.url("/webhook", "ws"),
      arguments: null,
      callerId: "c",
    });
    expect(res).toEqual({ status: 101, via: "websocket" });
    expect(b.ctx.roomServer.activeRooms().map((r) => r.room_name)).not.toContain("owned");
    await until(() => joined.length === 1, 10_000, "RoomClient over the piped socket");
    const seenPiped = () => w.messaging.getParticipants().find((p: any) => p.getAttribute("name") === "piped") as any;
    await until(() => !!seenPiped(), 5000, "the piped agent seen by the watcher on the owner");
    expect(seenPiped().role).toBe("agent");
  });
});
