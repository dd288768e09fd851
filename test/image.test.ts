/**
 * The container image (Dockerfile): built here from base images made from this machine (scripts/docker-base-images.sh:
 * no registry is reachable), then smoke-tested: cold start to a healthy /healthz, `bootstrap --json` inside the
 * container, one call of the official client, the non-root user, the HEALTHCHECK, the data volume, and the signals a
 * container gets (docker stop: SIGTERM; docker kill -s SIGINT), which must stop the server gracefully with exit code 0.
 *
 * Skipped when no Docker daemon answers, unless MESHAGENT_TEST_REQUIRE_DOCKER=1 (CI), then it fails.
 * The containers and volumes it makes are removed, and the image's tag (its layers stay: the next build's cache).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dockerForTests, REQUIRE_DOCKER } from "./helpers/images.js";
import {
  buildServerImage,
  dockerCli,
  removeServerImage,
  removeTestContainers,
  run,
  runServerContainer,
  type BuiltImage,
  type ServerContainer,
} from "./helpers/image.js";
import { Meshagent } from "./helpers/official.js";
import type { BootstrapJson } from "../src/bootstrap.js";

const FILE = "image.test.ts";
const runtime = await dockerForTests(FILE);
const cli = runtime ? await dockerCli() : null;
if (cli && !cli.ok) {
  if (REQUIRE_DOCKER) throw new Error(`${FILE}: MESHAGENT_TEST_REQUIRE_DOCKER=1 but ${cli.reason}`);
  console.warn(`${FILE}: skipped, ${cli.reason}`);
}
const enabled = !!runtime && !!cli?.ok;

/** The server's JSON log lines (pino) in a container's output; the startup summary and other text are left out. */
function logLines(out: string): Record<string, any>[] {
  return out
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, any>];
      } catch {
        return [];
      }
    });
}

describe.skipIf(!enabled)("the container image", () => {
  let image: BuiltImage;
  let main: ServerContainer;
  let boot: BootstrapJson;

  beforeAll(async () => {
    let output = "";
    try {
      image = await buildServerImage({ log: (c) => (output = (output + c).slice(-20_000)) });
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- build output (tail) ---\n${output.slice(-6000)}`, { cause: e });
    }
    console.log(
      `${FILE}: base images ${(image.baseMs / 1000).toFixed(1)} s, docker build ${(image.buildMs / 1000).toFixed(1)} s, ` +
        `image ${(image.size / 1e6).toFixed(0)} MB`,
    );
  }, 20 * 60_000);

  afterAll(async () => {
    await removeTestContainers();
    if (image) await removeServerImage(image.tag);
  }, 120_000);

  it("the image: non-root user 10001, /data a volume, port 8080, a HEALTHCHECK, node dist/main.js serve", async () => {
    const { stdout } = await run("docker", ["image", "inspect", image.tag]);
    const config = JSON.parse(stdout)[0].Config;
    expect(config.User).toBe("10001:10001");
    expect(Object.keys(config.Volumes ?? {})).toEqual(["/data"]);
    expect(Object.keys(config.ExposedPorts ?? {})).toEqual(["8080/tcp"]);
    expect(config.Healthcheck?.Test?.[0]).toBe("CMD");
    expect(config.Entrypoint).toEqual(["node", "dist/main.js"]);
    expect(config.Cmd).toEqual(["serve"]);
    expect(config.StopSignal).toBe("SIGTERM");
    expect(config.Env).toEqual(
      expect.arrayContaining(["MESHAGENT_HOST=0.0.0.0", "MESHAGENT_DATA_DIR=/data", "MESHAGENT_LOG_FORMAT=json", "NODE_ENV=production"]),
    );
  });

  it("smoke: cold start to /healthz, bootstrap inside the container, an official-client call, uid 10001, HEALTHCHECK healthy", async () => {
    main = await runServerContainer({ image: image.tag });
    console.log(`${FILE}: cold start (docker run -> 200 from /healthz) ${main.coldStartMs.toFixed(0)} ms`);
    expect(await (await fetch(`${main.url}/healthz`)).json()).toEqual({ ok: true });
    expect((await fetch(`${main.url}/readyz`)).status).toBe(200);

    const r = await main.exec(["node", "dist/main.js", "bootstrap", "--json"]);
    boot = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as BootstrapJson;
    expect(boot).toMatchObject({ email: "admin@example.com", api_url: expect.stringContaining(String(main.port)) });
    expect(boot.api_key).toBeTruthy();

    const client = new Meshagent({ baseUrl: main.url, token: boot.api_key });
    const project = (await client.getProject(boot.project_id)) as any;
    expect(project.id).toBe(boot.project_id);
    expect(project.name).toBe("default");

    // the server and `docker exec` run as the image's user, not root; the data it wrote is in /data (the volume)
    const ids = await main.exec(["node", "-e", "process.stdout.write(JSON.stringify([process.getuid(), process.getgid()]))"]);
    expect(JSON.parse(ids.stdout)).toEqual([10001, 10001]);
    const files = await main.exec(["node", "-e", "process.stdout.write(JSON.stringify(require('fs').readdirSync('/data')))"]);
    expect(JSON.parse(files.stdout)).toEqual(expect.arrayContaining(["master.key", "meshagent.db"]));
    expect((await main.inspect()).Config.User).toBe("10001:10001");

    const healthyMs = await main.waitHealthy(30_000);
    console.log(`${FILE}: HEALTHCHECK healthy ${healthyMs.toFixed(0)} ms after /healthz answered`);
  }, 120_000);

  it("the data lives in the volume: a new container on it serves the same project to the same API key", async () => {
    const again = await runServerContainer({ image: image.tag, volume: main.volume });
    try {
      const project = (await new Meshagent({ baseUrl: again.url, token: boot.api_key }).getProject(boot.project_id)) as any;
      expect(project.id).toBe(boot.project_id);
    } finally {
      await again.remove();
    }
  }, 120_000);

  it("docker stop (SIGTERM to node, PID 1) stops the server gracefully: exit code 0, 'shutting down' logged", async () => {
    const t = performance.now();
    const code = await main.stop(20);
    const ms = performance.now() - t;
    const out = await main.logs();
    // The start-up summary names the command that works in the container.
    expect(out).toContain("docker exec <container> node dist/main.js bootstrap");
    const lines = logLines(out);
    expect(lines.find((l) => l.msg === "shutting down")).toMatchObject({ signal: "SIGTERM" });
    expect(code).toBe(0);
    expect((await main.inspect()).State).toMatchObject({ ExitCode: 0, OOMKilled: false });
    // well before docker's 20 s, after which it would have sent SIGKILL (exit code 137)
    expect(ms).toBeLessThan(15_000);
  }, 60_000);

  it("docker kill -s SIGINT stops it gracefully too: exit code 0", async () => {
    const c = await runServerContainer({ image: image.tag });
    try {
      const code = await c.kill("SIGINT");
      expect(logLines(await c.logs()).find((l) => l.msg === "shutting down")).toMatchObject({ signal: "SIGINT" });
      expect(code).toBe(0);
    } finally {
      await c.remove();
    }
  }, 60_000);
});
