import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import * as Y from "yjs";
import {
  encodePackets,
  Meshagent,
  packContent,
  packMessage,
  PacketReassembler,
  parseToolkits,
  RoomConnection,
  RoomError,
  unpackContent,
  unpackMessage,
  type RoomLog,
  type RoomParticipant,
  type WebSocketConstructor,
} from "@meshagent-oss/sdk";
import { startServer, type TestServer } from "../../../test/helpers/server.js";
import { joinRoom, mintToken, official, roomWsUrl, until, within, type OfficialRoom } from "../../../test/helpers/room-client.js";

const { Toolkit, Tool, JsonContent, startHostedToolkit, MeshSchema, ElementType, ValueProperty, ChildProperty, SimpleValue } = official as any;

/** A notes schema: <notes title> with <item text> children (the official client's MeshSchema). */
const notesSchema = () =>
  new MeshSchema({
    rootTagName: "notes",
    elements: [
      new ElementType({
        tagName: "notes",
        description: "",
        properties: [
          new ValueProperty({ name: "title", description: "", type: SimpleValue.string }),
          new ChildProperty({ name: "items", description: "", childTagNames: ["item"] }),
        ],
      }),
      new ElementType({ tagName: "item", description: "", properties: [new ValueProperty({ name: "text", description: "", type: SimpleValue.string })] }),
    ],
  });

/** A tool of the official client: `fn` answers with JSON, or throws. */
class FnTool extends Tool {
  constructor(
    name: string,
    inputSchema: Record<string, unknown>,
    private readonly fn: (args: any) => unknown,
  ) {
    super({ name, title: name, description: `the ${name} tool`, inputSchema });
  }
  async execute(args: any) {
    return new JsonContent({ json: await this.fn(args) });
  }
}

const WS = WebSocket as unknown as WebSocketConstructor;

describe("room framing (pure)", () => {
  it("packs and unpacks messages and Content values, tails included", () => {
    const tail = new Uint8Array([1, 2, 3, 250]);
    const { header, tail: t } = unpackMessage(packMessage({ a: "é", n: 1 }, tail));
    expect(header).toEqual({ a: "é", n: 1 });
    expect([...t]).toEqual([1, 2, 3, 250]);
    const c = unpackContent(packContent({ type: "binary", headers: { kind: "data" }, data: tail }));
    expect(c).toEqual({ type: "binary", headers: { kind: "data" }, data: tail });
    expect(unpackContent(packContent({ type: "error", text: "nope", code: 1003 }))).toEqual({ type: "error", text: "nope", code: 1003 });
    expect(() => unpackContent(packMessage({ type: "weird" }))).toThrow(/unknown content type/);
  });

  it("cuts payloads into 1024-byte data packets after a header packet, and reassembles them", () => {
    const payload = new Uint8Array(2500).map((_, i) => i % 251);
    const frames = encodePackets(7, "room.invoke_tool", payload);
    expect(frames.map((f) => f.length)).toEqual([16 + "room.invoke_tool".length, 12 + 1024, 12 + 1024, 12 + 452]);
    const dv = new DataView(frames[0].buffer);
    expect([dv.getUint32(0), dv.getUint32(4), dv.getUint32(8), dv.getUint32(12)]).toEqual([0, 7, 0, 3]);
    const r = new PacketReassembler();
    const out = frames.map((f) => r.push(f));
    expect(out.slice(0, 3)).toEqual([null, null, null]);
    expect(out[3]).toMatchObject({ id: 7, type: "room.invoke_tool" });
    expect([...out[3]!.payload]).toEqual([...payload]);
    // an empty payload is the header packet alone
    expect(encodePackets(1, "x", new Uint8Array(0))).toHaveLength(1);
    // a packet out of order is dropped and reported
    const errors: string[] = [];
    expect(new PacketReassembler().push(frames[2], (e) => errors.push(e))).toBeNull();
    expect(errors).toHaveLength(1);
  });

  it("reads a list_toolkits answer with tools as a map or a list", () => {
    const kits = parseToolkits({
      tools: {
        a: { title: "A", participant_id: "p1", tools: { add: { input_spec: { types: ["json"], schema: { type: "object" } } } } },
        b: { tools: [{ name: "x", input_schema: { type: "object", properties: {} } }] },
      },
    });
    expect(kits.map((k) => [k.name, k.participantId, k.tools.map((t) => [t.name, t.inputSchema])])).toEqual([
      ["a", "p1", [["add", { type: "object" }]]],
      ["b", undefined, [["x", { type: "object", properties: {} }]]],
    ]);
    expect(() => parseToolkits({ tools: [] })).toThrow(RoomError);
  });
});

