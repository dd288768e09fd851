import { randomBytes, randomUUID } from "node:crypto";
import type { CallHandoff } from "../calls/service.js";
import type { Clock } from "../core/clock.js";
import { ApiError } from "../core/errors.js";
import { isObj, jsonTooDeep, MAX_JSON_DEPTH } from "../core/json.js";
import type { SessionsService } from "../sessions/service.js";
import type { Connection, Toolkit, ToolCall, ToolStream } from "./connection.js";
import {
  contentFrom,
  contentParts,
  control,
  empty,
  ErrorCode,
  errorContent,
  invalid,
  json,
  nextServerMessageId,
  pack,
  Packed,
  ProtocolError,
  ToolError,
  unpack,
  unpackContent,
  type Content,
  type RawMessage,
} from "./protocol.js";
import type { ActiveRoom } from "./room.js";

/**
 * Toolkits that participants host, and `room.call` (agents-protocol.md §1; README "Agents and toolkits").
 *
 * Registrations live in memory, per room, on the process that serves the room (every participant of a room is
 * connected to that process: ownership.ts), and vanish with the host's connection. A call to a hosted toolkit is sent
 * to its host as `room.tool_call.<toolkit>` under a fresh server message id; the host's `room.tool_call_response` with
 * that id is the caller's answer. Calls are correlated by (host connection, id), so any number may be in flight and
 * answered in any order. Every call ends: with the host's answer, or with an error when the host leaves, unregisters
 * the toolkit, answers with something malformed or does not answer within MESHAGENT_TOOL_CALL_TIMEOUT.
 */

/** Bounds of what participants may register (the README lists them). */
export const AGENT_LIMITS = {
  toolkitsPerParticipant: 100,
  toolkitsPerRoom: 1000,
  toolsPerToolkit: 1000,
  /** The register request's payload. */
  registrationBytes: 1024 * 1024,
  /** All registrations of a room together (what one room.list_toolkits answer may carry). */
  roomRegistrationBytes: 32 * 1024 * 1024,
  nameLength: 256,
  /** Calls one host may have waiting for its answers. */
  pendingPerHost: 10_000,
  /** room.list_toolkits `timeout` is capped at this (seconds). */
  listTimeoutSeconds: 60,
  /**
   * How long a participant holding a toolkit name has to answer a ping before a new registration takes the name (long
   * enough that a busy host is not pushed out; the re-registering client waits that long for its answer).
   */
  probeMs: 5000,
  /** Tool calls of one session recorded as events and spans (the rest are counted only). */
  recordedCalls: 1000,
  /** Registrations, unregistrations and room.call handoffs of one session recorded as events and spans. */
  recordedOther: 1000,
  /** room.call `url`. */
  urlLength: 2048,
} as const;

/** The server's own toolkits, present and coming: a participant cannot register a toolkit of these names. */
export const RESERVED_TOOLKITS: readonly string[] = ["queues", "messaging", "storage", "secrets", "developer", "sync"];

const CONTENT_TYPES = new Set(["json", "text", "file", "link", "empty"]);
const RECORD_FLUSH_MS = 250;

type Outcome = "ok" | "error" | "timeout" | "host_left" | "unregistered" | "malformed" | "caller_left" | "rate_limited";

interface Registration {
  id: string;
  name: string;
  host: Connection;
  public: boolean;
  tools: Set<string>;
  /** The toolkit as room.list_toolkits shows it, serialized once. */
  listed: string;
  bytes: number;
  /** `room.tool_call.<name>`. */
  messageType: string;
  at: number;
  t0: number;
}

/** A call routed to a host, waiting for its answer (a plain call), or an open relayed stream. */
interface Routed {
  id: number;
  caller: Connection;
  reg: Registration;
  tool: string;
  at: number;
  t0: number;
  timer: NodeJS.Timeout | null;
  done: boolean;
  /** A plain call: its promise. */
  resolve?: (c: Content | Packed) => void;
  reject?: (e: ToolError) => void;
  /** A stream: the tool_call_id the host knows it by, the caller's output, and the answer to the caller's invoke. */
  stream?: { hostCallId: string; out: (c: Content) => void; answered: boolean; ready: (c: Content) => void };
}

interface HostState {
  regs: Map<string, Registration>;
  /** Calls waiting for the host's room.tool_call_response, by the server's message id. */
  calls: Map<number, Routed>;
  /** Open relayed streams, by the tool_call_id the host knows. */
  streams: Map<string, Routed>;
}

interface RoomRegistry {
  byName: Map<string, Registration>;
  bytes: number;
  /** Called on every registration and removal (list_toolkits waiting for a toolkit, a name probe). */
  watchers: Set<() => void>;
}

export interface AgentsDeps {
  calls: Pick<CallHandoff, "call">;
  sessions: Pick<SessionsService, "events" | "addSpans">;
  clock: Clock;
  /** MESHAGENT_TOOL_CALL_TIMEOUT in ms. */
  timeoutMs: number;
  /** The names of the server's toolkits (besides RESERVED_TOOLKITS). */
  builtins: () => Iterable<string>;
  /** A session `error` event (malformed answers, permission denials). */
  onError: (conn: Connection, what: string, detail: Record<string, unknown>) => void;
  /**
   * A toolkit no participant hosts: start what would host it (an `on_demand` service, src/hosting). Resolves true once
   * started, false when it could not; null when nothing declares the toolkit.
   */
  demand?: (room: ActiveRoom<Connection>, toolkit: string) => Promise<boolean> | null;
}

