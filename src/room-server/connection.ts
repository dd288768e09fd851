import type { WebSocket } from "ws";
import { ApiError } from "../core/errors.js";
import { isObj } from "../core/json.js";
import {
  contentFrom,
  encodeMessage,
  ErrorCode,
  errorContent,
  empty,
  nextServerMessageId,
  pack,
  packContent,
  Packed,
  contentParts,
  ProtocolError,
  Reassembler,
  ToolError,
  unpack,
  type Content,
  type RawMessage,
} from "./protocol.js";
import type { RoomScope } from "./scope.js";
import type { ActiveRoom, RoomMember } from "./room.js";
import type { AgentsRouter } from "./agents.js";

/** A streaming tool call (storage upload/download): request chunks in, response chunks out. */
export interface ToolStream {
  /**
   * One request chunk, in arrival order (the caller serializes them). With `ackAfterChunk`, it may resolve to
   * `{ acked }`: the next chunk is taken at once, this one's acknowledgement waits for `acked` (a sync update's
   * durability).
   */
  chunk(c: Content): Promise<void | { acked: Promise<unknown> }>;
  /**
   * Acknowledge each request chunk only once `chunk()` resolved (and its `acked`), instead of on arrival. The client
   * sends the next chunk after the ack, so this also paces it.
   */
  ackAfterChunk?: boolean;
  /** The socket closed or the call was abandoned: release what it holds. */
  abort(): Promise<void>;
  /**
   * The answer to the invoke, when it is not an immediate `control/open` (a relayed stream: the host's answer). Any
   * other answer than `control/open` ends the call.
   */
  ready?: Promise<Content>;
}

export interface ToolCall {
  conn: Connection;
  room: ActiveRoom<Connection>;
  input: Content;
  /** The JSON object of a `json` input ({} otherwise). */
  args: Record<string, unknown>;
  toolCallId?: string;
}

export interface Toolkit {
  /** A tool answers with a Content value, or with one already packed (a hosted toolkit's answer, relayed as it is). */
  tools: Record<string, (call: ToolCall) => Promise<Content | Packed>>;
  /** Tools called with `control/open` and a tool_call_id: they answer through a ToolStream. */
  streams?: Record<string, (call: ToolCall, out: (c: Content) => void) => ToolStream>;
  /**
   * Long-lived streams (open sync documents): counted against this many per participant instead of
   * MESHAGENT_ROOM_MAX_STREAMS, which is for transfers.
   */
  maxStreams?: number;
}

/** Slow readers: a socket that has this much unsent output is closed instead of buffering without bound. */
const MAX_BUFFERED = 64 * 1024 * 1024;

/** What one participant (one connection) may do at once (config.ts documents each variable). */
export interface ConnectionLimits {
  /** Largest protocol message, in bytes. */
  maxMessageBytes: number;
  /** The token bucket of incoming messages: refilled at this rate, holding at most `messageBurst`. */
  maxMessagesPerSecond: number;
  messageBurst: number;
  /** Non-streaming tool calls in flight. */
  maxToolCalls: number;
  /** Streaming tool calls open. */
  maxStreams: number;
}

/**
 * Flooding: messages refused by the token bucket fill a second bucket that drains at FLOOD_FACTOR × the rate; once it
 * holds more than FLOOD_SECONDS of that, i.e. the participant kept sending well over FLOOD_FACTOR × the rate, the
 * connection is closed with 1008 (policy violation).
 */
export const FLOOD_FACTOR = 10;
export const FLOOD_SECONDS = 2;

export interface ConnectionInfo {
  id: string;
  name: string;
  role: string;
  scope: RoomScope;
  attributes: Record<string, unknown>;
}

/**
 * One participant's socket: frames in (reassembled, dispatched concurrently), frames out (each message's frames
 * written back to back in one synchronous loop, so messages never interleave).
 */
