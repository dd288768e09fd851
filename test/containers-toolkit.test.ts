import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LABEL, type DockerRuntime } from "../src/runtime/index.js";
import type { DomainEvent } from "../src/core/events.js";
import { busyboxImage, dockerForTests, testDockerHost } from "./helpers/images.js";
import { startServer, type TestServer } from "./helpers/server.js";
import { ApiScope, connectAndJoin, joinRoom, mintToken, official, roomWsUrl, until, within as withinT, type OfficialRoom } from "./helpers/room-client.js";

const { ContainersClient, ContainersGrant, RoomServerException } = official as any;

const runtime = await dockerForTests("containers-toolkit.test.ts");

const within = (p: Promise<any>, ms = 20_000, what = "call"): Promise<any> => withinT(p, ms, what);
const RUN = `ct${process.pid}${Date.now().toString(36)}`;

/** What a RoomServerException-rejected promise carried: [message, code]. */
async function rejection(p: Promise<unknown>, ms = 20_000): Promise<[string, number | undefined]> {
  try {
    await within(p, ms);
  } catch (e: any) {
    if (!(e instanceof RoomServerException)) throw e;
    return [e.message, e.code];
  }
  throw new Error("the call succeeded");
}

const text = (chunks: Uint8Array[]) => Buffer.concat(chunks.map((c) => Buffer.from(c))).toString("utf8");

async function readLogs(c: any, containerId: string): Promise<string> {
  const session = c.logs({ containerId });
  let out = "";
  for await (const t of session.stream) out += t;
  await within(session.result);
  return out;
}

/** Every container (running or not) of the project, with the runtime's labels. */
const projectContainers = (rt: DockerRuntime, projectId: string) => rt.list({ [LABEL.project]: projectId });

/** afterAll: nothing of the project may remain; what does is removed (and the test fails). */
async function leftovers(rt: DockerRuntime, projectId: string) {
  const left = await projectContainers(rt, projectId);
  for (const c of left) await rt.remove(c.id, { force: true }).catch(() => undefined);
  return left.map((c) => `${c.id.slice(0, 12)} ${c.labels[LABEL.kind]} ${c.status}`);
}

describe("containers toolkit without a container runtime", () => {
  let s: TestServer;
  const rooms: OfficialRoom[] = [];
  beforeAll(async () => {
    s = await startServer({ env: { MESHAGENT_DOCKER_HOST: "none" } });
  });
  afterAll(async () => {
    for (const r of rooms) r.dispose();
    await s?.close();
  });

  it("every tool answers why there is none", async () => {
    await s.client().createRoom({ projectId: s.admin.projectId, name: "no-runtime" } as any);
    const { room } = await connectAndJoin(s, "no-runtime");
    rooms.push(room);
    const c = new ContainersClient({ room });
    const [msg, code] = await rejection(c.list());
    expect(msg).toMatch(/^no container runtime/);
    expect(msg).toMatch(/MESHAGENT_DOCKER_HOST/);
    expect(code).toBe(1008);
    expect((await rejection(c.run({ image: "busybox" })))[0]).toMatch(/^no container runtime/);
    expect((await rejection(c.listImages()))[0]).toMatch(/^no container runtime/);
    await expect(within(c.exec({ containerId: "x", command: "true" }).result)).rejects.toThrow(/no container runtime/);
    await expect(within(c.logs({ containerId: "x" }).result)).rejects.toThrow(/no container runtime/);
    // Builds are not supported here at all.
    expect((await rejection(c.listBuilds()))[0]).toMatch(/not supported by this server: containers\.list_builds/);
  });
});

