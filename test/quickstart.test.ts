import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { ROOT, freePort } from "./helpers/process.js";
import { PG_URL } from "./helpers/server.js";

/**
 * The README's Quick start, as a newcomer runs it: its ```sh quickstart blocks in order (`npm start` in the
 * background, then `npm run bootstrap`), then the first official-client snippet with the `.env` bootstrap wrote, run
 * as its comment says (`node --env-file=.env example.mjs`). In a copy of the checkout (its node_modules linked), so
 * `./data` and `.env` are the copy's. `npm install` is the one command not run here: CI's `npm ci` did the same.
 */
const README = readFileSync(join(ROOT, "README.md"), "utf8");
const section = README.slice(README.indexOf("## Quick start\n"), README.indexOf("\n## ", README.indexOf("## Quick start\n") + 5));
const blocks = [...section.matchAll(/^```sh quickstart\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
const snippet = /^```ts example\n([\s\S]*?)^```$/m.exec(section)?.[1];

describe.skipIf(!!PG_URL)("the README quick start", () => {
  let dir: string;
  let server: ChildProcess | undefined;
  let out = "";
  let port: number;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "quickstart-"));
    for (const f of ["package.json", "package-lock.json", "tsconfig.json", "tsconfig.build.json", "bin", "src", "packages"])
      if (existsSync(join(ROOT, f)))
        cpSync(join(ROOT, f), join(dir, f), {
          recursive: true,
          preserveTimestamps: true,
          filter: (p) => !p.includes("node_modules") && !p.includes(".consumer-"),
        });
    symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
    // What npm install's prepare step does for the server (the workspaces' builds are linked in from the checkout).
    await promisify(execFile)(process.execPath, [join(ROOT, "node_modules/.bin/tsc"), "-p", "tsconfig.build.json"], { cwd: dir });
    port = await freePort();
  }, 120_000);
  afterAll(async () => {
    if (server && server.exitCode === null) {
      server.kill("SIGKILL");
      await new Promise((r) => server!.once("exit", r));
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it("has the blocks this test runs", () => {
    expect(blocks).toHaveLength(2);
    expect(blocks[0]).toMatch(/^npm install && npm start\b/);
    expect(snippet).toContain("node --env-file=.env example.mjs");
  });

  it("npm start serves and says what to do next; npm run bootstrap writes .env; the snippet runs; Ctrl-C stops it", async () => {
    // Block 1 without its `npm install &&`: the server, in the background as a second terminal would have it.
    const start = blocks[0]
      .split("\n")[0]
      .replace(/#.*$/, "")
      .replace(/^npm install && /, "")
      .trim();
    expect(start).toBe("npm start");
    // The README's port (8080) may be taken on a CI machine: the same command on a free one.
    const env: NodeJS.ProcessEnv = { ...process.env, MESHAGENT_PORT: String(port), MESHAGENT_LOG_FORMAT: "auto" };
    for (const k of Object.keys(env)) if (k.startsWith("MESHAGENT_") && k !== "MESHAGENT_PORT" && k !== "MESHAGENT_LOG_FORMAT") delete env[k];
    server = spawn("bash", ["-c", `exec ${start}`], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
    server.stdout!.on("data", (d) => (out += d));
    server.stderr!.on("data", (d) => (out += d));
    const deadline = Date.now() + 60_000;
    while (!out.includes("next: npm run bootstrap")) {
      if (server.exitCode !== null || Date.now() > deadline) throw new Error(`npm start did not come up: ${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(out).toContain(`MeshAgent server listening on http://127.0.0.1:${port}`);
    expect(out).toContain(`data         ${join(dir, "data")}`);
    expect(out).toContain("compiled build");

    // Block 2 as written, in the same directory.
    const run = promisify(execFile);
    const b = await run("bash", ["-e", "-o", "pipefail", "-c", blocks[1]], { cwd: dir, env, encoding: "utf8", timeout: 60_000 });
    expect(b.stdout).toMatch(/Password\s+\S+\s+<- shown once/);
    const json = JSON.parse(
      b.stdout
        .trim()
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .pop()!,
    );
    expect(json.api_url).toBe(`http://127.0.0.1:${port}`);
    const dotenv = readFileSync(join(dir, ".env"), "utf8");
    expect(dotenv).toContain(`MESHAGENT_API_URL=http://127.0.0.1:${port}\n`);

    // The snippet, as its first line says to run it.
    writeFileSync(join(dir, "example.mjs"), snippet!);
    const r = await run(process.execPath, ["--env-file=.env", "example.mjs"], { cwd: dir, env, encoding: "utf8", timeout: 60_000 });
    expect(r.stdout).toContain("default");
    expect(r.stdout).toMatch(/id: '[0-9a-f-]{36}'/);

    // Ctrl-C in the first terminal: the process group gets SIGINT.
    const exited = new Promise<number | null>((resolve) => server!.once("exit", (code) => resolve(code)));
    server.kill("SIGINT");
    expect(await exited).toBe(0);
    expect(out).toContain("shutting down");
  }, 120_000);
});
