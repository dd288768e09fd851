import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { encodeMessage, pack, PIECE_SIZE, Reassembler, unpack, unpackContent, contentFrom, packContent, type Content } from "../src/room-server/protocol.js";
import { startServer, type TestServer } from "./helpers/server.js";
import { mintToken, roomWsUrl, within } from "./helpers/room-client.js";
import { RawRoomClient } from "./helpers/raw-room.js";

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};

/** Frames that look more or less like protocol packets: random bytes, headers with random counts, data packets. */
const frameArb = fc.oneof(
  fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
  fc
    .record({
      hi: fc.nat(3),
      lo: fc.nat(50),
      total: fc.nat(5),
      type: fc.constantFrom("room.invoke_tool", "room.tool_call_request_chunk", "set_attributes", "__response__", "x", ""),
    })
    .map(({ hi, lo, total, type }) => Buffer.concat([u32(hi), u32(lo), u32(0), u32(total), Buffer.from(type)])),
  fc
    .record({ lo: fc.nat(50), index: fc.nat(6), body: fc.uint8Array({ maxLength: 64 }) })
    .map(({ lo, index, body }) => Buffer.concat([u32(0), u32(lo), u32(index), Buffer.from(body)])),
);

/** Whole messages with plausible types and hostile payloads (bad lengths, bad JSON, odd argument shapes). */
const jsonish = fc.jsonValue({ maxDepth: 3 });
const payloadArb = fc.oneof(
  fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
  jsonish.map((j) => pack(j)),
  fc
    .record({ toolkit: fc.constantFrom("queues", "messaging", "storage", "nope", 7), tool: fc.string({ maxLength: 12 }), arguments: jsonish })
    .map((h) => pack(h)),
  fc
    .record({
      toolkit: fc.constantFrom("queues", "messaging", "storage"),
      tool: fc.constantFrom(
        "send",
        "receive",
        "list",
        "open",
        "drain",
        "close",
        "broadcast",
        "enable",
        "disable",
        "stat",
        "exists",
        "delete",
        "move",
        "upload",
        "download",
        "download_url",
      ),
      json: fc.dictionary(
        fc.constantFrom(
          "name",
          "path",
          "message",
          "message_json",
          "to_participant_id",
          "type",
          "create",
          "wait",
          "recursive",
          "source_path",
          "destination_path",
          "attachment_base64",
        ),
        jsonish,
      ),
    })
    // wait:false so a fuzzed receive never parks (a parked long poll is fine, but would outlive the test)
    .map(({ toolkit, tool, json }) => pack({ toolkit, tool, arguments: { type: "json", json: { ...json, wait: false } } })),
  fc.record({ tool_call_id: fc.string({ maxLength: 8 }), chunk: jsonish }).map((h) => pack(h)),
  fc.tuple(fc.nat(), fc.uint8Array({ maxLength: 16 })).map(([len, tail]) => Buffer.concat([u32(0), u32(len), Buffer.from(tail)])),
);
const messageArb = fc
  .record({
    id: fc.nat(1000),
    type: fc.constantFrom("room.invoke_tool", "room.tool_call_request_chunk", "set_attributes", "room.list_toolkits", "bogus"),
    payload: payloadArb,
  })
  .map(({ id, type, payload }) => encodeMessage(id + 10_000, type, payload));