describe.skipIf(!runtime)("the room containers toolkit (official ContainersClient 0.39.9) against a real dockerd", () => {
  const rt = runtime!;
  let s: TestServer;
  let image: string;
  const rooms: OfficialRoom[] = [];
  const track = (r: OfficialRoom) => (rooms.push(r), r);
  let n = 0;
  const newRoom = async () => {
    const name = `ct-${++n}`;
    await s.client().createRoom({ projectId: s.admin.projectId, name } as any);
    return name;
  };
  const join = async (room: string) => track((await connectAndJoin(s, room)).room);
  const withToken = async (room: string, api: unknown) =>
    track(await joinRoom(roomWsUrl(s, room), await mintToken(s.admin.apiKey, room, { name: `p-${++n}`, api: api as any })));
  const copyRef = `meshagent-test/ct-copy:${RUN}`;

  beforeAll(async () => {
    image = await busyboxImage(rt);
    s = await startServer({ env: { MESHAGENT_DOCKER_HOST: testDockerHost()!, MESHAGENT_ROOM_EMPTY_TIMEOUT: "0.2" } });
  }, 120_000);

  afterAll(async () => {
    for (const r of rooms) r.dispose();
    // Closing the server ends every session: their containers must go with them.
    await s?.close();
    const left = s ? await leftovers(rt, s.admin.projectId) : [];
    await rt.removeImage(copyRef).catch(() => undefined);
    expect(left).toEqual([]);
  }, 60_000);

  it("run, list, logs, exec (streamed stdin, exit status), stop, wait_for_exit, delete", async () => {
    const room = await newRoom();
    const a = await join(room);
    const c = new ContainersClient({ room: a });
    const id: string = await within(c.run({ image, command: 'sh -c "echo hi; sleep 30"', name: "first", ports: { 8080: 8080 }, env: { GREETING: "hello" } }));
    expect(id).toMatch(/^[0-9a-f]{64}$/);

    const listed = await within(c.list());
    expect(listed).toEqual([
      {
        id,
        image,
        name: "first",
        ports: [8080],
        startedBy: { id: a.localParticipant!.id, name: expect.any(String) },
        state: "running",
        private: true,
        serviceId: undefined,
      },
    ]);

    // The container carries the managed labels of this room and session.
    const st = (await rt.list({ [LABEL.room]: (await s.ctx.rooms.byName(s.admin.projectId, room)).id })).find((x) => x.id === id)!;
    expect(st.labels).toMatchObject({ [LABEL.managed]: "1", [LABEL.kind]: "container", [LABEL.project]: s.admin.projectId });

    await until(async () => (await readLogs(c, id)).includes("hi"), 10_000, "the container's output");
    // Following: the first line arrives, then cancel ends it.
    const follow = c.logs({ containerId: id, follow: true });
    const it1 = follow.stream[Symbol.asyncIterator]();
    expect((await within(it1.next())).value).toContain("hi");
    await within(follow.cancel());

    // exec with streamed stdin: cat echoes what it is sent; closing the input is end of file.
    const ex = c.exec({ containerId: id, command: "cat" });
    await ex.write(new TextEncoder().encode("ping\n"));
    const out = ex.output[Symbol.asyncIterator]();
    expect(Buffer.from((await within(out.next())).value).toString()).toBe("ping\n");
    await ex.write(new TextEncoder().encode("pong"));
    await ex.stop();
    expect(await within(ex.result)).toBe(0);
    expect(text(ex.previousOutput)).toBe("ping\npong");

    // The environment given to run, plus the official client's.
    const envEx = c.exec({ containerId: id, command: "echo $GREETING $MESHAGENT_ROOM" });
    expect(await within(envEx.result)).toBe(0);
    expect(text(envEx.previousOutput)).toBe(`hello ${room}\n`);

    // A failing command: stderr on its own channel, its exit status.
    const bad = c.exec({ containerId: id, command: "echo oops >&2; exit 3" });
    expect(await within(bad.result)).toBe(3);
    expect(text(bad.previousError)).toBe("oops\n");
    expect(text(bad.previousOutput)).toBe("");

    // kill: the exec's connection is dropped; a command that outlives that ends the stream without a status.
    const stuck = c.exec({ containerId: id, command: "sleep 20" });
    await new Promise((r) => setTimeout(r, 200));
    await stuck.kill();
    await expect(within(stuck.result)).rejects.toThrow(/killed/);

    // Unknown container: CONTAINER_NOT_FOUND on every tool that names one.
    await expect(within(c.exec({ containerId: "0".repeat(64), command: "true" }).result)).rejects.toMatchObject({ code: 6001 });
    expect((await rejection(c.waitForExit({ containerId: "nope" })))[1]).toBe(6001);

    await within(c.stop({ containerId: id, force: true }));
    expect(await within(c.waitForExit({ containerId: id }))).toBe(137);
    expect(await within(c.list())).toEqual([]);
    expect((await within(c.list({ all: true }))).map((x: any) => [x.id, x.state])).toEqual([[id, "exited"]]);

    await within(c.deleteContainer({ containerId: id }));
    expect(await within(c.list({ all: true }))).toEqual([]);
    expect(await rt.inspect(id)).toBeNull();
    expect((await rejection(c.deleteContainer({ containerId: id })))[1]).toBe(6001);
  }, 60_000);

  it("room storage mounted at mount_path, with the caller's storage rights", async () => {
    const room = await newRoom();
    const a = await join(room);
    const c = new ContainersClient({ room: a });
    const id: string = await within(c.run({ image, command: "sleep 30", mountPath: "/data", mountSubpath: "work" }));
    const ex = c.exec({ containerId: id, command: "echo from-container > /data/out.txt" });
    expect(await within(ex.result)).toBe(0);
    const file = await within(a.storage.download("work/out.txt"));
    expect(Buffer.from(file.data).toString()).toBe("from-container\n");
    await within(c.deleteContainer({ containerId: id }));

    // A token that may write docs/ only: mounting the room root is refused, read-only docs/ is fine.
    const sc = ApiScope.agentDefault();
    (sc as any).storage = new (official as any).StorageGrant({ paths: [new (official as any).StoragePathGrant({ path: "docs/" })] });
    const limited = new ContainersClient({ room: await withToken(room, sc) });
    expect(await rejection(limited.run({ image, command: "sleep 30", mountPath: "/data" }))).toEqual([expect.stringMatching(/may not write/), 1001]);
    const ok: string = await within(limited.run({ image, command: "sleep 30", mounts: { room: [{ path: "/docs", subpath: "docs", read_only: true }] } }));
    await within(limited.deleteContainer({ containerId: ok }));
  }, 60_000);

  it("private containers are their starter's; public ones the room's; other rooms see neither", async () => {
    const room = await newRoom();
    const a = await join(room);
    const b = await join(room);
    const ca = new ContainersClient({ room: a });
    const cb = new ContainersClient({ room: b });
    const mine: string = await within(ca.run({ image, command: "sleep 30" }));
    const shared: string = await within(ca.run({ image, command: "sleep 30", private: false }));

    expect((await within(cb.list())).map((x: any) => [x.id, x.private])).toEqual([[shared, false]]);
    expect((await within(ca.list())).map((x: any) => x.id).sort()).toEqual([mine, shared].sort());
    for (const call of [
      () => cb.stop({ containerId: mine, force: true }),
      () => cb.waitForExit({ containerId: mine }),
      () => cb.deleteContainer({ containerId: mine }),
      // a unique prefix works for one's own containers only
      () => cb.stop({ containerId: mine.slice(0, 12) }),
    ])
      expect(await rejection(call())).toEqual([expect.stringMatching(/^no container/), 6001]);
    await expect(within(cb.logs({ containerId: mine }).result)).rejects.toMatchObject({ code: 6001 });
    await expect(within(cb.exec({ containerId: mine, command: "true" }).result)).rejects.toMatchObject({ code: 6001 });

    // The public one: b may exec in it.
    const ex = cb.exec({ containerId: shared, command: "echo shared" });
    expect(await within(ex.result)).toBe(0);
    expect(text(ex.previousOutput)).toBe("shared\n");

    // Another room: not even the public container.
    const other = await newRoom();
    const co = new ContainersClient({ room: await join(other) });
    expect(await within(co.list({ all: true }))).toEqual([]);
    expect((await rejection(co.stop({ containerId: shared, force: true })))[1]).toBe(6001);

    await within(ca.deleteContainer({ containerId: mine.slice(0, 12) }));
    await within(cb.deleteContainer({ containerId: shared }));
    expect(await within(ca.list({ all: true }))).toEqual([]);
  }, 60_000);

  it("the containers section of the token's ApiScope: use_containers, logs, run and pull lists", async () => {
    const room = await newRoom();
    const without = ApiScope.agentDefault();
    (without as any).containers = undefined;
    const c0 = new ContainersClient({ room: await withToken(room, without) });
    expect(await rejection(c0.list())).toEqual([expect.stringMatching(/no containers section/), 1001]);
    expect((await rejection(c0.run({ image })))[1]).toBe(1001);

    const scoped = (grant: Record<string, unknown>) => {
      const sc = ApiScope.agentDefault();
      (sc as any).containers = new ContainersGrant(grant);
      return sc;
    };
    const off = new ContainersClient({ room: await withToken(room, scoped({ useContainers: false })) });
    expect((await rejection(off.listImages()))[0]).toMatch(/use_containers is false/);

    const runOther = new ContainersClient({ room: await withToken(room, scoped({ run: ["docker.io/library/*"], pull: ["nothing"] })) });
    expect(await rejection(runOther.run({ image }))).toEqual([expect.stringMatching(/may not run the image/), 1001]);
    expect((await rejection(runOther.pullImage({ tag: "127.0.0.1:9/x:1" })))[0]).toMatch(/may not pull the image/);

    // The run list by prefix; logs false denies logs but not the rest.
    const noLogs = new ContainersClient({ room: await withToken(room, scoped({ run: ["meshagent-test/*"], logs: false })) });
    const id: string = await within(noLogs.run({ image, command: "sleep 30" }));
    await expect(within(noLogs.logs({ containerId: id }).result)).rejects.toMatchObject({ code: 1001 });
    const ex = noLogs.exec({ containerId: id, command: "true" });
    expect(await within(ex.result)).toBe(0);

    // A pull the grant allows reaches the engine, whose refusal comes back as an error (nothing listens there).
    const [msg, code] = await rejection(noLogs.pullImage({ tag: "127.0.0.1:9/nothing:1" }));
    expect(msg).toMatch(/pulling 127\.0\.0\.1:9\/nothing:1/);
    expect(code).toBe(1008);
    // Bad input names the field.
    expect(await rejection(noLogs.run({ image: "" }))).toEqual([expect.stringMatching(/^image must be a non-empty string/), 1002]);
    expect((await rejection(noLogs.run({ image, ports: { x: 1 } as any })))[0]).toMatch(/ports\[0\]\.container_port/);
    expect((await rejection(noLogs.run({ image, mounts: { room: [{ nope: 1 }] } as any })))[0]).toMatch(/mounts\.room\[0\]/);

    await within(noLogs.deleteContainer({ containerId: id }));
  }, 60_000);

  it("run_service starts a room service's container; the room's service containers are listed as the server's", async () => {
    const room = await newRoom();
    const P = s.admin.projectId;
    const onDemand = await s.client().createRoomService(P, room, {
      version: "v1",
      kind: "Service",
      metadata: { name: "on-call" },
      container: { image, command: "sleep 30", on_demand: true },
    } as any);
    const always = await s.client().createRoomService(P, room, {
      version: "v1",
      kind: "Service",
      metadata: { name: "always-on" },
      container: { image, command: "sleep 30" },
    } as any);
    const a = await join(room);
    const c = new ContainersClient({ room: a });

    const id: string = await within(c.runService({ serviceId: onDemand, env: { EXTRA: "x" } }));
    const ex = c.exec({ containerId: id, command: "echo $EXTRA" });
    expect(await within(ex.result)).toBe(0);
    expect(text(ex.previousOutput)).toBe("x\n");

    // The always-on service is started by the room's session (the service runtime): it shows up as the server's.
    let listed: any[] = [];
    await until(async () => (listed = await within(c.list())).length === 2, 15_000, "the service container");
    const byId = new Map(listed.map((x) => [x.serviceId, x]));
    expect(byId.get(onDemand)).toMatchObject({ id, name: "on-call", startedBy: { id: a.localParticipant!.id }, private: true, state: "running" });
    expect(byId.get(always)).toMatchObject({ name: "always-on", startedBy: { id: "server", name: "always-on" }, private: false, state: "running" });
    expect((await rejection(c.stop({ containerId: byId.get(always).id })))[0]).toMatch(/belongs to service .*services\.restart/);
    // Its output and a shell in it are the service runtime's business (its output is in the developer logs,
    // redacted): for tokens with the admin section only (connect_room's token for an API key has it).
    const agent = new ContainersClient({ room: await withToken(room, ApiScope.agentDefault()) });
    await expect(within(agent.logs({ containerId: byId.get(always).id }).result)).rejects.toMatchObject({ code: 1001 });
    await expect(within(agent.exec({ containerId: byId.get(always).id, command: "true" }).result)).rejects.toMatchObject({ code: 1001 });
    expect(await readLogs(c, byId.get(always).id)).toBe("");

    expect(await rejection(c.runService({ serviceId: "no-such-service" }))).toEqual([expect.stringMatching(/no service/), 7001]);
    await within(c.deleteContainer({ containerId: id }));
  }, 60_000);

  it("images: list, inspect, save_image to room storage, delete, load_image and load back", async () => {
    const room = await newRoom();
    const a = await join(room);
    const c = new ContainersClient({ room: a });
    const images = await within(c.listImages());
    const bb = images.find((i: any) => i.references.includes(image));
    expect(bb).toMatchObject({ id: expect.stringMatching(/^sha256:/), preferredRef: expect.any(String), labels: { "meshagent.test": "1" } });
    expect(bb.createdAt).toBeInstanceOf(Date);

    const insp = await within(c.inspectImage({ imageId: image }));
    expect(insp.image.id).toBe(bb.id);
    expect(insp.target).toMatchObject({ digest: bb.id, size: expect.any(Number) });
    expect(insp.manifests).toEqual([]);
    expect((await rejection(c.inspectImage({ imageId: "meshagent-test/none:0" })))[1]).toBe(1003);

    await (rt.docker.getImage(image) as any).tag({ repo: copyRef.split(":")[0], tag: RUN });
    // save_image: the archive path inside the mounts given (room storage at /data).
    expect(await within(c.saveImage({ tag: copyRef, mounts: [{ room: [{ path: "/data" }] }], archivePath: "/data/images/copy.tar" }))).toBe(copyRef);
    expect(await within(a.storage.exists("images/copy.tar"))).toBe(true);
    expect((await rejection(c.saveImage({ tag: copyRef, mounts: [{ room: [{ path: "/data" }] }], archivePath: "/elsewhere/x.tar" })))[1]).toBe(1002);

    await within(c.deleteImage({ image: copyRef }));
    expect((await within(c.listImages())).some((i: any) => i.references.includes(copyRef))).toBe(false);

    // load_image: without mounts the path is a room storage path.
    expect(await within(c.loadImage({ mounts: [], archivePath: "images/copy.tar" }))).toBe(copyRef);
    expect((await within(c.listImages())).find((i: any) => i.references.includes(copyRef))?.id).toBe(bb.id);
    expect(await within(c.load({ archivePath: "images/copy.tar" }))).toEqual({ resolvedRef: copyRef, refs: [copyRef] });
    expect((await rejection(c.load({ archivePath: "images/missing.tar" })))[1]).toBe(3001);
    await within(c.deleteImage({ image: copyRef }));
  }, 60_000);
});

