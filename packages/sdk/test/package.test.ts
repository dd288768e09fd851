import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { startServer, type TestServer } from "../../../test/helpers/server.js";
import { HAVE_CHROMIUM, launchChromium } from "../../../test/helpers/browser.js";

/** The published shape of the SDK: dist/ built by its build script, loaded as ESM, CommonJS, typed, and in a browser. */
const SDK = fileURLToPath(new URL("..", import.meta.url));
const ROOT = join(SDK, "..", "..");
/** A child node process (async: the server under test runs in this process's event loop). */
async function node(args: string[], env: Record<string, string> = {}): Promise<string> {
  try {
    return (await promisify(execFile)(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, encoding: "utf8" })).stdout;
  } catch (e) {
    const x = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${x.message}\n${x.stdout ?? ""}${x.stderr ?? ""}`, { cause: e });
  }
}

describe("the SDK package", () => {
  let s: TestServer;
  beforeAll(async () => {
    execFileSync(process.execPath, [join(SDK, "scripts/build.mjs")], { cwd: SDK, stdio: "pipe" });
    s = await startServer();
    await s.client().createRoom({ projectId: s.admin.projectId, name: "from-dist" });
  }, 120_000);
  afterAll(() => s?.close());

  const env = () => ({ MESHAGENT_API_URL: s.url, MESHAGENT_API_KEY: s.admin.apiKey, PID: s.admin.projectId });

  it("works through require() (CommonJS) and import (ESM) of the built files", async () => {
    const cjs = await node(
      [
        "-e",
        `const { Meshagent } = require("@meshagent-oss/sdk"); new Meshagent().listRooms(process.env.PID).then((r) => console.log(r.map((x) => x.name).join()))`,
      ],
      env(),
    );
    expect(cjs.trim()).toBe("from-dist");
    const esm = await node(
      [
        "--input-type=module",
        "-e",
        `import { Meshagent, MeshagentError } from "@meshagent-oss/sdk"; const e = await new Meshagent().getRoom(process.env.PID, "nope").catch((e) => e); console.log(e instanceof MeshagentError, e.status)`,
      ],
      env(),
    );
    expect(esm.trim()).toBe("true 404");
  });

  it("the core uses no Node-only APIs (no node: imports, no require, no Buffer)", () => {
    for (const f of ["index.js", "index.cjs"]) {
      const text = readFileSync(join(SDK, "dist", f), "utf8");
      expect(text).not.toMatch(/from\s*["']node:|require\(["'](node:)?(fs|http|https|net|stream|crypto|buffer)["']\)|\bBuffer\./);
    }
  });

  it("ships declarations that type-check for ESM and CommonJS consumers", async () => {
    const dir = mkdtempSync(join(SDK, ".consumer-"));
    try {
      writeFileSync(
        join(dir, "a.mts"),
        `import { Meshagent, type Room } from "@meshagent-oss/sdk";\nconst r: Promise<Room> = new Meshagent().getRoom("p", "r");\nvoid r;\n`,
      );
      writeFileSync(
        join(dir, "b.cts"),
        `import sdk = require("@meshagent-oss/sdk");\nconst c = new sdk.Meshagent({ timeoutMs: 5 });\nvoid c.listRooms("p");\n`,
      );
      writeFileSync(join(dir, "bad.mts"), `import { Meshagent } from "@meshagent-oss/sdk";\nconst n: number = new Meshagent().baseUrl;\nvoid n;\n`);
      const tsc = join(dirname(createRequire(import.meta.url).resolve("typescript/package.json")), "bin", "tsc6");
      const project = (files: string[]) => {
        const compilerOptions = {
          noEmit: true,
          strict: true,
          module: "nodenext",
          moduleResolution: "nodenext",
          target: "es2022",
          lib: ["es2022", "dom"],
          types: [],
        };
        writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions, files }));
        return [tsc, "-p", join(dir, "tsconfig.json")];
      };
      await node(project(["a.mts", "b.cts"]));
      // A wrong use is caught: the declarations really type the client.
      await expect(node(project(["bad.mts"]))).rejects.toThrow(/Type 'string' is not assignable to type 'number'/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it.skipIf(!HAVE_CHROMIUM)(
    "runs in a browser (Chromium loads the ESM build and calls the API)",
    async () => {
      const browser = await launchChromium();
      try {
        const page = await browser.newPage();
        const bundle = readFileSync(join(SDK, "dist/index.js"), "utf8");
        // The page and the bundle are served on the API's own origin, so the calls are same-origin.
        await page.route(`${s.url}/sdk-test/index.html`, (r) => r.fulfill({ contentType: "text/html", body: "<!doctype html><title>sdk</title>" }));
        await page.route(`${s.url}/sdk-test/sdk.js`, (r) => r.fulfill({ contentType: "text/javascript", body: bundle }));
        await page.goto(`${s.url}/sdk-test/index.html`);
        // A string, not a function: the test runner would rewrite a function's dynamic import.
        const out = await page.evaluate(`(async () => {
        const { Meshagent } = await import("/sdk-test/sdk.js");
        const c = new Meshagent({ baseUrl: location.origin, token: ${JSON.stringify(s.admin.apiKey)} });
        const names = [];
        for await (const r of c.listRooms(${JSON.stringify(s.admin.projectId)}, { limit: 1 })) names.push(r.name);
        const err = await c.getRoom(${JSON.stringify(s.admin.projectId)}, "missing").catch((e) => e.code);
        return { names, err };
      })()`);
        expect(out).toEqual({ names: ["from-dist"], err: "not_found" });
      } finally {
        await browser.close();
      }
    },
    120_000,
  );
});
