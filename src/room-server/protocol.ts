/**
 * The room protocol's byte layouts (room-protocol.md §2): packets, message packing, Content values.
 * Pure functions and one small state machine (Reassembler); no I/O.
 */

import { isObj } from "../core/json.js";

/** The server cuts payloads into pieces of this size. The clients accept any size (they only concatenate). */
export const PIECE_SIZE = 64 * 1024;

export class ProtocolError extends Error {
  /** The id of the message the error concerns, when it could be read. */
  constructor(
    message: string,
    readonly messageId: number | null = null,
  ) {
    super(message);
  }
}

const MAX_SAFE_HIGH = 2 ** 21; // high 32 bits that keep the id a safe integer

function readId(b: Buffer): number {
  const high = b.readUInt32BE(0);
  const low = b.readUInt32BE(4);
  if (high >= MAX_SAFE_HIGH) return Number.MAX_SAFE_INTEGER;
  return high * 2 ** 32 + low;
}

function writeId(b: Buffer, id: number) {
  b.writeUInt32BE(Math.floor(id / 2 ** 32), 0);
  b.writeUInt32BE(id >>> 0, 4);
}

let serverMessageId = 1;
/** Ids of messages the server starts (free-form in the protocol): one counter, so a broadcast is encoded once. */
export const nextServerMessageId = () => {
  serverMessageId = serverMessageId >= Number.MAX_SAFE_INTEGER ? 1 : serverMessageId + 1;
  return serverMessageId;
};

/** The frames of one protocol message: a header packet, then the payload in pieces. Send them back to back. */
export function encodeMessage(id: number, type: string, payload: Buffer): Buffer[] {
  const typeBytes = Buffer.from(type, "utf8");
  const n = Math.ceil(payload.length / PIECE_SIZE);
  const header = Buffer.allocUnsafe(16 + typeBytes.length);
  writeId(header, id);
  header.writeUInt32BE(0, 8);
  header.writeUInt32BE(n, 12);
  typeBytes.copy(header, 16);
  const frames = [header];
  for (let i = 0; i < n; i++) {
    const piece = payload.subarray(i * PIECE_SIZE, Math.min((i + 1) * PIECE_SIZE, payload.length));
    const f = Buffer.allocUnsafe(12 + piece.length);
    writeId(f, id);
    f.writeUInt32BE(i + 1, 8);
    piece.copy(f, 12);
    frames.push(f);
  }
  return frames;
}

export interface RawMessage {
  id: number;
  type: string;
  payload: Buffer;
}

/**
 * Reassembles incoming frames into messages. Unlike the clients' single-slot receivers, every anomaly (short
 * frame, packet out of order, another message's packet, a message over the size limit) resets the slot and is
 * reported as a ProtocolError, so the next well-formed message is never corrupted by leftovers.
 */
export class Reassembler {
  private id = -1;
  private type = "";
  private total = 0;
  private next = 0;
  private pieces: Buffer[] = [];
  private size = 0;

  constructor(private readonly maxMessageBytes: number) {}

  private reset() {
    this.id = -1;
    this.type = "";
    this.total = 0;
    this.next = 0;
    this.pieces = [];
    this.size = 0;
  }

  get busy() {
    return this.id !== -1;
  }

