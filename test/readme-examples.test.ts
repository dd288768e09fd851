import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { startServer, type TestServer } from "./helpers/server.js";
import { ROOT } from "./helpers/process.js";

/**
 * Every README example marked runnable (a fence opened with "```ts example" or "```sh example") runs against a live
 * server, in README order, in one working directory: TypeScript through tsx with the SDK's sources, shell through
 * bash -e with `meshagent` on the PATH (the built CLI) and a temporary HOME.
 */
const README = readFileSync(join(ROOT, "README.md"), "utf8");
const examples = [...README.matchAll(/^```(ts|sh) example\n([\s\S]*?)^```$/gm)].map((m, i) => ({
  lang: m[1] as "ts" | "sh",
  code: m[2],
  line: README.slice(0, m.index).split("\n").length,
  n: i + 1,
}));

describe("README examples", () => {
  let s: TestServer;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    s = await startServer();
    // Inside the repository, so that the examples resolve the workspace packages from its node_modules.
    dir = mkdtempSync(join(ROOT, ".examples-"));
    const bin = join(dir, ".bin");
    mkdirSync(bin);
    writeFileSync(join(bin, "meshagent"), `#!/bin/sh\nexec "${process.execPath}" "${join(ROOT, "packages/cli/bin/meshagent.mjs")}" "$@"\n`);
    chmodSync(join(bin, "meshagent"), 0o755);
    env = {
      ...process.env,
      HOME: dir,
      PATH: `${bin}:${process.env.PATH}`,
      MESHAGENT_API_URL: s.url,
      MESHAGENT_API_KEY: s.admin.apiKey,
      MESHAGENT_PROJECT_ID: s.admin.projectId,
    };
  });
  afterAll(async () => {
    await s?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("there are examples of both kinds", () => {
    expect(examples.filter((e) => e.lang === "ts").length).toBeGreaterThanOrEqual(2);
    expect(examples.filter((e) => e.lang === "sh").length).toBeGreaterThanOrEqual(1);
  });

  for (const ex of examples) {
    it(`example ${ex.n} (${ex.lang}, README.md line ${ex.line}) runs`, async () => {
      const run = promisify(execFile);
      let args: [string, string[]];
      if (ex.lang === "ts") {
        const file = join(dir, `example-${ex.n}.mts`);
        writeFileSync(file, ex.code);
        args = [process.execPath, ["--conditions=meshagent-source", "--import", "tsx", file]];
      } else args = ["bash", ["-e", "-o", "pipefail", "-c", ex.code]];
      try {
        await run(args[0], args[1], { cwd: dir, env, encoding: "utf8", timeout: 60_000 });
      } catch (e) {
        const x = e as { stdout?: string; stderr?: string; message: string };
        throw new Error(`README.md line ${ex.line} failed: ${x.message}\n${x.stdout ?? ""}\n${x.stderr ?? ""}`, { cause: e });
      }
    });
  }
});