export class Connection implements RoomMember {
  readonly id: string;
  readonly name: string;
  readonly role: string;
  readonly scope: RoomScope;
  attributes: Record<string, unknown>;
  messaging = false;
  closed = false;
  /** Aborted when the socket closes: ends long polls. */
  readonly abort = new AbortController();
  private readonly streams = new Map<string, { stream: ToolStream; tail: Promise<void>; toolkit: string }>();
  private readonly reasm: Reassembler;
  /** Token bucket (monotonic ms; the rate limit is about real time, not the app's clock). */
  private tokens: number;
  private refilledAt = performance.now();
  private flood = 0;
  private floodAt = 0;
  /** Closed for flooding: the rest of what it sent is ignored. */
  private ending = false;
  /** Non-streaming tool calls in flight. */
  private calls = 0;

  constructor(
    readonly ws: WebSocket,
    readonly room: ActiveRoom<Connection>,
    info: ConnectionInfo,
    private readonly limits: ConnectionLimits,
    private readonly toolkits: Record<string, Toolkit>,
    private readonly onError: (conn: Connection, what: string, detail: Record<string, unknown>) => void,
    /** Toolkits participants host, room.call (agents.ts); without it those requests are unsupported. */
    private readonly agents?: AgentsRouter,
  ) {
    this.id = info.id;
    this.name = info.name;
    this.role = info.role;
    this.scope = info.scope;
    this.attributes = info.attributes;
    this.reasm = new Reassembler(limits.maxMessageBytes);
    this.tokens = limits.messageBurst;
  }

  private corked = false;

  /** Write already-encoded frames (a message encoded once for many recipients). */
  sendFrames(frames: Buffer[]) {
    if (this.closed || this.ws.readyState !== 1) return;
    if (this.ws.bufferedAmount > MAX_BUFFERED) {
      this.close(1008, "the participant is not reading its messages");
      return;
    }
    this.cork();
    let n = 0;
    for (const f of frames) {
      this.ws.send(f, { binary: true });
      n += f.length;
    }
    this.room.stats.bytesOut += n;
  }

  /**
   * Hold this turn's frames and write them together once the current work (a batch of queue answers, a
   * broadcast) is done: one syscall for many small frames instead of one each.
   */
  private cork() {
    if (this.corked) return;
    const socket = (this.ws as unknown as { _socket?: { cork(): void; uncork(): void } })._socket;
    if (!socket) return;
    this.corked = true;
    socket.cork();
    process.nextTick(() => {
      this.corked = false;
      socket.uncork();
    });
  }

  send(type: string, payload: Buffer, id = nextServerMessageId()) {
    this.sendFrames(encodeMessage(id, type, payload));
  }

  respond(id: number, c: Content) {
    this.send("__response__", packContent(c), id);
  }

  /** A server→client `messaging.send`. */
  deliver(from: string, type: string, message: unknown, attachment?: Buffer) {
    this.send("messaging.send", pack({ from_participant_id: from, type, message }, attachment));
  }

  close(code: number, reason: string) {
    if (this.ws.readyState === 0 || this.ws.readyState === 1) this.ws.close(code, reason.slice(0, 120));
  }

  /** Called once when the socket closed: stop long polls and streams. */
  shutdown() {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    for (const { stream } of this.streams.values()) void stream.abort().catch(() => {});
    this.streams.clear();
  }

  /** One WebSocket message (= one protocol packet). Never throws. */
  onFrame(frame: Buffer) {
    if (this.closed || this.ending) return;
    this.room.stats.bytesIn += frame.length;
    let msg: RawMessage | null;
    try {
      // Each malformed packet costs a message of the rate too (it may cost an error response).
      msg = this.reasm.push(frame, (e) => this.admit() && this.malformed(e));
    } catch (e) {
      if (this.admit()) this.malformed(new ProtocolError(String((e as Error)?.message ?? e)));
      return;
    }
    if (!msg) return;
    // A host's answer to a call the server sent it is not held to the rate: the callers' own requests were.
    if (msg.type === "room.tool_call_response" && this.agents?.expects(this, msg.id)) this.dispatch(msg);
    else if (this.admit()) this.dispatch(msg);
    else if (msg.type === "room.tool_call_response" || msg.type === "room.tool_call_response_chunk")
      this.agents?.limited(this, msg); // one-way: no answer; a stream it belonged to ends with an error
    else if (!this.ending && msg.type !== "__response__" && msg.type !== "set_attributes")
      this.respond(
        msg.id,
        errorContent(
          `rate limit: at most ${this.limits.maxMessagesPerSecond} messages per second (bursts of ${this.limits.messageBurst}) per participant; slow down`,
          ErrorCode.INVALID_STATE,
        ),
      );
  }

