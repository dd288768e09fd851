/**
 * A small room client: the room WebSocket protocol (room-protocol.md §1-§3, agents-protocol.md §1) as a browser or
 * Node 20+ program speaks it. Binary frames only; a message is a header packet and 1024-byte data packets; every
 * request gets one `__response__` with the same message id. Runs on the global WebSocket (browsers, Node 22+) or on a
 * constructor passed in (Node 20: the `ws` package's). No Node APIs: Uint8Array, DataView, TextEncoder only.
 */

// ---------------------------------------------------------------------------------------------------- Content values

/** A Content value (room-protocol.md §2.4): tool arguments, answers and stream chunks. */
export type Content =
  | { type: "empty" }
  | { type: "json"; json: unknown }
  | { type: "text"; text: string }
  | { type: "binary"; headers: Record<string, unknown>; data: Uint8Array }
  | { type: "file"; name: string; mime_type: string; data: Uint8Array }
  | { type: "link"; name: string; url: string }
  | { type: "error"; text: string; code?: number }
  | { type: "control"; method: "open" | "close"; status_code?: number; message?: string };

/** An error the room answered with (`error` content), or a failure of the connection (no code). */
export class RoomError extends Error {
  override readonly name = "RoomError";
  /** The server's error code (e.g. 1001 permission denied, 1003 not found), when it sent one. */
  readonly code: number | undefined;
  constructor(message: string, code?: number) {
    super(message);
    this.code = code;
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const EMPTY = new Uint8Array(0);
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** packMessage (§2.3): [JSON length as u64 BE][UTF-8 JSON][tail]. */
export function packMessage(header: unknown, tail?: Uint8Array | null): Uint8Array {
  const json = encoder.encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + (tail?.length ?? 0));
  const dv = new DataView(out.buffer);
  dv.setUint32(0, Math.floor(json.length / 2 ** 32), false);
  dv.setUint32(4, json.length >>> 0, false);
  out.set(json, 8);
  if (tail?.length) out.set(tail, 8 + json.length);
  return out;
}

/** unpackMessage (§2.3): the JSON header (an object) and the binary tail. Throws RoomError on a broken payload. */
export function unpackMessage(payload: Uint8Array): { header: Record<string, unknown>; tail: Uint8Array } {
  if (payload.length < 8) throw new RoomError(`payload of ${payload.length} bytes is shorter than its length prefix`);
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const len = dv.getUint32(0, false) * 2 ** 32 + dv.getUint32(4, false);
  if (len > payload.length - 8) throw new RoomError(`payload declares ${len} bytes of JSON but has ${payload.length - 8}`);
  let header: unknown;
  try {
    header = JSON.parse(decoder.decode(payload.subarray(8, 8 + len)));
  } catch {
    throw new RoomError("payload JSON does not parse");
  }
  if (!isObj(header)) throw new RoomError("payload JSON must be an object");
  return { header, tail: payload.subarray(8 + len) };
}

/** A Content value as its JSON header and binary tail. */
export function contentParts(c: Content): { header: Record<string, unknown>; tail: Uint8Array | null } {
  switch (c.type) {
    case "binary":
      return { header: { type: "binary", headers: c.headers }, tail: c.data };
    case "file":
      return { header: { type: "file", name: c.name, mime_type: c.mime_type }, tail: c.data };
    default:
      return { header: { ...c }, tail: null };
  }
}

/** A Content value from its JSON header and tail. Throws RoomError for an unknown type (as the official client does). */
export function contentFrom(header: unknown, tail: Uint8Array = EMPTY): Content {
  if (!isObj(header)) throw new RoomError("content must be a JSON object with a type");
  switch (header.type) {
    case "empty":
      return { type: "empty" };
    case "json":
      return { type: "json", json: header.json };
    case "text":
      return { type: "text", text: String(header.text ?? "") };
    case "binary":
      return { type: "binary", headers: isObj(header.headers) ? header.headers : {}, data: tail };
    case "file":
      return { type: "file", name: String(header.name ?? ""), mime_type: String(header.mime_type ?? ""), data: tail };
    case "link":
      return { type: "link", name: String(header.name ?? ""), url: String(header.url ?? "") };
    case "error": {
      const code =
        typeof header.code === "number" ? header.code : typeof header.code === "string" && /^\d+$/.test(header.code) ? Number(header.code) : undefined;
      return code === undefined ? { type: "error", text: String(header.text ?? "") } : { type: "error", text: String(header.text ?? ""), code };
    }
    case "control": {
      if (header.method !== "open" && header.method !== "close") throw new RoomError("control content needs method open or close");
      const c: Content = { type: "control", method: header.method };
      if (typeof header.status_code === "number") c.status_code = header.status_code;
      if (typeof header.message === "string") c.message = header.message;
      return c;
    }
    default:
      throw new RoomError(`unknown content type ${JSON.stringify(header.type)}`);
  }
}

export function packContent(c: Content): Uint8Array {
  const { header, tail } = contentParts(c);
  return packMessage(header, tail);
}

export function unpackContent(payload: Uint8Array): Content {
  const { header, tail } = unpackMessage(payload);
  return contentFrom(header, tail);
}

// ---------------------------------------------------------------------------------------------------------- framing

/** Senders cut payloads into pieces of this size (§2.2); receivers accept any size. */
export const PACKET_SIZE = 1024;

function writeId(dv: DataView, id: number) {
  dv.setUint32(0, Math.floor(id / 2 ** 32), false);
  dv.setUint32(4, id >>> 0, false);
}

/** The frames of one message (§2.2): a header packet (id, index 0, count, type), then the payload's data packets. */
export function encodePackets(id: number, type: string, payload: Uint8Array): Uint8Array[] {
  const t = encoder.encode(type);
  const n = Math.ceil(payload.length / PACKET_SIZE);
  const head = new Uint8Array(16 + t.length);
  const hv = new DataView(head.buffer);
  writeId(hv, id);
  hv.setUint32(8, 0, false);
  hv.setUint32(12, n, false);
  head.set(t, 16);
  const frames = [head];
  for (let i = 0; i < n; i++) {
    const piece = payload.subarray(i * PACKET_SIZE, Math.min((i + 1) * PACKET_SIZE, payload.length));
    const f = new Uint8Array(12 + piece.length);
    const fv = new DataView(f.buffer);
    writeId(fv, id);
    fv.setUint32(8, i + 1, false);
    f.set(piece, 12);
    frames.push(f);
  }
  return frames;
}

/** One received message. */
export interface RoomMessage {
  id: number;
  type: string;
  payload: Uint8Array;
}

/** Reassembles frames into messages; a frame out of order resets it (the message is dropped and reported). */
export class PacketReassembler {
  private id = -1;
  private type = "";
  private total = 0;
  private next = 0;
  private pieces: Uint8Array[] = [];