const quote = (s: string) => JSON.stringify(s.length > 100 ? s.slice(0, 100) + "…" : s);
const who = (c: Connection) => `participant ${c.id} (${quote(c.name)})`;

function nameOf(v: unknown, what: string): string {
  if (typeof v !== "string" || v.length === 0 || v.length > AGENT_LIMITS.nameLength)
    throw invalid(`${what} must be a string of 1-${AGENT_LIMITS.nameLength} characters`);
  // eslint-disable-next-line no-control-regex -- control characters in a name are refused
  if (/[\u0000-\u001f\u007f]/.test(v)) throw invalid(`${what} must not contain control characters`);
  return v;
}

function optionalString(h: Record<string, unknown>, key: string, where: string) {
  const v = h[key];
  if (v !== undefined && v !== null && typeof v !== "string") throw invalid(`${where}${key} must be a string`);
}

/** input_spec / output_spec: absent, null, or {types: [json|text|file|link|empty, …], stream?: bool, schema?: object}. */
function checkSpec(v: unknown, where: string) {
  if (v === undefined || v === null) return;
  if (!isObj(v)) throw invalid(`${where} must be an object {types, stream?, schema?} or null`);
  const types = v.types;
  if (!Array.isArray(types) || types.length === 0) throw invalid(`${where}.types must be a non-empty array`);
  for (const t of types)
    if (typeof t !== "string" || !CONTENT_TYPES.has(t))
      throw invalid(`${where}.types has ${quote(String(JSON.stringify(t)))}; each type must be one of ${[...CONTENT_TYPES].join(", ")}`);
  if (v.stream !== undefined && v.stream !== null && typeof v.stream !== "boolean") throw invalid(`${where}.stream must be a boolean`);
  if (v.schema !== undefined && v.schema !== null && !isObj(v.schema)) throw invalid(`${where}.schema must be an object`);
}

/** `tools`: a map name → tool, or a list of tools with names (what ToolkitDescription.fromJson reads). */
function checkTools(tools: unknown): Set<string> {
  const names = new Set<string>();
  const one = (name: unknown, tool: unknown, where: string) => {
    const n = nameOf(name, `${where} name`);
    if (names.has(n)) throw invalid(`tool ${quote(n)} appears twice`);
    if (!isObj(tool)) throw invalid(`${where} must be an object`);
    for (const k of ["title", "description", "thumbnail_url"]) optionalString(tool, k, `${where}.`);
    checkSpec(tool.input_spec, `${where}.input_spec`);
    checkSpec(tool.output_spec, `${where}.output_spec`);
    names.add(n);
  };
  const limit = (n: number) => {
    if (n > AGENT_LIMITS.toolsPerToolkit) throw invalid(`limit: a toolkit may have at most ${AGENT_LIMITS.toolsPerToolkit} tools (this one has ${n})`);
  };
  if (Array.isArray(tools)) {
    limit(tools.length);
    tools.forEach((t, i) => one(isObj(t) ? t.name : undefined, t, `tools[${i}]`));
  } else if (isObj(tools)) {
    const keys = Object.keys(tools);
    limit(keys.length);
    for (const k of keys) one(k, tools[k], `tools[${quote(k)}]`);
  } else throw invalid("tools must be an object mapping tool names to tools");
  return names;
}

/** A JSON text as a packed `json` Content without building the value again. */
function packedJsonText(text: string): Packed {
  const body = Buffer.from(text, "utf8");
  const out = Buffer.allocUnsafe(8 + body.length);
  out.writeUInt32BE(0, 0);
  out.writeUInt32BE(body.length, 4);
  body.copy(out, 8);
  return new Packed(out);
}

const sanitizedUrl = (u: URL) => `${u.origin}${u.pathname}`;

export class AgentsRouter {
  private readonly hosts = new WeakMap<Connection, HostState>();
  private readonly callers = new WeakMap<Connection, Set<Routed>>();
  private readonly registries = new WeakMap<ActiveRoom<Connection>, RoomRegistry>();
  readonly recorder: AgentRecorder;

  constructor(private readonly deps: AgentsDeps) {
    this.recorder = new AgentRecorder(deps.sessions, deps.clock);
  }

  /** Is `id` a call this connection was sent and has not answered (its answer then skips the rate limit)? */
  expects(conn: Connection, id: number): boolean {
    return this.hosts.get(conn)?.calls.has(id) ?? false;
  }

  /** The agents messages (Connection.dispatch sends them here). */
  handle(conn: Connection, msg: RawMessage): void {
    switch (msg.type) {
      case "room.register_toolkit":
        return void this.register(conn, msg);
      case "room.unregister_toolkit":
        return this.unregister(conn, msg);
      case "room.list_toolkits":
        return void this.list(conn, msg);
      case "room.call":
        return void this.roomCall(conn, msg);
      case "room.tool_call_response":
        return this.toolCallResponse(conn, msg);
      case "room.tool_call_response_chunk":
        return this.responseChunk(conn, msg);
    }
  }

  /** A host's answer or chunk the rate limit refused: a stream it belonged to ends with an error (never silently). */
  limited(conn: Connection, msg: RawMessage) {
    if (msg.type !== "room.tool_call_response_chunk") return;
    const hs = this.hosts.get(conn);
    if (!hs) return;
    let id: unknown;
    try {
      id = unpack(msg.payload).header.tool_call_id;
    } catch {
      return;
    }
    const rc = typeof id === "string" ? hs.streams.get(id) : undefined;
    if (rc)
      this.fail(
        rc,
        new ToolError(`the host of toolkit ${quote(rc.reg.name)} sent its stream faster than the room's rate limit allows`, ErrorCode.INVALID_STATE),
        "rate_limited",
      );
  }

