import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { freePort } from "../../../test/helpers/process.js";
import { BIN, cli, cliEnv, settingsOf, tempHome, waitFor } from "./cli.js";

describe("meshagent dev", () => {
  it("starts the server on SQLite, writes .env, signs the CLI in, answers /healthz, and stops on SIGTERM", async () => {
    const home = tempHome();
    const port = await freePort();
    const child = spawn(process.execPath, [BIN, "dev", "--port", String(port), "--password", "dev passphrase"], {
      cwd: home,
      env: cliEnv(home),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr!.on("data", (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    try {
      await waitFor(child, "stdout", /Ctrl-C stops the server/, 60_000).catch((e) => {
        throw new Error(`${(e as Error).message}\nstderr: ${stderr}`);
      });
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      const env = Object.fromEntries(
        readFileSync(join(home, ".env"), "utf8")
          .trim()
          .split("\n")
          .map((l) => l.split(/=(.*)/).slice(0, 2)),
      );
      expect(env).toMatchObject({
        MESHAGENT_API_URL: `http://localhost:${port}`,
        MESHAGENT_API_KEY: expect.stringMatching(/^ma-/),
        MESHAGENT_PROJECT_ID: expect.any(String),
      });
      const set = settingsOf(home);
      expect(set.users[set.active_user_id].project.active_api_keys[env.MESHAGENT_PROJECT_ID]).toBe(env.MESHAGENT_API_KEY);
      // The CLI is signed in to it: no flags, no environment.
      const who = await cli(home, ["auth", "whoami", "-o", "json"], { cwd: home });
      expect(who.code, who.stderr).toBe(0);
      expect(JSON.parse(who.stdout)).toMatchObject({
        email: "dev@example.com",
        api_url: `http://localhost:${port}`,
        project: env.MESHAGENT_PROJECT_ID,
        credentials_source: "profile",
      });
      const room = await cli(home, ["rooms", "create", "--name", "dev-room", "-o", "json"], { cwd: home });
      expect(room.code, room.stderr).toBe(0);
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exited).toBe(0);
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  });
});
