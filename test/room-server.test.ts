import { afterAll, beforeAll, describe, expect, it } from "vitest";
import nodemailer from "nodemailer";
import { startServer, type TestServer } from "./helpers/server.js";
import { inTx } from "../src/store/db.js";
import { ApiScope, connectAndJoin, joinRoom, mintToken, official, roomWsUrl, until, within, type OfficialRoom } from "./helpers/room-client.js";

const { QueuesGrant, MessagingGrant, StorageGrant, StoragePathGrant, RoomServerException } = official as any;

describe("room server with the official RoomClient 0.39.9", () => {
  let s: TestServer;
  const rooms: OfficialRoom[] = [];
  const track = (r: OfficialRoom) => (rooms.push(r), r);

  beforeAll(async () => {
    s = await startServer({ env: { MESHAGENT_ROOM_EMPTY_TIMEOUT: "0.3", MESHAGENT_SMTP_PORT: "0" } });
    for (const name of ["alpha", "beta", "gamma"]) await s.client().createRoom({ projectId: s.admin.projectId, name } as any);
  });
  afterAll(async () => {
    for (const r of rooms) r.dispose();
    await s.close();
  });

  it("starts with a token from connect_room: room_ready and connected/init arrive", async () => {
    const { room, info } = await connectAndJoin(s, "alpha");
    track(room);
    expect(info.roomUrl).toBe(roomWsUrl(s, "alpha"));
    expect(room.roomName).toBe("alpha");
    expect(room.roomUrl).toBe(info.roomUrl);
    expect(room.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(room.localParticipant?.id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("queues: send, receive, list, with a long poll that does not block the socket", async () => {
    const room = track(await joinRoom(roomWsUrl(s, "alpha"), await mintToken(s.admin.apiKey, "alpha")));
    await room.queues.send("jobs", { a: 1 }, { create: true });
    await room.queues.send("jobs", { a: 2 }, { create: true });
    expect(await room.queues.list()).toEqual([expect.objectContaining({ name: "jobs", size: 2 })]);
    expect(await room.queues.receive("jobs", { create: true, wait: false })).toEqual({ a: 1 });
    expect(await room.queues.receive("jobs", { create: true, wait: false })).toEqual({ a: 2 });
    expect(await room.queues.receive("jobs", { create: true, wait: false })).toBeNull();
    const waiting = room.queues.receive("later", { create: true, wait: true });
    // other requests on the same socket go through while the receive waits
    await until(async () => (await within(room.queues.list())).some((q: any) => q.name === "later"), 5000, "list while receive waits");
    await new Promise((r) => setTimeout(r, 200));
    await room.queues.send("later", { late: true }, { create: true });
    expect(await within(waiting)).toEqual({ late: true });
  });

  it("queues: a busy queue is claimed ahead in lots, in order; what nobody drew is given back for everyone", async () => {
    const room = track(await joinRoom(roomWsUrl(s, "alpha"), await mintToken(s.admin.apiKey, "alpha")));
    const roomId = (await s.client().getRoom(s.admin.projectId, "alpha")).id;
    for (let i = 0; i < 40; i++) await room.queues.send("backlog", { i }, { create: true });
    const got: number[] = [];
    for (let i = 0; i < 10; i++) got.push((await room.queues.receive("backlog", { create: true, wait: false }))!.i);
    expect(got).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]); // FIFO through the lots
    // the lots claimed more than ten: the rest is hidden from others for now (claimed by this process)...
    const info = async () => (await s.ctx.queues.list(roomId)).find((q) => q.name === "backlog")!;
    await until(async () => (await info()).size === 30, 5000, "the ten receives acknowledged"); // acks follow the answers
    expect((await info()).ready).toBeLessThan(30);
    // ...and given back once unused for a second: ready for every receiver again, in order, attempt not counted
    await until(async () => (await info()).ready === 30, 5000, "claimed-ahead messages given back");
    const next = (await s.ctx.queues.receive<{ i: number }>(roomId, "backlog"))!;
    expect(next).toMatchObject({ message: { i: 10 }, attempts: 1 });
    await s.ctx.queues.ack(next);
    const rest: number[] = [];
    for (let m; (m = await room.queues.receive("backlog", { create: true, wait: false }));) rest.push(m.i);
    expect(rest).toEqual(Array.from({ length: 29 }, (_, i) => i + 11));
  });

  it("messaging: two clients see each other's presence, attributes, direct messages with attachments and broadcasts", async () => {
    const a = track(await joinRoom(roomWsUrl(s, "beta"), await mintToken(s.admin.apiKey, "beta", { name: "alice", role: "user" })));
    const b = track(await joinRoom(roomWsUrl(s, "beta"), await mintToken(s.admin.apiKey, "beta", { name: "bob", role: "agent" })));
    const aGot: any[] = [];
    const bGot: any[] = [];
    a.messaging.on("message", (e: any) => aGot.push(e.message));
    b.messaging.on("message", (e: any) => bGot.push(e.message));
    const added: string[] = [];
    const removed: string[] = [];
    a.messaging.on("participant_added", (e: any) => added.push(e.message.message.id));
    a.messaging.on("participant_removed", (e: any) => removed.push(e.message.message.id));
    a.messaging.start();
    b.messaging.start();
    a.messaging.enable();
    await until(() => a.messaging.online, 5000, "a online");
    expect(a.messaging.getParticipants()).toEqual([]);
    b.messaging.enable();
    await until(() => b.messaging.online, 5000, "b online");
    const bId = b.localParticipant!.id;
    const aId = a.localParticipant!.id;
    // b saw a in its messaging.enabled list; a got participant.enabled for b
    expect(b.messaging.getParticipants().map((p: any) => [p.id, p.role, p.getAttribute("name")])).toEqual([[aId, "user", "alice"]]);
    await until(() => added.includes(bId), 5000, "participant_added");
    const bAsSeenByA = a.messaging.getParticipant(bId)!;
    expect(bAsSeenByA.role).toBe("agent");
    expect(bAsSeenByA.getAttribute("name")).toBe("bob");

    // attributes
    b.localParticipant!.setAttribute("status", "busy");
    await until(() => bAsSeenByA.getAttribute("status") === "busy", 5000, "attributes");

    // direct message with a 3000-byte attachment
    const attachment = new Uint8Array(3000).map((_, i) => i % 251);
    await within(a.messaging.sendMessage({ to: bAsSeenByA, type: "chat", message: { text: "hi bob" }, attachment }));
    await until(() => bGot.some((m) => m.type === "chat"), 5000, "direct message");
    const chat = bGot.find((m) => m.type === "chat");
    expect(chat.fromParticipantId).toBe(aId);
    expect(chat.message).toEqual({ text: "hi bob" });
    expect(Buffer.from(chat.attachment)).toEqual(Buffer.from(attachment));

    // broadcast reaches the other participant, not the sender
    await within(b.messaging.broadcastMessage({ type: "news", message: { n: 1 } }));
    await until(() => aGot.some((m) => m.type === "news"), 5000, "broadcast");
    expect(bGot.some((m) => m.type === "news")).toBe(false);

    // a message to oneself (the self-echo case)
    const self = a.localParticipant!;
    await within(a.messaging.sendMessage({ to: self, type: "echo", message: { me: true } }));
    await until(() => aGot.some((m) => m.type === "echo" && m.fromParticipantId === aId), 5000, "self message");

    // leaving: a sees participant.disabled
    b.dispose();
    await until(() => removed.includes(bId), 5000, "participant_removed");
    expect(a.messaging.getParticipants()).toEqual([]);
  });

  it("messaging.send to a participant that is not there answers 'the participant was not found'", async () => {
    const a = track(await joinRoom(roomWsUrl(s, "beta"), await mintToken(s.admin.apiKey, "beta")));
    const err = await a
      .invoke({ toolkit: "messaging", tool: "send", input: { to_participant_id: "nobody", type: "x", message_json: "{}" } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RoomServerException);
    expect((err as Error).message).toBe("the participant was not found");
    const bad = await a.invoke({ toolkit: "messaging", tool: "broadcast", input: { type: "x", message_json: "{not json" } }).catch((e: unknown) => e);
    expect((bad as Error).message).toMatch(/message_json/);
    expect((bad as any).code).toBe(1002);
  });

  it("storage: upload, list, stat, exists, download (300 KB, streamed), move, delete, download_url", async () => {
    const room = track(await joinRoom(roomWsUrl(s, "gamma"), await mintToken(s.admin.apiKey, "gamma")));
    const events: any[] = [];
    room.storage.on("file.updated", (e: any) => events.push(["updated", e.path]));
    room.storage.on("file.deleted", (e: any) => events.push(["deleted", e.path]));
    room.storage.on("file.moved", (e: any) => events.push(["moved", e.sourcePath, e.destinationPath]));
    const big = Buffer.alloc(300 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) % 256;
    await within(room.storage.upload("docs/big.bin", big));
    await within(room.storage.upload("/docs/notes.txt", Buffer.from("hello"), { overwrite: false }));
    await within(room.storage.upload("empty.json", new Uint8Array(0)));

    const root = await room.storage.list("");
    expect(root.map((e: any) => [e.name, e.isFolder])).toEqual([
      ["docs", true],
      ["empty.json", false],
    ]);
    const docs = await room.storage.list("docs");
    expect(docs.map((e: any) => [e.name, e.isFolder, e.size])).toEqual([
      ["big.bin", false, big.length],
      ["notes.txt", false, 5],
    ]);
    expect(docs[0].createdAt).toBeInstanceOf(Date);

    const st = await room.storage.stat("docs/notes.txt");
    expect(st).toMatchObject({ name: "notes.txt", isFolder: false, size: 5 });
    expect(await room.storage.stat("docs/missing.txt")).toBeNull();
    expect(await room.storage.exists("docs/big.bin")).toBe(true);
    expect(await room.storage.exists("nope")).toBe(false);

    const file = await within(room.storage.download("docs/big.bin"));
    expect(Buffer.from(file.data).equals(big)).toBe(true);
    expect(file.name).toBe("big.bin");
    expect(file.mimeType).toBe("application/octet-stream");
    const txt = await within(room.storage.download("docs/notes.txt"));
    expect([Buffer.from(txt.data).toString(), txt.mimeType]).toEqual(["hello", "text/plain"]);
    const empty = await within(room.storage.download("empty.json"));
    expect([empty.data.length, empty.mimeType]).toEqual([0, "application/json"]);

    // an existing path without overwrite is refused, with overwrite replaced
    const dup = await room.storage.upload("docs/notes.txt", Buffer.from("x")).catch((e: unknown) => e);
    expect(dup).toBeInstanceOf(RoomServerException);
    expect((dup as any).code).toBe(3005);
    await within(room.storage.upload("docs/notes.txt", Buffer.from("replaced"), { overwrite: true }));
    expect(Buffer.from((await room.storage.download("docs/notes.txt")).data).toString()).toBe("replaced");

    // download_url serves the bytes over HTTP, and only with a valid signature
    const url: string = await room.storage.downloadUrl("docs/notes.txt");
    const res = await fetch(url);
    expect([res.status, await res.text(), res.headers.get("content-type")]).toEqual([200, "replaced", "text/plain"]);
    expect((await fetch(url.replace(/signature=[^&]+/, "signature=forged"))).status).toBe(403);

    await room.storage.move("docs/notes.txt", "archive/notes.txt");
    expect(await room.storage.exists("docs/notes.txt")).toBe(false);
    expect(Buffer.from((await room.storage.download("archive/notes.txt")).data).toString()).toBe("replaced");
    const moveOver = await room.storage.move("docs/big.bin", "archive/notes.txt").catch((e: unknown) => e);
    expect((moveOver as any).code).toBe(3005);

    const notEmpty = await room.storage.delete("archive").catch((e: unknown) => e);
    expect((notEmpty as any).code).toBe(3002);
    await room.storage.delete("archive", { recursive: true });
    await room.storage.delete("empty.json");
    expect((await room.storage.list("")).map((e: any) => e.name)).toEqual(["docs"]);

    const missing = await within(room.storage.download("docs/none.txt")).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(RoomServerException);
    expect((missing as any).code).toBe(3001);
    const traversal = await room.storage.stat("../../etc/passwd").catch((e: unknown) => e);
    expect((traversal as any).code).toBe(3004);

    await until(() => events.length >= 7, 5000, "storage events");
    expect(events).toContainEqual(["updated", "docs/big.bin"]);
    expect(events).toContainEqual(["moved", "docs/notes.txt", "archive/notes.txt"]);
    expect(events).toContainEqual(["deleted", "archive"]);
  });

  it("refuses bad tokens and wrong room grants with 403 at the upgrade, unknown rooms with 404, never 401", async () => {
    const url = roomWsUrl(s, "alpha");
    const { WebSocket } = await import("ws");
    const status = (u: string) =>
      new Promise<number>((resolve) => {
        const ws = new WebSocket(u);
        ws.on("unexpected-response", (_req, res) => {
          resolve(res.statusCode ?? 0);
          res.resume();
          ws.terminate();
        });
        ws.on("open", () => {
          resolve(101);
          ws.close();
        });
        ws.on("error", () => {});
      });
    expect(await status(url)).toBe(403);
    expect(await status(`${url}?token=garbage`)).toBe(403);
    expect(await status(`${url}?token=${await mintToken(s.admin.apiKey, "beta")}`)).toBe(403);
    expect(await status(`${roomWsUrl(s, "no-such-room")}?token=${await mintToken(s.admin.apiKey, "no-such-room")}`)).toBe(404);
    expect(await status(`${s.url.replace(/^http/, "ws")}/elsewhere`)).toBe(404);
    // an expired token
    const t = new official.ParticipantToken({ name: "late" });
    t.addRoomGrant("alpha");
    t.addApiGrant(ApiScope.full());
    const expired = await t.toJwt({ apiKey: s.admin.apiKey, expiration: new Date(Date.now() - 60_000) });
    expect(await status(`${url}?token=${expired}`)).toBe(403);
    // another project's key signs a token for a room of the same name: that project has no such room
    const other = await s.otherProject();
    expect(await status(`${url}?token=${await mintToken(other.apiKey, "alpha")}`)).toBe(404);
    // (The official 0.39.9 client reports a 403 as "websocket connect failed with status 403" and does not retry, but
    // then leaks an uncaught 'error' from disposing its CONNECTING socket, whatever the server: checked here with raw ws.)
  });

  it("accepts the token as Authorization: Bearer and as the meshagent-room.<jwt> subprotocol (echoed back)", async () => {
    const { WebSocket } = await import("ws");
    const token = await mintToken(s.admin.apiKey, "alpha");
    const open = (ws: InstanceType<typeof WebSocket>) =>
      new Promise<string[]>((resolve, reject) => {
        const types: string[] = [];
        ws.on("message", (d: Buffer) => {
          if (d.readUInt32BE(8) === 0) types.push(d.subarray(16).toString());
          if (types.length === 2) resolve(types);
        });
        ws.on("error", reject);
      });
    const byHeader = new WebSocket(roomWsUrl(s, "alpha"), { headers: { authorization: `Bearer ${token}` } });
    expect((await within(open(byHeader))).sort()).toEqual(["connected", "room_ready"]);
    byHeader.close(1000);
    const byProtocol = new WebSocket(roomWsUrl(s, "alpha"), [`meshagent-room.${token}`]);
    expect((await within(open(byProtocol))).sort()).toEqual(["connected", "room_ready"]);
    expect(byProtocol.protocol).toBe(`meshagent-room.${token}`);
    byProtocol.close(1000);
  });

  it("enforces the token's ApiScope: violations come back as RoomServerException with code 1001", async () => {
    const deny = async (p: Promise<unknown>) => {
      const e = await within(p).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(RoomServerException);
      expect((e as any).code).toBe(1001);
      return (e as Error).message;
    };
    // no api grant at all
    const none = track(await joinRoom(roomWsUrl(s, "gamma"), await mintToken(s.admin.apiKey, "gamma", { api: null })));
    expect(await deny(none.queues.list())).toMatch(/no api grant/);
    expect(await deny(none.storage.list(""))).toMatch(/no api grant/);

    // queues: named send/receive lists, list off; no storage section; messaging without broadcast/send
    const scoped = new ApiScope({
      queues: new QueuesGrant({ send: ["in"], receive: ["out"], list: false }),
      messaging: new MessagingGrant({ broadcast: false, send: false }),
    });
    const q = track(await joinRoom(roomWsUrl(s, "gamma"), await mintToken(s.admin.apiKey, "gamma", { api: scoped })));
    await q.queues.send("in", { ok: true }, { create: true });
    expect(await deny(q.queues.send("out", {}, { create: true }))).toMatch(/send to queue "out"/);
    expect(await deny(q.queues.receive("in", { create: true, wait: false }))).toMatch(/receive from queue "in"/);
    expect(await q.queues.receive("out", { create: true, wait: false })).toBeNull();
    expect(await deny(q.queues.list())).toMatch(/list queues/);
    expect(await deny(q.queues.drain("elsewhere"))).toMatch(/neither send/);
    expect(await deny(q.storage.exists("x"))).toMatch(/no storage section/);
    q.messaging.start();
    expect(await deny(q.messaging.broadcastMessage({ type: "t", message: {} }))).toMatch(/broadcast/);
    expect(
      await deny(q.invoke({ toolkit: "messaging", tool: "send", input: { to_participant_id: q.localParticipant!.id, type: "t", message_json: "{}" } })),
    ).toMatch(/send messages/);

    // storage path grants: the first matching grant decides about writes
    const st = new ApiScope({
      storage: new StorageGrant({ paths: [new StoragePathGrant({ path: "public/", readOnly: true }), new StoragePathGrant({ path: "shared/" })] }),
    });
    const admin = track(await joinRoom(roomWsUrl(s, "gamma"), await mintToken(s.admin.apiKey, "gamma")));
    await admin.storage.upload("public/readme.txt", Buffer.from("read me"));
    const p = track(await joinRoom(roomWsUrl(s, "gamma"), await mintToken(s.admin.apiKey, "gamma", { api: st })));
    expect(Buffer.from((await within(p.storage.download("public/readme.txt"))).data).toString()).toBe("read me");
    expect(await deny(p.storage.upload("public/new.txt", Buffer.from("x")))).toMatch(/write "public\/new.txt"/);
    await within(p.storage.upload("shared/new.txt", Buffer.from("x")));
    expect(await deny(p.storage.stat("secret.txt"))).toMatch(/read "secret.txt"/);
    expect(await deny(p.storage.delete("public/readme.txt"))).toMatch(/write/);
    expect(await deny(p.storage.move("shared/new.txt", "public/new.txt"))).toMatch(/write "public\/new.txt"/);
    expect(await deny(p.storage.download("secret.txt"))).toMatch(/read/);
  });

  it("a member's connect_room token carries the room grant's scope, and the room server enforces it", async () => {
    const member = await s.user({});
    const room = await s.client().getRoom(s.admin.projectId, "gamma");
    await s.client().createRoomGrant({
      projectId: s.admin.projectId,
      roomId: room.id,
      userId: member.userId,
      permissions: new ApiScope({ queues: new QueuesGrant({ send: ["requests"], receive: [] }) }),
    });
    const { room: r } = await connectAndJoin(s, "gamma", member.token);
    track(r);
    await r.queues.send("requests", { from: "member" }, { create: true });
    const e = await r.queues.send("other", {}, { create: true }).catch((x: unknown) => x);
    expect((e as any).code).toBe(1001);
    const e2 = await r.storage.list("").catch((x: unknown) => x);
    expect((e2 as any).code).toBe(1001);
  });

  it("messages enqueued by a mailbox (real SMTP) and by a scheduler-like transaction arrive through queues.receive", async () => {
    const room = track(await joinRoom(roomWsUrl(s, "alpha"), await mintToken(s.admin.apiKey, "alpha")));
    const r = await s.http("POST", `/accounts/projects/${s.admin.projectId}/mailboxes`, {
      json: { address: "inbox@rooms.example.com", room: "alpha", queue: "email", public: true },
    });
    expect(r.status).toBe(201);
    const waiting = room.queues.receive("email", { create: true, wait: true });
    await new Promise((res) => setTimeout(res, 100));
    await nodemailer.createTransport({ host: "127.0.0.1", port: s.ctx.mail.port!, secure: false, ignoreTLS: true } as never).sendMail({
      from: "sender@outside.example",
      to: "inbox@rooms.example.com",
      subject: "to the agent",
      text: "body",
      attachments: [{ filename: "a.txt", content: "attached" }],
    });
    const mail: any = await within(waiting, 10_000, "mail through queues.receive");
    expect(mail).toMatchObject({ subject: "to the agent", from: "sender@outside.example" });
    // the attachment is a room file the client can download
    const file = await within(room.storage.download(mail.attachments[0].path));
    expect(Buffer.from(file.data).toString()).toBe("attached");

    // a scheduled task's run: a queue row written in the scheduler's own transaction, then the wake-up
    const alpha = await s.ctx.rooms.byName(s.admin.projectId, "alpha");
    const scheduled = room.queues.receive("jobs-scheduled", { create: true, wait: true });
    await new Promise((res) => setTimeout(res, 100));
    const { notify } = await inTx(s.ctx.store.db, (tx) => s.ctx.queues.enqueue(tx, alpha.id, "jobs-scheduled", { task: "nightly", run: 1 }));
    notify();
    expect(await within(scheduled, 10_000, "scheduled message")).toEqual({ task: "nightly", run: 1 });
  });

  it("a long poll ends with the socket; a claimed-then-orphaned message is not lost", async () => {
    const token = await mintToken(s.admin.apiKey, "alpha");
    const a = await joinRoom(roomWsUrl(s, "alpha"), token);
    const pending = a.queues.receive("orphans", { create: true, wait: true }).catch(() => "closed");
    await until(() => s.ctx.queues.waiting > 0, 5000, "receiver waiting");
    const before = s.ctx.queues.waiting;
    a.dispose();
    expect(await pending).toBe("closed");
    await until(() => s.ctx.queues.waiting < before, 5000, "long poll released");
    const b = track(await joinRoom(roomWsUrl(s, "alpha"), token));
    await b.queues.send("orphans", { keep: 1 }, { create: true });
    expect(await b.queues.receive("orphans", { create: false, wait: false })).toEqual({ keep: 1 });
    const missing = await b.queues.receive("never-made", { create: false, wait: false }).catch((e: unknown) => e);
    expect((missing as any).code).toBe(5001);
    await b.queues.open("made");
    await b.queues.send("made", { x: 1 }, { create: false });
    await b.queues.drain("made");
    expect(await b.queues.receive("made", { create: false, wait: false })).toBeNull();
    await b.queues.close("made");
    expect(((await b.queues.close("made").catch((e: unknown) => e)) as any).code).toBe(5001);
  });
});