  /**
   * The token bucket: whether one more message may be handled now. A refused one goes to the flood meter, which
   * closes the connection (1008) when the participant keeps sending far over the rate.
   */
  private admit(): boolean {
    const now = performance.now();
    const { maxMessagesPerSecond: rate, messageBurst: burst } = this.limits;
    if (this.tokens < burst) this.tokens = Math.min(burst, this.tokens + ((now - this.refilledAt) * rate) / 1000);
    this.refilledAt = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    const drain = FLOOD_FACTOR * rate;
    this.flood = Math.max(0, this.flood - ((now - this.floodAt) * drain) / 1000) + 1;
    this.floodAt = now;
    if (this.flood > drain * FLOOD_SECONDS && !this.ending) {
      this.ending = true;
      this.onError(this, "rate_limited", { message: `kept sending over ${drain} messages per second`, limit: rate });
      this.close(1008, `rate limit: kept sending over ${drain} messages per second (at most ${rate} allowed)`);
    }
    return false;
  }

  /** A frame or message that cannot be understood: an error response when it has an id, else a developer.log. */
  private malformed(e: ProtocolError) {
    this.onError(this, "malformed_frame", { message: e.message });
    if (e.messageId !== null) this.respond(e.messageId, errorContent(`malformed message: ${e.message}`, ErrorCode.INVALID_REQUEST));
    else this.send("developer.log", pack({ type: "error", data: { message: `malformed frame: ${e.message}` } }));
  }

  private dispatch(msg: RawMessage) {
    switch (msg.type) {
      case "room.invoke_tool":
        return this.invokeTool(msg);
      case "room.tool_call_request_chunk":
        return this.requestChunk(msg);
      case "set_attributes":
        return this.setAttributes(msg);
      case "room.register_toolkit":
      case "room.unregister_toolkit":
      case "room.list_toolkits":
      case "room.call":
      case "room.tool_call_response":
      case "room.tool_call_response_chunk":
        if (this.agents) return this.agents.handle(this, msg);
        break;
      case "__response__":
        return; // acknowledgements of server→client messages (relayed request chunks): nothing to do
    }
    this.respond(msg.id, errorContent(`unsupported message type ${JSON.stringify(msg.type.slice(0, 100))}`, ErrorCode.INVALID_REQUEST));
  }

  /** Count one more tool call in flight, or the error answer when the participant has MESHAGENT_ROOM_MAX_TOOL_CALLS. */
  beginCall(): Content | null {
    if (this.calls >= this.limits.maxToolCalls)
      return errorContent(
        `limit: at most ${this.limits.maxToolCalls} tool calls may be in flight per participant; wait for one to finish`,
        ErrorCode.INVALID_STATE,
      );
    this.calls++;
    return null;
  }

  endCall() {
    this.calls--;
  }

  private parse(msg: RawMessage): { header: Record<string, unknown>; tail: Buffer } | null {
    try {
      return unpack(msg.payload);
    } catch (e) {
      this.malformed(new ProtocolError((e as Error).message, msg.id));
      return null;
    }
  }

