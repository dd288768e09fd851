import { WebSocket } from "ws";
import { encodeMessage, pack, Reassembler, unpack, unpackContent, type Content } from "../../src/room-server/protocol.js";

export interface RawMessage {
  id: number;
  type: string;
  payload: Buffer;
}

/**
 * A bare room-protocol client on `ws` (no official client): for fuzzing, for load, and for checking bytes.
 * `request` sends a message and resolves with the `__response__` of the same id, decoded as Content.
 */
export class RawRoomClient {
  private nextId = 1;
  private pending = new Map<number, (c: Content) => void>();
  private reasm = new Reassembler(1 << 30);
  readonly received: RawMessage[] = [];
  private listeners: ((m: RawMessage) => void)[] = [];
  participantId = "";
  sessionId = "";
  closed: { code: number; reason: string } | null = null;

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (d: Buffer) => {
      const m = this.reasm.push(d, () => {});
      if (!m) return;
      if (m.type === "__response__") {
        const fn = this.pending.get(m.id);
        if (fn) {
          this.pending.delete(m.id);
          fn(unpackContent(m.payload));
          return;
        }
      }
      this.received.push(m);
      for (const l of this.listeners) l(m);
    });
    ws.on("close", (code, reason) => (this.closed = { code, reason: reason.toString() }));
    ws.on("error", () => {});
  }

  /** `firstId`: where this client's message ids start (a fuzzer keeps its garbage ids apart from real ones). */
  static async connect(url: string, token: string, opts: { keep?: boolean; firstId?: number } = {}): Promise<RawRoomClient> {
    const ws = new WebSocket(`${url}?token=${token}`, { perMessageDeflate: false });
    const c = new RawRoomClient(ws);
    if (opts.firstId) c.nextId = opts.firstId;
    await new Promise<void>((resolve, reject) => {
      let ready = false;
      let init = false;
      const check = (m: RawMessage) => {
        if (m.type === "room_ready") {
          ready = true;
          c.sessionId = String(unpack(m.payload).header.session_id);
        }
        if (m.type === "connected") {
          init = true;
          c.participantId = String(unpack(m.payload).header.participantId);
        }
        if (ready && init) resolve();
      };
      c.listeners.push(check);
      ws.once("unexpected-response", (_q, res) => reject(new Error(`status ${res.statusCode}`)));
      ws.once("close", (code) => reject(new Error(`closed ${code}`)));
    });
    if (!opts.keep) c.received.length = 0;
    c.listeners = [];
    return c;
  }

  on(fn: (m: RawMessage) => void) {
    this.listeners.push(fn);
  }

  sendRaw(frames: Buffer[]) {
    for (const f of frames) this.ws.send(f);
  }

  send(type: string, header: unknown, tail?: Buffer, id = this.nextId++) {
    this.sendRaw(encodeMessage(id, type, pack(header, tail)));
    return id;
  }

  request(type: string, header: unknown, tail?: Buffer): Promise<Content> {
    const id = this.nextId++;
    const p = new Promise<Content>((resolve) => this.pending.set(id, resolve));
    this.send(type, header, tail, id);
    return p;
  }

  invoke(toolkit: string, tool: string, args: unknown): Promise<Content> {
    return this.request("room.invoke_tool", { toolkit, tool, arguments: { type: "json", json: args } });
  }

  close() {
    this.ws.close(1000);
  }
}
