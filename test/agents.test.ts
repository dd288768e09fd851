import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { WebSocket } from "ws";
import { startServer, type TestServer } from "./helpers/server.js";
import { ApiScope, joinRoom, mintToken, official, roomWsUrl, until, within as withinT, type OfficialRoom } from "./helpers/room-client.js";
import { RawRoomClient } from "./helpers/raw-room.js";
import { Receiver } from "./helpers/receiver.js";
import { encodeMessage, pack, type Content } from "../src/room-server/protocol.js";
import type { DomainEvent } from "../src/core/events.js";

const { Toolkit, Tool, JsonContent, TextContent, ControlContent, startHostedToolkit, AgentsGrant, RoomServerException, packMessage, unpackMessage } =
  official as any;

/** A tool of the official client whose execute is `fn` (its JSON result becomes a JsonContent). */
class FnTool extends Tool {
  constructor(
    name: string,
    private readonly fn: (args: any) => unknown | Promise<unknown>,
  ) {
    super({ name, title: name, description: `the ${name} tool`, inputSchema: { type: "object", additionalProperties: true } });
  }
  async execute(args: any) {
    return new JsonContent({ json: await this.fn(args) });
  }
}

/** within() of the helpers, untyped: the official client's results are read as `any` here. */
const within = (p: Promise<any>, ms?: number, what?: string): Promise<any> => withinT(p, ms, what);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const never = () => new Promise<never>(() => {});

/** An ApiScope like agentDefault with the agents section replaced (undefined: no agents section). */
function scopeWith(agents: unknown) {
  const s = ApiScope.agentDefault();
  (s as any).agents = agents;
  return s;
}

/** What a RoomServerException-rejected promise carried: [message, code]. */
async function rejection(p: Promise<unknown>, ms = 10_000): Promise<[string, number | undefined]> {
  try {
    await within(p, ms, "call");
  } catch (e: any) {
    if (!(e instanceof RoomServerException)) throw e;
    return [e.message, e.code];
  }
  throw new Error("the call succeeded");
}