  // ---------------------------------------------------------------- state

  private registry(room: ActiveRoom<Connection>): RoomRegistry {
    let r = this.registries.get(room);
    if (!r) this.registries.set(room, (r = { byName: new Map(), bytes: 0, watchers: new Set() }));
    return r;
  }

  private host(conn: Connection): HostState {
    let h = this.hosts.get(conn);
    if (!h) this.hosts.set(conn, (h = { regs: new Map(), calls: new Map(), streams: new Map() }));
    return h;
  }

  private changed(r: RoomRegistry) {
    for (const w of [...r.watchers]) w();
  }

  /** A request's JSON header, or null after answering it with an error (`reply` false: one-way messages). */
  private parse(conn: Connection, msg: RawMessage, reply = true): Record<string, unknown> | null {
    try {
      return unpack(msg.payload).header;
    } catch (e) {
      this.deps.onError(conn, "malformed_frame", { message: (e as Error).message, type: msg.type });
      if (reply) conn.respond(msg.id, errorContent(`malformed message: ${(e as Error).message}`, ErrorCode.INVALID_REQUEST));
      return null;
    }
  }

  // ---------------------------------------------------------------- register / unregister / list

  private async register(conn: Connection, msg: RawMessage) {
    const h = this.parse(conn, msg);
    if (!h) return;
    try {
      const reg = await this.add(conn, msg, h);
      conn.respond(msg.id, json({ id: reg.id }));
    } catch (e) {
      conn.respond(msg.id, conn.errorFor(e, "room.register_toolkit"));
    }
  }

  private async add(conn: Connection, msg: RawMessage, h: Record<string, unknown>): Promise<Registration> {
    if (msg.payload.length > AGENT_LIMITS.registrationBytes)
      throw invalid(`limit: a toolkit registration may be at most ${AGENT_LIMITS.registrationBytes} bytes (this one has ${msg.payload.length})`);
    const isPublic = h.public ?? false;
    if (typeof isPublic !== "boolean") throw invalid("public must be a boolean");
    conn.scope.agentsRegister(isPublic);
    const name = nameOf(h.name, "the toolkit name");
    if (RESERVED_TOOLKITS.includes(name) || [...this.deps.builtins()].includes(name))
      throw new ToolError(`${quote(name)} is a toolkit of the room server itself and cannot be registered; choose another name`, ErrorCode.ALREADY_EXISTS);
    for (const k of ["title", "description", "thumbnail_url"]) optionalString(h, k, "");
    const jsonLength = msg.payload.readUInt32BE(4);
    if (jsonTooDeep(msg.payload.subarray(8, 8 + jsonLength).toString("utf8")))
      throw invalid(`the registration nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels`);
    const tools = checkTools(h.tools);
    const hs = this.host(conn);
    if (hs.regs.size >= AGENT_LIMITS.toolkitsPerParticipant)
      throw new ToolError(`limit: a participant may host at most ${AGENT_LIMITS.toolkitsPerParticipant} toolkits`, ErrorCode.INVALID_STATE);
    const room = this.registry(conn.room);
    let holder = room.byName.get(name);
    if (holder?.host === conn)
      throw new ToolError(`you already host toolkit ${quote(name)} (registration ${holder.id}); unregister it first`, ErrorCode.ALREADY_EXISTS);
    if (holder) {
      // Its host may be a connection that died without a close (the client reconnected and registers again): a host
      // that answers no ping is dropped, so the name is free again.
      const verdict = await this.probe(holder);
      if (verdict === "dead") {
        const dead = holder.host;
        this.dropHost(dead, "unresponsive");
        dead.ws.terminate();
      }
      if (conn.closed) throw new ToolError("the connection closed", ErrorCode.INVALID_STATE);
      holder = room.byName.get(name);
      if (holder)
        throw new ToolError(
          `toolkit ${quote(name)} is already hosted in this room by ${holder.host === conn ? "you" : who(holder.host)}; two participants cannot host toolkits of the same name`,
          ErrorCode.ALREADY_EXISTS,
        );
      if (hs.regs.size >= AGENT_LIMITS.toolkitsPerParticipant)
        throw new ToolError(`limit: a participant may host at most ${AGENT_LIMITS.toolkitsPerParticipant} toolkits`, ErrorCode.INVALID_STATE);
    }
    if (room.byName.size >= AGENT_LIMITS.toolkitsPerRoom)
      throw new ToolError(`limit: a room may have at most ${AGENT_LIMITS.toolkitsPerRoom} hosted toolkits`, ErrorCode.INVALID_STATE);
    const value: Record<string, unknown> = {};
    for (const k of ["title", "description", "thumbnail_url"] as const) if (typeof h[k] === "string") value[k] = h[k];
    value.participant_id = conn.id;
    value.public = isPublic;
    value.tools = h.tools;
    const listed = JSON.stringify(value);
    const bytes = Buffer.byteLength(listed);
    if (room.bytes + bytes > AGENT_LIMITS.roomRegistrationBytes)
      throw new ToolError(
        `limit: the toolkits of a room may have at most ${AGENT_LIMITS.roomRegistrationBytes} bytes of descriptions in all`,
        ErrorCode.INVALID_STATE,
      );
    const reg: Registration = {
      id: randomUUID(),
      name,
      host: conn,
      public: isPublic,
      tools,
      listed,
      bytes,
      messageType: `room.tool_call.${name}`,
      at: this.deps.clock.now(),
      t0: performance.now(),
    };
    hs.regs.set(reg.id, reg);
    room.byName.set(name, reg);
    for (const w of this.registered.get(conn.room)?.get(name) ?? []) w();
    room.bytes += bytes;
    this.recorder.other(conn.room, "toolkit.registered", {
      toolkit: name,
      registration_id: reg.id,
      participant_id: conn.id,
      name: conn.name,
      public: isPublic,
      tools: tools.size,
    });
    this.changed(room);
    return reg;
  }

