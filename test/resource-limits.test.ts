import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { startServer, type TestServer } from "./helpers/server.js";
import { RawRoomClient } from "./helpers/raw-room.js";
import { mintToken, roomWsUrl, until } from "./helpers/room-client.js";
import { rawUpload, q } from "./helpers/storage.js";
import { unpack, contentFrom, type Content } from "../src/room-server/protocol.js";

// Small limits, so every bound is reached with a handful of messages.
const RATE = 50;
const TOOL_CALLS = 4;
const STREAMS = 2;
const UPLOADS = 3;
const OTLP_ROWS = 50;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("resource limits", () => {
  let s: TestServer;
  let P: string;
  const clients: RawRoomClient[] = [];

  const join = async (room: string, name = "agent") => {
    const c = await RawRoomClient.connect(roomWsUrl(s, room), await mintToken(s.admin.apiKey, room, { name }));
    clients.push(c);
    return c;
  };

  /** The next response chunk of a streaming tool call. */
  const nextChunk = (c: RawRoomClient, toolCallId: string) =>
    new Promise<Content>((resolve) => {
      let done = false;
      c.on((m) => {
        if (done || m.type !== "room.tool_call_response_chunk") return;
        const { header, tail } = unpack(m.payload);
        if (header.tool_call_id !== toolCallId) return;
        done = true;
        resolve(contentFrom(header.chunk, tail));
      });
    });
  const open = (c: RawRoomClient, tool: string, toolCallId: string) =>
    c.request("room.invoke_tool", { toolkit: "storage", tool, tool_call_id: toolCallId, arguments: { type: "control", method: "open" } });
  const chunk = (c: RawRoomClient, toolCallId: string, chunk: unknown, tail?: Buffer) =>
    c.request("room.tool_call_request_chunk", { tool_call_id: toolCallId, chunk }, tail);

  beforeAll(async () => {
    s = await startServer({
      env: {
        MESHAGENT_ROOM_MAX_MESSAGES_PER_SECOND: String(RATE),
        MESHAGENT_ROOM_MAX_TOOL_CALLS: String(TOOL_CALLS),
        MESHAGENT_ROOM_MAX_STREAMS: String(STREAMS),
        MESHAGENT_MAX_CONCURRENT_UPLOADS: String(UPLOADS),
        MESHAGENT_OTLP_MAX_ROWS_PER_SESSION: String(OTLP_ROWS),
      },
    });
    P = s.admin.projectId;
    for (const name of ["rl-rate", "rl-flood", "rl-calls", "rl-streams", "rl-uploads", "rl-otlp"]) await s.client().createRoom({ projectId: P, name });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await s?.close();
  });

  describe("room WebSocket: messages per second", () => {
    // A request of a type the server does not know: handled (cheaply) it gets "unsupported message type"; over the
    // rate it gets the rate-limit error instead. (Tool calls would meet the tool-call limit of this server first.)
    const ping = (c: RawRoomClient) => c.request("x.ping", {});
    const handled = (a: Content) => a.type === "error" && a.text.startsWith("unsupported message type");

    it("answers requests over the rate with an error naming the limit, and takes them again once the bucket refills", async () => {
      const c = await join("rl-rate");
      // the bucket starts full (burst = 2 × rate): 3 × the rate at once overflows it
      const answers = await Promise.all(Array.from({ length: 3 * RATE }, () => ping(c)));
      const ok = answers.filter(handled).length;
      const refused = answers.filter((a) => !handled(a));
      expect(ok).toBeGreaterThanOrEqual(2 * RATE);
      expect(ok).toBeLessThan(2 * RATE + 10);
      expect(refused.length).toBe(3 * RATE - ok);
      expect(refused[0]).toMatchObject({ type: "error", code: 1006 });
      expect((refused[0] as { text: string }).text).toBe(`rate limit: at most ${RATE} messages per second (bursts of ${2 * RATE}) per participant; slow down`);
      await sleep(200); // ~10 tokens
      expect(handled(await ping(c))).toBe(true);
      expect((await c.invoke("queues", "list", {})).type).toBe("json");
      expect(c.closed).toBeNull();
    });

    it("closes a connection that keeps flooding with 1008 and a reason; the others in the room are unaffected", async () => {
      const flooder = await join("rl-flood", "flooder");
      const other = await join("rl-flood", "other");
      // far more than 10 × the rate, until the server has had enough (FLOOD_SECONDS = 2 seconds' worth of it)
      const t0 = Date.now();
      let sent = 0;
      while (flooder.closed === null && Date.now() - t0 < 15_000) {
        if (flooder.ws.readyState === flooder.ws.OPEN && flooder.ws.bufferedAmount < 1 << 20) for (let i = 0; i < 100; i++, sent++) flooder.send("x.flood", {});
        await sleep(5);
      }
      expect(flooder.closed, `closed after ${sent} messages`).not.toBeNull();
      expect(flooder.closed!.code).toBe(1008);
      expect(flooder.closed!.reason).toBe(`rate limit: kept sending over ${10 * RATE} messages per second (at most ${RATE} allowed)`);
      expect((await other.invoke("queues", "list", {})).type).toBe("json");
      expect(other.closed).toBeNull();
      // the session records why
      await s.ctx.sessions.flush();
      const events = await s.ctx.store.db.selectFrom("session_events").select(["type", "data"]).where("session_id", "=", flooder.sessionId).execute();
      expect(events.some((e) => e.type === "error" && JSON.parse(e.data).kind === "rate_limited")).toBe(true);
    });

    it("a client that stays under the rate is never refused", async () => {
      const c = await join("rl-rate");
      for (let i = 0; i < 3 * RATE; i += 10) {
        const batch = await Promise.all(Array.from({ length: 10 }, () => ping(c)));
        expect(batch.every(handled)).toBe(true);
        await sleep(Math.ceil((10 / RATE) * 1000) + 20);
      }
    });
  });

  describe("room WebSocket: tool calls in flight", () => {
    it("refuses the participant's next call over the limit, leaves the others in the room alone, and frees the slot when a call ends", async () => {
      const a = await join("rl-calls", "a");
      const b = await join("rl-calls", "b");
      // long polls on empty queues stay in flight
      const waiting = Array.from({ length: TOOL_CALLS }, (_, i) => a.invoke("queues", "receive", { name: `wait-${i}`, create: true, wait: true }));
      await sleep(100);
      const over = await a.invoke("queues", "list", {});
      expect(over).toEqual({
        type: "error",
        text: `limit: at most ${TOOL_CALLS} tool calls may be in flight per participant; wait for one to finish`,
        code: 1006,
      });
      // another participant of the same room is not affected, and can end a's calls
      expect((await b.invoke("queues", "list", {})).type).toBe("json");
      expect(await b.invoke("queues", "send", { name: "wait-0", create: true, message: { hello: 1 } })).toEqual({ type: "empty" });
      expect(await waiting[0]).toEqual({ type: "json", json: { hello: 1 } });
      expect((await a.invoke("queues", "list", {})).type).toBe("json");
      for (let i = 1; i < TOOL_CALLS; i++) await b.invoke("queues", "send", { name: `wait-${i}`, create: true, message: i });
      expect((await Promise.all(waiting)).map((r) => r.type)).toEqual(Array(TOOL_CALLS).fill("json"));
      // all slots free again
      const again = await Promise.all(Array.from({ length: TOOL_CALLS }, () => a.invoke("queues", "list", {})));
      expect(again.every((r) => r.type === "json")).toBe(true);
    });
  });

  describe("room WebSocket: open streams", () => {
    it("refuses a streaming call over the limit and takes one again once a stream closed", async () => {
      const c = await join("rl-streams");
      expect(await open(c, "download", "d1")).toEqual({ type: "control", method: "open" });
      expect(await open(c, "download", "d2")).toEqual({ type: "control", method: "open" });
      expect(await open(c, "download", "d3")).toEqual({
        type: "error",
        text: `limit: at most ${STREAMS} streaming tool calls (uploads, downloads) may be open per participant; finish one first`,
        code: 1006,
      });
      // closing one (the client's close chunk) ends it on the server too
      const closed = nextChunk(c, "d1");
      expect(await chunk(c, "d1", { type: "control", method: "close", status_code: 1000 })).toEqual({ type: "empty" });
      expect(await closed).toMatchObject({ type: "control", method: "close" });
      expect(await open(c, "download", "d3")).toEqual({ type: "control", method: "open" });
    });
  });

  describe("concurrent uploads per project", () => {
    const path = (name: string) => `/projects/${P}/storage/upload?path=${q(`uploads/${name}`)}`;

    it(`refuses upload ${UPLOADS + 1} with 429 too_many_uploads (HTTP and room storage), and an aborted upload frees its slot`, async () => {
      expect(s.ctx.storage.uploadsInProgress(P)).toBe(0);
      // slow uploads: a first piece of the body, then nothing until the test says so
      const slow = Array.from({ length: UPLOADS }, (_, i) => rawUpload(s.url + path(`slow-${i}.bin`), s.admin.apiKey));
      for (const u of slow) await u.write(randomBytes(16 * 1024));
      await until(() => s.ctx.storage.uploadsInProgress(P) === UPLOADS, 10_000, "the slow uploads to start");

      const refused = await s.http("POST", path("refused.bin"), { body: "hello" });
      expect(refused.status).toBe(429);
      expect(refused.json.error.code).toBe("too_many_uploads");
      expect(refused.json.error.message).toContain(`at most ${UPLOADS} may run at once`);
      // room storage uploads count against the same project slots
      const c = await join("rl-uploads");
      const roomRefused = await open(c, "upload", "u1");
      expect(roomRefused).toMatchObject({ type: "error", code: 1006 });
      expect((roomRefused as { text: string }).text).toContain(`at most ${UPLOADS} may run at once`);
      expect(s.ctx.storage.uploadsInProgress(P)).toBe(UPLOADS);

      // a client that goes away mid-upload gives its slot back
      slow[0].abort();
      await slow[0].response;
      await until(() => s.ctx.storage.uploadsInProgress(P) === UPLOADS - 1, 10_000, "the aborted upload's slot to be freed");
      const accepted = await s.http("POST", path("accepted.bin"), { body: "hello" });
      expect(accepted.status).toBe(200);
      expect(s.ctx.storage.uploadsInProgress(P)).toBe(UPLOADS - 1);

      // the others finish normally and free theirs
      for (const u of slow.slice(1)) {
        await u.write(randomBytes(1024));
        u.end();
        expect(await u.response).toMatchObject({ status: 200 });
      }
      expect(s.ctx.storage.uploadsInProgress(P)).toBe(0);
      // a refused upload (413 here: over the quota) frees its slot as well
      await s.client().updateProjectSettings(P, { storage_quota_bytes: 10 });
      try {
        expect((await s.http("POST", path("big.bin"), { body: "x".repeat(100) })).status).toBe(413);
      } finally {
        await s.client().updateProjectSettings(P, {});
      }
      expect(s.ctx.storage.uploadsInProgress(P)).toBe(0);
    });

    it("a room upload holds a slot until it is committed, and one abandoned by a closed socket gives it back", async () => {
      const c = await join("rl-uploads");
      // committed: open, start (announcing 5 bytes), answer the pull with the data; the server commits and closes
      const pulled = nextChunk(c, "u2");
      expect(await open(c, "upload", "u2")).toEqual({ type: "control", method: "open" });
      expect(s.ctx.storage.uploadsInProgress(P)).toBe(1);
      await chunk(c, "u2", { type: "binary", headers: { kind: "start", path: "room-file.txt", overwrite: true, size: 5 } });
      expect(await pulled).toMatchObject({ type: "binary", headers: { kind: "pull" } });
      const closed = nextChunk(c, "u2");
      await chunk(c, "u2", { type: "binary", headers: { kind: "data" } }, Buffer.from("hello"));
      expect(await closed).toMatchObject({ type: "control", method: "close", status_code: 1000 });
      expect(s.ctx.storage.uploadsInProgress(P)).toBe(0);

      // abandoned: the socket closes mid-upload
      const d = await join("rl-uploads", "leaver");
      const pull = nextChunk(d, "u3");
      await open(d, "upload", "u3");
      await chunk(d, "u3", { type: "binary", headers: { kind: "start", path: "abandoned.txt", overwrite: true, size: 1000 } });
      await pull;
      expect(s.ctx.storage.uploadsInProgress(P)).toBe(1);
      d.close();
      await until(() => s.ctx.storage.uploadsInProgress(P) === 0, 10_000, "the abandoned room upload's slot to be freed");
    });
  });

  describe("OTLP ingest per session", () => {
    const spans = (n: number, from = 0) => ({
      resourceSpans: [
        {
          resource: { attributes: [{ key: "service.name", value: { stringValue: "limits" } }] },
          scopeSpans: [
            {
              spans: Array.from({ length: n }, (_, i) => ({
                traceId: randomBytes(16).toString("hex"),
                spanId: randomBytes(8).toString("hex"),
                name: `span-${from + i}`,
                startTimeUnixNano: String(BigInt(Date.now()) * 1_000_000n),
                endTimeUnixNano: String(BigInt(Date.now() + 1) * 1_000_000n),
              })),
            },
          ],
        },
      ],
    });
    const logs = (n: number) => ({
      resourceLogs: [{ scopeLogs: [{ logRecords: Array.from({ length: n }, (_, i) => ({ body: { stringValue: `log ${i}` } })) }] }],
    });

    it("stores up to MESHAGENT_OTLP_MAX_ROWS_PER_SESSION rows and answers the rest as rejected (OTLP partial success)", async () => {
      const token = await mintToken(s.admin.apiKey, "rl-otlp", { name: "otel" });
      const c = await join("rl-otlp");
      const post = (signal: string, body: unknown) =>
        fetch(`${s.url}/v1/${signal}`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify(body),
        });
      const r1 = await post("traces", spans(30));
      expect(r1.status).toBe(200);
      expect(await r1.json()).toEqual({});
      const r2 = await post("traces", spans(30, 30));
      expect(r2.status).toBe(200);
      const b2 = await r2.json();
      expect(b2.partialSuccess.rejectedSpans).toBe(10);
      expect(b2.partialSuccess.errorMessage).toContain(`limit of ${OTLP_ROWS} OTLP rows`);
      const r3 = await post("logs", logs(5));
      expect((await r3.json()).partialSuccess.rejectedLogRecords).toBe(5);

      await s.ctx.sessions.flush();
      const stored = await s.ctx.store.db.selectFrom("session_spans").select("name").where("session_id", "=", c.sessionId).execute();
      expect(stored).toHaveLength(OTLP_ROWS);
      expect(new Set(stored.map((r) => r.name))).toEqual(new Set(Array.from({ length: OTLP_ROWS }, (_, i) => `span-${i}`)));
      const logRows = await s.ctx.store.db
        .selectFrom("session_events")
        .select("type")
        .where("session_id", "=", c.sessionId)
        .where("type", "=", "log")
        .execute();
      expect(logRows).toHaveLength(0);
      // the room server's own metrics are not OTLP ingest: they are still written
      expect((await c.invoke("queues", "list", {})).type).toBe("json");
    });
  });
});
