// Room server under load, against a bare ws baseline measured in the same run (bench/bare-room-server.ts: same
// framing, in-memory rooms and queues, no auth, no database, no sessions).
//
//   1. 1000 participants (BENCH_PARTICIPANTS) join 10 rooms over loopback (raw protocol clients, one process).
//   2. Broadcast fan-out: in every room one participant broadcasts every BENCH_INTERVAL_MS (default 50) ms,
//      BENCH_BROADCASTS (default 100) times; every other participant of the room records the delivery latency.
//   3. Queue throughput: in every room one producer pipelines queues.send (64 in flight) while 4 consumers loop on
//      queues.receive (wait: true); BENCH_QUEUE_MESSAGES (default 20000) messages in all, each sent and received.
//   4. Server RSS (VmRSS of the server process) with everyone connected, and at the end.
// Each server is run twice, alternating; the ratio line compares the second (warm) runs.
//
// Run: npx tsx bench/room-fanout.ts   (MESHAGENT_DATABASE_URL=postgres://… for PostgreSQL)
import { execFileSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { ROOT, startChild, TSX_LOADER } from "./lib.js";
import { RawRoomClient } from "../test/helpers/raw-room.js";
import { unpack } from "../src/room-server/protocol.js";
import { ParticipantToken, ApiScope } from "../test/helpers/official.js";

const PARTICIPANTS = Number(process.env.BENCH_PARTICIPANTS ?? 1000);
const ROOMS = 10;
const BROADCASTS = Number(process.env.BENCH_BROADCASTS ?? 100);
const INTERVAL = Number(process.env.BENCH_INTERVAL_MS ?? 50);
const QUEUE_MESSAGES = Number(process.env.BENCH_QUEUE_MESSAGES ?? 20_000);
const CONSUMERS = 4;
const WINDOW = 64;
const roomNames = Array.from({ length: ROOMS }, (_, i) => `bench-${i}`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
/** A process's CPU time (user + system) in seconds, from /proc/<pid>/stat. */
const cpuSeconds = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
};
const rssMb = (pid: number) => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
};

async function connectAll(wsBase: string, token: (room: string) => Promise<string>) {
  const t0 = performance.now();
  const byRoom: RawRoomClient[][] = roomNames.map(() => []);
  const tokens = await Promise.all(roomNames.map(token));
  const jobs = Array.from({ length: PARTICIPANTS }, (_, i) => i);
  const CONC = 50;
  await Promise.all(
    Array.from({ length: CONC }, async () => {
      for (let i = jobs.shift(); i !== undefined; i = jobs.shift()) {
        const r = i % ROOMS;
        byRoom[r].push(await RawRoomClient.connect(`${wsBase}/rooms/${roomNames[r]}`, tokens[r]));
      }
    }),
  );
  return { byRoom, seconds: (performance.now() - t0) / 1000 };
}

async function fanout(byRoom: RawRoomClient[][]) {
  const latencies: number[] = [];
  let expected = 0;
  for (const clients of byRoom) {
    for (const c of clients.slice(1))
      c.on((m) => {
        if (m.type !== "messaging.send") return;
        const msg = unpack(m.payload).header.message as { t?: number };
        if (typeof msg?.t === "number") latencies.push(performance.now() - msg.t);
      });
    expected += (clients.length - 1) * BROADCASTS;
  }
  await Promise.all(
    byRoom.map(async (clients, r) => {
      await sleep((INTERVAL / ROOMS) * r); // spread the rooms over the interval
      for (let k = 0; k < BROADCASTS; k++) {
        const started = performance.now();
        await clients[0].invoke("messaging", "broadcast", { type: "tick", message_json: JSON.stringify({ t: performance.now(), k }) });
        await sleep(Math.max(0, INTERVAL - (performance.now() - started)));
      }
    }),
  );
  const deadline = performance.now() + 30_000;
  while (latencies.length < expected && performance.now() < deadline) await sleep(20);
  const sorted = [...latencies].sort((a, b) => a - b);
  return { delivered: latencies.length, expected, p50: pct(sorted, 50), p99: pct(sorted, 99), max: sorted.at(-1) ?? NaN };
}

