import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { connect } from "node:net";
import { existsSync, readFileSync, rmSync, statSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { ROOT, freePort, restartableData } from "./helpers/process.js";

/**
 * Starting and stopping the server every way the README names: `npm start`, the bin (compiled build, and the sources
 * through tsx), and the compiled entry itself. SIGTERM and SIGINT stop each gracefully (exit code 0, "shutting down"
 * logged, the port released, no process left behind), and each prints the start-up summary on stderr.
 */

const BIN = join(ROOT, "bin/meshagent-server.mjs");
const COMPILED = join(ROOT, "dist/main.js");

interface Started {
  child: ChildProcess;
  port: number;
  url: string;
  out: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function start(cmd: string, args: string[], env: Record<string, string>): Promise<Started> {
  const port = await freePort();
  const child = spawn(cmd, args, {
    cwd: ROOT,
    env: { ...process.env, MESHAGENT_LOG_LEVEL: "info", MESHAGENT_LOG_FORMAT: "json", ...env, MESHAGENT_PORT: String(port), MESHAGENT_HOST: "127.0.0.1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`exited early (${child.exitCode}): ${out}`);
    const ok = await fetch(`${url}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok && out.includes("next:")) break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`did not start: ${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, port, url, out: () => out, exit };
}

const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });

/** Every process of the tree is gone (the pid answers no signal 0). */
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("start-up and graceful stop", () => {
  let env: Record<string, string>;
  beforeAll(async () => {
    // The compiled build of the current sources (npm run build:server; npm install does it through prepare).
    execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: ROOT, stdio: "inherit" });
    env = (await restartableData("start-stop-")).env;
    delete env.MESHAGENT_PORT;
    delete env.MESHAGENT_PUBLIC_URL;
  }, 120_000);
  afterAll(() => rmSync(env.MESHAGENT_DATA_DIR, { recursive: true, force: true }));

  const ways: { name: string; cmd: string; args: string[]; env?: Record<string, string>; from: RegExp }[] = [
    { name: "npm start", cmd: "npm", args: ["start", "--silent"], from: /compiled build/ },
    { name: "the bin (compiled build)", cmd: process.execPath, args: [BIN, "serve"], from: /compiled build/ },
    {
      name: "the bin (sources through tsx)",
      cmd: process.execPath,
      args: [BIN, "serve"],
      env: { MESHAGENT_FROM_SOURCE: "1" },
      from: /TypeScript sources via tsx/,
    },
    { name: "the compiled server", cmd: process.execPath, args: [COMPILED, "serve"], from: /compiled build/ },
  ];
  for (const way of ways)
    for (const signal of ["SIGTERM", "SIGINT"] as const)
      it(`${way.name} stops gracefully on ${signal}`, async () => {
        const s = await start(way.cmd, way.args, { ...env, ...way.env });
        // The start-up summary: where, what, and the next step.
        expect(s.out()).toContain(`MeshAgent server listening on ${s.url}`);
        expect(s.out()).toMatch(way.from);
        expect(s.out()).toMatch(/store\s+(SQLite|PostgreSQL)/);
        expect(s.out()).toMatch(/storage\s+local directory/);
        expect(s.out()).toMatch(/SMTP\s+off/);
        expect(s.out()).toMatch(/next: /);
        // One process: the signal sent to the pid we started reaches the server (npm forwards it to the exec'd node).
        s.child.kill(signal);
        const r = await s.exit;
        if (way.cmd === "npm") expect(r.code === 0 || r.signal === signal).toBe(true);
        else expect(r).toEqual({ code: 0, signal: null });
        expect(s.out()).toContain('"msg":"shutting down"');
        expect(s.out()).toContain(`"signal":"${signal}"`);
        expect(await portOpen(s.port)).toBe(false);
      }, 90_000);

  it("npm start leaves no node process behind when npm itself is stopped", async () => {
    const s = await start("npm", ["start", "--silent"], env);
    const children = execFileSync("ps", ["-o", "pid=", "--ppid", String(s.child.pid)], { encoding: "utf8" })
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
    expect(children.length).toBe(1); // node itself: the script execs it, no shell in between
    s.child.kill("SIGTERM");
    await s.exit;
    const deadline = Date.now() + 15_000;
    while (children.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(children.filter(alive)).toEqual([]);
    expect(await portOpen(s.port)).toBe(false);
  }, 90_000);

  it("the bin runs the sources when dist/ is older than src/", () => {
    const migrate = () => {
      const r = spawnSync(process.execPath, [BIN, "migrate"], { cwd: ROOT, env: { ...process.env, ...env }, encoding: "utf8" });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toContain("migrations applied");
      return r.stderr;
    };
    const old = statSync(COMPILED).mtime;
    // Make the build look stale without touching a source file: age dist/main.js.
    utimesSync(COMPILED, new Date(0), new Date(0));
    try {
      expect(migrate()).toContain("dist/ is older than src/: running the sources through tsx");
    } finally {
      utimesSync(COMPILED, old, old);
    }
    expect(migrate()).not.toContain("older than src/");
  }, 60_000);

  it("bootstrap writes the URL of the configured port and host, and --json --write-env writes .env", async () => {
    const port = await freePort();
    const dir = env.MESHAGENT_DATA_DIR;
    const run = (args: string[], extra: Record<string, string> = {}) =>
      execFileSync(process.execPath, [COMPILED, "bootstrap", ...args], {
        cwd: dir,
        env: { ...process.env, ...env, MESHAGENT_PORT: String(port), MESHAGENT_LOG_LEVEL: "warn", ...extra },
        encoding: "utf8",
      });
    const j = JSON.parse(run(["--json", "--write-env", "--email", "ports@example.com"]));
    expect(j.api_url).toBe(`http://127.0.0.1:${port}`);
    const written = readFileSync(join(dir, ".env"), "utf8");
    expect(written).toContain(`MESHAGENT_API_URL=http://127.0.0.1:${port}\n`);
    expect(written).toContain(`MESHAGENT_API_KEY=${j.api_key}\n`);
    expect(JSON.parse(run(["--json"], { MESHAGENT_HOST: "0.0.0.0" })).api_url).toBe(`http://localhost:${port}`);
    expect(JSON.parse(run(["--json"], { MESHAGENT_PUBLIC_URL: "https://mesh.example.com" })).api_url).toBe("https://mesh.example.com");
    expect(existsSync(join(dir, ".env"))).toBe(true);
  }, 60_000);
});