  private invokeTool(msg: RawMessage) {
    const p = this.parse(msg);
    if (!p) return;
    const { header, tail } = p;
    const toolkitName = header.toolkit;
    const toolName = header.tool;
    if (typeof toolkitName !== "string" || typeof toolName !== "string") {
      this.respond(msg.id, errorContent("room.invoke_tool needs string toolkit and tool", ErrorCode.INVALID_REQUEST));
      return;
    }
    let input: Content;
    try {
      input = header.arguments === undefined || header.arguments === null ? empty() : contentFrom(header.arguments, tail);
    } catch (e) {
      this.respond(msg.id, errorContent(`invalid arguments: ${(e as Error).message}`, ErrorCode.INVALID_REQUEST));
      return;
    }
    let toolkit = Object.hasOwn(this.toolkits, toolkitName) ? this.toolkits[toolkitName] : undefined;
    if (!toolkit && this.agents) {
      // Not a built-in toolkit: one a participant hosts (the call is routed to it), or an error naming why not.
      try {
        toolkit = this.agents.route(this, toolkitName, toolName, header, tail);
      } catch (e) {
        this.respond(msg.id, this.errorFor(e, `${toolkitName}.${toolName}`));
        return;
      }
    }
    const toolCallId = typeof header.tool_call_id === "string" && header.tool_call_id ? header.tool_call_id : undefined;
    const call: ToolCall = { conn: this, room: this.room, input, args: input.type === "json" && isObj(input.json) ? input.json : {}, toolCallId };

    if (input.type === "control" && input.method === "open") {
      // A streaming call: register it synchronously, before any of its chunks can be handled.
      const open = toolkit?.streams && Object.hasOwn(toolkit.streams, toolName) ? toolkit.streams[toolName] : undefined;
      if (!open) {
        this.respond(msg.id, errorContent(`${toolkitName}.${toolName} is not a streaming tool of this server`, ErrorCode.INVALID_REQUEST));
        return;
      }
      if (!toolCallId) {
        this.respond(msg.id, errorContent("a streaming tool call needs a tool_call_id", ErrorCode.INVALID_REQUEST));
        return;
      }
      if (this.streams.has(toolCallId)) {
        this.respond(msg.id, errorContent(`tool call ${toolCallId} is already open`, ErrorCode.INVALID_REQUEST));
        return;
      }
      const own = toolkit?.maxStreams;
      let count = 0;
      for (const e of this.streams.values())
        if (own !== undefined ? e.toolkit === toolkitName : !Object.hasOwn(this.toolkits, e.toolkit) || this.toolkits[e.toolkit].maxStreams === undefined)
          count++;
      const max = own ?? this.limits.maxStreams;
      if (count >= max) {
        this.respond(
          msg.id,
          errorContent(
            own !== undefined
              ? `limit: at most ${max} ${toolkitName} streams may be open per participant; close one first`
              : `limit: at most ${max} streaming tool calls (uploads, downloads) may be open per participant; finish one first`,
            ErrorCode.INVALID_STATE,
          ),
        );
        return;
      }
      const out = (c: Content) => {
        const { header: h, tail: t } = contentParts(c);
        this.send("room.tool_call_response_chunk", pack({ tool_call_id: toolCallId, chunk: h }, t));
        if (c.type === "control" && c.method === "close") this.streams.delete(toolCallId);
      };
      let stream: ToolStream;
      try {
        stream = open(call, out);
      } catch (e) {
        this.respond(msg.id, this.errorFor(e, `${toolkitName}.${toolName}`));
        return;
      }
      const entry = { stream, tail: Promise.resolve(), toolkit: toolkitName };
      this.streams.set(toolCallId, entry);
      if (!stream.ready) {
        this.respond(msg.id, { type: "control", method: "open" });
        return;
      }
      stream.ready.then(
        (c) => {
          this.respond(msg.id, c);
          if ((c.type !== "control" || c.method !== "open") && this.streams.get(toolCallId) === entry) this.streams.delete(toolCallId);
        },
        (e) => {
          this.respond(msg.id, this.errorFor(e, `${toolkitName}.${toolName}`));
          if (this.streams.get(toolCallId) === entry) this.streams.delete(toolCallId);
        },
      );
      return;
    }

    const tool = toolkit && Object.hasOwn(toolkit.tools, toolName) ? toolkit.tools[toolName] : undefined;
    if (!tool) {
      this.respond(msg.id, errorContent(`unknown tool ${toolkitName}.${toolName}`, ErrorCode.NOT_FOUND));
      return;
    }
    const refused = this.beginCall();
    if (refused) {
      this.respond(msg.id, refused);
      return;
    }
    let result: Promise<Content | Packed>;
    try {
      result = tool(call);
    } catch (e) {
      result = Promise.reject(e);
    }
    result.then(
      (c) => {
        this.calls--;
        if (c instanceof Packed) this.send("__response__", c.payload, msg.id);
        else this.respond(msg.id, c);
      },
      (e) => {
        this.calls--;
        this.respond(msg.id, this.errorFor(e, `${toolkitName}.${toolName}`));
      },
    );
  }