  /** One frame: a whole message, or null (more packets to come, or a bad frame, reported to `onError`). */
  push(frame: Uint8Array, onError?: (why: string) => void): RoomMessage | null {
    if (frame.length < 12) {
      this.reset();
      onError?.(`frame of ${frame.length} bytes is shorter than a packet header`);
      return null;
    }
    const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    const id = dv.getUint32(0, false) * 2 ** 32 + dv.getUint32(4, false);
    const index = dv.getUint32(8, false);
    if (index === 0) {
      if (this.id !== -1) onError?.(`message ${this.id} was interrupted by message ${id}`);
      this.reset();
      if (frame.length < 16) {
        onError?.("header packet is shorter than 16 bytes");
        return null;
      }
      const total = dv.getUint32(12, false);
      const type = decoder.decode(frame.subarray(16));
      if (total === 0) return { id, type, payload: EMPTY };
      this.id = id;
      this.type = type;
      this.total = total;
      this.next = 1;
      return null;
    }
    if (this.id === -1 || id !== this.id || index !== this.next) {
      onError?.(`packet ${index} of message ${id} arrived out of order`);
      this.reset();
      return null;
    }
    this.pieces.push(frame.slice(12));
    if (index === this.total) {
      const msg = { id, type: this.type, payload: concat(this.pieces) };
      this.reset();
      return msg;
    }
    this.next++;
    return null;
  }

  private reset() {
    this.id = -1;
    this.type = "";
    this.total = 0;
    this.next = 0;
    this.pieces = [];
  }
}

// ---------------------------------------------------------------------------------------------------- the connection

/** What the client needs of a WebSocket (the browser's, or the `ws` package's). */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (ev: never) => void): void;
}
/** A WebSocket constructor: `globalThis.WebSocket`, or `WebSocket` of the `ws` package. */
export type WebSocketConstructor = new (url: string) => unknown;

export interface RoomConnectOptions {
  /** The room's WebSocket URL: `room_url` of `connectRoom()` (`ws(s)://…/rooms/<name>`). */
  url: string;
  /** The participant token: `jwt` of `connectRoom()`. It travels as the `?token=` query parameter (§1.2). */
  token: string;
  /** The WebSocket constructor; default the global one (browsers, Node 22+). */
  WebSocket?: WebSocketConstructor;
  /** How long to wait for the socket and the handshake (`room_ready` + `connected`), ms (default 20 s). */
  timeoutMs?: number;
}

/** A participant as presence reports it (§3.4). */
export interface RoomParticipant {
  id: string;
  role: string;
  attributes: Record<string, unknown>;
}