describe("agents: toolkits participants host (agents-protocol.md §1), with the official client 0.39.9", () => {
  let s: TestServer;
  const events: DomainEvent[] = [];
  const rooms: OfficialRoom[] = [];
  const track = (r: OfficialRoom) => (rooms.push(r), r);
  let n = 0;
  /** A fresh room (one per test keeps toolkit names apart). */
  const newRoom = async () => {
    const name = `agents-${++n}`;
    await s.client().createRoom({ projectId: s.admin.projectId, name } as any);
    return name;
  };
  // `any`: the official client's typings do not narrow Content, and its tests read .json / .text freely
  const join = async (room: string, opts: { name?: string; role?: string; api?: any; reconnect?: boolean } = {}): Promise<any> =>
    track(
      await joinRoom(roomWsUrl(s, room), await mintToken(s.admin.apiKey, room, { name: opts.name, role: opts.role, api: opts.api }), {
        reconnectTimeout: opts.reconnect ? null : 0,
      }),
    );
  const host = (room: OfficialRoom, name: string, tools: any[], isPublic = true): Promise<any> =>
    within(
      startHostedToolkit({ room, toolkit: new Toolkit({ name, title: `${name} kit`, description: `the ${name} toolkit`, tools }), public_: isPublic }),
      10_000,
      "register",
    );

  beforeAll(async () => {
    s = await startServer({ env: { MESHAGENT_ROOM_EMPTY_TIMEOUT: "0.3", MESHAGENT_ROOM_MAX_TOOL_CALLS: "128", MESHAGENT_WEBHOOK_ALLOW_PRIVATE: "true" } });
    s.ctx.bus.on((e) => events.push(e));
  });
  afterAll(async () => {
    for (const r of rooms) r.dispose();
    await s.close();
  });

  it("an agent hosts a toolkit; a user lists it (tools verbatim, the host's participant_id) and calls it", async () => {
    const room = await newRoom();
    const agent = await join(room, { name: "calc-agent", role: "agent" });
    await host(agent, "calc", [new FnTool("add", ({ a, b }) => ({ sum: a + b })), new FnTool("echo", (x) => x)]);
    const user = await join(room, { name: "alice", role: "user", api: ApiScope.userDefault() });
    const kits = await within(user.agents.listToolkits());
    expect(kits.map((k: any) => k.name)).toEqual(["calc"]);
    const calc = kits[0];
    expect(calc).toMatchObject({ title: "calc kit", description: "the calc toolkit", participantId: agent.localParticipant!.id });
    expect(calc.tools.map((t: any) => t.name)).toEqual(["add", "echo"]);
    expect(calc.getTool("add")).toMatchObject({ title: "add", description: "the add tool" });
    expect(calc.getTool("add").inputSchema).toEqual({ type: "object", additionalProperties: true });
    const r = await within(user.agents.invokeTool({ toolkit: "calc", tool: "add", arguments: { a: 2, b: 3 } }));
    expect(r).toBeInstanceOf(JsonContent);
    expect(r.json).toEqual({ sum: 5 });
    // targeting the host by participant id works; another id does not
    expect((await user.invoke({ toolkit: "calc", tool: "echo", arguments: { x: 1 }, participantId: agent.localParticipant!.id })).json).toEqual({ x: 1 });
    const [msg, code] = await rejection(user.invoke({ toolkit: "calc", tool: "echo", arguments: {}, participantId: "someone-else" }));
    expect([msg, code]).toEqual([expect.stringMatching(/hosted by another participant/), 1003]);
    // the raw list answer: {"tools": {name: toolkit}} with the tools map as the host sent it
    const raw = await RawRoomClient.connect(roomWsUrl(s, room), await mintToken(s.admin.apiKey, room));
    const listed = (await within(raw.request("room.list_toolkits", {}))) as Extract<Content, { type: "json" }>;
    expect(listed.json).toEqual({
      tools: {
        calc: {
          title: "calc kit",
          description: "the calc toolkit",
          participant_id: agent.localParticipant!.id,
          public: true,
          tools: {
            add: {
              title: "add",
              description: "the add tool",
              input_spec: { types: ["json"], stream: false, schema: { type: "object", additionalProperties: true } },
            },
            echo: {
              title: "echo",
              description: "the echo tool",
              input_spec: { types: ["json"], stream: false, schema: { type: "object", additionalProperties: true } },
            },
          },
        },
      },
    });
    raw.close();
  });

  it("100 concurrent calls, answered out of order, each get their own answer; the in-flight limit holds", async () => {
    const room = await newRoom();
    const agent = await join(room, { name: "echoer" });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    await host(agent, "echo", [
      new FnTool("later", async ({ i }) => {
        await sleep(Math.random() * 60);
        return { i, doubled: i * 2 };
      }),
      new FnTool("wait", async () => {
        await gate;
        return {};
      }),
    ]);
    const user = await join(room, { name: "caller" });
    const got = await within(
      Promise.all(Array.from({ length: 100 }, (_, i) => user.invoke({ toolkit: "echo", tool: "later", arguments: { i } }))),
      20_000,
      "100 calls",
    );
    expect(got.map((r: any) => r.json)).toEqual(Array.from({ length: 100 }, (_, i) => ({ i, doubled: i * 2 })));
    // MESHAGENT_ROOM_MAX_TOOL_CALLS (128 here) counts routed calls too: the 129th waiting call is refused
    const waiting = Array.from({ length: 128 }, () => user.invoke({ toolkit: "echo", tool: "wait", arguments: {} }));
    await sleep(200);
    const [msg, code] = await rejection(user.invoke({ toolkit: "echo", tool: "wait", arguments: {} }));
    expect([msg, code]).toEqual([expect.stringMatching(/at most 128 tool calls/), 1006]);
    release();
    expect((await within(Promise.all(waiting), 20_000)).length).toBe(128);
  });

  it("a throwing tool, a missing toolkit and a missing tool end the call with an error naming why", async () => {
    const room = await newRoom();
    const agent = await join(room, { name: "thrower" });
    await host(agent, "risky", [
      new FnTool("boom", () => {
        throw new Error("kaboom");
      }),
    ]);
    const user = await join(room, { name: "u" });
    expect(await rejection(user.invoke({ toolkit: "risky", tool: "boom", arguments: {} }))).toEqual(["Error: kaboom", undefined]);
    expect(await rejection(user.invoke({ toolkit: "nothere", tool: "x", arguments: {} }))).toEqual(['no toolkit "nothere" is hosted in this room', 1003]);
    expect(await rejection(user.invoke({ toolkit: "risky", tool: "nope", arguments: {} }))).toEqual(['toolkit "risky" has no tool "nope"', 1003]);
    // a non-JSON argument reaches the 0.39.9 host, which refuses it; the error comes back
    const [m] = await rejection(user.invoke({ toolkit: "risky", tool: "boom", input: new TextContent({ text: "hi" }) }));
    expect(m).toMatch(/requires JSON object input/);
  });

  it("a host that disconnects mid-call: its callers get an error at once and its toolkits are gone", async () => {
    const room = await newRoom();
    const agent = await join(room, { name: "leaver" });
    await host(agent, "slow", [new FnTool("forever", never)]);
    const user = await join(room, { name: "u" });
    const calls = Array.from({ length: 5 }, () => user.invoke({ toolkit: "slow", tool: "forever", arguments: {} }));
    await sleep(200);
    const t0 = Date.now();
    agent.dispose();
    for (const c of calls) {
      const [msg, code] = await rejection(c, 5000);
      expect(msg).toMatch(/the host of toolkit "slow" \(participant .* \("leaver"\)\) left the room before it answered/);
      expect(code).toBe(1008);
    }
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(await within(user.agents.listToolkits())).toEqual([]);
  });

  it("unregistering mid-call ends the calls in flight; the toolkit can be registered again", async () => {
    const room = await newRoom();
    const agent = await join(room, { name: "stopper" });
    const hosted = await host(agent, "temp", [new FnTool("forever", never), new FnTool("ping", () => ({ pong: true }))]);
    const user = await join(room, { name: "u" });
    const call = user.invoke({ toolkit: "temp", tool: "forever", arguments: {} });
    await sleep(150);
    await within(hosted.stop());
    expect(await rejection(call, 5000)).toEqual(['toolkit "temp" was unregistered by its host before it answered', 1008]);
    expect(await within(user.agents.listToolkits())).toEqual([]);
    expect((await rejection(user.invoke({ toolkit: "temp", tool: "ping", arguments: {} })))[1]).toBe(1003);
    await host(agent, "temp", [new FnTool("ping", () => ({ pong: true }))]);
    expect((await within(user.invoke({ toolkit: "temp", tool: "ping", arguments: {} }))).json).toEqual({ pong: true });
  });

  it("private toolkits are listed and callable only by the participant that registered them", async () => {
    const room = await newRoom();
    const agent = await join(room, { name: "secretive" });
    await host(agent, "mine", [new FnTool("get", () => ({ secret: 42 }))], false);
    await host(agent, "ours", [new FnTool("get", () => ({ shared: 1 }))], true);
    const other = await join(room, { name: "other" });
    expect((await within(other.agents.listToolkits())).map((k: any) => k.name)).toEqual(["ours"]);
    expect(await rejection(other.invoke({ toolkit: "mine", tool: "get", arguments: {} }))).toEqual(['no toolkit "mine" is hosted in this room', 1003]);
    expect((await within(agent.agents.listToolkits())).map((k: any) => k.name).sort()).toEqual(["mine", "ours"]);
    expect((await within(agent.invoke({ toolkit: "mine", tool: "get", arguments: {} }))).json).toEqual({ secret: 42 });
  });

  it("ApiScope agents rules (§1.6): the section, use_tools, register_public/private_toolkit, allowed_toolkits, call", async () => {
    const room = await newRoom();
    const agent = await join(room, { name: "provider" });
    await host(agent, "a", [new FnTool("t", () => ({ a: 1 }))]);
    await host(agent, "b", [new FnTool("t", () => ({ b: 1 }))]);
    const denied = (p: Promise<unknown>) => rejection(p).then(([m, c]) => (expect(c).toBe(1001), m));

    // no agents section: nothing of it
    const none = await join(room, { name: "none", api: scopeWith(undefined) });
    expect(await denied(none.agents.listToolkits())).toMatch(/no agents section/);
    expect(await denied(none.invoke({ toolkit: "a", tool: "t", arguments: {} }))).toMatch(/no agents section/);
    expect(await denied(startHostedToolkit({ room: none, toolkit: new Toolkit({ name: "n", tools: [] }), public_: true }))).toMatch(/no agents section/);
    expect(await denied(none.agents.call({ name: "x", url: "http://127.0.0.1:9/", arguments: {} }))).toMatch(/no agents section/);
    // the built-in toolkits are unaffected
    expect(await within(none.queues.list())).toEqual([]);

    // use_tools false: no list, no invoke; registering is still allowed
    const noTools = await join(room, { name: "notools", api: scopeWith(new AgentsGrant({ useTools: false })) });
    expect(await denied(noTools.agents.listToolkits())).toMatch(/use_tools/);
    expect(await denied(noTools.invoke({ toolkit: "a", tool: "t", arguments: {} }))).toMatch(/use_tools/);
    await host(noTools, "from-notools", [new FnTool("t", () => ({}))]);

    // register_public_toolkit false / register_private_toolkit false
    const noPublic = await join(room, { name: "nopublic", api: scopeWith(new AgentsGrant({ registerPublicToolkit: false })) });
    expect(await denied(host(noPublic, "pub", [], true))).toMatch(/public toolkits/);
    await host(noPublic, "priv", [], false);
    const noPrivate = await join(room, { name: "noprivate", api: scopeWith(new AgentsGrant({ registerPrivateToolkit: false })) });
    expect(await denied(host(noPrivate, "priv2", [], false))).toMatch(/private toolkits/);
    await host(noPrivate, "pub2", [], true);

    // allowed_toolkits: the list is filtered, other invokes refused
    const onlyA = await join(room, { name: "only-a", api: scopeWith(new AgentsGrant({ allowedToolkits: ["a"] })) });
    expect((await within(onlyA.agents.listToolkits())).map((k: any) => k.name)).toEqual(["a"]);
    expect((await within(onlyA.invoke({ toolkit: "a", tool: "t", arguments: {} }))).json).toEqual({ a: 1 });
    expect(await denied(onlyA.invoke({ toolkit: "b", tool: "t", arguments: {} }))).toMatch(/allowed_toolkits/);

    // call false: room.call refused
    const noCall = await join(room, { name: "nocall", api: scopeWith(new AgentsGrant({ call: false })) });
    expect(await denied(noCall.agents.call({ name: "x", url: "http://127.0.0.1:9/", arguments: {} }))).toMatch(/room\.call/);
    // agents: {} means everything allowed
    const all = await join(room, { name: "all", api: scopeWith(new AgentsGrant()) });
    expect((await within(all.agents.listToolkits())).map((k: any) => k.name).sort()).toEqual(["a", "b", "from-notools", "pub2"]);
  });

  it("a toolkit name another participant holds is refused, naming the holder; built-in names are refused", async () => {
    const room = await newRoom();
    const first = await join(room, { name: "first" });
    await host(first, "dup", [new FnTool("t", () => ({ from: "first" }))]);
    const second = await join(room, { name: "second" });
    const [msg, code] = await rejection(host(second, "dup", [new FnTool("t", () => ({ from: "second" }))]));
    expect(msg).toBe(
      `toolkit "dup" is already hosted in this room by participant ${first.localParticipant!.id} ("first"); two participants cannot host toolkits of the same name`,
    );
    expect(code).toBe(1004);
    for (const name of ["queues", "messaging", "storage", "secrets", "developer", "sync"])
      expect((await rejection(host(second, name, [])))[0]).toMatch(new RegExp(`"${name}" is a toolkit of the room server itself`));
    expect((await within(second.invoke({ toolkit: "dup", tool: "t", arguments: {} }))).json).toEqual({ from: "first" });
  });

  it("a host that reconnects registers again (its old registration went with its old connection)", async () => {
    const room = await newRoom();
    const agent = await join(room, { name: "flaky", reconnect: true });
    await host(agent, "comeback", [new FnTool("who", () => ({ me: agent.localParticipant!.id }))]);
    const user = await join(room, { name: "u" });
    const firstId = agent.localParticipant!.id;
    // the server drops the host's connection with 1012: the client reconnects (a new participant id) and re-registers
    const active = [...(s.ctx.roomServer as any).rooms.values()].find((r: any) => r.room.name === room);
    active.connections.get(firstId).close(1012, "test: reconnect");
    await until(
      async () => (await within(user.agents.listToolkits())).some((k: any) => k.participantId && k.participantId !== firstId),
      15_000,
      "re-registered",
    );
    expect(agent.localParticipant!.id).not.toBe(firstId);
    expect((await within(user.invoke({ toolkit: "comeback", tool: "who", arguments: {} }))).json).toEqual({ me: agent.localParticipant!.id });
  });

  it("a holder that answers no ping loses the name to a new registration (a half-open connection)", async () => {
    const room = await newRoom();
    // a raw socket that never answers pings holds "held"
    const ws = new WebSocket(`${roomWsUrl(s, room)}?token=${await mintToken(s.admin.apiKey, room, { name: "ghost" })}`, {
      perMessageDeflate: false,
      autoPong: false,
    });
    const seen: string[] = [];
    await new Promise<void>((resolve) =>
      ws.on("message", (d: Buffer) => {
        if (d.readUInt32BE(8) === 0) seen.push(d.subarray(16).toString());
        if (seen.includes("connected") && seen.includes("room_ready")) resolve();
      }),
    );
    const closed = new Promise<void>((r) => ws.on("close", () => r()));
    for (const f of encodeMessage(1, "room.register_toolkit", pack({ name: "held", public: true, tools: { t: {} } }))) ws.send(f);
    const user = await join(room, { name: "u" });
    await until(async () => (await within(user.agents.listToolkits())).length === 1, 5000, "ghost registered");
    const agent = await join(room, { name: "real" });
    const t0 = Date.now();
    await host(agent, "held", [new FnTool("t", () => ({ real: true }))]);
    expect(Date.now() - t0).toBeGreaterThan(4500); // it waited for the ping (5 s)
    await within(closed, 5000, "ghost terminated");
    expect((await within(user.invoke({ toolkit: "held", tool: "t", arguments: {} }))).json).toEqual({ real: true });
  });

  it("list_toolkits filters by participant id and name, and waits up to `timeout` for a toolkit to appear", async () => {
    const room = await newRoom();
    const a = await join(room, { name: "agent-a" });
    await host(a, "ka", [new FnTool("t", () => ({}))]);
    const b = await join(room, { name: "agent-b" });
    await host(b, "kb", [new FnTool("t", () => ({}))]);
    const user = await join(room, { name: "u" });
    const names = async (p: Promise<any[]>) => (await within(p)).map((k: any) => k.name).sort();
    expect(await names(user.agents.listToolkits())).toEqual(["ka", "kb"]);
    expect(await names(user.agents.listToolkits({ participantId: b.localParticipant!.id }))).toEqual(["kb"]);
    expect(await names(user.agents.listToolkits({ participantName: "agent-a" }))).toEqual(["ka"]);
    // the name attribute counts as the participant's name too
    b.localParticipant!.setAttribute("name", "renamed-b");
    await until(async () => (await names(user.agents.listToolkits({ participantName: "renamed-b" }))).length === 1, 5000, "attribute name");
    expect(await names(user.agents.listToolkits({ participantName: "nobody" }))).toEqual([]);
    // timeout: no match yet → wait; answered as soon as one appears
    const t0 = Date.now();
    const waiting = user.agents.listToolkits({ participantName: "latecomer", timeout: 20 });
    await sleep(300);
    const late = await join(room, { name: "latecomer" });
    await host(late, "klate", [new FnTool("t", () => ({}))]);
    expect(await names(waiting)).toEqual(["klate"]);
    expect(Date.now() - t0).toBeLessThan(5000);
    // and when none appears, the (empty) answer comes after the timeout
    const t1 = Date.now();
    expect(await names(user.agents.listToolkits({ participantName: "never", timeout: 0.4 }))).toEqual([]);
    expect(Date.now() - t1).toBeGreaterThanOrEqual(350);
    expect((await rejection(user.agents.listToolkits({ timeout: "soon" } as any)))[1]).toBe(1002);
  });

  it("a streaming tool through the relay: request chunks to the host, response chunks back, control/close ends it", async () => {
    const room = await newRoom();
    const agent = await join(room, { name: "streamer" });
    // A streaming host on the official client's protocol (0.39.9's startHostedToolkit has no streaming tools):
    // it answers the open, upper-cases each text chunk and closes when the caller's input ends.
    const seen: any[] = [];
    const send = (type: string, header: unknown, id?: number) => agent.protocol.send(type, packMessage(header), id === undefined ? {} : { id });
    agent.protocol.addHandler("room.tool_call.upper", async (_p: unknown, id: number, _t: string, data: Uint8Array) => {
      const [req] = unpackMessage(data);
      seen.push(req);
      if (req.name === "refuse") return send("room.tool_call_response", { type: "error", text: "not today", code: 1234 }, id);
      await send("room.tool_call_response", { type: "control", method: "open" }, id);
    });
    agent.protocol.addHandler("room.tool_call_request_chunk", async (_p: unknown, id: number, _t: string, data: Uint8Array) => {
      const [req] = unpackMessage(data);
      await send("__response__", { type: "empty" }, id);
      const chunk = req.chunk;
      if (chunk.type === "text")
        await send("room.tool_call_response_chunk", { tool_call_id: req.tool_call_id, chunk: { type: "text", text: chunk.text.toUpperCase() } });
      if (chunk.type === "control" && chunk.method === "close")
        await send("room.tool_call_response_chunk", { tool_call_id: req.tool_call_id, chunk: { type: "control", method: "close", status_code: 1000 } });
    });
    const reg = await within(
      agent.sendRequest("room.register_toolkit", { name: "upper", public: true, tools: { shout: { description: "upper-cases text" }, refuse: {} } }),
    );
    expect(reg.json.id).toEqual(expect.any(String));
    const user = await join(room, { name: "u" });
    async function* input() {
      for (const t of ["hello", "stream", "world"]) yield new TextContent({ text: t });
    }
    const out: string[] = [];
    const stream = await within(user.invokeStream({ toolkit: "upper", tool: "shout", input: input() }));
    for await (const c of stream) {
      if (c instanceof TextContent) out.push(c.text);
      if (c instanceof ControlContent) out.push(`close:${c.method}`);
    }
    expect(out).toEqual(["HELLO", "STREAM", "WORLD", "close:close"]);
    expect(seen[0]).toMatchObject({ name: "shout", toolkit: "upper", caller_id: user.localParticipant!.id, arguments: { type: "control", method: "open" } });
    // the host's refusal of the open rejects invokeStream with its error
    async function* nothing(): AsyncGenerator<never> {
      for (const x of [] as never[]) yield x;
    }
    expect(await rejection(user.invokeStream({ toolkit: "upper", tool: "refuse", input: nothing() }))).toEqual(["not today", 1234]);
    // a 0.39.9 hosted toolkit refuses a stream (it takes JSON only): the caller gets that error
    const plain = await join(room, { name: "plain" });
    await host(plain, "plainkit", [new FnTool("t", () => ({}))]);
    // (the caller's closing chunk may reach that host before its refusal did: 0.39.9 warns that it has no handler)
    const warn = console.warn;
    console.warn = () => {};
    try {
      expect((await rejection(user.invokeStream({ toolkit: "plainkit", tool: "t", input: nothing() })))[0]).toMatch(/requires JSON object input/);
      await sleep(100);
    } finally {
      console.warn = warn;
    }
  });

  it("a stream whose host leaves ends with an error chunk and close", async () => {
    const room = await newRoom();
    const agent = await join(room, { name: "quitter" });
    agent.protocol.addHandler("room.tool_call.q", async (_p: unknown, id: number) => {
      await agent.protocol.send("room.tool_call_response", packMessage({ type: "control", method: "open" }), { id });
    });
    await within(agent.sendRequest("room.register_toolkit", { name: "q", public: true, tools: { s: {} } }));
    const user = await join(room, { name: "u" });
    let stop!: () => void;
    const held = new Promise<void>((r) => (stop = r));
    async function* input(): AsyncGenerator<never> {
      await held;
      for (const x of [] as never[]) yield x;
    }
    const stream = await within(user.invokeStream({ toolkit: "q", tool: "s", input: input() }));
    const got: any[] = [];
    const reading = (async () => {
      for await (const c of stream) got.push(c);
    })();
    await sleep(100);
    agent.dispose();
    await within(reading, 5000, "stream end");
    stop();
    expect(got[0].text).toMatch(/the host of toolkit "q" .* left the room/);
    expect(got[1]).toBeInstanceOf(ControlContent);
  });

  it("registrations are validated so that listToolkits keeps working; registrations are bounded", async () => {
    const room = await newRoom();
    const agent = await join(room, { name: "sloppy" });
    await host(agent, "good", [new FnTool("t", () => ({}))]);
    const reg = (body: unknown) => agent.sendRequest("room.register_toolkit", body);
    const bad: [unknown, RegExp][] = [
      [{ name: "x", public: true, tools: { t: { input_spec: { types: ["image"] } } } }, /input_spec\.types has .*image/],
      [{ name: "x", public: true, tools: { t: { output_spec: { types: [] } } } }, /output_spec\.types must be a non-empty array/],
      [{ name: "x", public: true, tools: { t: { input_spec: { types: ["json"], schema: [1] } } } }, /schema must be an object/],
      [{ name: "x", public: true, tools: { t: { input_spec: "json" } } }, /input_spec must be an object/],
      [{ name: "x", public: true, tools: { t: null } }, /must be an object/],
      [{ name: "x", public: true, tools: [{ title: "no name" }] }, /name must be a string/],
      [{ name: "x", public: true, tools: "t" }, /tools must be an object/],
      [{ name: "", tools: {} }, /toolkit name must be a string of 1-256/],
      [{ name: "x", public: "yes", tools: {} }, /public must be a boolean/],
      [{ name: "x", title: 7, tools: {} }, /title must be a string/],
      [{ name: "x", public: true, tools: Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [`t${i}`, {}])) }, /at most 1000 tools/],
      [{ name: "x", public: true, description: "d".repeat(1024 * 1024), tools: {} }, /at most 1048576 bytes/],
    ];
    for (const [body, re] of bad) {
      const [m, c] = await rejection(reg(body));
      expect(m).toMatch(re);
      expect(c).toBe(1002);
    }
    // a list form of tools and Python-style input_schema are accepted as they are
    await within(reg({ name: "listed", public: true, tools: [{ name: "p", input_schema: { type: "object" }, defs: {} }] }));
    const kits = await within(agent.agents.listToolkits());
    expect(kits.map((k: any) => k.name).sort()).toEqual(["good", "listed"]);
    expect(kits.find((k: any) => k.name === "listed").getTool("p").inputSchema).toEqual({ type: "object" });
    // at most 100 toolkits per participant
    for (let i = 0; i < 98; i++) await within(reg({ name: `many-${i}`, public: false, tools: {} }));
    expect(await rejection(reg({ name: "one-too-many", tools: {} }))).toEqual(["limit: a participant may host at most 100 toolkits", 1006]);
    // unregister: an unknown id is an error
    expect((await rejection(agent.sendRequest("room.unregister_toolkit", { id: "nope" })))[1]).toBe(1003);
  });

  it("room.call: validated, handed to the calls service; its failure comes back as an error naming it", async () => {
    const room = await newRoom();
    const user = await join(room, { name: "caller" });
    const receiver = await Receiver.start();
    try {
      await within(user.agents.call({ name: "helper-agent", url: receiver.url, arguments: { job: 7 } }), 20_000, "room.call");
      await receiver.waitFor(1);
      const body = JSON.parse(receiver.requests[0].body);
      expect(body.data).toMatchObject({ room_name: room, arguments: { job: 7 }, token: expect.any(String) });
      receiver.responder = () => ({ status: 500, body: "no" });
      const [msg] = await rejection(user.agents.call({ name: "helper-agent", url: receiver.url, arguments: {} }), 20_000);
      expect(msg).toMatch(/500/);
      expect(await rejection(user.agents.call({ name: "x", url: "ftp://example.com/", arguments: {} }))).toEqual(["url must be an http(s) or ws(s) URL", 1002]);
      expect((await rejection(user.agents.call({ url: receiver.url, arguments: {} } as any)))[0]).toMatch(/name must be a string/);
    } finally {
      await receiver.close();
    }
  });

  it("the session records registrations, tool calls (toolkit, tool, caller, host, duration, outcome) and room.call; usage counts the calls", async () => {
    const room = await newRoom();
    const agent = await join(room, { name: "recorded-agent" });
    const hosted = await host(agent, "rec", [
      new FnTool("ok", () => ({ fine: true })),
      new FnTool("bad", () => {
        throw new Error("nope");
      }),
    ]);
    const user = await join(room, { name: "recorded-user" });
    const sessionId = user.sessionId!;
    const [userId, agentId] = [user.localParticipant!.id, agent.localParticipant!.id];
    await within(user.invoke({ toolkit: "rec", tool: "ok", arguments: {} }));
    await rejection(user.invoke({ toolkit: "rec", tool: "bad", arguments: {} }));
    await rejection(user.agents.call({ name: "x", url: "http://127.0.0.1:9/", arguments: {} }), 20_000);
    await within(hosted.stop());
    agent.dispose();
    user.dispose();
    await until(async () => !(await s.client().listActiveSessions(s.admin.projectId)).some((x) => x.id === sessionId), 10_000, "session end");
    await s.ctx.sessions.flush();
    const evs = await s.client().listSessionEvents(s.admin.projectId, sessionId);
    const types = evs.map((e) => String(e.type));
    expect(types.filter((t) => t.startsWith("toolkit.") || t === "tool_call" || t === "room.call")).toEqual([
      "toolkit.registered",
      "tool_call",
      "tool_call",
      "room.call",
      "toolkit.unregistered",
    ]);
    expect(types.indexOf("toolkit.unregistered")).toBeLessThan(types.indexOf("room.ended"));
    const calls = evs.filter((e) => e.type === "tool_call").map((e) => e.data as any);
    expect(calls[0]).toMatchObject({
      toolkit: "rec",
      tool: "ok",
      caller_id: userId,
      caller_name: "recorded-user",
      host_id: agentId,
      host_name: "recorded-agent",
      outcome: "ok",
      duration_ms: expect.any(Number),
    });
    expect(calls[1]).toMatchObject({ tool: "bad", outcome: "error", error: "Error: nope" });
    expect(evs.find((e) => e.type === "toolkit.registered")!.data).toMatchObject({ toolkit: "rec", public: true, tools: 2, name: "recorded-agent" });
    expect(evs.find((e) => e.type === "toolkit.unregistered")!.data).toMatchObject({ toolkit: "rec", reason: "unregistered" });
    expect(evs.find((e) => e.type === "room.call")!.data).toMatchObject({ name: "x", url: "http://127.0.0.1:9/", outcome: "error" });

    const spans = await s.client().listSessionSpans(s.admin.projectId, sessionId);
    const byName = (n: string) => spans.filter((x: any) => (x.name ?? x.span_name) === n) as any[];
    expect(byName("room.tool_call").map((x) => [x.span_attributes.tool, x.span_attributes.outcome])).toEqual([
      ["ok", "ok"],
      ["bad", "error"],
    ]);
    expect(byName("room.tool_call")[0].duration).toBeGreaterThan(0);
    expect(byName("room.toolkit")).toHaveLength(1);
    expect(byName("room.call")).toHaveLength(1);

    const metrics = await s.client().listSessionMetrics(s.admin.projectId, sessionId);
    expect(metrics.filter((m: any) => m.name === "room.tool_calls").at(-1)).toMatchObject({ value: 2, kind: "sum" });
    const usage = events.filter((e) => e.type === "usage.recorded" && e.data.session_id === sessionId && e.data.usage_type === "tool_calls");
    expect(usage.reduce((a, u) => a + Number(u.data.quantity), 0)).toBe(2);
    expect(usage[0].data).toMatchObject({ unit: "call", room_name: room });
  });

  it("fast-check: malformed register / invoke / tool_call_response frames never crash or stall the room", async () => {
    const room = await newRoom();
    const agent = await join(room, { name: "steady" });
    await host(agent, "good", [new FnTool("t", ({ k }) => ({ k }))]);
    const user = await join(room, { name: "u" });
    // a raw participant that also hosts "fz": real calls to it get its garbage answers
    const raw = await RawRoomClient.connect(roomWsUrl(s, room), await mintToken(s.admin.apiKey, room, { name: "fuzzer" }), { firstId: 2 ** 40 });
    expect((await within(raw.request("room.register_toolkit", { name: "fz", public: true, tools: { t: {} } }))).type).toBe("json");
    const calls: number[] = [];
    raw.on((m) => {
      if (m.type === "room.tool_call.fz") calls.push(m.id);
    });
    const jsonish = fc.jsonValue({ maxDepth: 3 });
    const small = fc.oneof(fc.constant(undefined), fc.double({ min: 0, max: 0.05, noNaN: true }), fc.string({ maxLength: 4 }), jsonish);
    const spec = fc.oneof(
      jsonish,
      fc.record({ types: fc.array(fc.constantFrom("json", "text", "image", 3), { maxLength: 3 }), stream: jsonish, schema: jsonish }),
    );
    const header = fc.oneof(
      jsonish,
      fc.record(
        {
          name: fc.oneof(fc.constantFrom("good", "fz", "queues", "new"), fc.string({ maxLength: 6 }), jsonish),
          public: fc.oneof(fc.boolean(), jsonish),
          tools: fc.oneof(
            jsonish,
            fc.dictionary(fc.string({ maxLength: 4 }), fc.oneof(jsonish, fc.record({ input_spec: spec, output_spec: spec, title: jsonish }))),
          ),
          id: fc.oneof(fc.string({ maxLength: 8 }), jsonish),
          participant_id: fc.oneof(fc.string({ maxLength: 8 }), jsonish),
          participant_name: fc.oneof(fc.string({ maxLength: 8 }), jsonish),
          timeout: small,
          toolkit: fc.oneof(fc.constantFrom("good", "fz", "gone"), jsonish),
          tool: fc.oneof(fc.constantFrom("t", "x"), jsonish),
          arguments: fc.oneof(
            jsonish,
            fc.record({ type: fc.constantFrom("json", "empty", "text", "control", "bogus"), json: jsonish, method: fc.constantFrom("open", "close") }),
          ),
          tool_call_id: fc.oneof(fc.string({ maxLength: 4 }), jsonish),
          chunk: jsonish,
          type: fc.constantFrom("json", "error", "text", "control", "empty", "bogus"),
          json: jsonish,
          text: jsonish,
        },
        { requiredKeys: [] },
      ),
    );
    const payload = fc.oneof(
      header.map((h) => pack(h)),
      fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
    );
    const message = fc
      .record({
        type: fc.constantFrom(
          "room.register_toolkit",
          "room.unregister_toolkit",
          "room.list_toolkits",
          "room.invoke_tool",
          "room.tool_call_response",
          "room.tool_call_response_chunk",
          "room.tool_call_request_chunk",
        ),
        id: fc.nat(100),
        payload,
      })
      .map(({ type, id, payload }) => ({ type, id, payload }));
    await fc.assert(
      fc.asyncProperty(fc.array(message, { maxLength: 10 }), fc.array(payload, { maxLength: 3 }), async (batch, answers) => {
        for (const m of batch)
          raw.sendRaw(encodeMessage(m.type === "room.tool_call_response" && calls.length ? (calls.at(-1) ?? 0) + (m.id % 3) - 1 : m.id, m.type, m.payload));
        // a real call to the fuzzer's toolkit, answered with garbage (or not at all): it ends, one way or another
        const before = calls.length;
        const toFz = user.invoke({ toolkit: "fz", tool: "t", arguments: {} }).then(
          () => "answered",
          () => "error",
        );
        await until(() => calls.length > before, 5000, "call reached the fuzzer");
        const id = calls.at(-1)!;
        for (const a of answers) raw.sendRaw(encodeMessage(id, "room.tool_call_response", a));
        raw.send("room.tool_call_response", { type: "json", json: { last: true } }, undefined, id);
        expect(["answered", "error"]).toContain(await within(toFz, 5000, "call to fz"));
        // a well-formed call between official clients still works, and the fuzzer's socket is open
        expect((await within(user.invoke({ toolkit: "good", tool: "t", arguments: { k: 1 } }), 5000, "good call")).json).toEqual({ k: 1 });
        expect(raw.closed).toBeNull();
      }),
      { numRuns: 60 },
    );
    expect((await s.http("GET", "/healthz", { token: null })).json).toEqual({ ok: true });
    raw.close();
  });
});

