import { createServer, type Server } from "node:http";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import {
  demux,
  detectRuntime,
  listManaged,
  managedLabels,
  NO_DOCKER_HOST,
  removeOrphans,
  RuntimeError,
  type ContainerCreateSpec,
  type DockerRuntime,
  type OutputChunk,
} from "../src/runtime/index.js";
import { busyboxImage, dockerForTests, nodeImage } from "./helpers/images.js";
import { startServer, type TestServer } from "./helpers/server.js";
import { joinRoom, mintToken, roomWsUrl, within, type OfficialRoom } from "./helpers/room-client.js";

const runtime = await dockerForTests("runtime-docker.test.ts");

/** Every container of this run carries this label, so afterAll finds (and removes) all of them, even after a failure. */
const RUN = `rt-${process.pid}-${Date.now().toString(36)}`;
const RUN_LABEL = "meshagent.test.run";

const text = (chunks: OutputChunk[], stream?: "stdout" | "stderr") =>
  Buffer.concat(chunks.filter((c) => !stream || c.stream === stream).map((c) => c.data)).toString("utf8");

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function toBuffer(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(Buffer.from(c as Buffer));
  return Buffer.concat(parts);
}

describe("demux: Docker's multiplexed output stream", () => {
  const frame = (kind: number, body: string) => {
    const data = Buffer.from(body);
    const h = Buffer.alloc(8);
    h[0] = kind;
    h.writeUInt32BE(data.length, 4);
    return Buffer.concat([h, data]);
  };
  it("reassembles frames split anywhere across chunks, in order, and drops stdin frames", async () => {
    const all = Buffer.concat([frame(1, "out one\n"), frame(2, "err\n"), frame(0, "ignored"), frame(1, ""), frame(1, "x".repeat(70_000))]);
    for (const cut of [1, 3, 8, 9, 17, 1000]) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < all.length; i += cut) chunks.push(all.subarray(i, i + cut));
      const got = await collect(demux(chunks));
      expect(got.map((c) => [c.stream, c.data.length])).toEqual([
        ["stdout", 8],
        ["stderr", 4],
        ["stdout", 0],
        ["stdout", 70_000],
      ]);
    }
  });
});