describe("RoomConnection against a real server", () => {
  let s: TestServer;
  let sdk: Meshagent;
  const P = () => s.admin.projectId;
  const rooms: OfficialRoom[] = [];
  const conns: RoomConnection[] = [];
  const connect = async (room: string) => {
    const info = await sdk.connectRoom(P(), room);
    const c = await within(RoomConnection.connect({ url: info.room_url, token: info.jwt, WebSocket: WS }), 10_000, "connect");
    conns.push(c);
    return c;
  };
  const joinOfficial = async (room: string, name: string) => {
    const r = await joinRoom(roomWsUrl(s, room), await mintToken(s.admin.apiKey, room, { name, role: "agent" }));
    rooms.push(r);
    return r as any;
  };

  beforeAll(async () => {
    s = await startServer({ env: { MESHAGENT_ROOM_EMPTY_TIMEOUT: "0.3" } });
    sdk = new Meshagent({ baseUrl: s.url, token: s.admin.apiKey });
    for (const name of ["ws-1", "ws-2", "ws-3", "ws-4", "ws-5"]) await sdk.createRoom(P(), name);
  });
  afterAll(async () => {
    for (const c of conns) c.close();
    for (const r of rooms) r.dispose();
    await s?.close();
  });

  it("connects with connectRoom's room_url and jwt, and uses queues and storage", async () => {
    const room = await connect("ws-1");
    expect(room.participantId).toMatch(/\S/);
    expect(room.roomName).toBe("ws-1");
    expect(room.role).toBe("user");

    // queues: send, then list with the depth
    expect(await within(room.invoke("queues", "send", { name: "jobs", create: true, message: { n: 1 } }))).toEqual({ type: "empty" });
    await room.invoke("queues", "send", { name: "jobs", create: true, message: { n: 2 } });
    const listed = await room.invokeJson<{ queues: { name: string; size: number }[] }>("queues", "list");
    expect(listed.queues).toEqual([{ name: "jobs", size: 2 }]);
    expect(await room.invokeJson("queues", "receive", { name: "jobs", create: false, wait: false })).toEqual({ n: 1 });

    // storage: a 200 KB upload in pulled chunks, with progress; listed; downloaded over HTTP
    const data = new Uint8Array(200 * 1024).map((_, i) => (i * 7) % 256);
    const progress: number[] = [];
    await within(room.upload("docs/blob.bin", data, { onProgress: (sent) => progress.push(sent) }), 10_000, "upload");
    expect(progress.at(-1)).toBe(data.length);
    expect(progress.length).toBeGreaterThan(1);
    const root = await room.invokeJson<{ files: { name: string; is_folder: boolean }[] }>("storage", "list", { path: "" });
    expect(root.files).toContainEqual(expect.objectContaining({ name: "docs", is_folder: true }));
    const docs = await room.invokeJson<{ files: { name: string; size: number }[] }>("storage", "list", { path: "docs" });
    expect(docs.files).toEqual([expect.objectContaining({ name: "blob.bin", is_folder: false, size: data.length })]);
    const { url } = await room.invokeJson<{ url: string }>("storage", "download_url", { path: "docs/blob.bin" });
    expect(new Uint8Array(await (await fetch(url)).arrayBuffer())).toEqual(data);

    // a small text file and an empty one; the mime type comes from the extension
    await room.upload("notes.txt", new TextEncoder().encode("hello"));
    await room.upload("empty.txt", new Uint8Array(0));
    const stat = await room.invokeJson<{ size: number }>("storage", "stat", { path: "empty.txt" });
    expect(stat).toMatchObject({ exists: true, size: 0 });
    const res = await fetch((await room.invokeJson<{ url: string }>("storage", "download_url", { path: "notes.txt" })).url);
    expect([await res.text(), res.headers.get("content-type")]).toEqual(["hello", expect.stringMatching(/^text\/plain/)]);

    // the server's errors reject with its text and code
    const exists = await room.upload("notes.txt", new Uint8Array([1])).catch((e) => e);
    expect(exists).toBeInstanceOf(RoomError);
    expect(exists.message).toMatch(/exist/);
    expect(typeof exists.code).toBe("number");
    await room.upload("notes.txt", new TextEncoder().encode("replaced"), { overwrite: true });
    const missing = await room.invoke("storage", "download_url", { path: "nope.txt" }).catch((e) => e);
    expect([missing instanceof RoomError, missing.message, missing.code]).toEqual([true, "file not found: nope.txt", 3001]);
    const unknown = await room.invoke("queues", "frobnicate", {}).catch((e) => e);
    expect([unknown.message, unknown.code]).toEqual(["unknown tool queues.frobnicate", 1003]);
  });

  it("sees other participants come and go (presence), with their roles", async () => {
    const room = await connect("ws-2");
    const seen: { type: string; list: RoomParticipant[] }[] = [];
    expect(await within(room.enableMessaging((list, e) => seen.push({ type: e.type, list })))).toEqual([]);
    const other = await joinOfficial("ws-2", "helper-agent");
    other.messaging.enable();
    await until(() => room.participants.length === 1, 5000, "participant added");
    expect(room.participants[0]).toMatchObject({ id: other.localParticipant.id, role: "agent", attributes: expect.objectContaining({ name: "helper-agent" }) });
    expect(seen.map((e) => e.type)).toContain("added");
    // a participant that joined before us is in the first list
    const late = await connect("ws-2");
    const first = await within(late.enableMessaging());
    expect(first.map((p) => p.id).sort()).toEqual([room.participantId, other.localParticipant.id].sort());
    const otherId = other.localParticipant.id;
    other.dispose();
    await until(() => room.participants.every((p) => p.id !== otherId), 5000, "participant removed");
    expect(seen.at(-1)?.type).toBe("removed");
    late.close();
    await until(() => room.participants.length === 0, 5000, "late participant removed");
  });

  it("streams developer logs until stopped", async () => {
    const room = await connect("ws-3");
    const logs: RoomLog[] = [];
    const errors: unknown[] = [];
    const stop = room.streamLogs(
      (l) => logs.push(l),
      (e) => errors.push(e),
    );
    const writer = await connect("ws-3");
    // the stream may still be opening: write until one arrives
    await until(
      async () => {
        await writer.invoke("developer", "log", { type: "build", data: { step: logs.length } });
        return logs.length > 0;
      },
      5000,
      "a log record",
    );
    expect(logs[0]).toMatchObject({ type: "build", data: { step: expect.any(Number) }, participantId: writer.participantId, createdAt: expect.any(String) });
    stop();
    await new Promise((r) => setTimeout(r, 100));
    const n = logs.length;
    await writer.invoke("developer", "log", { type: "build", data: { step: -1 } });
    await new Promise((r) => setTimeout(r, 200));
    expect(logs.length).toBe(n);
    expect(errors).toEqual([]);
  });

  it("lists a toolkit another participant hosts (official client) and calls its tool", async () => {
    const host = await joinOfficial("ws-4", "tool-host");
    const schema = { type: "object", additionalProperties: false, required: ["a", "b"], properties: { a: { type: "number" }, b: { type: "number" } } };
    await within(
      startHostedToolkit({
        room: host,
        toolkit: new Toolkit({
          name: "e2e-tools",
          title: "E2E tools",
          description: "tools for tests",
          tools: [
            new FnTool("add", schema, ({ a, b }) => ({ sum: a + b })),
            new FnTool("fail", { type: "object", properties: {} }, () => {
              throw new Error("it broke");
            }),
          ],
        }),
        public_: true,
      }),
      10_000,
      "host",
    );
    const room = await connect("ws-4");
    const kits = await within(room.listToolkits());
    expect(kits).toHaveLength(1);
    expect(kits[0]).toMatchObject({ name: "e2e-tools", title: "E2E tools", participantId: host.localParticipant.id, public: true });
    expect(kits[0].tools.map((t) => t.name)).toEqual(["add", "fail"]);
    expect(kits[0].tools[0].inputSchema).toEqual(schema);
    expect(await within(room.invoke("e2e-tools", "add", { a: 2, b: 40 }))).toEqual({ type: "json", json: { sum: 42 } });
    const failed = await room.invoke("e2e-tools", "fail", {}).catch((e) => e);
    expect([failed instanceof RoomError, failed.message]).toEqual([true, expect.stringContaining("it broke")]);
    const nokit = await room.invoke("nope-kit", "x", {}).catch((e) => e);
    expect([nokit.message, nokit.code]).toEqual([expect.stringMatching(/no toolkit/), 1003]);
  });

  it("opens a sync document read-only: its schema and state, then others' updates", async () => {
    const writer = await joinOfficial("ws-5", "writer");
    const wd: any = await within(writer.sync.open("notes/a.notes", { schema: notesSchema() }));
    wd.root.setAttribute("title", "Plan");
    wd.root.createChildElement("item", { text: "one" });
    const room = await connect("ws-5");
    const doc = new Y.Doc();
    const errors: unknown[] = [];
    const rd = await within(
      room.openDocument(
        "notes/a.notes",
        (u) => Y.applyUpdate(doc, u),
        (e) => errors.push(e),
      ),
    );
    expect(rd.schema).toMatchObject({ $root_tag_ref: "#/$defs/notes" });
    Y.applyUpdate(doc, rd.state);
    const root = doc.get("xml", Y.XmlElement);
    await until(() => root.toArray().length === 1, 5000, "initial items");
    expect(root.getAttribute("title")).toBe("Plan");
    wd.root.createChildElement("item", { text: "two" });
    await until(() => root.toArray().length === 2, 5000, "live update");
    expect(root.toArray().map((c) => (c as Y.XmlElement).getAttribute("text"))).toEqual(["one", "two"]);
    await within(rd.close());
    await within(rd.done);
    expect(errors).toEqual([]);
    // no document there, and a file that is not one: the server's errors
    await expect(room.openDocument("notes/missing.notes", () => {})).rejects.toThrow(/no document/);
    await room.upload("plain.txt", new TextEncoder().encode("hi"));
    await expect(room.openDocument("plain.txt", () => {})).rejects.toThrow(RoomError);
    await within(writer.sync.close("notes/a.notes"));
  });

  it("rejects a refused connection, and fails pending requests when closed", async () => {
    const info = await sdk.connectRoom(P(), "ws-1");
    const wrong = await RoomConnection.connect({ url: info.room_url.replace(/ws-1$/, "ws-2"), token: info.jwt, WebSocket: WS }).catch((e) => e);
    expect(wrong).toBeInstanceOf(RoomError);
    expect(wrong.message).toMatch(/refused/);
    const room = await connect("ws-1");
    const closed = new Promise((r) => room.onClose(r));
    const pending = room.invoke("queues", "receive", { name: "never", create: true, wait: true });
    room.close();
    await expect(pending).rejects.toThrow(/closed before request completed/);
    expect(await closed).toBeNull();
    expect(room.closed).toBe(true);
    await expect(room.invoke("queues", "list")).rejects.toThrow(RoomError);
    if (!(globalThis as { WebSocket?: unknown }).WebSocket)
      await expect(RoomConnection.connect({ url: info.room_url, token: info.jwt })).rejects.toThrow(/no WebSocket implementation/);
  });
});