  /** Is the holder of a name still there? "gone" when its registration went away meanwhile. */
  private probe(holder: Registration): Promise<"alive" | "dead" | "gone"> {
    const room = this.registry(holder.host.room);
    const ws = holder.host.ws;
    return new Promise((resolve) => {
      let settled = false;
      const done = (v: "alive" | "dead" | "gone") => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        room.watchers.delete(watch);
        ws.off("pong", onPong);
        resolve(v);
      };
      const present = () => room.byName.get(holder.name) === holder;
      const onPong = () => done(present() ? "alive" : "gone");
      const watch = () => {
        if (!present()) done("gone");
      };
      const timer = setTimeout(() => done(present() ? "dead" : "gone"), AGENT_LIMITS.probeMs);
      timer.unref();
      room.watchers.add(watch);
      ws.on("pong", onPong);
      try {
        ws.ping();
      } catch {
        done(present() ? "dead" : "gone");
      }
    });
  }

  private unregister(conn: Connection, msg: RawMessage) {
    const h = this.parse(conn, msg);
    if (!h) return;
    const reg = typeof h.id === "string" ? this.hosts.get(conn)?.regs.get(h.id) : undefined;
    if (!reg) {
      conn.respond(msg.id, errorContent(`no toolkit registration ${quote(String(h.id))} of this participant`, ErrorCode.NOT_FOUND));
      return;
    }
    this.remove(reg, "unregistered");
    conn.respond(msg.id, empty());
  }

  /** Drop a registration; its calls in flight end with an error naming why. */
  private remove(reg: Registration, reason: "unregistered" | "left" | "unresponsive") {
    const hs = this.hosts.get(reg.host);
    const room = this.registry(reg.host.room);
    if (!hs?.regs.delete(reg.id)) return;
    if (room.byName.get(reg.name) === reg) room.byName.delete(reg.name);
    room.bytes -= reg.bytes;
    const err =
      reason === "unregistered"
        ? new ToolError(`toolkit ${quote(reg.name)} was unregistered by its host before it answered`, ErrorCode.OPERATION_FAILED)
        : new ToolError(
            `the host of toolkit ${quote(reg.name)} (${who(reg.host)}) ${reason === "left" ? "left the room" : "stopped answering and was disconnected"} before it answered`,
            ErrorCode.OPERATION_FAILED,
          );
    const outcome: Outcome = reason === "unregistered" ? "unregistered" : "host_left";
    for (const rc of [...hs.calls.values(), ...hs.streams.values()]) if (rc.reg === reg) this.fail(rc, err, outcome);
    this.recorder.other(
      reg.host.room,
      "toolkit.unregistered",
      { toolkit: reg.name, registration_id: reg.id, participant_id: reg.host.id, name: reg.host.name, reason },
      {
        name: "room.toolkit",
        at: reg.at,
        durationMs: performance.now() - reg.t0,
        ok: true,
        participant: reg.host.name,
        attributes: { toolkit: reg.name, public: reg.public, "participant.id": reg.host.id, reason },
      },
    );
    this.changed(room);
  }

  private dropHost(conn: Connection, reason: "left" | "unresponsive") {
    const hs = this.hosts.get(conn);
    if (!hs) return;
    for (const reg of [...hs.regs.values()]) this.remove(reg, reason);
  }

  /** The connection closed: its toolkits go (their calls fail), and calls it made are forgotten. */
  left(conn: Connection) {
    this.dropHost(conn, "left");
    this.hosts.delete(conn);
    const mine = this.callers.get(conn);
    if (mine) {
      for (const rc of [...mine]) {
        if (rc.stream && !rc.done) this.tellHostClosed(rc, 1001);
        this.fail(rc, new ToolError("the caller left", ErrorCode.OPERATION_FAILED), "caller_left");
      }
      this.callers.delete(conn);
    }
  }

  private visible(conn: Connection, f: { id?: string; name?: string }): Registration[] {
    const r = this.registries.get(conn.room);
    if (!r) return [];
    const out: Registration[] = [];
    for (const reg of r.byName.values()) {
      if (!reg.public && reg.host !== conn) continue;
      if (f.id !== undefined && reg.host.id !== f.id) continue;
      if (f.name !== undefined && reg.host.name !== f.name && reg.host.attributes.name !== f.name) continue;
      if (!conn.scope.agentsToolkitAllowed(reg.name)) continue;
      out.push(reg);
    }
    return out;
  }

  private async list(conn: Connection, msg: RawMessage) {
    const h = this.parse(conn, msg);
    if (!h) return;
    try {
      conn.scope.agentsUseTools();
      const f: { id?: string; name?: string } = {};
      for (const [key, k] of [
        ["participant_id", "id"],
        ["participant_name", "name"],
      ] as const) {
        const v = h[key];
        if (v === undefined || v === null) continue;
        if (typeof v !== "string") throw invalid(`${key} must be a string`);
        f[k] = v;
      }
      const t = h.timeout ?? 0;
      if (typeof t !== "number" || !Number.isFinite(t) || t < 0) throw invalid("timeout must be a number of seconds >= 0");
      let found = this.visible(conn, f);
      if (!found.length && t > 0) {
        const refused = conn.beginCall();
        if (refused) return conn.respond(msg.id, refused);
        try {
          found = await this.waitFor(conn, f, Math.min(t, AGENT_LIMITS.listTimeoutSeconds) * 1000);
        } finally {
          conn.endCall();
        }
      }
      const parts = found.map((r) => `${JSON.stringify(r.name)}:${r.listed}`);
      conn.send("__response__", packedJsonText(`{"type":"json","json":{"tools":{${parts.join(",")}}}}`).payload, msg.id);
    } catch (e) {
      conn.respond(msg.id, conn.errorFor(e, "room.list_toolkits"));
    }
  }

  /** Wait until a matching toolkit is registered, `ms` passed, or the connection closed. */
  private waitFor(conn: Connection, f: { id?: string; name?: string }, ms: number): Promise<Registration[]> {
    const room = this.registry(conn.room);
    return new Promise((resolve) => {
      const signal = conn.abort.signal;
      const done = (v: Registration[]) => {
        clearTimeout(timer);
        room.watchers.delete(watch);
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      };
      const watch = () => {
        const v = this.visible(conn, f);
        if (v.length) done(v);
      };
      const onAbort = () => done([]);
      const timer = setTimeout(() => done(this.visible(conn, f)), ms);
      timer.unref();
      room.watchers.add(watch);
      signal.addEventListener("abort", onAbort);
      if (signal.aborted) onAbort();
    });
  }

  // ---------------------------------------------------------------- routing

  /**
   * A toolkit of `room.invoke_tool` that is not the server's: the hosted toolkit that answers it through its host, or
   * a ToolError naming why it cannot be called (Connection answers with it).
   */
  route(conn: Connection, toolkit: string, tool: string, header: Record<string, unknown>, tail: Buffer): Toolkit {
    conn.scope.agentsInvoke(toolkit);
    const reg = this.registries.get(conn.room)?.byName.get(toolkit);
    const starting = reg ? null : this.deps.demand?.(conn.room, toolkit);
    if (starting) {
      // An on_demand service declares it: start it, wait for its agent to register the toolkit, then route the call.
      return {
        tools: {
          [tool]: async (call: ToolCall) => {
            const deadline = this.deps.clock.now() + this.deps.timeoutMs;
            if (!(await starting))
              throw new ToolError(`the service that hosts toolkit ${quote(toolkit)} could not start (see services.list)`, ErrorCode.OPERATION_FAILED);
            await this.waitRegistered(conn.room, toolkit, deadline - this.deps.clock.now());
            return this.route(conn, toolkit, tool, header, tail).tools[tool](call);
          },
        },
      };
    }
    if (!reg || (!reg.public && reg.host !== conn)) throw new ToolError(`no toolkit ${quote(toolkit)} is hosted in this room`, ErrorCode.NOT_FOUND);
    const pid = header.participant_id;
    if (typeof pid === "string" && pid && pid !== reg.host.id)
      throw new ToolError(`toolkit ${quote(toolkit)} is hosted by another participant, not by ${quote(pid)}`, ErrorCode.NOT_FOUND);
    if (!reg.tools.has(tool)) throw new ToolError(`toolkit ${quote(toolkit)} has no tool ${quote(tool)}`, ErrorCode.NOT_FOUND);
    return {
      tools: { [tool]: (call: ToolCall) => this.forward(call, reg, tool, header, tail) },
      streams: { [tool]: (call: ToolCall, out: (c: Content) => void) => this.forwardStream(call, out, reg, tool, header) },
    };
  }

  private readonly registered = new WeakMap<ActiveRoom<Connection>, Map<string, Set<() => void>>>();

  /** Resolves once toolkit `name` is registered in the room; a ToolError (timeout) after `ms`. */
  private waitRegistered(room: ActiveRoom<Connection>, name: string, ms: number): Promise<void> {
    if (this.registries.get(room)?.byName.has(name)) return Promise.resolve();
    let byName = this.registered.get(room);
    if (!byName) this.registered.set(room, (byName = new Map()));
    let set = byName.get(name);
    if (!set) byName.set(name, (set = new Set()));
    const waiters = set;
    return new Promise<void>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(
        () => {
          waiters.delete(done);
          reject(
            new ToolError(
              `the on_demand service of toolkit ${quote(name)} started but did not register it within ${Math.round(ms / 1000)} s`,
              ErrorCode.TIMEOUT,
            ),
          );
        },
        Math.max(0, ms),
      );
      waiters.add(done);
    });
  }

  /** The request a host gets: what 0.39.9 reads (name, arguments) and what Python hosts read too. */
  private hostRequest(call: ToolCall, reg: Registration, tool: string, header: Record<string, unknown>, args: unknown, toolCallId: string) {
    return {
      name: tool,
      arguments: args,
      toolkit: reg.name,
      caller_id: call.conn.id,
      tool_call_id: toolCallId,
      ...(header.caller_context !== undefined ? { caller_context: header.caller_context } : {}),
      ...(header.on_behalf_of_id !== undefined ? { on_behalf_of_id: header.on_behalf_of_id } : {}),
    };
  }

  private admit(reg: Registration): HostState {
    const hs = this.hosts.get(reg.host);
    if (!hs || reg.host.closed || !hs.regs.has(reg.id)) throw new ToolError(`the host of toolkit ${quote(reg.name)} left the room`, ErrorCode.OPERATION_FAILED);
    if (hs.calls.size >= AGENT_LIMITS.pendingPerHost)
      throw new ToolError(`the host of toolkit ${quote(reg.name)} has ${hs.calls.size} calls waiting for it; try again later`, ErrorCode.INVALID_STATE);
    return hs;
  }

  private track(rc: Routed, hs: HostState) {
    hs.calls.set(rc.id, rc);
    let mine = this.callers.get(rc.caller);
    if (!mine) this.callers.set(rc.caller, (mine = new Set()));
    mine.add(rc);
    rc.timer = setTimeout(() => {
      rc.timer = null;
      this.fail(
        rc,
        new ToolError(
          `toolkit ${quote(rc.reg.name)} (${who(rc.reg.host)}) did not answer ${rc.reg.name}.${rc.tool} within ${this.deps.timeoutMs / 1000} s`,
          ErrorCode.TIMEOUT,
        ),
        "timeout",
      );
    }, this.deps.timeoutMs);
    rc.timer.unref();
    rc.caller.room.stats.toolCalls++;
  }

  private forward(call: ToolCall, reg: Registration, tool: string, header: Record<string, unknown>, tail: Buffer): Promise<Content | Packed> {
    const hs = this.admit(reg);
    const id = nextServerMessageId();
    return new Promise((resolve, reject) => {
      const rc: Routed = { id, caller: call.conn, reg, tool, at: this.deps.clock.now(), t0: performance.now(), timer: null, done: false, resolve, reject };
      this.track(rc, hs);
      const args = header.arguments ?? { type: "empty" };
      reg.host.send(reg.messageType, pack(this.hostRequest(call, reg, tool, header, args, call.toolCallId ?? String(id)), tail.length ? tail : undefined), id);
    });
  }

  /**
   * A streaming call (room-protocol.md §3.3) through the relay. The host gets `room.tool_call.<toolkit>` with
   * `arguments` control/open and a tool_call_id of the server's; its answer (control/open, or an error) answers the
   * caller's invoke. The caller's request chunks go to the host as `room.tool_call_request_chunk`, the host's
   * `room.tool_call_response_chunk`s to the caller, until the host sends control/close.
   */
  private forwardStream(call: ToolCall, out: (c: Content) => void, reg: Registration, tool: string, header: Record<string, unknown>): ToolStream {
    const hs = this.admit(reg);
    const id = nextServerMessageId();
    const hostCallId = String(id);
    let ready!: (c: Content) => void;
    const answer = new Promise<Content>((r) => (ready = r));
    const rc: Routed = {
      id,
      caller: call.conn,
      reg,
      tool,
      at: this.deps.clock.now(),
      t0: performance.now(),
      timer: null,
      done: false,
      stream: { hostCallId, out, answered: false, ready },
    };
    this.track(rc, hs);
    hs.streams.set(hostCallId, rc);
    reg.host.send(reg.messageType, pack(this.hostRequest(call, reg, tool, header, { type: "control", method: "open" }, hostCallId)), id);
    return {
      ready: answer,
      chunk: async (c) => {
        if (rc.done) return;
        const { header: ch, tail } = contentParts(c);
        reg.host.send("room.tool_call_request_chunk", pack({ tool_call_id: hostCallId, chunk: ch }, tail), nextServerMessageId());
      },
      abort: async () => {
        if (rc.done) return;
        this.tellHostClosed(rc, 1001);
        this.end(rc, "caller_left");
      },
    };
  }

  /** Tell a stream's host that the caller is gone (a close request chunk). */
  private tellHostClosed(rc: Routed, status: number) {
    if (!rc.stream || rc.reg.host.closed) return;
    rc.reg.host.send(
      "room.tool_call_request_chunk",
      pack({ tool_call_id: rc.stream.hostCallId, chunk: { type: "control", method: "close", status_code: status } }),
      nextServerMessageId(),
    );
  }

  /** Forget a call (answered, failed or abandoned) and record it. */
  private end(rc: Routed, outcome: Outcome, error?: string) {
    if (rc.done) return false;
    rc.done = true;
    if (rc.timer) clearTimeout(rc.timer);
    const hs = this.hosts.get(rc.reg.host);
    if (hs) {
      if (hs.calls.get(rc.id) === rc) hs.calls.delete(rc.id);
      if (rc.stream && hs.streams.get(rc.stream.hostCallId) === rc) hs.streams.delete(rc.stream.hostCallId);
    }
    this.callers.get(rc.caller)?.delete(rc);
    this.recorder.toolCall(rc, outcome, error);
    return true;
  }

  /** End a call with an error the caller sees (its answer, or on a stream an error chunk and close). */
  private fail(rc: Routed, err: ToolError, outcome: Outcome) {
    if (rc.done) return;
    if (rc.stream) {
      if (!rc.stream.answered) {
        rc.stream.answered = true;
        rc.stream.ready(errorContent(err.message, err.code));
      } else if (!rc.caller.closed) {
        rc.stream.out(errorContent(err.message, err.code));
        rc.stream.out(control("close", 1011));
      }
      this.end(rc, outcome, err.message);
      return;
    }
    this.end(rc, outcome, err.message);
    rc.reject!(err);
  }

  /** room.tool_call_response from a host: the answer to call `msg.id`. */
  private toolCallResponse(host: Connection, msg: RawMessage) {
    const hs = this.hosts.get(host);
    const rc = hs?.calls.get(msg.id);
    if (!rc) return; // a late answer (the call timed out or its caller left), or not an answer to anything
    let c: Content;
    try {
      c = unpackContent(msg.payload);
    } catch (e) {
      const m = e instanceof ProtocolError ? e.message : String(e);
      this.deps.onError(host, "malformed_tool_call_response", { toolkit: rc.reg.name, tool: rc.tool, message: m });
      this.fail(
        rc,
        new ToolError(`the host of toolkit ${quote(rc.reg.name)} answered with a malformed response: ${m}`, ErrorCode.OPERATION_FAILED),
        "malformed",
      );
      return;
    }
    const error = c.type === "error" ? c.text : undefined;
    if (rc.stream) {
      // The host's answer to the open: the stream goes on (control/open) or ends with that answer.
      rc.stream.answered = true;
      hs!.calls.delete(rc.id);
      if (rc.timer) clearTimeout(rc.timer);
      rc.timer = null;
      rc.stream.ready(c);
      if (c.type !== "control" || c.method !== "open") this.end(rc, error === undefined ? "ok" : "error", error);
      return;
    }
    this.end(rc, error === undefined ? "ok" : "error", error);
    rc.resolve!(new Packed(msg.payload));
  }

  /** room.tool_call_response_chunk from a host: the next output chunk of a relayed stream. */
  private responseChunk(host: Connection, msg: RawMessage) {
    const h = this.parse(host, msg, false);
    if (!h) return;
    const id = h.tool_call_id;
    const rc = typeof id === "string" ? this.hosts.get(host)?.streams.get(id) : undefined;
    if (!rc?.stream) return;
    let c: Content;
    try {
      c = contentFrom(h.chunk, unpack(msg.payload).tail);
    } catch (e) {
      this.deps.onError(host, "malformed_tool_call_response", { toolkit: rc.reg.name, tool: rc.tool, message: (e as Error).message });
      this.fail(
        rc,
        new ToolError(`the host of toolkit ${quote(rc.reg.name)} sent a malformed chunk: ${(e as Error).message}`, ErrorCode.OPERATION_FAILED),
        "malformed",
      );
      return;
    }
    rc.stream.out(c);
    if (c.type === "control" && c.method === "close") this.end(rc, "ok");
  }

  // ---------------------------------------------------------------- room.call

  private async roomCall(conn: Connection, msg: RawMessage) {
    const h = this.parse(conn, msg);
    if (!h) return;
    let started: { at: number; t0: number; name: string; url: string } | null = null;
    try {
      conn.scope.agentsCall();
      const name = nameOf(h.name, "name");
      if (typeof h.url !== "string" || !h.url || h.url.length > AGENT_LIMITS.urlLength)
        throw invalid(`url must be an http(s) or ws(s) URL of at most ${AGENT_LIMITS.urlLength} characters`);
      let url: URL;
      try {
        url = new URL(h.url);
      } catch {
        throw invalid("url must be an http(s) or ws(s) URL");
      }
      if (!["http:", "https:", "ws:", "wss:"].includes(url.protocol)) throw invalid("url must be an http(s) or ws(s) URL");
      const refused = conn.beginCall();
      if (refused) return conn.respond(msg.id, refused);
      started = { at: this.deps.clock.now(), t0: performance.now(), name, url: sanitizedUrl(url) };
      let r: { status: number; via: string };
      try {
        r = await this.withTimeout(
          this.deps.calls.call({
            projectId: conn.room.room.project_id,
            roomId: conn.room.id,
            roomName: conn.room.room.name,
            name,
            url: h.url,
            arguments: h.arguments,
            callerId: conn.id,
          }),
        );
      } finally {
        conn.endCall();
      }
      this.recordCall(conn, started, true, { status: r.status, via: r.via });
      conn.respond(msg.id, json({}));
    } catch (e) {
      let c: Content;
      if (e instanceof ToolError || e instanceof ApiError) c = conn.errorFor(e, "room.call");
      else {
        this.deps.onError(conn, "tool_failed", { tool: "room.call", message: String((e as Error)?.message ?? e) });
        c = errorContent(`room.call failed: ${String((e as Error)?.message ?? e)}`, ErrorCode.OPERATION_FAILED);
      }
      if (started) this.recordCall(conn, started, false, { error: c.type === "error" ? c.text : String(e) });
      conn.respond(msg.id, c);
    }
  }

  /** The handoff has its own timeout; this one is the backstop so no room.call can hang. */
  private withTimeout<T>(p: Promise<T>): Promise<T> {
    let t: NodeJS.Timeout;
    return Promise.race([
      p.finally(() => clearTimeout(t)),
      new Promise<T>((_, reject) => {
        t = setTimeout(() => reject(new ToolError(`room.call did not finish within ${this.deps.timeoutMs / 1000} s`, ErrorCode.TIMEOUT)), this.deps.timeoutMs);
        t.unref();
      }),
    ]);
  }

  private recordCall(conn: Connection, s: { at: number; t0: number; name: string; url: string }, ok: boolean, detail: Record<string, unknown>) {
    const durationMs = performance.now() - s.t0;
    this.recorder.other(
      conn.room,
      "room.call",
      {
        participant_id: conn.id,
        caller_name: conn.name,
        name: s.name,
        url: s.url,
        outcome: ok ? "ok" : "error",
        duration_ms: Math.round(durationMs * 1000) / 1000,
        ...detail,
      },
      {
        name: "room.call",
        at: s.at,
        durationMs,
        ok,
        message: ok ? undefined : String(detail.error ?? ""),
        participant: conn.name,
        attributes: { "participant.id": conn.id, "call.name": s.name, "call.url": s.url, ...detail },
      },
    );
  }

  // ---------------------------------------------------------------- sessions

  /** Write what is buffered for a session now (before its participant.left / room.ended). */
  flush(sessionId?: string) {
    this.recorder.flush(sessionId);
  }
}

