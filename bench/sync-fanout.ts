// Sync fan-out: 1 writer and 50 readers on one document, 10k small updates, against Hocuspocus (`@hocuspocus/server`
// with `@hocuspocus/extension-sqlite`, the best-known Yjs server) doing the same fan-out with `@hocuspocus/provider`
// clients, in the same run; then the memory per open document of each server (a fresh process each).
//
//   npx tsx bench/sync-fanout.ts      BENCH_UPDATES (default 10000), BENCH_READERS (default 50), BENCH_DOCS (default 1000)
//
// Both servers are child processes persisting to SQLite (ours: the default file journal, every update journaled before
// its acknowledgement; Hocuspocus: its debounced store). Our clients speak the room protocol as 0.39.9's SyncClient
// does (sync.open, a start chunk, then `sync` chunks carrying the base64 of each Yjs update) but apply what they
// receive to a plain Y.Doc, like the Hocuspocus provider does (the official client's MeshDocument console.logs every
// change it receives, which would measure the terminal). Each update sets the root attribute "n" to its sequence
// number; a reader's latency is from the writer's send to its own doc holding that n.
//
// Two writers of ours: "streamed" sends its updates as the Hocuspocus provider does (without waiting; here for each
// acknowledgement, which all arrive before the run ends), "0.39.9 client" waits for each acknowledgement before the
// next update, as the official SyncClient does: its rate is one update per round trip, a ceiling of the client's
// protocol that no server removes (the line says what a round trip costs with this fan-out).
// Goal: ours >= 1x Hocuspocus's updates/s at <= 1x its p99. BENCH_CPU=1 prints each fan-out's CPU split (bench
// process, server); BENCH_SERVER_NODE_OPTIONS passes NODE_OPTIONS to our server (e.g. `--require` a profiler).
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

  static async open(url: string | RawRoomClient, token: string, path: string, onState: (doc: Y.Doc) => void = () => {}) {
    const raw = typeof url === "string" ? await RawRoomClient.connect(url, token) : url;
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

  /** One update as a sync chunk; resolves with its acknowledgement. */
  send(update: Uint8Array) {
    return this.raw.request(
      "room.tool_call_request_chunk",
      { tool_call_id: this.id, chunk: { type: "binary", headers: { kind: "sync" } } },
      Buffer.from(Buffer.from(update).toString("base64"), "ascii"),
    );
  }
}