describe("agents: MESHAGENT_TOOL_CALL_TIMEOUT", () => {
  let s: TestServer;
  const rooms: OfficialRoom[] = [];
  beforeAll(async () => {
    s = await startServer({ env: { MESHAGENT_TOOL_CALL_TIMEOUT: "0.5" } });
    await s.client().createRoom({ projectId: s.admin.projectId, name: "slow" } as any);
  });
  afterAll(async () => {
    for (const r of rooms) r.dispose();
    await s.close();
  });

  it("a host that never answers: the caller gets a timeout error after the configured time", async () => {
    const agent: any = await joinRoom(roomWsUrl(s, "slow"), await mintToken(s.admin.apiKey, "slow", { name: "sleepy" }));
    const user: any = await joinRoom(roomWsUrl(s, "slow"), await mintToken(s.admin.apiKey, "slow", { name: "u" }));
    rooms.push(agent, user);
    await within(startHostedToolkit({ room: agent, toolkit: new Toolkit({ name: "zzz", tools: [new FnTool("nap", never)] }), public_: true }));
    const t0 = Date.now();
    const [msg, code] = await rejection(user.invoke({ toolkit: "zzz", tool: "nap", arguments: {} }), 5000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(450);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(code).toBe(1009);
    expect(msg).toMatch(/toolkit "zzz" \(participant .* \("sleepy"\)\) did not answer zzz\.nap within 0\.5 s/);
  });
});
