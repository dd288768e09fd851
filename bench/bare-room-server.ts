// The baseline for bench/room-fanout.ts and bench/tool-calls.ts: a bare `ws` server speaking the same framing (the
// same codec), with in-memory rooms and queues and a minimal toolkit relay, and nothing else: no tokens, no scopes, no
// database, no sessions. The relay: room.register_toolkit remembers the host's socket; room.invoke_tool of a registered
// toolkit goes to the host as room.tool_call.<toolkit> under a fresh id; the host's room.tool_call_response answers
// the caller.
import { createServer } from "node:http";
import { randomUUID } from "node:crypto";
import { WebSocketServer, type WebSocket } from "ws";
import { encodeMessage, pack, packContent, Reassembler, unpack } from "../src/room-server/protocol.js";

const rooms = new Map<string, Set<WebSocket>>();
const queues = new Map<string, unknown[]>();
const waiters = new Map<string, ((m: unknown) => void)[]>();
let nextId = 1;
type Send = (id: number, type: string, payload: Buffer) => void;
/** room/toolkit → the host's send. */
const hosts = new Map<string, Send>();
/** Relayed calls: server id → the caller's send and request id. */
const relayed = new Map<number, { send: Send; id: number }>();

const server = createServer((req, res) => {
  res.writeHead(req.url === "/healthz" ? 200 : 404, { "content-type": "application/json" }).end('{"ok":true}');
});
const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on("connection", (ws, req) => {
  const room = new URL(req.url ?? "/", "http://x").pathname;
  let set = rooms.get(room);
  if (!set) rooms.set(room, (set = new Set()));
  const members = set;
  members.add(ws);
  const me = randomUUID();
  const send = (id: number, type: string, payload: Buffer) => {
    for (const f of encodeMessage(id, type, payload)) ws.send(f);
  };
  send(nextId++, "room_ready", pack({ room_name: room, room_url: room, session_id: "bare" }));
  send(nextId++, "connected", pack({ type: "init", participantId: me, attributes: {} }));
  const reasm = new Reassembler(1 << 26);
  ws.on("message", (d: Buffer) => {
    const m = reasm.push(d, () => {});
    if (!m) return;
    if (m.type === "room.tool_call_response") {
      const r = relayed.get(m.id);
      if (r) {
        relayed.delete(m.id);
        r.send(r.id, "__response__", m.payload);
      }
      return;
    }
    if (m.type === "room.register_toolkit") {
      hosts.set(`${room}/${String(unpack(m.payload).header.name)}`, send);
      send(m.id, "__response__", packContent({ type: "json", json: { id: randomUUID() } }));
      return;
    }
    if (m.type === "room.unregister_toolkit") return send(m.id, "__response__", packContent({ type: "empty" }));
    if (m.type !== "room.invoke_tool") return;
    const { header, tail } = unpack(m.payload);
    const host = hosts.get(`${room}/${String(header.toolkit)}`);
    if (host) {
      const id = nextId++;
      relayed.set(id, { send, id: m.id });
      const req = { name: header.tool, arguments: header.arguments, toolkit: header.toolkit, caller_id: me, tool_call_id: String(id) };
      host(id, `room.tool_call.${String(header.toolkit)}`, pack(req, tail.length ? tail : undefined));
      return;
    }
    const args = (header.arguments as { json?: Record<string, unknown> })?.json ?? {};
    const key = `${room}/${String(args.name)}`;
    if (header.toolkit === "messaging" && header.tool === "broadcast") {
      const frames = encodeMessage(
        nextId++,
        "messaging.send",
        pack({ from_participant_id: me, type: args.type, message: JSON.parse(String(args.message_json)) }),
      );
      for (const o of members) if (o !== ws) for (const f of frames) o.send(f);
      send(m.id, "__response__", packContent({ type: "empty" }));
    } else if (header.toolkit === "queues" && header.tool === "send") {
      const w = waiters.get(key)?.shift();
      if (w) w(args.message);
      else {
        let q = queues.get(key);
        if (!q) queues.set(key, (q = []));
        q.push(args.message);
      }
      send(m.id, "__response__", packContent({ type: "empty" }));
    } else if (header.toolkit === "queues" && header.tool === "receive") {
      const q = queues.get(key);
      if (q?.length) send(m.id, "__response__", packContent({ type: "json", json: q.shift() }));
      else if (args.wait === false) send(m.id, "__response__", packContent({ type: "empty" }));
      else {
        let ws2 = waiters.get(key);
        if (!ws2) waiters.set(key, (ws2 = []));
        ws2.push((msg) => send(m.id, "__response__", packContent({ type: "json", json: msg })));
      }
    } else send(m.id, "__response__", packContent({ type: "error", text: "unsupported" }));
  });
  ws.on("close", () => members.delete(ws));
});
server.listen(Number(process.env.MESHAGENT_PORT), "127.0.0.1");
