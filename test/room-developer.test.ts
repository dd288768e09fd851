import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "./helpers/server.js";
import { ApiScope, joinRoom, mintToken, official, roomWsUrl, until, within, type OfficialRoom, type Scope } from "./helpers/room-client.js";

const { RoomServerException, DeveloperGrant, MessagingGrant, RoomLogEvent } = official as any;

const ROOM = "devroom";
const RATE = 50;

describe("room developer toolkit with the official DeveloperClient 0.39.9", () => {
  let s: TestServer;
  const rooms: OfficialRoom[] = [];
  const join = async (name: string, api?: Scope | null) => {
    const r = await joinRoom(
      roomWsUrl(s, ROOM),
      await mintToken(s.admin.apiKey, ROOM, { name, role: "user", api: api === undefined ? ApiScope.userDefault() : api }),
    );
    rooms.push(r);
    return r;
  };
  const fail = (p: Promise<unknown>) =>
    within(
      p.then(
        () => undefined,
        (e: unknown) => e as any,
      ),
      10_000,
      "the call",
    );

  /** Watch `room`'s developer logs in the background; resolves once the stream is open (a probe from `writer` came through). */
  async function watch(room: OfficialRoom, writer: OfficialRoom) {
    const got: any[] = [];
    const events: any[] = [];
    room.developer.on("log", (e: any) => events.push(e));
    let ended = false;
    let stop = false;
    const done = (async () => {
      for await (const e of room.developer.logs()) {
        got.push(e);
        if (stop) break;
      }
      ended = true;
    })();
    let n = 0;
    await until(
      async () => {
        if (got.some((e) => e.type === "probe")) return true;
        await writer.developer.log("probe", { n: n++ });
        return false;
      },
      5000,
      "the logs stream open",
    );
    return {
      got,
      events,
      /** Records after the probes. */
      records: () => got.filter((e) => e.type !== "probe"),
      ended: () => ended,
      async stop() {
        stop = true;
        await writer.developer.log("last", {});
        await within(done, 5000, "the logs stream to end");
      },
    };
  }

  beforeAll(async () => {
    s = await startServer({ env: { MESHAGENT_ROOM_MAX_MESSAGES_PER_SECOND: String(RATE), MESHAGENT_ROOM_MESSAGE_BURST: String(RATE) } });
    await s.client().createRoom({ projectId: s.admin.projectId, name: ROOM } as any);
  });
  afterAll(async () => {
    for (const r of rooms) r.dispose();
    await s.close();
  });

  it("logs written by one participant reach another's logs() stream live, in order, and are kept with the session's events", async () => {
    const writer = await join("writer");
    const watcher = await join("watcher");
    const w = await watch(watcher, writer);
    await writer.developer.log("info", { message: "hello", n: 1 });
    await writer.developer.log("warning", { message: "careful", nested: { a: [1, 2] } });
    await writer.developer.log("empty", {});
    await until(() => w.records().length === 3, 5000, "three records");
    expect(w.records().map((e) => [e.type, e.data])).toEqual([
      ["info", { message: "hello", n: 1 }],
      ["warning", { message: "careful", nested: { a: [1, 2] } }],
      ["empty", {}],
    ]);
    expect(w.records()[0]).toBeInstanceOf(RoomLogEvent);
    expect(w.records()[0].name).toBe("info");
    // the client also emits them as "log" events
    expect(w.events.filter((e) => e.type !== "probe").map((e) => e.type)).toEqual(["info", "warning", "empty"]);

    // a second watcher sees what is written after it opened, the writer too may watch
    const self = await watch(writer, writer);
    await writer.developer.log("both", { x: 1 });
    await until(() => w.records().some((e) => e.type === "both") && self.records().some((e) => e.type === "both"), 5000, "both watchers");

    // stopping: the client closes its side, the server closes the stream; the others keep watching
    await self.stop();
    expect(self.ended()).toBe(true);
    await writer.developer.log("after", { y: 2 });
    await until(() => w.records().some((e) => e.type === "after"), 5000, "the remaining watcher");
    expect(self.records().some((e) => e.type === "after")).toBe(false);
    await w.stop();

    // kept with the session's events (list_session_events through the official client)
    const sessionId = writer.sessionId!;
    let events: any[] = [];
    await until(
      async () => {
        events = (await s.client().listSessionEvents(s.admin.projectId, sessionId)).filter((e: any) => e.type === "developer.log");
        // Every record written above (the last one after "after"): session events are stored asynchronously.
        return events.filter((e) => e.data.type !== "probe").length >= 7;
      },
      5000,
      "the records in list_session_events",
    );
    const info = events.find((e) => e.data.type === "info");
    expect(info).toMatchObject({
      type: "developer.log",
      data: { participant_id: writer.localParticipant!.id, participant_name: "writer", type: "info", data: { message: "hello", n: 1 } },
      created_at: expect.any(String),
    });
    expect(events.filter((e) => e.data.type !== "probe").map((e) => e.data.type)).toEqual(["info", "warning", "empty", "both", "last", "after", "last"]);
  });

  it("watching needs developer.logs; writing needs the developer section; no api grant allows neither", async () => {
    const noLogs = await join("no-logs", new ApiScope({ developer: new DeveloperGrant({ logs: false }) }));
    const it = noLogs.developer.logs()[Symbol.asyncIterator]();
    const refused = await fail(it.next());
    expect(refused).toBeInstanceOf(RoomServerException);
    expect(refused.code).toBe(1001);
    expect(refused.message).toMatch(/developer\.logs/);
    await noLogs.developer.log("info", { allowed: true }); // writing is allowed with the section

    const noSection = await join("no-developer", new ApiScope({ messaging: new MessagingGrant() }));
    for (const p of [noSection.developer.log("info", {}), noSection.developer.logs()[Symbol.asyncIterator]().next()]) {
      const e = await fail(p);
      expect(e.code).toBe(1001);
      expect(e.message).toMatch(/no developer section/);
    }
    const none = await join("no-api", null);
    expect((await fail(none.developer.log("info", {}))).code).toBe(1001);
  });

  it("bounded: record size and shape are checked, and the per-participant rate limit applies to log writes", async () => {
    const writer = await join("bounded");
    const big = await fail(writer.developer.log("info", { blob: "x".repeat(70 * 1024) }));
    expect(big.code).toBe(1002);
    expect(big.message).toMatch(/at most 65536 bytes/);
    expect((await fail(writer.developer.log("", {}))).code).toBe(1002);
    expect((await fail(writer.developer.log("info", [1, 2] as any))).code).toBe(1002);
    // a burst well over the rate: some are refused with the rate-limit error, the rest are written
    await new Promise((r) => setTimeout(r, 1100)); // a full bucket
    const results = await within(
      Promise.all(
        Array.from({ length: RATE * 3 }, (_, i) =>
          writer.developer.log("flood", { i }).then(
            () => "ok",
            (e: Error) => e.message,
          ),
        ),
      ),
      10_000,
    );
    const refusedCount = results.filter((r) => r !== "ok").length;
    expect(refusedCount).toBeGreaterThan(0);
    expect(results.find((r) => r !== "ok")).toMatch(/rate limit/);
    expect(results.filter((r) => r === "ok").length).toBeGreaterThanOrEqual(RATE - 1);
    await new Promise((r) => setTimeout(r, 1100));
    await writer.developer.log("after-flood", {}); // the participant is still connected
  });
});
