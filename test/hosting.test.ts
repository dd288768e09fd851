import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "./helpers/server.js";
import { dockerForTests, nodeImage, testDockerHost } from "./helpers/images.js";
import { joinRoom, mintToken, roomWsUrl, until, within, ApiScope, type OfficialRoom } from "./helpers/room-client.js";
import { RoomClient, WebSocketClientProtocol, ServicesClient } from "./helpers/official.js";
import { LABEL, type DockerRuntime } from "../src/runtime/index.js";

const FILE = "test/hosting.test.ts";
const runtime = await dockerForTests(FILE);
const d = runtime ? describe : describe.skip;

import { restartableData, spawnServer, type ServerProcess } from "./helpers/process.js";
import { Meshagent } from "./helpers/official.js";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { TSX_LOADER, ROOT } from "./helpers/process.js";

const decodeJwt = (t: string) => JSON.parse(Buffer.from(t.split(".")[1], "base64url").toString("utf8"));

d("services run in rooms (Docker)", () => {
  let s: TestServer;
  let image: string;
  const logs: string[] = [];
  const events: { type: string; data: any }[] = [];
  const rooms: OfficialRoom[] = [];
  let n = 0;

  const rt = () => runtime as DockerRuntime;
  const projectContainers = async () => rt().list({ [LABEL.managed]: "1", [LABEL.project]: s.admin.projectId });
  /** The containers of one room (earlier tests' rooms may still be stopping theirs). */
  const roomContainers = async (room: string) => rt().list({ [LABEL.managed]: "1", [LABEL.room]: (await s.ctx.rooms.byName(s.admin.projectId, room)).id });
  const newRoom = async () => {
    const name = `svc-${++n}-${Date.now().toString(36)}`;
    await s.client().createRoom({ projectId: s.admin.projectId, name });
    return name;
  };
  const user = async (room: string, name = "alice") => {
    const r = await joinRoom(roomWsUrl(s, room), await mintToken(s.admin.apiKey, room, { name, role: "user", api: ApiScope.full() }));
    rooms.push(r);
    return r;
  };
  const toolkits = async (r: OfficialRoom) => ((await within(r.agents.listToolkits())) as any[]).map((k) => k.name);
  const roomService = (room: string, spec: Record<string, unknown>) => s.client().createRoomService(s.admin.projectId, room, spec as any);
  const container = (env: Record<string, string>, extra: Record<string, unknown> = {}) => ({
    image,
    environment: Object.entries(env).map(([name, value]) => ({ name, value })),
    ...extra,
  });
  const status = async (room: string, id: string) => (await s.http("GET", `/accounts/projects/${s.admin.projectId}/rooms/${room}/services/${id}/status`)).json;

  beforeAll(async () => {
    image = await nodeImage(rt());
    s = await startServer({
      env: {
        MESHAGENT_DOCKER_HOST: testDockerHost()!,
        MESHAGENT_ROOM_EMPTY_TIMEOUT: "0.5",
        MESHAGENT_SERVICE_RESTART_DELAY: "0.1",
        MESHAGENT_SERVICE_MAX_RESTARTS: "2",
        MESHAGENT_WEBHOOK_ALLOW_PRIVATE: "true",
        MESHAGENT_LOG_LEVEL: "info",
      },
      logStream: { write: (line: string) => void logs.push(line) },
    });
    s.ctx.bus.on((e) => {
      if (e.type.startsWith("service.") || e.type === "usage.recorded") events.push({ type: e.type, data: e.data });
    });
  }, 120_000);

  afterAll(async () => {
    for (const r of rooms) r.dispose();
    await s?.close();
    // Nothing this file started may outlive it.
    if (!s) return;
    const left = await rt().list({ [LABEL.managed]: "1", [LABEL.project]: s.admin.projectId });
    for (const c of left) await rt().remove(c.id, { force: true });
    expect(left).toEqual([]);
  }, 60_000);

  it("a project service's container joins when the room starts, hosts a toolkit a user calls, and goes when the room ends", async () => {
    const id = await s.client().createService(s.admin.projectId, {
      version: "v1",
      kind: "Service",
      metadata: { name: "echo-agent" },
      agents: [{ name: "echo-agent" }],
      container: container({ AGENT_TOOLKIT: "echo" }),
    } as any);
    try {
      const room = await newRoom();
      const alice = await user(room);
      await until(async () => (await toolkits(alice)).includes("echo"), 30_000, "the service's agent hosting echo");
      const r: any = await within(alice.agents.invokeTool({ toolkit: "echo", tool: "echo", arguments: { hi: 1 } }));
      expect(r.json).toEqual({ echo: { hi: 1 }, room });
      expect(await status(room, id)).toMatchObject({ service_id: id, state: "running", restart_count: 0, room_name: room });
      expect((await projectContainers()).length).toBe(1);
      const sessionId = alice.sessionId!;
      // The agent alone does not keep the room alive: alice leaves, the session ends, the container goes.
      alice.dispose();
      await until(async () => (await projectContainers()).length === 0, 20_000, "the container removed");
      await until(async () => (await status(room, id)).state === "stopped", 10_000, "stopped");
      const sess: any = await s.client().getSession(s.admin.projectId, sessionId);
      expect(sess.is_active).toBe(false);
      expect(events.filter((e) => e.data.service_id === id && e.type.startsWith("service.")).map((e) => e.type)).toEqual([
        "service.started",
        "service.stopped",
      ]);
      const usage = events.find((e) => e.type === "usage.recorded" && e.data.usage_type === "container" && e.data.service_id === id);
      expect(usage?.data).toMatchObject({ unit: "container_second", room_name: room, session_id: sessionId });
      expect(usage!.data.quantity).toBeGreaterThan(0);
      // Its output is in the session (developer logs), its start a span.
      const ev: any = await s.client().listSessionEvents(s.admin.projectId, sessionId);
      const lines = (ev as any[]).filter((e) => e.type === "developer.log" && e.data?.type === "service.log").map((e) => e.data.data.line);
      expect(lines.some((l: string) => l.startsWith("joined"))).toBe(true);
      const spans: any = await s.client().listSessionSpans(s.admin.projectId, sessionId);
      expect((spans as any[]).some((sp) => sp.name === "service.start")).toBe(true);
      const all = (await s.http("GET", `/accounts/projects/${s.admin.projectId}/services/${id}/status`)).json;
      expect(all.rooms[0]).toMatchObject({ room_name: room, state: "stopped" });
    } finally {
      await s.client().deleteService(s.admin.projectId, id);
    }
  }, 90_000);

  it("environment values, tokens, room secrets and container secrets arrive; secret values never reach the logs", async () => {
    const room = await newRoom();
    const secret = `sekrit-${Date.now()}`;
    const secretId = await s.client().createProjectSecret({
      projectId: s.admin.projectId,
      name: "keys",
      type: "keys",
      data: new TextEncoder().encode(JSON.stringify({ API_KEY: secret })),
    });
    await s.client().createRoomSecret({
      projectId: s.admin.projectId,
      roomName: room,
      data: new TextEncoder().encode("room-secret-value"),
      secretId: "rs1",
      forIdentity: "envy",
    });
    const id = await roomService(room, {
      version: "v1",
      kind: "Service",
      metadata: { name: "envy" },
      agents: [{ name: "envy" }],
      container: {
        image,
        environment: [
          { name: "AGENT_TOOLKIT", value: "envkit" },
          { name: "AGENT_PRINT", value: "API_KEY" },
          { name: "HELPER_TOKEN", token: { identity: "helper", role: "tool" } },
          { name: "ROOM_SECRET", secret: { identity: "envy", id: "rs1" } },
        ],
        secrets: [secretId],
      },
    });
    const alice = await user(room);
    await until(async () => (await toolkits(alice)).includes("envkit"), 30_000, "envkit hosted");
    const r: any = await within(
      alice.agents.invokeTool({
        toolkit: "envkit",
        tool: "env",
        arguments: { names: ["API_KEY", "ROOM_SECRET", "HELPER_TOKEN", "MESHAGENT_ROOM", "MESHAGENT_API_URL"] },
      }),
    );
    expect(r.json).toMatchObject({ API_KEY: secret, ROOM_SECRET: "room-secret-value", MESHAGENT_ROOM: room, MESHAGENT_API_URL: s.url });
    const helper = decodeJwt(r.json.HELPER_TOKEN);
    expect(helper.name).toBe("helper");
    expect(helper.grants).toEqual(
      expect.arrayContaining([
        { name: "room", scope: room },
        { name: "role", scope: "tool" },
      ]),
    );
    // The agent printed API_KEY=<value>: the room's logs show it redacted; the server's logs never have it.
    const sessionId = alice.sessionId!;
    await until(
      async () => ((await s.client().listSessionEvents(s.admin.projectId, sessionId)) as any[]).some((e) => e.data?.data?.line === "API_KEY=[redacted]"),
      10_000,
      "the redacted line",
    );
    const events = JSON.stringify(await s.client().listSessionEvents(s.admin.projectId, sessionId));
    expect(events).not.toContain(secret);
    expect(logs.join("")).not.toContain(secret);
    expect(logs.join("")).not.toContain(r.json.HELPER_TOKEN);
    alice.dispose();
    await until(async () => (await status(room, id)).state === "stopped", 20_000, "stopped");
  }, 90_000);

  it("a port with a meshagent endpoint: once its liveness path answers, the endpoint gets room.call and its agent joins", async () => {
    const room = await newRoom();
    const id = await roomService(room, {
      version: "v1",
      kind: "Service",
      metadata: { name: "hooked" },
      ports: [{ num: "*", liveness: "/healthz", endpoints: [{ path: "/agent", meshagent: { identity: "hooked-agent" } }] }],
      container: container({ AGENT_MODE: "webhook", AGENT_TOOLKIT: "hookkit" }),
    });
    const alice = await user(room);
    await until(async () => (await toolkits(alice)).includes("hookkit"), 30_000, "hookkit hosted");
    const kits: any[] = await within(alice.agents.listToolkits());
    expect(kits.find((k) => k.name === "hookkit")).toBeTruthy();
    // The agent joins while it answers room.call; the service is running once that call returned.
    await until(async () => (await status(room, id)).state === "running", 10_000, "running");
    alice.dispose();
  }, 90_000);

  it("an external service is invoked over room.call without a container", async () => {
    const room = await newRoom();
    const calls: any[] = [];
    const joined: OfficialRoom[] = [];
    const receiver: Server = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", async () => {
        const ev = JSON.parse(body);
        calls.push(ev);
        const r = new RoomClient({
          protocolFactory: WebSocketClientProtocol.createFactory({ url: ev.data.room_url, token: ev.data.token }),
          reconnectTimeout: 0,
        });
        await r.start();
        joined.push(r);
        res.writeHead(200, { "content-type": "application/json" });
        res.end('{"ok": true}');
      });
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
    try {
      const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/webhook`;
      const id = await roomService(room, {
        version: "v1",
        kind: "Service",
        metadata: { name: "outside" },
        agents: [{ name: "outside-agent" }],
        external: { url },
      });
      const alice = await user(room);
      await until(() => joined.length === 1, 15_000, "the external agent joined");
      expect(calls[0]).toMatchObject({ event: "room.call", data: { room_name: room, arguments: null } });
      expect(decodeJwt(calls[0].data.token).name).toBe("outside-agent");
      await until(async () => (await status(room, id)).state === "running", 10_000, "running");
      expect((await roomContainers(room)).length).toBe(0);
      alice.dispose();
    } finally {
      for (const j of joined) j.dispose();
      receiver.close();
    }
  }, 60_000);

  it("a crashing service backs off, then reports failed with its exit code; services.restart starts it again", async () => {
    const room = await newRoom();
    const id = await roomService(room, {
      version: "v1",
      kind: "Service",
      metadata: { name: "crashy" },
      container: container({ AGENT_MODE: "crash", AGENT_EXIT_CODE: "4" }),
    });
    const alice = await user(room);
    const services = new ServicesClient({ room: alice });
    await until(async () => (await status(room, id)).state === "failed", 40_000, "failed");
    const st = await status(room, id);
    expect(st).toMatchObject({ state: "failed", restart_count: 2, last_exit_code: 4 });
    expect(st.last_error).toMatch(/exited with code 4; gave up after 2 restart/);
    const listed: any = await within(services.listWithState());
    expect(listed.services.map((x: any) => x.id)).toContain(id);
    expect(listed.serviceStates[id]).toMatchObject({ serviceId: id, state: "failed", restartCount: 2, lastExitCode: 4 });
    expect(events.some((e) => e.type === "service.failed" && e.data.service_id === id)).toBe(true);
    // Nothing of it is left running, and it is not restarted forever.
    expect((await roomContainers(room)).length).toBe(0);
    await within(services.restart({ serviceId: id }));
    await until(async () => (await status(room, id)).restart_count >= 1, 20_000, "restarted once more");
    await expect(services.restart({ serviceId: "nope" })).rejects.toThrow(/no service/);
    alice.dispose();
    await until(async () => (await roomContainers(room)).length === 0, 20_000, "no containers");
  }, 90_000);

  it("an on_demand service starts when a toolkit it declares is first called", async () => {
    const room = await newRoom();
    const id = await roomService(room, {
      version: "v1",
      kind: "Service",
      metadata: { name: "lazy" },
      agents: [{ name: "lazy", channels: { toolkit: [{ name: "lazykit" }] } }],
      container: container({ AGENT_TOOLKIT: "lazykit" }, { on_demand: true }),
    });
    const alice = await user(room);
    await new Promise((r) => setTimeout(r, 500));
    expect(await status(room, id)).toMatchObject({ state: "stopped" });
    expect((await roomContainers(room)).length).toBe(0);
    const r: any = await within(alice.agents.invokeTool({ toolkit: "lazykit", tool: "echo", arguments: { x: 1 } }), 30_000);
    expect(r.json).toEqual({ echo: { x: 1 }, room });
    expect(await status(room, id)).toMatchObject({ state: "running" });
    alice.dispose();
    await until(async () => (await roomContainers(room)).length === 0, 20_000, "no containers");
  }, 90_000);

  it("meshagent.room.max-runtime-seconds ends the session even with a user in it", async () => {
    const room = await newRoom();
    await roomService(room, {
      version: "v1",
      kind: "Service",
      metadata: { name: "timer", annotations: { "meshagent.room.max-runtime-seconds": "2" } },
      container: container({ AGENT_TOOLKIT: "timerkit" }),
    });
    const alice = await user(room);
    const sessionId = alice.sessionId!;
    await until(async () => !((await s.client().getSession(s.admin.projectId, sessionId)) as any).is_active, 15_000, "the session ended");
    await until(async () => (await roomContainers(room)).length === 0, 20_000, "no containers");
  }, 60_000);

  it("a scheduled task with a container target runs it in the room and records its exit code and output", async () => {
    const room = await newRoom();
    const P = `/accounts/projects/${s.admin.projectId}`;
    const make = async (name: string, command: string) => {
      const r = await s.http("POST", `${P}/rooms/${room}/scheduled-tasks`, {
        json: { spec: { version: "v1", kind: "ScheduledTask", metadata: { name, annotations: {} }, schedule: "0 3 * * *", container: { image, command } } },
      });
      expect(r.status, r.text).toBe(201);
      return r.json.task.id as string;
    };
    const bad = await make("failing", "sh -c 'echo task says hi; echo $MESHAGENT_ROOM; exit 3'");
    const good = await make("passing", "node -e 'console.log(\"ok from node\")'");
    // Due now: the engine fires both on its next tick.
    await s.ctx.store.db
      .updateTable("scheduled_tasks")
      .set({ next_run_at: Date.now() - 1 })
      .where("id", "in", [bad, good])
      .execute();
    await s.ctx.schedulerEngine.tick();
    const runsOf = async (id: string) => (await s.http("GET", `${P}/scheduled-tasks/${id}/runs`)).json.runs as any[];
    await until(async () => (await runsOf(bad))[0]?.status === "failed" && (await runsOf(good))[0]?.status === "submitted", 30_000, "both runs recorded");
    const [b] = await runsOf(bad);
    expect(b).toMatchObject({ target: "container", status: "failed", exit_code: 3, error: "the container exited with code 3" });
    expect(b.container_id).toMatch(/^[0-9a-f]{12,}$/);
    expect(b.logs).toContain("task says hi");
    expect(b.logs).toContain(room);
    const [g] = await runsOf(good);
    expect(g).toMatchObject({ status: "submitted", exit_code: 0, error: null });
    expect(g.logs).toContain("ok from node");
    const t = (await s.http("GET", `${P}/scheduled-tasks/${bad}`)).json;
    expect(t.last_status ?? t.task?.last_status).toBe("failed");
    expect((await roomContainers(room)).length).toBe(0);
  }, 60_000);

  it("without a container runtime, container services report no_runtime and external ones still run", async () => {
    const bare = await startServer({ env: { MESHAGENT_DOCKER_HOST: "none", MESHAGENT_ROOM_EMPTY_TIMEOUT: "0.3" } });
    try {
      await bare.client().createRoom({ projectId: bare.admin.projectId, name: "bare" });
      const id = await bare
        .client()
        .createRoomService(bare.admin.projectId, "bare", { version: "v1", kind: "Service", metadata: { name: "c" }, container: { image: "x" } } as any);
      const r = await joinRoom(roomWsUrl(bare, "bare"), await mintToken(bare.admin.apiKey, "bare", { name: "u", role: "user", api: ApiScope.full() }));
      try {
        const listed: any = await within(new ServicesClient({ room: r }).listWithState());
        await until(
          async () => (await bare.http("GET", `/accounts/projects/${bare.admin.projectId}/rooms/bare/services/${id}/status`)).json.state === "no_runtime",
        );
        const st = (await bare.http("GET", `/accounts/projects/${bare.admin.projectId}/rooms/bare/services/${id}/status`)).json;
        expect(st.last_error).toMatch(/no container runtime/);
        expect(listed.services.length).toBe(1);
      } finally {
        r.dispose();
      }
    } finally {
      await bare.close();
    }
  }, 30_000);
});

d("kill -9 of the server mid-session (Docker)", () => {
  it("after a restart no orphaned containers remain, and the room gets its services back", async () => {
    const rt = runtime as DockerRuntime;
    const image = await nodeImage(rt);
    const data = await restartableData("meshagent-hostkill-", {
      MESHAGENT_DOCKER_HOST: testDockerHost()!,
      MESHAGENT_ROOM_EMPTY_TIMEOUT: "0.5",
      MESHAGENT_ROOM_LEASE: "1.5",
    });
    const b = JSON.parse(
      execFileSync(process.execPath, ["--import", TSX_LOADER, join(ROOT, "src/main.ts"), "bootstrap", "--json", "--email", "kill@example.com"], {
        cwd: data.dataDir,
        env: { ...process.env, ...data.env, MESHAGENT_LOG_LEVEL: "warn" },
        encoding: "utf8",
      }).trim(),
    );
    const mine = () => rt.list({ [LABEL.managed]: "1", [LABEL.project]: b.project_id });
    let srv: ServerProcess | undefined = await spawnServer(data.env);
    const rooms: OfficialRoom[] = [];
    try {
      const c = new Meshagent({ baseUrl: srv.url, token: b.api_key });
      await c.createRoom({ projectId: b.project_id, name: "kill" });
      await c.createRoomService(b.project_id, "kill", {
        version: "v1",
        kind: "Service",
        metadata: { name: "k" },
        agents: [{ name: "k" }],
        container: { image },
      } as any);
      const join1 = async () => {
        const r = await joinRoom(
          `${srv!.url.replace(/^http/, "ws")}/rooms/kill`,
          await mintToken(b.api_key, "kill", { name: "u", role: "user", api: ApiScope.full() }),
        );
        rooms.push(r);
        await until(async () => ((await within(r.agents.listToolkits())) as any[]).some((k) => k.name === "echo"), 30_000, "the service's agent");
        return r;
      };
      await join1();
      const before = await mine();
      expect(before.length).toBe(1);
      expect(await srv.kill("SIGKILL")).toBe(null);
      for (const r of rooms.splice(0)) r.dispose();
      // The container outlived the process; the restarted server removes it (its session is no longer live).
      expect((await mine()).map((x) => x.id)).toEqual([before[0].id]);
      srv = await spawnServer(data.env);
      await until(async () => !(await mine()).some((x) => x.id === before[0].id), 20_000, "the orphan removed");
      // A user comes back: a new session, and the service runs again in it.
      await join1();
      const after = await mine();
      expect(after.length).toBe(1);
      expect(after[0].id).not.toBe(before[0].id);
    } finally {
      for (const r of rooms) r.dispose();
      await srv?.kill("SIGTERM").catch(() => null);
      for (const x of await mine()) await rt.remove(x.id, { force: true });
      await data.db.drop();
    }
    expect(await mine()).toEqual([]);
  }, 120_000);
});
