import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "../../../test/helpers/server.js";
import { joinRoom, roomWsUrl, until } from "../../../test/helpers/room-client.js";
import { BIN, cli, cliEnv, collect, tempHome } from "./cli.js";

describe("meshagent session", () => {
  let s: TestServer;
  let env: Record<string, string>;
  const home = tempHome();
  beforeAll(async () => {
    s = await startServer({ env: { MESHAGENT_ROOM_EMPTY_TIMEOUT: "0.3" } });
    env = { MESHAGENT_API_URL: s.url, MESHAGENT_API_KEY: s.admin.apiKey };
    expect((await cli(home, ["rooms", "create", "--name", "cli-session"], { env })).code).toBe(0);
  });
  afterAll(() => s.close());

  it("a token from `token generate` joins the room; list/show/traces as JSON; logs --follow ends with the session", async () => {
    const jwt = await cli(home, ["token", "generate", "--room", "cli-session", "--identity", "u1"], { env });
    expect(jwt.code, jwt.stderr).toBe(0);
    const room = await joinRoom(roomWsUrl(s, "cli-session"), jwt.stdout.trim());
    const id = room.sessionId!;
    expect(id).toEqual(expect.any(String));
    const json = async (args: string[]) => {
      const r = await cli(home, [...args, "-o", "json"], { env });
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout);
    };
    await until(async () => (await json(["session", "list", "--active"])).some((x: { id: string }) => x.id === id));
    expect((await json(["session", "list", "--room", "cli-session"])).map((x: { id: string }) => x.id)).toContain(id);
    expect((await json(["session", "show", id])).id).toBe(id);
    expect(Array.isArray(await json(["session", "traces", id]))).toBe(true);

    const child = spawn(process.execPath, [BIN, "session", "logs", id, "--follow", "-o", "json"], {
      env: cliEnv(home, env),
      stdio: ["ignore", "pipe", "pipe"],
    });
    const done = collect(child);
    await new Promise((r) => setTimeout(r, 1500));
    expect(child.exitCode).toBe(null); // still following
    room.dispose();
    const r = await done;
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split("\n").filter(Boolean);
    expect(lines.length, r.stderr).toBeGreaterThan(0);
    for (const l of lines) expect(JSON.parse(l)).toEqual(expect.any(Object));
    expect((await json(["session", "show", id])).ended_at).toEqual(expect.any(String));
  });
});