  /** A tool's failure as an error Content; unexpected ones are logged as session errors. */
  errorFor(e: unknown, what: string): Content {
    if (e instanceof ToolError) {
      if (e.code === ErrorCode.PERMISSION_DENIED) this.onError(this, "permission_denied", { tool: what, message: e.message });
      return errorContent(e.message, e.code);
    }
    if (e instanceof ApiError) {
      const code =
        e.code === "queue_not_found"
          ? ErrorCode.QUEUE_NOT_FOUND
          : e.status === 404
            ? ErrorCode.NOT_FOUND
            : e.status === 403
              ? ErrorCode.PERMISSION_DENIED
              : e.status === 409
                ? ErrorCode.CONFLICT
                : e.status === 429
                  ? ErrorCode.INVALID_STATE
                  : ErrorCode.INVALID_REQUEST;
      return errorContent(e.message, code);
    }
    this.onError(this, "tool_failed", { tool: what, message: String((e as Error)?.message ?? e) });
    return errorContent(`${what} failed`, ErrorCode.OPERATION_FAILED);
  }

  private requestChunk(msg: RawMessage) {
    const p = this.parse(msg);
    if (!p) return;
    const id = p.header.tool_call_id;
    let chunk: Content;
    try {
      chunk = contentFrom(p.header.chunk, p.tail);
    } catch (e) {
      this.respond(msg.id, errorContent(`invalid chunk: ${(e as Error).message}`, ErrorCode.INVALID_REQUEST));
      return;
    }
    const entry = typeof id === "string" ? this.streams.get(id) : undefined;
    if (!entry) {
      // The client's closing chunk may arrive after the server closed its side: it still gets its ack.
      if (chunk.type === "control" && chunk.method === "close") this.respond(msg.id, empty());
      else this.respond(msg.id, errorContent(`no open tool call ${JSON.stringify(id)}`, ErrorCode.INVALID_REQUEST));
      return;
    }
    const deferred = entry.stream.ackAfterChunk === true;
    if (!deferred) this.respond(msg.id, empty());
    entry.tail = entry.tail.then(() =>
      entry.stream.chunk(chunk).then(
        (r) => {
          if (!deferred) return;
          if (r && r.acked) void r.acked.finally(() => this.respond(msg.id, empty()));
          else this.respond(msg.id, empty());
        },
        (e) => {
          if (deferred) this.respond(msg.id, empty());
          // A stream reports its own errors as chunks; anything escaping is a bug: end the call cleanly.
          this.onError(this, "stream_failed", { message: String((e as Error)?.message ?? e) });
          if (typeof id === "string" && this.streams.has(id)) {
            const h = { tool_call_id: id };
            this.send("room.tool_call_response_chunk", pack({ ...h, chunk: errorContent("tool call failed", ErrorCode.OPERATION_FAILED) }));
            this.send("room.tool_call_response_chunk", pack({ ...h, chunk: { type: "control", method: "close", status_code: 1011 } }));
            this.streams.delete(id);
            void entry.stream.abort().catch(() => {});
          }
        },
      ),
    );
  }

  private setAttributes(msg: RawMessage) {
    const p = this.parse(msg);
    if (!p) return;
    this.attributes = { ...this.attributes, ...p.header };
    this.room.attributesChanged(this);
  }
}
