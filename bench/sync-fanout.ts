// Sync fan-out: 1 writer and 50 readers on one document, 10k small updates, against Hocuspocus (`@hocuspocus/server`
// with `@hocuspocus/extension-sqlite`, both persisting to SQLite) doing the same fan-out with `@hocuspocus/provider`
// clients, in the same run; then the memory per open document of each server.
//
//   npx tsx bench/sync-fanout.ts      BENCH_UPDATES (default 10000), BENCH_READERS (default 50), BENCH_DOCS (default 1000)
//
// Both servers are child processes. Our clients speak the room protocol as 0.39.9's SyncClient does (sync.open, a start
// chunk, then `sync` chunks carrying the base64 of each Yjs update, each waiting for its acknowledgement) but apply
// what they receive to a plain Y.Doc, like the Hocuspocus provider does: the official client's MeshDocument
// console.logs every change it receives, which would measure the terminal. Each update sets the root attribute "n" to
// its sequence number; a reader's latency is from the writer's send to its own doc holding that n.
// Goal: ours >= 1x Hocuspocus's updates/s at <= 1x its p99.
import { execFileSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import * as Y from "yjs";
import WebSocket from "ws";
import { HocuspocusProvider, HocuspocusProviderWebsocket } from "@hocuspocus/provider";
import { ROOT, startChild } from "./lib.js";
import { freePort, spawnServer, TSX_LOADER } from "../test/helpers/process.js";
import { RawRoomClient } from "../test/helpers/raw-room.js";
import { mintToken, ApiScope } from "../test/helpers/room-client.js";
import official from "../test/helpers/official.js";
import { unpack } from "../src/room-server/protocol.js";

const UPDATES = Number(process.env.BENCH_UPDATES ?? 10_000);
const READERS = Number(process.env.BENCH_READERS ?? 50);
const DOCS = Number(process.env.BENCH_DOCS ?? 1000);
const progress = (msg: string) => process.stderr.write(`[sync-fanout] ${msg}\n`);
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const rssOf = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;

const { MeshSchema, ElementType, ValueProperty, SimpleValue } = official as any;
const schema = new MeshSchema({
  rootTagName: "doc",
  elements: [new ElementType({ tagName: "doc", description: "", properties: [new ValueProperty({ name: "n", description: "", type: SimpleValue.number })] })],
}).toJson();

interface Result {
  seconds: number;
  latencies: number[];
}

/** Shared measurement: `send(i)` makes update i (attribute n = i); readers report seeing n via `seen(reader, n)`. */
function tracker(readers: number) {
  const sentAt = new Float64Array(UPDATES + 1);
  const latencies: number[] = [];
  const last = new Int32Array(readers).fill(-1);
  let doneReaders = 0;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  return {
    sentAt,
    latencies,
    done,
    seen(reader: number, n: number) {
      if (n <= last[reader]) return;
      last[reader] = n;
      latencies.push(performance.now() - sentAt[n]);
      if (n === UPDATES && ++doneReaders === readers) resolveDone();
    },
  };
}

// ---------------------------------------------------------------- ours

let callSeq = 0;
class OurClient {
  readonly doc = new Y.Doc();
  private id = `sync-${++callSeq}`;
  private constructor(
    readonly raw: RawRoomClient,
    onState: (doc: Y.Doc) => void,
  ) {
    raw.on((m) => {
      if (m.type !== "room.tool_call_response_chunk") return;
      const p = unpack(m.payload);
      if (p.header.tool_call_id !== this.id || p.tail.length === 0) return;
      Y.applyUpdate(this.doc, Buffer.from(p.tail.toString("ascii"), "base64"), "remote");
      onState(this.doc);
    });
  }

  static async open(url: string, token: string, path: string, onState: (doc: Y.Doc) => void = () => {}) {
    const raw = await RawRoomClient.connect(url, token);
    const c = new OurClient(raw, onState);
    await raw.request("room.invoke_tool", { toolkit: "sync", tool: "open", tool_call_id: c.id, arguments: { type: "control", method: "open" } });
    const first = new Promise<void>((resolve) => {
      const check = () => (c.doc.get("xml", Y.XmlElement) ? resolve() : undefined);
      raw.on((m) => {
        if (m.type === "room.tool_call_response_chunk" && unpack(m.payload).header.tool_call_id === c.id) check();
      });
    });
    await raw.request(
      "room.tool_call_request_chunk",
      {
        tool_call_id: c.id,
        chunk: { type: "binary", headers: { kind: "start", path, create: true, vector: null, schema, schema_path: null, initial_json: null } },
      },
      Buffer.alloc(0),
    );
    await first;
    return c;
  }

  /** One update, as the official client sends it: a sync chunk, then wait for its acknowledgement. */
  async send(update: Uint8Array) {
    await this.raw.request(
      "room.tool_call_request_chunk",
      { tool_call_id: this.id, chunk: { type: "binary", headers: { kind: "sync" } } },
      Buffer.from(Buffer.from(update).toString("base64"), "ascii"),
    );
  }
}

async function runOurs(): Promise<{ result: Result; perDoc: number }> {
  const dataDir = mkdtempSync(join(tmpdir(), "bench-sync-ours-"));
  const env = { MESHAGENT_DATA_DIR: dataDir, MESHAGENT_LOG_LEVEL: "warn", MESHAGENT_RATE_LIMIT: "0", MESHAGENT_ROOM_MAX_MESSAGES_PER_SECOND: "1000000" };
  const b = JSON.parse(
    execFileSync(process.execPath, ["--import", TSX_LOADER, join(ROOT, "src/main.ts"), "bootstrap", "--json", "--email", "bench@example.com"], {
      cwd: dataDir,
      env: { ...process.env, ...env },
      encoding: "utf8",
    }).trim(),
  );
  const srv = await spawnServer(env);
  try {
    const c = new (official as any).Meshagent({ baseUrl: srv.url, token: b.api_key });
    await c.createRoom({ projectId: b.project_id, name: "bench" });
    const url = `${srv.url.replace(/^http/, "ws")}/rooms/bench`;
    const token = (name: string) => mintToken(b.api_key, "bench", { name, role: "user", api: ApiScope.full() });
    const t = tracker(READERS);
    const writer = await OurClient.open(url, await token("writer"), "fanout.doc");
    const readers: OurClient[] = [];
    for (let r = 0; r < READERS; r++) {
      const idx = r;
      readers.push(
        await OurClient.open(url, await token(`reader-${r}`), "fanout.doc", (doc) => t.seen(idx, Number(doc.get("xml", Y.XmlElement).getAttribute("n") ?? -1))),
      );
    }
    const root = writer.doc.get("xml", Y.XmlElement);
    const updates: Uint8Array[] = [];
    writer.doc.on("update", (u: Uint8Array, origin: unknown) => {
      if (origin !== "remote") updates.push(u);
    });
    progress(`ours: ${READERS} readers open; sending ${UPDATES} updates`);
    const t0 = performance.now();
    for (let i = 1; i <= UPDATES; i++) {
      t.sentAt[i] = performance.now();
      root.setAttribute("n", i as unknown as string);
      await writer.send(updates.shift()!);
    }
    await t.done;
    const seconds = (performance.now() - t0) / 1000;
    for (const r of [writer, ...readers]) r.raw.close();
    await sleep(500);
    // Memory per open document: DOCS more documents, each with a little content, held open by one client.
    const holder = await RawRoomClient.connect(url, await token("holder"));
    const rss0 = rssOf(srv.child.pid!);
    const holders: OurClient[] = [];
    for (let i = 0; i < DOCS; i++) {
      const h = await OurClient.open(url, await token(`h${i % 10}`), `mem/${i}.doc`);
      const u: Uint8Array[] = [];
      h.doc.on("update", (x: Uint8Array, o: unknown) => o !== "remote" && u.push(x));
      h.doc.get("xml", Y.XmlElement).setAttribute("n", i as unknown as string);
      await h.send(u[0]);
      holders.push(h);
    }
    await sleep(1000);
    const perDoc = (rssOf(srv.child.pid!) - rss0) / DOCS;
    holder.close();
    for (const h of holders) h.raw.close();
    return { result: { seconds, latencies: t.latencies.sort((a, b) => a - b) }, perDoc };
  } finally {
    await srv.kill("SIGTERM");
    rmSync(dataDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- Hocuspocus

async function runHocuspocus(): Promise<{ result: Result; perDoc: number }> {
  const dir = mkdtempSync(join(tmpdir(), "bench-sync-hp-"));
  const port = await freePort();
  const child: ChildProcess = await startChild(
    [join(ROOT, "bench/bare-hocuspocus.ts")],
    { PORT: String(port), DB: join(dir, "hp.sqlite") },
    `http://127.0.0.1:${port}/`,
  );
  const url = `ws://127.0.0.1:${port}`;
  const providers: HocuspocusProvider[] = [];
  const open = async (name: string) => {
    const socket = new HocuspocusProviderWebsocket({ url, WebSocketPolyfill: WebSocket });
    const p = new HocuspocusProvider({ websocketProvider: socket, name });
    // With its own socket given, the provider waits to be attached to it.
    p.attach();
    providers.push(p);
    await new Promise<void>((resolve) => p.on("synced", () => resolve()));
    return p;
  };
  try {
    const t = tracker(READERS);
    progress("hocuspocus: started");
    const writer = await open("fanout");
    progress("hocuspocus: writer synced");
    for (let r = 0; r < READERS; r++) {
      const idx = r;
      const p = await open("fanout");
      const root = p.document.getXmlElement("xml");
      p.document.on("update", () => t.seen(idx, Number(root.getAttribute("n") ?? -1)));
    }
    const root = writer.document.getXmlElement("xml");
    progress(`hocuspocus: ${READERS} readers open; sending ${UPDATES} updates`);
    const t0 = performance.now();
    for (let i = 1; i <= UPDATES; i++) {
      t.sentAt[i] = performance.now();
      root.setAttribute("n", i as unknown as string);
      // The provider sends at once (no acknowledgement); yield so the socket drains like ours does.
      if (i % 20 === 0) await new Promise((r) => setImmediate(r));
    }
    await t.done;
    const seconds = (performance.now() - t0) / 1000;
    for (const p of providers.splice(0)) p.destroy();
    await sleep(500);
    const rss0 = rssOf(child.pid!);
    for (let i = 0; i < DOCS; i++) {
      const p = await open(`mem-${i}`);
      p.document.getXmlElement("xml").setAttribute("n", i as unknown as string);
    }
    await sleep(1000);
    const perDoc = (rssOf(child.pid!) - rss0) / DOCS;
    return { result: { seconds, latencies: t.latencies.sort((a, b) => a - b) }, perDoc };
  } finally {
    for (const p of providers) p.destroy();
    child.kill("SIGTERM");
    await sleep(300);
    rmSync(dir, { recursive: true, force: true });
  }
}

const hp = await runHocuspocus();
const ours = await runOurs();
const line = (what: string, r: Result) =>
  `${what.padEnd(12)} ${(UPDATES / r.seconds).toFixed(0).padStart(6)} updates/s   writer→reader p50 ${pct(r.latencies, 50).toFixed(1).padStart(6)} ms   p99 ${pct(r.latencies, 99).toFixed(1).padStart(6)} ms`;
console.log(`1 writer, ${READERS} readers, ${UPDATES} updates, both persisting to SQLite`);
console.log(line("hocuspocus", hp.result));
console.log(line("ours", ours.result));
console.log(
  `ratio        ${(hp.result.seconds / ours.result.seconds).toFixed(2)}x updates/s   p99 ${(pct(ours.result.latencies, 99) / pct(hp.result.latencies, 99)).toFixed(2)}x   (goal >= 1x at <= 1x)`,
);
console.log(
  `memory per open document: hocuspocus ${(hp.perDoc / 1024).toFixed(1)} KiB, ours ${(ours.perDoc / 1024).toFixed(1)} KiB (${DOCS} documents, RSS growth)`,
);