/** A tool of a hosted toolkit, as room.list_toolkits lists it (agents-protocol.md §1.3). */
export interface RoomTool {
  name: string;
  title?: string;
  description?: string;
  /** The JSON schema of its input: `input_spec.schema`, else `input_schema`. */
  inputSchema?: Record<string, unknown>;
  /** The content types it takes (`input_spec.types`), when listed. */
  inputTypes?: string[];
  /** Everything the host sent for this tool, as it is. */
  raw: Record<string, unknown>;
}

export interface RoomToolkit {
  name: string;
  title?: string;
  description?: string;
  /** The participant that hosts it. */
  participantId?: string;
  public?: boolean;
  tools: RoomTool[];
}

/** A developer log record (the `developer` toolkit's `logs` stream). */
export interface RoomLog {
  type: string;
  data: unknown;
  participantId?: string;
  participantName?: string;
  createdAt?: string;
}

export type PresenceEvent =
  | { type: "enabled"; participants: RoomParticipant[] }
  | { type: "added"; participant: RoomParticipant }
  | { type: "removed"; participant: RoomParticipant }
  | { type: "attributes"; participant: RoomParticipant };

/** An open streaming tool call (§3.3): request chunks out (each acknowledged), response chunks in. */
export interface RoomStream {
  readonly toolCallId: string;
  /** Send one request chunk; resolves once the server acknowledged it. */
  send(chunk: Content): Promise<void>;
  /** Send the closing request chunk (`control/close`); resolves once acknowledged. Later calls do nothing. */
  close(): Promise<void>;
  /** Resolves when the server closed its side (a `control/close` chunk); rejects when the connection failed. */
  readonly done: Promise<void>;
}

export interface UploadOptions {
  overwrite?: boolean;
  /** Default: from the file name's extension (as the official client does), else application/octet-stream. */
  mimeType?: string;
  /** After every chunk the server took: bytes sent so far, and the total. */
  onProgress?: (sent: number, total: number) => void;
}

interface Pending {
  resolve(c: Content): void;
  reject(e: Error): void;
}

interface OpenStream {
  onChunk(c: Content): void;
  finish(e?: Error): void;
}

const MIME: Record<string, string> = {
  txt: "text/plain",
  md: "text/markdown",
  csv: "text/csv",
  html: "text/html",
  htm: "text/html",
  css: "text/css",
  js: "text/javascript",
  json: "application/json",
  xml: "application/xml",
  pdf: "application/pdf",
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  svg: "image/svg+xml",
  mp3: "audio/mpeg",
  wav: "audio/wav",
  mp4: "video/mp4",
  zip: "application/zip",
};

/** A file name's MIME type from its extension (application/octet-stream when unknown). */
export function mimeTypeFor(name: string): string {
  const dot = name.lastIndexOf(".");
  return (dot >= 0 && MIME[name.slice(dot + 1).toLowerCase()]) || "application/octet-stream";
}

function parseTool(name: string, v: Record<string, unknown>): RoomTool {
  const spec = isObj(v.input_spec) ? v.input_spec : undefined;
  const schema = isObj(spec?.schema) ? spec.schema : isObj(v.input_schema) ? v.input_schema : undefined;
  const t: RoomTool = { name, raw: v };
  if (typeof v.title === "string") t.title = v.title;
  if (typeof v.description === "string") t.description = v.description;
  if (schema) t.inputSchema = schema;
  if (Array.isArray(spec?.types)) t.inputTypes = spec.types.filter((x): x is string => typeof x === "string");
  return t;
}

/** The toolkits of a `room.list_toolkits` answer (`{"tools": {name: toolkit}}`), tools as a map or a list. */
export function parseToolkits(json: unknown): RoomToolkit[] {
  const tools = isObj(json) ? json.tools : undefined;
  if (!isObj(tools)) throw new RoomError("unexpected return type from room.list_toolkits");
  const out: RoomToolkit[] = [];
  for (const [name, v] of Object.entries(tools)) {
    if (!isObj(v)) continue;
    const kit: RoomToolkit = { name, tools: [] };
    if (typeof v.title === "string") kit.title = v.title;
    if (typeof v.description === "string") kit.description = v.description;
    if (typeof v.participant_id === "string") kit.participantId = v.participant_id;
    if (typeof v.public === "boolean") kit.public = v.public;
    if (Array.isArray(v.tools)) {
      for (const t of v.tools) if (isObj(t) && typeof t.name === "string") kit.tools.push(parseTool(t.name, t));
    } else if (isObj(v.tools)) {
      for (const [tn, t] of Object.entries(v.tools)) if (isObj(t)) kit.tools.push(parseTool(tn, t));
    }
    out.push(kit);
  }
  return out;
}