async function ourServer() {
  const dataDir = mkdtempSync(join(tmpdir(), "bench-sync-ours-"));
  const env = { MESHAGENT_DATA_DIR: dataDir, MESHAGENT_LOG_LEVEL: "warn", MESHAGENT_RATE_LIMIT: "0", MESHAGENT_ROOM_MAX_MESSAGES_PER_SECOND: "1000000" };
  const b = JSON.parse(
    execFileSync(process.execPath, ["--import", TSX_LOADER, join(ROOT, "src/main.ts"), "bootstrap", "--json", "--email", "bench@example.com"], {
      cwd: dataDir,
      env: { ...process.env, ...env },
      encoding: "utf8",
    }).trim(),
  );
  const srv = await spawnServer(process.env.BENCH_SERVER_NODE_OPTIONS ? { ...env, NODE_OPTIONS: process.env.BENCH_SERVER_NODE_OPTIONS } : env);
  const c = new (official as any).Meshagent({ baseUrl: srv.url, token: b.api_key });
  await c.createRoom({ projectId: b.project_id, name: "bench" });
  return {
    srv,
    url: `${srv.url.replace(/^http/, "ws")}/rooms/bench`,
    token: (name: string) => mintToken(b.api_key, "bench", { name, role: "user", api: ApiScope.full() }),
    async stop() {
      await srv.kill("SIGTERM");
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function runOurs(mode: "streamed" | "stop-and-wait"): Promise<Result> {
  const s = await ourServer();
  try {
    const t = tracker(READERS);
    const writer = await OurClient.open(s.url, await s.token("writer"), "fanout.doc");
    const readers: OurClient[] = [];
    for (let r = 0; r < READERS; r++) {
      const idx = r;
      readers.push(
        await OurClient.open(s.url, await s.token(`reader-${r}`), "fanout.doc", (doc) =>
          t.seen(idx, Number(doc.get("xml", Y.XmlElement).getAttribute("n") ?? -1)),
        ),
      );
    }
    const root = writer.doc.get("xml", Y.XmlElement);
    const updates: Uint8Array[] = [];
    writer.doc.on("update", (u: Uint8Array, origin: unknown) => {
      if (origin !== "remote") updates.push(u);
    });
    progress(`ours (${mode}): ${READERS} readers open; sending ${UPDATES} updates`);
    const acks: Promise<unknown>[] = [];
    const cpuOf = (pid: number) =>
      readFileSync(`/proc/${pid}/stat`, "utf8")
        .split(") ")[1]
        .split(" ")
        .slice(11, 13)
        .reduce((a, b) => a + Number(b), 0) * 10;
    const c0 = process.cpuUsage(),
      s0 = cpuOf(s.srv.child.pid!);
    const t0 = performance.now();
    for (let i = 1; i <= UPDATES; i++) {
      t.sentAt[i] = performance.now();
      root.setAttribute("n", i as unknown as string);
      const ack = writer.send(updates.shift()!);
      if (mode === "stop-and-wait") await ack;
      else {
        acks.push(ack);
        // Like the Hocuspocus writer below: yield every 20 updates so the socket drains.
        if (i % 20 === 0) await new Promise((r) => setImmediate(r));
      }
    }
    await Promise.all(acks);
    await t.done;
    const seconds = (performance.now() - t0) / 1000;
    const c1 = process.cpuUsage(c0);
    if (process.env.BENCH_CPU)
      progress(`cpu ms: bench ${((c1.user + c1.system) / 1000).toFixed(0)}, server ${cpuOf(s.srv.child.pid!) - s0}, wall ${(seconds * 1000).toFixed(0)}`);
    for (const r of [writer, ...readers]) r.raw.close();
    return { seconds, latencies: t.latencies.sort((a, b) => a - b) };
  } finally {
    await s.stop();
  }
}

/** RSS growth of a fresh server per open document: DOCS documents, each with a little content, held open. */
async function ourMemory(): Promise<number> {
  const s = await ourServer();
  try {
    // One connection holds them all (as one participant's room client does): the cost of a document, not a socket.
    const conn = await RawRoomClient.connect(s.url, await s.token("holder"));
    const holders: OurClient[] = [];
    const open = async (i: number, prefix: string) => {
      const h = await OurClient.open(conn, "", `${prefix}/${i}.doc`);
      const u: Uint8Array[] = [];
      h.doc.on("update", (x: Uint8Array, o: unknown) => o !== "remote" && u.push(x));
      h.doc.get("xml", Y.XmlElement).setAttribute("n", i as unknown as string);
      await h.send(u[0]);
      holders.push(h);
    };
    // Warm up (code paths loaded, pools filled) before the baseline.
    for (let i = 0; i < 50; i++) await open(i, "warm");
    await sleep(1000);
    const rss0 = rssOf(s.srv.child.pid!);
    for (let i = 0; i < DOCS; i++) await open(i, "mem");
    await sleep(1000);
    const perDoc = (rssOf(s.srv.child.pid!) - rss0) / DOCS;
    conn.close();
    return perDoc;
  } finally {
    await s.stop();
  }
}

// ---------------------------------------------------------------- Hocuspocus

async function hocuspocusServer() {
  const dir = mkdtempSync(join(tmpdir(), "bench-sync-hp-"));
  const port = await freePort();
  const child: ChildProcess = await startChild(
    [join(ROOT, "bench/bare-hocuspocus.ts")],
    { PORT: String(port), DB: join(dir, "hp.sqlite") },
    `http://127.0.0.1:${port}/`,
  );
  const url = `ws://127.0.0.1:${port}`;
  const providers: HocuspocusProvider[] = [];
  let shared: HocuspocusProviderWebsocket | null = null;
  return {
    child,
    /** A provider on its own socket, or (`share`) on one socket all such providers multiplex. */
    async open(name: string, share = false) {
      const socket = share
        ? (shared ??= new HocuspocusProviderWebsocket({ url, WebSocketPolyfill: WebSocket }))
        : new HocuspocusProviderWebsocket({ url, WebSocketPolyfill: WebSocket });
      const p = new HocuspocusProvider({ websocketProvider: socket, name });
      // With its own socket given, the provider waits to be attached to it.
      p.attach();
      providers.push(p);
      await new Promise<void>((resolve) => p.on("synced", () => resolve()));
      return p;
    },
    async stop() {
      for (const p of providers.splice(0)) p.destroy();
      // It stores its documents as it shuts down: remove its database only once it exited.
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await Promise.race([exited, sleep(10_000)]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function runHocuspocus(): Promise<Result> {
  const s = await hocuspocusServer();
  try {
    const t = tracker(READERS);
    const writer = await s.open("fanout");
    for (let r = 0; r < READERS; r++) {
      const idx = r;
      const p = await s.open("fanout");
      const root = p.document.getXmlElement("xml");
      p.document.on("update", () => t.seen(idx, Number(root.getAttribute("n") ?? -1)));
    }
    const root = writer.document.getXmlElement("xml");
    progress(`hocuspocus: ${READERS} readers open; sending ${UPDATES} updates`);
    const t0 = performance.now();
    for (let i = 1; i <= UPDATES; i++) {
      t.sentAt[i] = performance.now();
      root.setAttribute("n", i as unknown as string);
      // The provider sends at once (no acknowledgement); yield so the socket drains.
      if (i % 20 === 0) await new Promise((r) => setImmediate(r));
    }
    await t.done;
    const seconds = (performance.now() - t0) / 1000;
    return { seconds, latencies: t.latencies.sort((a, b) => a - b) };
  } finally {
    await s.stop();
  }
}

async function hocuspocusMemory(): Promise<number> {
  const s = await hocuspocusServer();
  try {
    const open = async (name: string, i: number) => {
      const p = await s.open(name, true);
      p.document.getXmlElement("xml").setAttribute("n", i as unknown as string);
    };
    for (let i = 0; i < 50; i++) await open(`warm-${i}`, i);
    await sleep(1000);
    const rss0 = rssOf(s.child.pid!);
    for (let i = 0; i < DOCS; i++) await open(`mem-${i}`, i);
    await sleep(1000);
    return (rssOf(s.child.pid!) - rss0) / DOCS;
  } finally {
    await s.stop();
  }
}

// Each measurement runs in a fresh bench process (SYNC_FANOUT_RUN), so none inherits another's heap, sockets or timers.
type Summary = { seconds: number; p50: number; p99: number };
const RUNS: Record<string, () => Promise<Summary | number>> = {
  hocuspocus: async () => summary(await runHocuspocus()),
  streamed: async () => summary(await runOurs("streamed")),
  waited: async () => summary(await runOurs("stop-and-wait")),
  "hocuspocus-memory": hocuspocusMemory,
  "ours-memory": ourMemory,
};
function summary(r: Result): Summary {
  return { seconds: r.seconds, p50: pct(r.latencies, 50), p99: pct(r.latencies, 99) };
}
if (process.env.SYNC_FANOUT_RUN) {
  const out = await RUNS[process.env.SYNC_FANOUT_RUN]();
  process.stdout.write(`RESULT ${JSON.stringify(out)}\n`);
  process.exit(0);
}
const run = <T>(name: string): T => {
  const out = execFileSync(process.execPath, ["--import", TSX_LOADER, join(ROOT, "bench/sync-fanout.ts")], {
    env: { ...process.env, SYNC_FANOUT_RUN: name },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    maxBuffer: 64 * 1024 * 1024,
  });
  return JSON.parse(/^RESULT (.*)$/m.exec(out)![1]) as T;
};
const hp = run<Summary>("hocuspocus");
const streamed = run<Summary>("streamed");
const waited = run<Summary>("waited");
progress(`memory: ${DOCS} documents each`);
const hpMem = run<number>("hocuspocus-memory");
const ourMem = run<number>("ours-memory");
const line = (what: string, r: Summary) =>
  `${what.padEnd(26)} ${(UPDATES / r.seconds).toFixed(0).padStart(6)} updates/s   writer→reader p50 ${r.p50.toFixed(1).padStart(6)} ms   p99 ${r.p99.toFixed(1).padStart(6)} ms`;
console.log(`1 writer, ${READERS} readers, ${UPDATES} updates, both persisting to SQLite`);
console.log(line("hocuspocus", hp));
console.log(line("ours, streamed writer", streamed));
console.log(line("ours, 0.39.9 client writer", waited));
console.log(
  `ratio (streamed)           ${(hp.seconds / streamed.seconds).toFixed(2)}x updates/s   p99 ${(streamed.p99 / hp.p99).toFixed(2)}x   (goal >= 1x at <= 1x)`,
);
console.log(
  `0.39.9 client writer       one update per acknowledged round trip: ${((1000 * waited.seconds) / UPDATES).toFixed(2)} ms each with ${READERS} readers (${(hp.seconds / waited.seconds).toFixed(2)}x hocuspocus's updates/s)`,
);
console.log(`memory per open document: hocuspocus ${(hpMem / 1024).toFixed(1)} KiB, ours ${(ourMem / 1024).toFixed(1)} KiB (${DOCS} documents, RSS growth)`);