  /**
   * Feed one frame. Returns a complete message or null (more packets expected, or the frame was bad). Each anomaly
   * goes to `onError`; a header packet that interrupts an unfinished message reports the lost one and still starts.
   */
  push(frame: Buffer, onError: (e: ProtocolError) => void): RawMessage | null {
    if (frame.length < 12) {
      const id = frame.length >= 8 ? readId(frame) : null;
      this.reset();
      onError(new ProtocolError(`frame of ${frame.length} bytes is shorter than a packet header`, id));
      return null;
    }
    const id = readId(frame);
    const index = frame.readUInt32BE(8);
    if (index === 0) {
      if (this.busy) onError(new ProtocolError(`message ${this.id} was interrupted by message ${id} before its last packet`, this.id));
      this.reset();
      if (frame.length < 16) {
        onError(new ProtocolError("header packet is shorter than 16 bytes", id));
        return null;
      }
      const total = frame.readUInt32BE(12);
      const type = frame.subarray(16).toString("utf8");
      if (total === 0) return { id, type, payload: Buffer.alloc(0) };
      this.begin(id, type, total);
      return null;
    }
    if (!this.busy) {
      onError(new ProtocolError(`data packet ${index} of message ${id} arrived without a header packet`, id));
      return null;
    }
    if (id !== this.id || index !== this.next) {
      const expected = this.id;
      const expectedIndex = this.next;
      this.reset();
      onError(
        new ProtocolError(
          id !== expected
            ? `data packet of message ${id} arrived while message ${expected} was incomplete`
            : `packet ${index} of message ${id} arrived where packet ${expectedIndex} was expected`,
          expected,
        ),
      );
      return null;
    }
    const piece = frame.subarray(12);
    this.size += piece.length;
    if (this.size > this.maxMessageBytes) {
      this.reset();
      onError(new ProtocolError(`message ${id} is larger than ${this.maxMessageBytes} bytes`, id));
      return null;
    }
    this.pieces.push(piece);
    if (index === this.total) {
      const msg = { id, type: this.type, payload: this.pieces.length === 1 ? this.pieces[0] : Buffer.concat(this.pieces) };
      this.reset();
      return msg;
    }
    this.next++;
    return null;
  }

  private begin(id: number, type: string, total: number) {
    this.id = id;
    this.type = type;
    this.total = total;
    this.next = 1;
  }
}

/** packMessage: [JSON length as u64 BE][JSON][tail]. */
export function pack(header: unknown, tail?: Buffer | Uint8Array | null): Buffer {
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const out = Buffer.allocUnsafe(8 + json.length + (tail?.length ?? 0));
  out.writeUInt32BE(0, 0);
  out.writeUInt32BE(json.length, 4);
  json.copy(out, 8);
  if (tail?.length) Buffer.from(tail.buffer, tail.byteOffset, tail.byteLength).copy(out, 8 + json.length);
  return out;
}

/** unpackMessage; throws ProtocolError when the layout or the JSON is broken. The header must be a JSON object. */
export function unpack(payload: Buffer): { header: Record<string, unknown>; tail: Buffer } {
  if (payload.length < 8) throw new ProtocolError(`payload of ${payload.length} bytes is shorter than its 8-byte length prefix`);
  const high = payload.readUInt32BE(0);
  const len = payload.readUInt32BE(4);
  if (high !== 0 || len > payload.length - 8)
    throw new ProtocolError(`payload declares ${high ? "more than 4 GiB" : len + " bytes"} of JSON but has ${payload.length - 8}`);
  let header: unknown;
  try {
    header = JSON.parse(payload.subarray(8, 8 + len).toString("utf8"));
  } catch {
    throw new ProtocolError("payload JSON does not parse");
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) throw new ProtocolError("payload JSON must be an object");
  return { header: header as Record<string, unknown>, tail: payload.subarray(8 + len) };
}

// ---- Content values (§2.4) ----

export type Content =
  | { type: "empty" }
  | { type: "json"; json: unknown }
  | { type: "text"; text: string }
  | { type: "binary"; headers: Record<string, unknown>; data: Buffer }
  | { type: "file"; name: string; mime_type: string; data: Buffer }
  | { type: "link"; name: string; url: string }
  | { type: "error"; text: string; code?: number }
  | { type: "control"; method: "open" | "close"; status_code?: number; message?: string };

export const empty = (): Content => ({ type: "empty" });
export const json = (v: unknown): Content => ({ type: "json", json: v });
export const errorContent = (text: string, code?: number): Content => (code === undefined ? { type: "error", text } : { type: "error", text, code });
export const control = (method: "open" | "close", status_code?: number): Content =>
  status_code === undefined ? { type: "control", method } : { type: "control", method, status_code };