function participantFrom(v: unknown): RoomParticipant | null {
  if (!isObj(v) || typeof v.id !== "string") return null;
  return { id: v.id, role: typeof v.role === "string" ? v.role : "user", attributes: isObj(v.attributes) ? v.attributes : {} };
}

/** The JWT's payload, unverified (only to show the local participant's own role and name). */
function jwtClaims(token: string): Record<string, unknown> {
  try {
    const part = token.split(".")[1] ?? "";
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (part.length % 4)) % 4);
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const v: unknown = JSON.parse(decoder.decode(bytes));
    return isObj(v) ? v : {};
  } catch {
    return {};
  }
}

function grant(claims: Record<string, unknown>, name: string): unknown {
  const grants = Array.isArray(claims.grants) ? claims.grants : [];
  for (const g of grants) if (isObj(g) && g.name === name) return g.scope;
  return undefined;
}

/** A sync document open for reading (RoomConnection.openDocument). */
export interface RoomDocument {
  path: string;
  /** The document's MeshSchema JSON (`$root_tag_ref`, `$defs`, …). */
  schema: Record<string, unknown>;
  /** The whole document as one Yjs v1 update. */
  state: Uint8Array;
  /** Stop following it (the server answers with its close). */
  close(): Promise<void>;
  /** Resolves when the server closed it. */
  done: Promise<void>;
}