describe.skipIf(!runtime)("containers of a session: the per-project limit, removal when the session ends", () => {
  const rt = runtime!;
  let s: TestServer;
  let image: string;
  const events: DomainEvent[] = [];

  beforeAll(async () => {
    image = await busyboxImage(rt);
    s = await startServer({
      env: { MESHAGENT_DOCKER_HOST: testDockerHost()!, MESHAGENT_ROOM_EMPTY_TIMEOUT: "0.2", MESHAGENT_CONTAINER_MAX_PER_PROJECT: "1" },
    });
    s.ctx.bus.on((e) => events.push(e));
  }, 120_000);

  afterAll(async () => {
    await s?.close();
    const left = s ? await leftovers(rt, s.admin.projectId) : [];
    expect(left).toEqual([]);
  }, 60_000);

  it("a second container over MESHAGENT_CONTAINER_MAX_PER_PROJECT is refused; leaving the room removes the first and meters it", async () => {
    await s.client().createRoom({ projectId: s.admin.projectId, name: "ends" } as any);
    const roomId = (await s.ctx.rooms.byName(s.admin.projectId, "ends")).id;
    const { room } = await connectAndJoin(s, "ends");
    const c = new ContainersClient({ room });
    const id: string = await within(c.run({ image, command: 'sh -c "echo hi; sleep 30"' }));
    expect(await rejection(c.run({ image, command: "sleep 30" }))).toEqual([expect.stringMatching(/^limit: .*MESHAGENT_CONTAINER_MAX_PER_PROJECT/), 1006]);
    expect((await rt.list({ [LABEL.room]: roomId })).map((x) => x.id)).toEqual([id]);

    room.dispose();
    await until(async () => (await rt.list({ [LABEL.room]: roomId })).length === 0, 20_000, "the session's containers removed");
    await until(() => events.some((e) => e.type === "usage.recorded" && (e.data as any).container_id === id), 5_000, "usage recorded");
    const usage = events.find((e) => e.type === "usage.recorded" && (e.data as any).container_id === id)!;
    expect(usage.data).toMatchObject({ usage_type: "container", unit: "container_second", room_id: roomId, room_name: "ends", quantity: expect.any(Number) });
  }, 60_000);
});