describe("protocol codec", () => {
  it("round-trips messages of any size through encodeMessage and the Reassembler", () => {
    fc.assert(
      fc.property(fc.nat({ max: 2 ** 40 }), fc.string({ maxLength: 40 }), fc.uint8Array({ maxLength: 3 * PIECE_SIZE + 7 }), (id, type, payload) => {
        const r = new Reassembler(1 << 24);
        const frames = encodeMessage(id, type, Buffer.from(payload));
        expect(frames.length).toBe(1 + Math.ceil(payload.length / PIECE_SIZE));
        let got = null;
        for (const f of frames)
          got =
            r.push(f, (e) => {
              throw e;
            }) ?? got;
        expect(got).toEqual({ id, type, payload: Buffer.from(payload) });
      }),
      { numRuns: 60 },
    );
  });

  it("never throws on garbage, and the next well-formed message still comes through intact", () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 20 }), jsonish, (garbage, body) => {
        const r = new Reassembler(4096);
        for (const f of garbage) r.push(f, () => {});
        const payload = pack({ body });
        let got = null;
        for (const f of encodeMessage(77, "ok", payload)) got = r.push(f, () => {}) ?? got;
        expect(got).toEqual({ id: 77, type: "ok", payload });
        expect(unpack(got!.payload).header).toEqual(JSON.parse(JSON.stringify({ body })));
      }),
      { numRuns: 500 },
    );
  });

  it("packs and unpacks Content values as the client does", () => {
    const samples: Content[] = [
      { type: "empty" },
      { type: "json", json: { a: [1, "x", null] } },
      { type: "text", text: "hé" },
      { type: "binary", headers: { kind: "data" }, data: Buffer.from([0, 1, 2]) },
      { type: "file", name: "f.txt", mime_type: "text/plain", data: Buffer.from("abc") },
      { type: "error", text: "nope", code: 1001 },
      { type: "control", method: "close", status_code: 1000 },
    ];
    for (const c of samples) expect(unpackContent(packContent(c))).toEqual(c);
    expect(() => contentFrom({ type: "mystery" }, Buffer.alloc(0))).toThrow(/unknown content type/);
    // the worked example of room-protocol.md §2.5
    const frames = encodeMessage(3, "__response__", packContent({ type: "empty" }));
    expect(frames.map((f) => f.toString("hex"))).toEqual([
      "00000000000000030000000000000001" + Buffer.from("__response__").toString("hex"),
      "000000000000000300000001" + "0000000000000010" + Buffer.from('{"type":"empty"}').toString("hex"),
    ]);
  });
});

describe("malformed frames over a real socket", () => {
  let s: TestServer;
  let token: string;
  beforeAll(async () => {
    s = await startServer();
    await s.client().createRoom({ projectId: s.admin.projectId, name: "fuzz" });
    token = await mintToken(s.admin.apiKey, "fuzz");
  });
  afterAll(() => s.close());

  it("answers malformed frames with errors and keeps serving the socket and the process", async () => {
    const c = await RawRoomClient.connect(roomWsUrl(s, "fuzz"), token);
    // a data packet without a header (an id): error response to that id
    c.sendRaw([Buffer.concat([u32(0), u32(5), u32(1), Buffer.from("xx")])]);
    // a frame too short to carry an id: developer.log
    c.sendRaw([Buffer.from([1, 2, 3])]);
    // an unknown type: error response
    const unknown = c.send("room.nonsense", {});
    // text frame
    c.ws.send("hello");
    const list = await within(c.invoke("queues", "list", {}));
    expect(list).toEqual({ type: "json", json: { queues: [] } });
    await new Promise((r) => setTimeout(r, 100));
    const responses = c.received.filter((m) => m.type === "__response__").map((m) => [m.id, unpackContent(m.payload)]);
    expect(responses).toContainEqual([5, expect.objectContaining({ type: "error", code: 1002 })]);
    expect(responses).toContainEqual([unknown, expect.objectContaining({ type: "error", text: expect.stringMatching(/unsupported message type/) })]);
    expect(c.received.some((m) => m.type === "developer.log")).toBe(true);
    c.close();
  });

  it("fast-check: random frames and hostile messages never crash the server nor stall the socket", async () => {
    // The garbage carries small ids; the real requests use ids far from them (an error answer to a garbage id is right).
    const c = await RawRoomClient.connect(roomWsUrl(s, "fuzz"), token, { firstId: 2 ** 40 });
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            frameArb.map((f) => [f]),
            messageArb,
          ),
          { maxLength: 12 },
        ),
        async (batch) => {
          for (const frames of batch) c.sendRaw(frames);
          // A well-formed request after the garbage: the header packet resets any half-read message.
          const r = await within(c.invoke("queues", "list", {}), 5000, "queues.list after garbage");
          expect(r.type).toBe("json");
          expect(c.closed).toBeNull();
        },
      ),
      { numRuns: 150 },
    );
    expect((await s.http("GET", "/healthz", { token: null })).json).toEqual({ ok: true });
    // other participants are unaffected
    const d = await RawRoomClient.connect(roomWsUrl(s, "fuzz"), token);
    expect((await within(d.invoke("storage", "exists", { path: "x" }))).type).toBe("json");
    c.close();
    d.close();
  });
});
