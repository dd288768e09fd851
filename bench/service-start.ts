// Service start-up: the time from a room's first join to its service's agent joining, against a bare `docker run` of
// the same image (the same agent, its env set by hand) until that agent joins, measured in the same run.
//
//   npx tsx bench/service-start.ts            BENCH_ROOMS (default 20), BENCH_BURST_ROOMS (default 10) × 3 services
//
// The server runs in this process (the test harness, SQLite) on the local dockerd; the image is the test node image
// (test/helpers/images.ts: the machine's node and the official client 0.39.9, agent test/fixtures/agent/agent.cjs).
// Each sample alternates: one bare run, one room. "joined" = the agent's participant is in the room (polled every 2 ms).
// Goal: ours p50 <= 1.5x the bare run (which already includes the agent's own join time). Then BURST_ROOMS rooms with 3
// services each are started at once: all agents must join; the server's RSS growth is printed.
import { performance } from "node:perf_hooks";
import { startServer } from "../test/helpers/server.js";
import { dockerForTests, nodeImage, testDockerHost } from "../test/helpers/images.js";
import { joinRoom, mintToken, roomWsUrl, ApiScope, type OfficialRoom } from "../test/helpers/room-client.js";
import { LABEL, managedLabels } from "../src/runtime/index.js";

const ROOMS = Number(process.env.BENCH_ROOMS ?? 20);
const BURST = Number(process.env.BENCH_BURST_ROOMS ?? 10);
const progress = (msg: string) => process.stderr.write(`[service-start] ${msg}\n`);
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const rt = await dockerForTests("bench/service-start.ts");
if (!rt) process.exit(1);
const image = await nodeImage(rt);
const s = await startServer({
  env: { MESHAGENT_DOCKER_HOST: testDockerHost()!, MESHAGENT_ROOM_EMPTY_TIMEOUT: "0.3", MESHAGENT_CONTAINER_MAX_PER_PROJECT: "200" },
});
const P = s.admin.projectId;
const users: OfficialRoom[] = [];

async function waitJoined(roomName: string, names: string[], deadlineMs = 60_000) {
  const room = await s.ctx.rooms.byName(P, roomName);
  const end = Date.now() + deadlineMs;
  for (;;) {
    const active = s.ctx.roomServer.activeRoom(room.id);
    if (active) {
      const present = new Set([...active.connections.values()].map((c) => c.name));
      if (names.every((n) => present.has(n))) return;
    }
    if (Date.now() > end) throw new Error(`${names.join(",")} did not join ${roomName}`);
    await sleep(2);
  }
}

async function user(roomName: string) {
  const r = await joinRoom(roomWsUrl(s, roomName), await mintToken(s.admin.apiKey, roomName, { name: "u", role: "user", api: ApiScope.full() }));
  users.push(r);
  return r;
}

async function ourSample(i: number): Promise<number> {
  const name = `ss-${i}-${Date.now().toString(36)}`;
  await s.client().createRoom({ projectId: P, name });
  await s
    .client()
    .createRoomService(P, name, { version: "v1", kind: "Service", metadata: { name: "agent" }, agents: [{ name: "agent" }], container: { image } } as any);
  const t0 = performance.now();
  const u = await user(name);
  await waitJoined(name, ["agent"]);
  const ms = performance.now() - t0;
  u.dispose();
  return ms;
}

async function bareSample(i: number): Promise<number> {
  const name = `bare-${i}-${Date.now().toString(36)}`;
  await s.client().createRoom({ projectId: P, name });
  const u = await user(name);
  const token = await s.ctx.launcher.mint(P, name, "agent", "agent", undefined);
  const t0 = performance.now();
  const { id } = await rt!.run({
    image,
    env: { MESHAGENT_ROOM: name, MESHAGENT_TOKEN: token, MESHAGENT_API_URL: s.url },
    labels: { ...managedLabels({ kind: "container", projectId: P }), "meshagent.bench": "1" },
    network: "host",
  });
  await waitJoined(name, ["agent"]);
  const ms = performance.now() - t0;
  await rt!.remove(id, { force: true });
  u.dispose();
  return ms;
}

try {
  progress("warm-up");
  await bareSample(-1);
  await ourSample(-1);
  const ours: number[] = [];
  const bare: number[] = [];
  for (let i = 0; i < ROOMS; i++) {
    bare.push(await bareSample(i));
    ours.push(await ourSample(i));
    progress(`${i + 1}/${ROOMS}: bare ${bare[i].toFixed(0)} ms, ours ${ours[i].toFixed(0)} ms`);
  }
  ours.sort((a, b) => a - b);
  bare.sort((a, b) => a - b);
  const line = (what: string, v: number[]) => `${what.padEnd(34)} p50 ${pct(v, 50).toFixed(0).padStart(5)} ms   p99 ${pct(v, 99).toFixed(0).padStart(5)} ms`;
  console.log(line("bare docker run → agent joined", bare));
  console.log(line("first join → service agent joined", ours));
  console.log(
    `ratio (ours / bare)                p50 ${(pct(ours, 50) / pct(bare, 50)).toFixed(2)}x   p99 ${(pct(ours, 99) / pct(bare, 99)).toFixed(2)}x   (goal p50 <= 1.5x)`,
  );

  // Burst: BURST rooms × 3 services, all users join at once.
  await sleep(1500);
  const rss0 = process.memoryUsage().rss;
  const names = Array.from({ length: BURST }, (_, i) => `burst-${i}-${Date.now().toString(36)}`);
  for (const name of names) {
    await s.client().createRoom({ projectId: P, name });
    for (const k of ["a1", "a2", "a3"])
      await s.client().createRoomService(P, name, {
        version: "v1",
        kind: "Service",
        metadata: { name: k },
        agents: [{ name: k }],
        // Each hosts its own toolkit: a room has one toolkit per name.
        container: { image, environment: [{ name: "AGENT_TOOLKIT", value: `kit-${k}` }] },
      } as any);
  }
  const t0 = performance.now();
  await Promise.all(names.map((n) => user(n)));
  await Promise.all(names.map((n) => waitJoined(n, ["a1", "a2", "a3"], 180_000)));
  const burstMs = performance.now() - t0;
  const rss1 = process.memoryUsage().rss;
  console.log(
    `burst: ${BURST} rooms x 3 services: all ${BURST * 3} agents joined in ${(burstMs / 1000).toFixed(1)} s; RSS of the server process +${((rss1 - rss0) / 1048576).toFixed(0)} MiB (${(rss0 / 1048576).toFixed(0)} → ${(rss1 / 1048576).toFixed(0)} MiB, the clients in it too)`,
  );
} finally {
  for (const u of users) u.dispose();
  await sleep(1500);
  await s.close();
  for (const c of await rt.list({ [LABEL.managed]: "1", [LABEL.project]: P })) await rt.remove(c.id, { force: true });
}
