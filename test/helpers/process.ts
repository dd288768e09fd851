import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { join } from "node:path";

const ROOT = join(import.meta.dirname, "..", "..");

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const a = srv.address();
      srv.close(() => (typeof a === "object" && a ? resolve(a.port) : reject(new Error("no port"))));
    });
  });
}

export interface ServerProcess {
  url: string;
  port: number;
  child: ChildProcess;
  output(): string;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Start `src/main.ts serve` as a real child process (for kill -9 and multi-process tests). */
export async function spawnServer(env: Record<string, string>, args: string[] = ["serve"]): Promise<ServerProcess> {
  const port = env.MESHAGENT_PORT ? Number(env.MESHAGENT_PORT) : await freePort();
  // node itself with tsx as a loader (not the tsx CLI, which runs the server in a grandchild that SIGKILL would orphan)
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "src/main.ts"), ...args], {
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
