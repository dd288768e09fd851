import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { Meshagent } from "@meshagent-oss/sdk";
import { act } from "../context.js";
import { CliError, log, out } from "../output.js";

/** MESHAGENT_SERVER_BIN, else the repository this CLI was built in (package.json named meshagent-server). */
function serverBin(): string {
  if (process.env.MESHAGENT_SERVER_BIN) return process.env.MESHAGENT_SERVER_BIN;
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "meshagent-server") return join(dir, "bin/meshagent-server.mjs");
      } catch {
        // not a package.json we can read: keep walking up
      }
    }
    if (dirname(dir) === dir) break;
  }
  throw new CliError("cannot find the MeshAgent server", "server_not_found", "set MESHAGENT_SERVER_BIN to its bin/meshagent-server.mjs");
}

interface DevOptions {
  dataDir: string;
  port: string;
  email: string;
  password?: string;
  projectName: string;
}

export function registerDev(program: Command) {
  program
    .command("dev")
    .description("run this server locally (SQLite) with a seeded user, project and API key; writes .env and signs the CLI in")
    .option("--data-dir <dir>", "where the server keeps its data", "./.meshagent-dev")
    .option("--port <port>", "the port to serve on", "8080")
    .option("--email <email>", "the seeded user", "dev@example.com")
    .option("--password <password>", "the seeded user's password (default: a new random one)")
    .option("--project-name <name>", "the seeded project", "dev")
    .action(
      act(async (ctx, o: DevOptions) => {
        if (ctx.opts.curl) throw new CliError("--curl does not apply to dev", "usage", undefined, 2);
        const bin = serverBin();
        const dataDir = resolve(o.dataDir);
        mkdirSync(dataDir, { recursive: true });
        const password = o.password ?? randomBytes(9).toString("base64url");
        const env = {
          ...process.env,
          MESHAGENT_DATA_DIR: dataDir,
          MESHAGENT_DATABASE_URL: `sqlite://${join(dataDir, "meshagent.db")}`,
          MESHAGENT_STORAGE_URL: join(dataDir, "storage"),
          MESHAGENT_PORT: o.port,
          MESHAGENT_HOST: "127.0.0.1",
          MESHAGENT_PUBLIC_URL: `http://localhost:${o.port}`,
          // Request logs would drown the next steps: warnings and errors only, unless asked for.
          MESHAGENT_LOG_LEVEL: process.env.MESHAGENT_LOG_LEVEL ?? "warn",
        };
        // The server's bootstrap also writes MESHAGENT_API_URL, MESHAGENT_API_KEY and MESHAGENT_PROJECT_ID to ./.env.
        const b = spawnSync(
          process.execPath,
          [bin, "bootstrap", "--json", "--write-env", "--email", o.email, "--password", password, "--project", o.projectName],
          {
            env,
            encoding: "utf8",
          },
        );
        const line = b.stdout?.trim().split("\n").pop() ?? "";
        if (b.status !== 0 || !line.startsWith("{"))
          throw new CliError(`the server's bootstrap failed: ${(b.stderr || b.stdout || String(b.error)).trim().split("\n").pop()}`, "bootstrap_failed");
        const seed = JSON.parse(line) as { api_url: string; user_id: string; email: string; project_id: string; api_key: string; user_token: string };

        // The server's log lines go to stderr: stdout is for the next steps.
        const child = spawn(process.execPath, [bin, "serve"], { env, stdio: ["ignore", process.stderr, process.stderr] });
        const exited = new Promise<number>((r) => child.on("exit", (code, signal) => r(code ?? (signal ? 0 : 1))));
        let stopping = false;
        const stop = (signal: NodeJS.Signals) => {
          if (stopping) return;
          stopping = true;
          log(`stopping the server (${signal})`);
          child.kill("SIGTERM");
        };
        process.on("SIGINT", () => stop("SIGINT"));
        process.on("SIGTERM", () => stop("SIGTERM"));

        const deadline = Date.now() + 60_000;
        for (;;) {
          if (child.exitCode !== null) throw new CliError(`the server exited (${child.exitCode})`, "server_exited");
          if (stopping) break;
          const ok = await fetch(`http://127.0.0.1:${o.port}/healthz`).then(
            (r) => r.ok,
            () => false,
          );
          if (ok) break;
          if (Date.now() > deadline) {
            child.kill("SIGKILL");
            throw new CliError("the server did not answer /healthz within 60 s", "server_timeout");
          }
          await new Promise((r) => setTimeout(r, 200));
        }
        if (!stopping) {
          const profile = await new Meshagent({ baseUrl: seed.api_url, token: seed.user_token }).getUserProfile("me");
          const s = ctx.settings;
          // The bootstrap's personal access token is the session: it does not expire, so it is never refreshed.
          s.users[seed.user_id] = {
            profile: profile as Record<string, unknown>,
            api_url: seed.api_url,
            session: { access_token: seed.user_token, refresh_token: null, expires_at: Math.floor(Date.now() / 1000) + 10 * 365 * 86400 },
            project: {
              active_project: seed.project_id,
              active_api_keys: { ...s.users[seed.user_id]?.project.active_api_keys, [seed.project_id]: seed.api_key },
            },
          };
          s.active_user_id = seed.user_id;
          ctx.save();
          out(`MeshAgent dev server running at ${seed.api_url} (data in ${dataDir})

  user      ${seed.email}   password ${password}
  project   ${o.projectName} (${seed.project_id})
  .env      MESHAGENT_API_URL, MESHAGENT_API_KEY, MESHAGENT_PROJECT_ID written to ${resolve(".env")}
  CLI       signed in (profile ${seed.user_id})

Next steps:
  meshagent auth whoami
  meshagent rooms create --name my-room
  meshagent service create -f service.yaml
  open ${seed.api_url}/accounts to sign in with the user above

Ctrl-C stops the server.`);
        }
        const code = await exited;
        process.exitCode = stopping ? 0 : code || 1;
      }),
    );
}