interface SpanInput {
  name: string;
  at: number;
  durationMs: number;
  ok: boolean;
  message?: string;
  participant: string;
  attributes: Record<string, unknown>;
}

type NewSpan = Parameters<SessionsService["addSpans"]>[1][number];

/**
 * Tool calls, registrations and room.call handoffs as session events and spans. Buffered and written in batches
 * (every RECORD_FLUSH_MS), at most AGENT_LIMITS.recordedCalls calls and recordedOther others per session; past that
 * they are only counted (room.tool_calls, usage).
 */
export class AgentRecorder {
  private readonly pending = new Map<string, { events: { type: string; data: unknown; at: number }[]; spans: NewSpan[] }>();
  private readonly left = new WeakMap<ActiveRoom<Connection>, { calls: number; other: number }>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly sessions: Pick<SessionsService, "events" | "addSpans">,
    private readonly clock: Clock,
  ) {}

  private budget(room: ActiveRoom<Connection>) {
    let b = this.left.get(room);
    if (!b) this.left.set(room, (b = { calls: AGENT_LIMITS.recordedCalls, other: AGENT_LIMITS.recordedOther }));
    return b;
  }

  private push(room: ActiveRoom<Connection>, type: string, data: unknown, span?: SpanInput) {
    const sid = room.session.id;
    let p = this.pending.get(sid);
    if (!p) this.pending.set(sid, (p = { events: [], spans: [] }));
    const now = this.clock.now();
    p.events.push({ type, data, at: now });
    if (span)
      p.spans.push({
        session_id: sid,
        trace_id: randomBytes(16).toString("hex"),
        span_id: randomBytes(8).toString("hex"),
        parent_span_id: null,
        name: span.name,
        kind: 2,
        start_ms: span.at,
        duration_ns: Math.max(0, Math.round(span.durationMs * 1e6)),
        status_code: span.ok ? 1 : 2,
        status_message: span.ok ? null : (span.message ?? "").slice(0, 1000),
        attributes: JSON.stringify(span.attributes),
        resource_attributes: JSON.stringify({ "service.name": "meshagent-room-server" }),
        participant_name: span.participant,
      });
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.flush();
      }, RECORD_FLUSH_MS);
      this.timer.unref();
    }
  }

  toolCall(rc: Routed, outcome: Outcome, error?: string) {
    const room = rc.caller.room;
    const b = this.budget(room);
    if (b.calls <= 0) return;
    b.calls--;
    const durationMs = performance.now() - rc.t0;
    const data = {
      toolkit: rc.reg.name,
      tool: rc.tool,
      caller_id: rc.caller.id,
      caller_name: rc.caller.name,
      host_id: rc.reg.host.id,
      host_name: rc.reg.host.name,
      stream: !!rc.stream,
      duration_ms: Math.round(durationMs * 1000) / 1000,
      outcome,
      ...(error !== undefined ? { error: error.slice(0, 1000) } : {}),
    };
    this.push(room, "tool_call", data, {
      name: "room.tool_call",
      at: rc.at,
      durationMs,
      ok: outcome === "ok",
      message: error ?? outcome,
      participant: rc.caller.name,
      attributes: {
        toolkit: rc.reg.name,
        tool: rc.tool,
        "caller.id": rc.caller.id,
        "host.id": rc.reg.host.id,
        "host.name": rc.reg.host.name,
        stream: !!rc.stream,
        outcome,
      },
    });
    if (b.calls === 0)
      this.push(room, "tool_call.limit", {
        recorded: AGENT_LIMITS.recordedCalls,
        message: `the first ${AGENT_LIMITS.recordedCalls} tool calls of the session are recorded one by one; later ones only count in room.tool_calls`,
      });
  }

  other(room: ActiveRoom<Connection>, type: string, data: unknown, span?: SpanInput) {
    const b = this.budget(room);
    if (b.other <= 0) return;
    b.other--;
    this.push(room, type, data, span);
  }

  /** Hand what is buffered (for one session, or all) to the sessions service, which writes it in order. */
  flush(sessionId?: string) {
    const ids = sessionId === undefined ? [...this.pending.keys()] : [sessionId];
    for (const sid of ids) {
      const p = this.pending.get(sid);
      if (!p) continue;
      this.pending.delete(sid);
      if (p.events.length) void this.sessions.events(sid, p.events).catch(() => {});
      if (p.spans.length) void this.sessions.addSpans(sid, p.spans).catch(() => {});
    }
  }
}