describe("container runtime detection and configuration", () => {
  it("no host: no_runtime with the reason; a socket nobody listens on, or a scheme we cannot use: no_runtime too", async () => {
    expect(await detectRuntime(null)).toEqual({ status: "no_runtime", reason: NO_DOCKER_HOST });
    const absent = await detectRuntime("unix:///nonexistent/docker.sock", { timeoutMs: 2000 });
    expect(absent.status).toBe("no_runtime");
    expect(absent.status === "no_runtime" && absent.reason).toMatch(/unix:\/\/\/nonexistent\/docker\.sock does not answer/);
    const ssh = await detectRuntime("ssh://user@host");
    expect(ssh.status === "no_runtime" && ssh.reason).toMatch(/unsupported Docker host/);
  });

  it("MESHAGENT_DOCKER_HOST, else DOCKER_HOST, else the default socket when it exists; `none` turns it off", () => {
    const dir = mkdtempSync(join(tmpdir(), "rt-config-"));
    try {
      const base = { MESHAGENT_DATA_DIR: dir };
      expect(loadConfig({ ...base, MESHAGENT_DOCKER_HOST: "tcp://10.0.0.1:2375", DOCKER_HOST: "unix:///x.sock" }).docker.host).toBe("tcp://10.0.0.1:2375");
      expect(loadConfig({ ...base, DOCKER_HOST: "unix:///x.sock" }).docker.host).toBe("unix:///x.sock");
      expect(loadConfig({ ...base, MESHAGENT_DOCKER_HOST: "none", DOCKER_HOST: "unix:///x.sock" }).docker.host).toBeNull();
      // DOCKER_HOST is shared with other tools: a scheme we cannot use does not stop the server (detection says why)
      expect(loadConfig({ ...base, DOCKER_HOST: "ssh://me@box" }).docker.host).toBe("ssh://me@box");
      expect(() => loadConfig({ ...base, MESHAGENT_DOCKER_HOST: "docker.sock" })).toThrow(/MESHAGENT_DOCKER_HOST: expected a unix:\/\//);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!runtime)("the Docker runtime (src/runtime/docker.ts) against a real dockerd", () => {
  const rt = runtime as DockerRuntime;
  let busybox: string;
  let node: string;
  const images: string[] = [];
  const dirs: string[] = [];

  const run = (spec: Omit<ContainerCreateSpec, "labels"> & { labels?: Record<string, string> }) =>
    rt.run({ ...spec, labels: { ...spec.labels, [RUN_LABEL]: RUN } }).then((r) => r.id);
  const sleeper = () => run({ image: busybox, command: ["sleep", "300"] });
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), "rt-mount-"));
    dirs.push(d);
    return d;
  };

  beforeAll(async () => {
    busybox = await busyboxImage(rt);
    node = await nodeImage(rt);
  }, 120_000);

  afterAll(async () => {
    for (const c of await rt.list({ [RUN_LABEL]: RUN })) await rt.remove(c.id, { force: true });
    for (const ref of images) await rt.removeImage(ref, { force: true });
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    expect(await rt.list({ [RUN_LABEL]: RUN })).toEqual([]);
  });

  it("reports the engine", async () => {
    expect(await rt.info()).toMatchObject({ kind: "docker", os: "linux", version: expect.any(String), apiVersion: expect.stringMatching(/^1\.\d+$/) });
  });

  it("runs a container: output in order (follow and tail), exit code, state, labels and env", async () => {
    const labels = managedLabels({ kind: "service", projectId: `p-${RUN}`, roomId: "r1", serviceId: "s1", revision: 3 });
    const id = await run({
      image: busybox,
      command: ["sh", "-c", 'echo one; sleep 0.1; echo two >&2; sleep 0.1; echo "three $GREETING"; exit 7'],
      env: { GREETING: "hello world" },
      labels,
    });
    const followed = await collect(rt.logs(id, { follow: true }));
    expect(followed.map((c) => [c.stream, c.data.toString()])).toEqual([
      ["stdout", "one\n"],
      ["stderr", "two\n"],
      ["stdout", "three hello world\n"],
    ]);
    expect(await rt.wait(id)).toEqual({ exitCode: 7 });
    const st = await rt.inspect(id);
    expect(st).toMatchObject({ id, status: "exited", exitCode: 7, oomKilled: false, error: null, image: busybox });
    expect(st!.labels).toMatchObject({ ...labels, [RUN_LABEL]: RUN, "meshagent.managed": "1", "meshagent.service.revision": "3" });
    expect(st!.startedAt).toBeGreaterThan(0);
    expect(st!.finishedAt).toBeGreaterThanOrEqual(st!.startedAt!);
    expect(text(await collect(rt.logs(id, { tail: 1 })))).toBe("three hello world\n");
    expect(text(await collect(rt.logs(id)), "stderr")).toBe("two\n");
  });

  it("follows the logs of a running container as it writes them, until aborted", async () => {
    const id = await run({ image: busybox, command: ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done"] });
    const ac = new AbortController();
    const seen: string[] = [];
    for await (const c of rt.logs(id, { follow: true, signal: ac.signal })) {
      seen.push(c.data.toString());
      if (seen.length === 3) ac.abort();
    }
    expect(seen.slice(0, 3)).toEqual(["tick 0\n", "tick 1\n", "tick 2\n"]);
    expect((await rt.inspect(id))!.status).toBe("running");
    // breaking out of the loop releases the stream too
    for await (const c of rt.logs(id, { follow: true, tail: 1 })) {
      expect(c.data.toString()).toMatch(/^tick \d+\n$/);
      break;
    }
    await rt.remove(id, { force: true });
  });

  it("stop honours its timeout; stop, remove and inspect of what is gone are harmless", async () => {
    const id = await sleeper();
    expect(await rt.inspect(id)).toMatchObject({ status: "running", exitCode: null, finishedAt: null });
    const t0 = Date.now();
    await rt.stop(id, { timeoutSeconds: 1 }); // sleep as PID 1 ignores SIGTERM: killed after the timeout
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(await rt.inspect(id)).toMatchObject({ status: "exited", exitCode: 137 });
    expect(await rt.wait(id)).toEqual({ exitCode: 137 });
    await rt.stop(id);
    await rt.remove(id);
    await rt.remove(id);
    await rt.stop(id);
    expect(await rt.inspect(id)).toBeNull();
    await expect(rt.remove("no-such-container")).resolves.toBeUndefined();
  });

  it("exec streams stdin, stdout and stderr while the command runs, and reports its exit code", async () => {
    const id = await sleeper();
    const ex = await rt.exec(id, { command: ["sh", "-c", 'while read l; do echo "got:$l"; echo "err:$l" >&2; done; exit 3'], stdin: true });
    const it = ex.output[Symbol.asyncIterator]();
    ex.stdin!.write("a\n");
    // the answer to the first line arrives before the second line is written: streamed, not buffered to the end
    // (stdout and stderr are separate pipes: their relative order is the command's, not guaranteed)
    const early: OutputChunk[] = [];
    while (!text(early, "stdout").includes("got:a\n")) {
      const r = await within(it.next(), 5000, "first exec output");
      expect(r.done).toBeFalsy();
      early.push(r.value as OutputChunk);
    }
    expect(text(early, "stdout")).toBe("got:a\n");
    ex.stdin!.write("b\n");
    ex.stdin!.end();
    const rest: OutputChunk[] = [];
    for (let r = await it.next(); !r.done; r = await it.next()) rest.push(r.value);
    expect(text(rest, "stdout")).toBe("got:b\n");
    expect(text([...early, ...rest], "stderr")).toBe("err:a\nerr:b\n");
    expect(await ex.wait()).toEqual({ exitCode: 3 });

    // without stdin, env and working directory; wait() alone drains the output
    const quiet = await rt.exec(id, { command: ["sh", "-c", 'echo "$FOO in $(pwd)"; exit 0'], env: { FOO: "bar" }, workingDir: "/tmp" });
    expect(quiet.stdin).toBeNull();
    const chunks = await collect(quiet.output);
    expect(text(chunks)).toBe("bar in /tmp\n");
    expect(await quiet.wait()).toEqual({ exitCode: 0 });
    const drained = await rt.exec(id, { command: ["sh", "-c", "seq 1 20000; exit 5"] });
    expect(await drained.wait()).toEqual({ exitCode: 5 });
    await expect(rt.exec("no-such-container", { command: ["true"] })).rejects.toMatchObject({ code: "not_found" });
  });

  it("bind mounts (read-only and writable), a read-only root filesystem, memory and CPU limits, host networking", async () => {
    const input = tmp();
    const output = tmp();
    writeFileSync(join(input, "in.txt"), "from the host\n");
    const id = await run({
      image: busybox,
      command: [
        "sh",
        "-c",
        "cat /data/in.txt; echo written > /out/o.txt; (touch /rootfile 2>/dev/null && echo root-rw) || echo root-ro; (touch /data/x 2>/dev/null && echo data-rw) || echo data-ro",
      ],
      mounts: [
        { source: input, target: "/data", readOnly: true },
        { source: output, target: "/out" },
      ],
      writableRootFs: false,
      memoryBytes: 64 * 1024 * 1024,
      cpus: 0.5,
    });
    expect(await rt.wait(id)).toEqual({ exitCode: 0 });
    expect(text(await collect(rt.logs(id)))).toBe("from the host\nroot-ro\ndata-ro\n");
    expect(readFileSync(join(output, "o.txt"), "utf8")).toBe("written\n");
    const raw = await rt.docker.getContainer(id).inspect();
    expect(raw.HostConfig).toMatchObject({ NetworkMode: "host", Memory: 64 * 1024 * 1024, NanoCpus: 500_000_000, ReadonlyRootfs: true });
  });

  it("a container on host networking reaches an HTTP server on 127.0.0.1", async () => {
    const seen: string[] = [];
    const server: Server = createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      res.end("hello from the host\n");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const port = (server.address() as AddressInfo).port;
      const id = await run({ image: busybox, command: ["wget", "-q", "-O-", `http://127.0.0.1:${port}/ping`] });
      expect(await rt.wait(id)).toEqual({ exitCode: 0 });
      expect(text(await collect(rt.logs(id)), "stdout")).toBe("hello from the host\n");
      expect(seen).toEqual(["GET /ping"]);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it("lists by label; listManaged reads owners back; removeOrphans removes what no live owner claims", async () => {
    const project = `orphans-${RUN}`;
    const a = await run({
      image: busybox,
      command: ["sleep", "300"],
      labels: managedLabels({ kind: "service", projectId: project, roomId: "room-a", serviceId: "svc" }),
    });
    const b = await run({
      image: busybox,
      command: ["sleep", "300"],
      labels: managedLabels({ kind: "service", projectId: project, roomId: "room-b", serviceId: "svc" }),
    });
    const t = await run({ image: busybox, command: ["true"], labels: managedLabels({ kind: "task", projectId: project, taskId: "task-1" }) });
    const plain = await run({ image: busybox, command: ["sleep", "300"], labels: { "meshagent.project": project } }); // not managed

    expect((await rt.list({ [RUN_LABEL]: RUN, "meshagent.project": project })).map((c) => c.id).sort()).toEqual([a, b, t, plain].sort());
    expect((await rt.list({ "meshagent.managed": "", [RUN_LABEL]: RUN })).map((c) => c.id).sort()).toEqual(expect.arrayContaining([a, b, t]));
    const managed = await listManaged(rt, { projectId: project });
    expect(managed.map((c) => c.id).sort()).toEqual([a, b, t].sort());
    expect(managed.find((c) => c.id === a)!.owner).toEqual({ kind: "service", projectId: project, roomId: "room-a", serviceId: "svc" });
    expect((await listManaged(rt, { projectId: project, roomId: "room-b" })).map((c) => c.id)).toEqual([b]);
    expect((await listManaged(rt, { projectId: project, kind: "task" })).map((c) => c.owner.taskId)).toEqual(["task-1"]);

    // after a restart, only room-a has a live session: the others are orphans
    const removed = await removeOrphans(rt, (owner) => owner.roomId === "room-a", { projectId: project });
    expect(removed.map((c) => c.id).sort()).toEqual([b, t].sort());
    expect((await rt.list({ [RUN_LABEL]: RUN, "meshagent.project": project })).map((c) => c.id).sort()).toEqual([a, plain].sort());
    await rt.remove(a, { force: true });
    await rt.remove(plain, { force: true });
  });

  it("a container that cannot be created or started fails with a RuntimeError and leaves nothing behind", async () => {
    const marker = { "meshagent.test.case": "bad-start" };
    const absent = run({ image: `meshagent-test/absent:${RUN}`, labels: marker });
    await expect(absent).rejects.toBeInstanceOf(RuntimeError);
    await expect(absent).rejects.toMatchObject({ code: "not_found" });
    await expect(run({ image: busybox, command: ["/no/such/executable"], labels: marker })).rejects.toThrow(/starting a container of .*no such file/i);
    expect(await rt.list({ [RUN_LABEL]: RUN, ...marker })).toEqual([]);
  });

  it("images: list, inspect, save, remove, load; absent images and unreachable registries are clear errors", async () => {
    const ref = `meshagent-test/tmp-${RUN}:v1`;
    await rt.docker.getImage(busybox).tag({ repo: `meshagent-test/tmp-${RUN}`, tag: "v1" });
    images.push(ref);
    expect((await rt.listImages()).find((i) => i.tags.includes(ref))).toMatchObject({ size: expect.any(Number), labels: { "meshagent.test": "1" } });
    const info = await rt.inspectImage(ref);
    expect(info).toMatchObject({ tags: expect.arrayContaining([ref, busybox]), labels: { "meshagent.test": "1" } });
    expect(await rt.inspectImage(`meshagent-test/absent:${RUN}`)).toBeNull();

    const tarball = await toBuffer(await rt.saveImage([ref]));
    expect(tarball.length).toBeGreaterThan(1_000_000); // busybox itself is ~2 MB
    await rt.removeImage(ref);
    expect((await rt.inspectImage(busybox))?.tags).not.toContain(ref);
    await rt.removeImage(ref); // gone already: harmless
    expect(await rt.loadImage(Readable.from(tarball))).toContain(ref);
    expect((await rt.inspectImage(ref))?.id).toBe(info!.id);

    await expect(rt.saveImage([`meshagent-test/absent:${RUN}`])).rejects.toMatchObject({ code: "not_found" });
    await expect(rt.loadImage(Readable.from(Buffer.from("not a tarball")))).rejects.toBeInstanceOf(RuntimeError);
    await expect(rt.pullImage("127.0.0.1:1/nothing/here:latest")).rejects.toBeInstanceOf(RuntimeError);
  });

  describe("the node image", () => {
    let s: TestServer;
    const rooms: OfficialRoom[] = [];
    beforeAll(async () => {
      s = await startServer({ env: { MESHAGENT_ROOM_EMPTY_TIMEOUT: "0.3" } });
    });
    afterAll(async () => {
      for (const r of rooms) r.dispose();
      await s?.close();
    });

    it("runs an agent that joins a room with the official client's environment factory and hosts a toolkit", async () => {
      const room = `rt-${RUN}`;
      await s.client().createRoom({ projectId: s.admin.projectId, name: room } as never);
      const id = await run({
        image: node,
        env: {
          MESHAGENT_ROOM: room,
          MESHAGENT_TOKEN: await mintToken(s.admin.apiKey, room, { name: "container-agent" }),
          MESHAGENT_ROOM_URL: s.url, // the client appends /rooms/{room}
          AGENT_TOOLKIT: "echo",
        },
      });
      const user = await joinRoom(roomWsUrl(s, room), await mintToken(s.admin.apiKey, room, { name: "user", role: "user" }));
      rooms.push(user);
      // the agent registers its toolkit once it joined; retry the call until it is there
      let answer: unknown;
      const deadline = Date.now() + 30_000;
      for (;;) {
        try {
          answer = (
            (await within(user.agents.invokeTool({ toolkit: "echo", tool: "echo", arguments: { n: 1 } }), 5000, "echo")) as unknown as { json: unknown }
          ).json;
          break;
        } catch (e) {
          const st = await rt.inspect(id);
          if (st?.status === "exited" || Date.now() > deadline) {
            throw new Error(`the agent did not answer (${(e as Error).message}); its output: ${text(await collect(rt.logs(id)))}`, { cause: e });
          }
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      expect(answer).toEqual({ echo: { n: 1 }, room });
      expect(text(await collect(rt.logs(id)), "stdout")).toMatch(/joined .*\nhosting echo\n/);
      await rt.stop(id, { timeoutSeconds: 5 });
      expect(await rt.inspect(id)).toMatchObject({ status: "exited", exitCode: 0 });
    });
  });
});
