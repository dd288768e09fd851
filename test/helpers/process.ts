import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { freshDatabase } from "./server.js";

export const ROOT = join(import.meta.dirname, "..", "..");
/** tsx's loader by absolute URL, so `node --import` finds it whatever the child's working directory. */
export const TSX_LOADER = pathToFileURL(join(ROOT, "node_modules/tsx/dist/loader.mjs")).href;

/**
 * A free port for a child process to bind, taken below Linux's ephemeral range (32768–60999): in-process test
 * servers listen on port 0 and get ephemeral ports, so none of them can take this one between the check here and
 * the child's bind (when one did, the child failed to start while the health check answered from the other server).
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const free = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once("error", () => resolve(false));
      srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

export interface ServerProcess {
  url: string;
  port: number;
  child: ChildProcess;
  output(): string;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * The data a server killed and restarted keeps between its runs: a new data directory, a fresh database, a fixed
 * port (so URLs handed out stay valid across restarts) and the env that points `spawnServer` at them.
 */
export async function restartableData(prefix: string, extra: Record<string, string> = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), prefix));
  const db = await freshDatabase(dataDir);
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const env: Record<string, string> = {
    MESHAGENT_DATA_DIR: dataDir,
    MESHAGENT_DATABASE_URL: db.url,
    MESHAGENT_PORT: String(port),
    MESHAGENT_PUBLIC_URL: baseUrl,
    MESHAGENT_STORAGE_URL: join(dataDir, "storage"),
    ...extra,
  };
  return { dataDir, db, baseUrl, env };
}

/**
 * Start `src/main.ts serve` as a real child process (for kill -9 and multi-process tests). It runs as ONE process
 * (node --import tsx), so a signal reaches the server itself, not a wrapper that would leave it orphaned.
 */
export async function spawnServer(env: Record<string, string>, args: string[] = ["serve"]): Promise<ServerProcess> {
  const port = env.MESHAGENT_PORT ? Number(env.MESHAGENT_PORT) : await freePort();
  const child = spawn(process.execPath, ["--import", TSX_LOADER, join(ROOT, "src/main.ts"), ...args], {
    cwd: ROOT,
    env: { ...process.env, MESHAGENT_LOG_LEVEL: "warn", ...env, MESHAGENT_PORT: String(port), MESHAGENT_HOST: "127.0.0.1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited early (${child.exitCode}): ${out}`);
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`server did not start: ${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    port,
    child,
    output: () => out,
    async kill(signal = "SIGKILL") {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
  };
}