async function queues(byRoom: RawRoomClient[][]) {
  const perRoom = Math.floor(QUEUE_MESSAGES / ROOMS);
  let received = 0;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  await Promise.all(
    byRoom.map(async (clients, r) => {
      const producer = clients[1];
      const consumers = clients.slice(2, 2 + CONSUMERS);
      const name = `q-${r}`;
      let got = 0;
      let done = false;
      const consume = async (c: RawRoomClient) => {
        while (!done) {
          const res = await c.invoke("queues", "receive", { name, create: true, wait: true });
          if (res.type === "json" && typeof (res.json as { i?: unknown })?.i === "number") {
            got++;
            received++;
            if (got >= perRoom) done = true;
          } else if (res.type === "error") throw new Error(JSON.stringify(res));
        }
      };
      const consumersDone = Promise.all(consumers.map(consume));
      let next = 0;
      await Promise.all(
        Array.from({ length: WINDOW }, async () => {
          while (next < perRoom) {
            const i = next++;
            const res = await producer.invoke("queues", "send", { name, create: true, message: { i, room: r } });
            if (res.type !== "empty") throw new Error(JSON.stringify(res));
          }
        }),
      );
      // the last waiting receives of each consumer: wake them with messages that nobody counts
      const stragglers = setInterval(() => void producer.invoke("queues", "send", { name, create: true, message: { extra: true } }), 50);
      await consumersDone;
      clearInterval(stragglers);
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { messages: received, seconds, rate: received / seconds, clientCpu: (cpu.user + cpu.system) / 1e6 / seconds };
}

async function run(label: string, wsBase: string, pid: number, token: (room: string) => Promise<string>) {
  const { byRoom, seconds } = await connectAll(wsBase, token);
  const rssConnected = rssMb(pid);
  const f = await fanout(byRoom);
  const serverCpu0 = cpuSeconds(pid);
  const q = await queues(byRoom);
  const serverCpu = (cpuSeconds(pid) - serverCpu0) / q.seconds;
  const rssEnd = rssMb(pid);
  for (const clients of byRoom) for (const c of clients) c.close();
  await sleep(500);
  console.log(
    `${label.padEnd(9)} join ${PARTICIPANTS} in ${seconds.toFixed(2)} s | fan-out ${f.delivered}/${f.expected} deliveries p50 ${f.p50.toFixed(2)} ms p99 ${f.p99.toFixed(2)} ms max ${f.max.toFixed(1)} ms | ` +
      `queue ${q.messages} msgs in ${q.seconds.toFixed(2)} s = ${q.rate.toFixed(0)} msg/s (CPU: server ${(serverCpu * 100).toFixed(0)}%, bench client ${(q.clientCpu * 100).toFixed(0)}%) | RSS ${rssConnected.toFixed(0)} MB connected, ${rssEnd.toFixed(0)} MB at end`,
  );
  return { f, q, rssConnected, rssEnd };
}

const dataDir = mkdtempSync(join(tmpdir(), "meshagent-bench-rooms-"));
const dbUrl = process.env.MESHAGENT_DATABASE_URL;
const env = { MESHAGENT_DATA_DIR: dataDir, MESHAGENT_LOG_LEVEL: "warn", ...(dbUrl ? { MESHAGENT_DATABASE_URL: dbUrl } : {}) };
const b = JSON.parse(
  execFileSync(process.execPath, ["--import", TSX_LOADER, join(ROOT, "src/main.ts"), "bootstrap", "--json", "--email", "bench-rooms@example.com"], {
    env: { ...process.env, ...env },
    cwd: dataDir,
    encoding: "utf8",
  }),
);
const procs: ChildProcess[] = [];
try {
  const ours = await startChild(
    [join(ROOT, "src/main.ts"), "serve"],
    { ...env, MESHAGENT_PORT: "18191", MESHAGENT_PUBLIC_URL: "http://127.0.0.1:18191" },
    "http://127.0.0.1:18191/healthz",
  );
  procs.push(ours);
  for (const name of roomNames) {
    const r = await fetch(`http://127.0.0.1:18191/accounts/projects/${b.project_id}/rooms`, {
      method: "POST",
      headers: { authorization: `Bearer ${b.api_key}`, "content-type": "application/json" },
      body: JSON.stringify({ name, if_not_exists: true }),
    });
    if (!r.ok) throw new Error(`create room: ${r.status} ${await r.text()}`);
  }
  const token = async (room: string) => {
    const t = new ParticipantToken({ name: "bench" });
    t.addRoomGrant(room);
    t.addRoleGrant("agent");
    t.addApiGrant(ApiScope.full());
    return t.toJwt({ apiKey: b.api_key });
  };
  const bare = await startChild([join(ROOT, "bench/bare-room-server.ts")], { MESHAGENT_PORT: "18192" }, "http://127.0.0.1:18192/healthz");
  procs.push(bare);

  console.log(
    `room server benchmark: ${PARTICIPANTS} participants in ${ROOMS} rooms, ${BROADCASTS} broadcasts per room every ${INTERVAL} ms, ${QUEUE_MESSAGES} queue messages (${dbUrl ? "postgres" : "sqlite"})`,
  );
  // Two rounds, alternating; the ratios come from the second (warm: JIT, caches, the client's own code).
  let base = await run("bare ws", "ws://127.0.0.1:18192", bare.pid!, async () => "unused");
  let o = await run("ours", "ws://127.0.0.1:18191", ours.pid!, token);
  base = await run("bare ws", "ws://127.0.0.1:18192", bare.pid!, async () => "unused");
  o = await run("ours", "ws://127.0.0.1:18191", ours.pid!, token);
  console.log(
    `ratios ours/bare: fan-out p99 ${(o.f.p99 / base.f.p99).toFixed(2)}x latency | queue ${(o.q.rate / base.q.rate).toFixed(3)}x throughput (goal >= 10000 msg/s: ${o.q.rate >= 10_000 ? "met" : "not met"}) | RSS ${(o.rssEnd / base.rssEnd).toFixed(2)}x`,
  );
} finally {
  for (const p of procs) p.kill("SIGTERM");
  await sleep(500);
  rmSync(dataDir, { recursive: true, force: true });
}