/** The bytes of a sync chunk's tail: the ASCII text of the standard base64 of a Yjs update (agents-protocol §2.1). */
function fromBase64Text(tail: Uint8Array): Uint8Array {
  if (!tail.length) return EMPTY;
  const bin = atob(decoder.decode(tail).trim());
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** The error a Content answer stands for, or null. */
const errorOf = (c: Content): RoomError | null => (c.type === "error" ? new RoomError(c.text, c.code) : null);

let streamSeq = 0;
const newToolCallId = () => `${Date.now()}-${(++streamSeq).toString(16)}${Math.random().toString(16).slice(2, 10)}`;

/**
 * One participant's connection to a room. `RoomConnection.connect()` opens the socket and waits for the handshake
 * (`room_ready` and `connected`); then tools can be called (`invoke`), streams opened (`stream`, `upload`,
 * `streamLogs`), presence watched (`enableMessaging`). `close()` ends it (code 1000).
 */
export class RoomConnection {
  /** The participant id the server gave this connection (`connected/init`). */
  participantId = "";
  /** The attributes the server sent with `connected/init` (e.g. `name`). */
  attributes: Record<string, unknown> = {};
  roomName = "";
  roomUrl = "";
  sessionId = "";
  /** This participant's role and name, as its token says. */
  readonly role: string;
  readonly name: string;
  /** The other participants, once `enableMessaging()` was called (kept up to date by presence events). */
  participants: RoomParticipant[] = [];
  /** Set once the connection ended (by close() or by the server / network). */
  closed = false;
  /** Why the connection ended, when it was not close(). */
  closeReason: RoomError | null = null;

  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  private readonly streams = new Map<string, OpenStream>();
  private readonly handlers = new Map<string, Set<(header: Record<string, unknown>, tail: Uint8Array) => void>>();
  private readonly closeHandlers = new Set<(reason: RoomError | null) => void>();
  private readonly presence = new Set<(participants: RoomParticipant[], event: PresenceEvent) => void>();
  private readonly reasm = new PacketReassembler();

  private constructor(
    private readonly ws: WebSocketLike,
    token: string,
  ) {
    const claims = jwtClaims(token);
    const role = grant(claims, "role");
    this.role = typeof role === "string" ? role : "user";
    this.name = typeof claims.name === "string" ? claims.name : "";
  }

  /** Open a connection and wait for the handshake. Rejects with a RoomError when the server refuses or hangs. */
  static connect(opts: RoomConnectOptions): Promise<RoomConnection> {
    const Ctor = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!Ctor) return Promise.reject(new RoomError("no WebSocket implementation: pass one as the WebSocket option (e.g. the ws package's)"));
    const u = new URL(opts.url);
    if (u.protocol === "http:") u.protocol = "ws:";
    if (u.protocol === "https:") u.protocol = "wss:";
    u.searchParams.set("token", opts.token);
    let ws: WebSocketLike;
    try {
      ws = new Ctor(u.toString()) as WebSocketLike;
    } catch (e) {
      return Promise.reject(new RoomError(`could not open the room connection: ${(e as Error)?.message ?? e}`));
    }
    ws.binaryType = "arraybuffer";
    const conn = new RoomConnection(ws, opts.token);
    return conn.handshake(opts.timeoutMs ?? 20_000);
  }

  private handshake(timeoutMs: number): Promise<RoomConnection> {
    return new Promise((resolve, reject) => {
      let ready = false;
      let connected = false;
      let settled = false;
      let opened = false;
      const settle = (e?: RoomError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (e) {
          this.shutdown(e);
          reject(e);
        } else resolve(this);
      };
      const timer = setTimeout(() => {
        settle(new RoomError(opened ? "the room did not finish its handshake in time" : "the room connection did not open in time"));
        try {
          this.ws.close(1000, "timeout");
        } catch {
          /* already closed */
        }
      }, timeoutMs);
      this.on("room_ready", (h) => {
        this.roomName = typeof h.room_name === "string" ? h.room_name : "";
        this.roomUrl = typeof h.room_url === "string" ? h.room_url : "";
        this.sessionId = typeof h.session_id === "string" ? h.session_id : "";
        ready = true;
        if (connected) settle();
      });
      this.on("connected", (h) => {
        if (h.type !== "init" || typeof h.participantId !== "string") return;
        this.participantId = h.participantId;
        this.attributes = isObj(h.attributes) ? h.attributes : {};
        connected = true;
        if (ready) settle();
      });
      const ws = this.ws;
      ws.addEventListener("open", () => {
        opened = true;
      });
      ws.addEventListener("message", (ev: { data: unknown }) => this.onData(ev.data));
      ws.addEventListener("error", (ev: { message?: unknown }) => {
        // Browsers say nothing about why (a 403 at the upgrade looks like any network error); `ws` says the status.
        const detail = typeof ev?.message === "string" && ev.message ? `: ${ev.message}` : "";
        settle(
          new RoomError(
            opened
              ? `the room connection failed${detail}`
              : `the room refused the connection (no access to this room, an expired token, or the room is unavailable)${detail}`,
          ),
        );
      });
      ws.addEventListener("close", (ev: { code?: number; reason?: string }) => {
        const why = ev?.reason ? `: ${ev.reason}` : "";
        const err =
          ev?.code === 1000 && settled
            ? null
            : new RoomError(
                opened ? `the room connection closed (code ${ev?.code ?? "?"})${why}` : `the room refused the connection (code ${ev?.code ?? "?"})${why}`,
              );
        if (!settled) settle(err ?? new RoomError(`the room closed the connection before it was ready${why}`));
        this.shutdown(err ?? (this.closed ? null : new RoomError(`the room closed the connection${why}`)));
      });
    });
  }

  private onData(data: unknown) {
    let frame: Uint8Array;
    if (data instanceof ArrayBuffer) frame = new Uint8Array(data);
    else if (ArrayBuffer.isView(data)) frame = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    else if (typeof data === "string") frame = encoder.encode(data);
    else return; // a Blob: binaryType is arraybuffer, so this does not happen
    const msg = this.reasm.push(frame);
    if (msg) this.dispatch(msg);
  }

  private dispatch(msg: RoomMessage) {
    if (msg.type === "__response__") {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      let c: Content;
      try {
        c = unpackContent(msg.payload);
      } catch (e) {
        p.reject(e as Error);
        return;
      }
      const err = errorOf(c);
      if (err) p.reject(err);
      else p.resolve(c);
      return;
    }
    let header: Record<string, unknown>;
    let tail: Uint8Array;
    try {
      ({ header, tail } = unpackMessage(msg.payload));
    } catch {
      return;
    }
    if (msg.type === "room.tool_call_response_chunk") {
      const id = header.tool_call_id;
      const s = typeof id === "string" ? this.streams.get(id) : undefined;
      if (!s) return;
      let c: Content;
      try {
        c = isObj(header.chunk) && typeof header.chunk.type === "string" ? contentFrom(header.chunk, tail) : { type: "json", json: header.chunk };
      } catch (e) {
        c = { type: "error", text: (e as Error).message };
      }
      s.onChunk(c);
      if (c.type === "control" && c.method === "close") {
        this.streams.delete(id as string);
        s.finish();
      }
      return;
    }
    if (msg.type === "messaging.send") this.onMessaging(header);
    const hs = this.handlers.get(msg.type);
    if (hs) for (const h of [...hs]) h(header, tail);
  }

  private onMessaging(h: Record<string, unknown>) {
    const type = h.type;
    const m = isObj(h.message) ? h.message : {};
    let event: PresenceEvent | null = null;
    if (type === "messaging.enabled") {
      const list = Array.isArray(m.participants) ? m.participants.map(participantFrom).filter((p): p is RoomParticipant => !!p) : [];
      this.participants = list.filter((p) => p.id !== this.participantId);
      event = { type: "enabled", participants: this.participants };
    } else if (type === "participant.enabled") {
      const p = participantFrom(m);
      if (!p || p.id === this.participantId) return;
      this.participants = [...this.participants.filter((x) => x.id !== p.id), p];
      event = { type: "added", participant: p };
    } else if (type === "participant.disabled") {
      const id = typeof m.id === "string" ? m.id : h.from_participant_id;
      const p = this.participants.find((x) => x.id === id);
      if (!p) return;
      this.participants = this.participants.filter((x) => x !== p);
      event = { type: "removed", participant: p };
    } else if (type === "participant.attributes") {
      const id = h.from_participant_id;
      const old = this.participants.find((x) => x.id === id);
      if (!old) return;
      const p = { ...old, attributes: { ...old.attributes, ...(isObj(m.attributes) ? m.attributes : {}) } };
      this.participants = this.participants.map((x) => (x === old ? p : x));
      event = { type: "attributes", participant: p };
    }
    if (event) for (const fn of [...this.presence]) fn(this.participants, event);
  }

  /** Handle every server message of `type` (e.g. `messaging.send`, `storage.file.updated`). Returns an unsubscribe. */
  on(type: string, handler: (header: Record<string, unknown>, tail: Uint8Array) => void): () => void {
    let set = this.handlers.get(type);
    if (!set) this.handlers.set(type, (set = new Set()));
    set.add(handler);
    return () => set.delete(handler);
  }

  /** Called once when the connection ends: `reason` is null after close(), else what went wrong. */
  onClose(handler: (reason: RoomError | null) => void): () => void {
    if (this.closed) {
      handler(this.closeReason);
      return () => {};
    }
    this.closeHandlers.add(handler);
    return () => this.closeHandlers.delete(handler);
  }

  private shutdown(reason: RoomError | null) {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    const err = reason ?? new RoomError("the room connection was closed");
    const failed = new RoomError(`room connection closed before request completed: ${err.message}`);
    for (const p of this.pending.values()) p.reject(failed);
    this.pending.clear();
    for (const s of this.streams.values()) s.finish(failed);
    this.streams.clear();
    for (const h of [...this.closeHandlers]) h(reason);
    this.closeHandlers.clear();
  }

  private write(type: string, payload: Uint8Array): number {
    if (this.closed || this.ws.readyState !== 1) throw new RoomError(this.closeReason?.message ?? "the room connection is closed");
    this.nextId = this.nextId >= Number.MAX_SAFE_INTEGER ? 1 : this.nextId + 1;
    const id = this.nextId;
    // All frames of a message back to back, in one synchronous loop: messages never interleave.
    for (const f of encodePackets(id, type, payload)) this.ws.send(f);
    return id;
  }

  /** A request of any type (`room.invoke_tool`, `room.list_toolkits`, …): resolves with its answer, rejects on `error`. */
  request(type: string, header: Record<string, unknown>, tail?: Uint8Array | null): Promise<Content> {
    return new Promise((resolve, reject) => {
      let id: number;
      try {
        id = this.write(type, packMessage(header, tail));
      } catch (e) {
        reject(e);
        return;
      }
      this.pending.set(id, { resolve, reject });
    });
  }

  /** Call a tool with JSON arguments (`{type:"json",json:args}`). Built-in toolkits (queues, storage, …) and hosted ones. */
  invoke(toolkit: string, tool: string, args: Record<string, unknown> = {}, opts: { participantId?: string } = {}): Promise<Content> {
    return this.invokeContent(toolkit, tool, { type: "json", json: args }, opts);
  }

  /** Call a tool with any Content value as its input. */
  invokeContent(toolkit: string, tool: string, input: Content, opts: { participantId?: string; toolCallId?: string } = {}): Promise<Content> {
    const { header, tail } = contentParts(input);
    const req: Record<string, unknown> = { toolkit, tool, arguments: header };
    if (opts.participantId) req.participant_id = opts.participantId;
    if (opts.toolCallId) req.tool_call_id = opts.toolCallId;
    return this.request("room.invoke_tool", req, tail?.length ? tail : null);
  }

  /** The JSON of a tool's answer (`json` content; `empty` gives null). */
  async invokeJson<T = unknown>(toolkit: string, tool: string, args: Record<string, unknown> = {}): Promise<T> {
    const c = await this.invoke(toolkit, tool, args);
    if (c.type === "json") return c.json as T;
    if (c.type === "empty") return null as T;
    throw new RoomError(`unexpected return type from ${toolkit}.${tool}: ${c.type}`);
  }

  /** The toolkits participants host in the room (room.list_toolkits), with each tool's input schema. */
  async listToolkits(params: { participantId?: string; participantName?: string; timeout?: number } = {}): Promise<RoomToolkit[]> {
    const req: Record<string, unknown> = {};
    if (params.participantId) req.participant_id = params.participantId;
    if (params.participantName) req.participant_name = params.participantName;
    if (params.timeout !== undefined) req.timeout = params.timeout;
    const c = await this.request("room.list_toolkits", req);
    if (c.type !== "json") throw new RoomError("unexpected return type from room.list_toolkits");
    return parseToolkits(c.json);
  }

  /**
   * Turn presence on (`messaging.enable`): resolves with the other participants; `onPresence` then gets the list after
   * every join, leave or attribute change.
   */
  async enableMessaging(onPresence?: (participants: RoomParticipant[], event: PresenceEvent) => void): Promise<RoomParticipant[]> {
    if (onPresence) this.presence.add(onPresence);
    // `messaging.enabled` arrives before the answer to the enable: by then `participants` is set.
    await this.invokeContent("messaging", "enable", { type: "json", json: {} }, { toolCallId: newToolCallId() });
    return this.participants;
  }

  /** Stop watching presence with this callback (presence itself stays on until the connection closes). */
  offPresence(onPresence: (participants: RoomParticipant[], event: PresenceEvent) => void) {
    this.presence.delete(onPresence);
  }

  /**
   * Open a streaming tool call (§3.3): `invoke_tool` with `control/open` and a tool_call_id; `onChunk` gets each
   * response chunk (the last one is `control/close`). Resolves once the server answered the invoke with `control/open`.
   */
  async stream(toolkit: string, tool: string, onChunk: (c: Content) => void, opts: { participantId?: string } = {}): Promise<RoomStream> {
    const toolCallId = newToolCallId();
    let finish!: (e?: Error) => void;
    const done = new Promise<void>((resolve, reject) => {
      finish = (e) => (e ? reject(e) : resolve());
    });
    done.catch(() => {}); // the caller may never await it
    // Registered before the invoke goes out: the server's first chunks may come right after its answer.
    this.streams.set(toolCallId, { onChunk, finish });
    let answer: Content;
    try {
      answer = await this.invokeContent(toolkit, tool, { type: "control", method: "open" }, { ...opts, toolCallId });
    } catch (e) {
      this.streams.delete(toolCallId);
      throw e;
    }
    if (answer.type !== "control" || answer.method !== "open") {
      this.streams.delete(toolCallId);
      throw new RoomError(`unexpected return type from ${toolkit}.${tool}`);
    }
    let tail = Promise.resolve();
    let closing: Promise<void> | null = null;
    const sendChunk = (chunk: Content) => {
      const { header, tail: bytes } = contentParts(chunk);
      return this.request("room.tool_call_request_chunk", { tool_call_id: toolCallId, chunk: header }, bytes?.length ? bytes : null).then(() => {});
    };
    const send = (chunk: Content) => {
      // One at a time, in order: the next chunk goes out after the previous one's acknowledgement.
      const p = tail.then(() => sendChunk(chunk));
      tail = p.catch(() => {});
      return p;
    };
    return {
      toolCallId,
      send: (chunk) => (closing ? Promise.reject(new RoomError("the stream is closed")) : send(chunk)),
      close: () => {
        if (!closing) closing = this.closed ? Promise.resolve() : send({ type: "control", method: "close", status_code: 1000 }).catch(() => {});
        return closing;
      },
      done,
    };
  }

  /**
   * Upload a file (storage.upload, streamed: the server pulls chunks). Rejects with the server's error (e.g. the path
   * exists and `overwrite` is false).
   */
  async upload(path: string, bytes: Uint8Array, opts: UploadOptions = {}): Promise<void> {
    const name = path.slice(path.lastIndexOf("/") + 1);
    let sent = 0;
    let failure: RoomError | null = null;
    const pulls: number[] = [];
    let wake: (() => void) | null = null;
    const onChunk = (c: Content) => {
      if (c.type === "error") failure ??= new RoomError(c.text, c.code);
      else if (c.type === "binary" && c.headers.kind === "pull") {
        const n = c.headers.chunk_size;
        pulls.push(typeof n === "number" && n > 0 ? n : 64 * 1024);
      } else if (c.type !== "control") failure ??= new RoomError("unexpected return type from storage.upload");
      wake?.();
    };
    const s = await this.stream("storage", "upload", onChunk);
    let ended = false;
    void s.done.then(
      () => ((ended = true), wake?.()),
      (e: Error) => ((ended = true), (failure ??= e instanceof RoomError ? e : new RoomError(String(e))), wake?.()),
    );
    try {
      await s.send({
        type: "binary",
        headers: { kind: "start", path, overwrite: opts.overwrite ?? false, name, mime_type: opts.mimeType ?? mimeTypeFor(name), size: bytes.length },
        data: EMPTY,
      });
      for (;;) {
        if (failure) throw failure;
        const n = pulls.shift();
        if (n !== undefined) {
          if (sent >= bytes.length) continue; // nothing left: the close below ends it
          const piece = bytes.subarray(sent, Math.min(bytes.length, sent + n));
          await s.send({ type: "binary", headers: { kind: "data" }, data: piece });
          sent += piece.length;
          opts.onProgress?.(sent, bytes.length);
          continue;
        }
        if (ended) break;
        await new Promise<void>((r) => (wake = r));
        wake = null;
      }
      if (failure) throw failure;
      if (sent !== bytes.length) throw new RoomError("the upload ended before all of the file was sent");
    } finally {
      await s.close();
    }
  }

  /**
   * Watch the room's developer logs (the `developer` toolkit's `logs` stream): `onLog` gets every record written after
   * it opened. Returns a function that stops watching. `onError` hears why it could not open or why it ended.
   */
  streamLogs(onLog: (log: RoomLog) => void, onError?: (e: RoomError) => void): () => void {
    let stopped = false;
    let stream: RoomStream | null = null;
    const report = (e: unknown) => {
      if (!stopped) onError?.(e instanceof RoomError ? e : new RoomError(String((e as Error)?.message ?? e)));
    };
    this.stream("developer", "logs", (c) => {
      if (stopped) return;
      if (c.type === "error") return report(new RoomError(c.text, c.code));
      if (c.type !== "binary") return;
      const h = c.headers;
      let data: unknown;
      try {
        data = c.data.length ? JSON.parse(decoder.decode(c.data)) : {};
      } catch {
        data = decoder.decode(c.data);
      }
      const log: RoomLog = { type: typeof h.type === "string" ? h.type : "", data };
      if (typeof h.participant_id === "string") log.participantId = h.participant_id;
      if (typeof h.participant_name === "string") log.participantName = h.participant_name;
      if (typeof h.created_at === "string") log.createdAt = h.created_at;
      onLog(log);
    }).then((s) => {
      stream = s;
      if (stopped) void s.close();
      s.done.catch(report);
    }, report);
    return () => {
      if (stopped) return;
      stopped = true;
      if (stream && !this.closed) void stream.close();
    };
  }

  /**
   * Open a sync document to read it (agents-protocol.md §2.2, `sync.open` with `create: false`): resolves with its
   * schema and its whole state (a Yjs v1 update; apply it with `Y.applyUpdate`); `onUpdate` then gets every later
   * update others make, until `close()`. Sends no updates of its own. Rejects with the server's error (no document
   * at that path, a file that is not a document, no read access).
   */
  async openDocument(path: string, onUpdate: (update: Uint8Array) => void, onError?: (e: RoomError) => void): Promise<RoomDocument> {
    let first: { resolve(v: { schema: Record<string, unknown>; state: Uint8Array }): void; reject(e: Error): void } | null = null;
    const initial = new Promise<{ schema: Record<string, unknown>; state: Uint8Array }>((resolve, reject) => (first = { resolve, reject }));
    const s = await this.stream("sync", "open", (c) => {
      const f = first;
      if (c.type === "error") {
        const e = new RoomError(c.text, c.code);
        if (f) {
          first = null;
          f.reject(e);
        } else onError?.(e);
        return;
      }
      if (c.type === "control") {
        if (f) {
          first = null;
          f.reject(new RoomError("the document was closed before its state was returned"));
        }
        return;
      }
      if (c.type !== "binary") return;
      const update = fromBase64Text(c.data);
      if (f) {
        first = null;
        if (c.headers.kind !== "state" || !isObj(c.headers.schema)) f.reject(new RoomError("unexpected return type from sync.open"));
        else f.resolve({ schema: c.headers.schema, state: update });
      } else if (update.length) onUpdate(update);
    });
    s.done.catch((e: Error) => {
      if (first) first.reject(e);
      else onError?.(e instanceof RoomError ? e : new RoomError(String(e)));
    });
    try {
      await s.send({
        type: "binary",
        headers: { kind: "start", path, create: false, vector: null, schema: null, schema_path: null, initial_json: null },
        data: EMPTY,
      });
      const { schema, state } = await initial;
      return { path, schema, state, close: () => s.close(), done: s.done };
    } catch (e) {
      await s.close();
      throw e;
    }
  }

  /** End the connection (code 1000): pending requests reject, streams end. */
  close() {
    const open = this.ws.readyState === 0 || this.ws.readyState === 1;
    this.shutdown(null);
    if (open) {
      try {
        this.ws.close(1000, "closed by the client");
      } catch {
        /* already closing */
      }
    }
  }
}