export const binary = (headers: Record<string, unknown>, data: Buffer = Buffer.alloc(0)): Content => ({ type: "binary", headers, data });

/** A Content value as its JSON header and tail. */
export function contentParts(c: Content): { header: Record<string, unknown>; tail: Buffer | null } {
  switch (c.type) {
    case "binary":
      return { header: { type: "binary", headers: c.headers }, tail: c.data };
    case "file":
      return { header: { type: "file", name: c.name, mime_type: c.mime_type }, tail: c.data };
    default:
      return { header: c as Record<string, unknown>, tail: null };
  }
}

export function packContent(c: Content): Buffer {
  const { header, tail } = contentParts(c);
  return pack(header, tail);
}

/** A Content value from its JSON header and tail; throws ProtocolError for an unknown or malformed one. */
export function contentFrom(header: unknown, tail: Buffer): Content {
  if (!isObj(header)) throw new ProtocolError("content must be a JSON object with a type");
  switch (header.type) {
    case "empty":
      return { type: "empty" };
    case "json":
      return { type: "json", json: header.json };
    case "text":
      if (typeof header.text !== "string") throw new ProtocolError("text content needs a string text");
      return { type: "text", text: header.text };
    case "binary":
      return { type: "binary", headers: isObj(header.headers) ? header.headers : {}, data: tail };
    case "file":
      return { type: "file", name: String(header.name ?? ""), mime_type: String(header.mime_type ?? ""), data: tail };
    case "link":
      return { type: "link", name: String(header.name ?? ""), url: String(header.url ?? "") };
    case "error":
      return { type: "error", text: String(header.text ?? ""), ...(typeof header.code === "number" ? { code: header.code } : {}) };
    case "control":
      if (header.method !== "open" && header.method !== "close") throw new ProtocolError("control content needs method open or close");
      return {
        type: "control",
        method: header.method,
        ...(typeof header.status_code === "number" ? { status_code: header.status_code } : {}),
        ...(typeof header.message === "string" ? { message: header.message } : {}),
      };
    default:
      throw new ProtocolError(`unknown content type ${JSON.stringify(header.type)}`);
  }
}

/** A Content value that is already packed: sent as it is (a host's answer relayed verbatim to its caller). */
export class Packed {
  constructor(readonly payload: Buffer) {}
}

export function unpackContent(payload: Buffer): Content {
  const { header, tail } = unpack(payload);
  return contentFrom(header, tail);
}

/** Error codes of the room protocol (wire-contract §8, ErrorCode). */
export const ErrorCode = {
  PERMISSION_DENIED: 1001,
  INVALID_REQUEST: 1002,
  NOT_FOUND: 1003,
  ALREADY_EXISTS: 1004,
  CONFLICT: 1005,
  INVALID_STATE: 1006,
  OPERATION_FAILED: 1008,
  TIMEOUT: 1009,
  STORAGE_NOT_FOUND: 3001,
  STORAGE_RECURSIVE_REQUIRED: 3002,
  STORAGE_INVALID_PATH: 3004,
  STORAGE_ALREADY_EXISTS: 3005,
  QUEUE_NOT_FOUND: 5001,
  QUEUE_ALREADY_EXISTS: 5002,
  CONTAINER_NOT_FOUND: 6001,
  SERVICE_NOT_FOUND: 7001,
  SERVICE_RESTART_NOT_ALLOWED: 7002,
  SERVICE_ALREADY_EXISTS: 7003,
} as const;

/** An error a tool answers with: becomes `{"type":"error","text","code"}` (RoomServerException on the client). */
export class ToolError extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

export const denied = (what: string) => new ToolError(`permission denied: ${what}`, ErrorCode.PERMISSION_DENIED);
export const invalid = (what: string) => new ToolError(what, ErrorCode.INVALID_REQUEST);
