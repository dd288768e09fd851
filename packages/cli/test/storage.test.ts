import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "../../../test/helpers/server.js";
import { BIN, cli, cliEnv, collect, tempHome } from "./cli.js";

/** A shell word. */
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

describe("meshagent storage", () => {
  let s: TestServer;
  let env: Record<string, string>;
  const home = tempHome();
  const file = join(home, "big.bin");
  const data = randomBytes(20 * 1024 * 1024);
  beforeAll(async () => {
    s = await startServer();
    env = { MESHAGENT_API_URL: s.url, MESHAGENT_API_KEY: s.admin.apiKey };
    writeFileSync(file, data);
  });
  afterAll(() => s.close());

  it("cp of a 20 MB file shows a progress bar on a TTY, none when piped; the download equals the upload", async () => {
    // Under script(1) stderr is a pseudo-terminal.
    const cmd = [process.execPath, BIN, "storage", "cp", file, "storage:big/tty.bin"].map(q).join(" ");
    const tty = await collect(spawn("script", ["-qefc", cmd, "/dev/null"], { env: cliEnv(home, env), stdio: ["pipe", "pipe", "pipe"] }));
    expect(tty.code, tty.stdout + tty.stderr).toBe(0);
    expect(tty.stdout).toMatch(/upload big\/tty\.bin \[[█░]+\] 100% \| 20971520\/20971520 bytes/);

    const piped = await cli(home, ["storage", "cp", file, "storage:big/piped.bin"], { env });
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stderr).toBe("uploaded " + file + " to storage:big/piped.bin\n");
    expect(piped.stdout).toBe("");

    const back = join(home, "back.bin");
    const down = await cli(home, ["storage", "cp", "storage:big/piped.bin", back], { env });
    expect(down.code, down.stderr).toBe(0);
    expect(down.stderr).not.toMatch(/\[|%/);
    expect(readFileSync(back).equals(data)).toBe(true);
    const downTty = await collect(
      spawn("script", ["-qefc", [process.execPath, BIN, "storage", "cp", "storage:big/tty.bin", join(home, "back2.bin")].map(q).join(" "), "/dev/null"], {
        env: cliEnv(home, env),
        stdio: ["pipe", "pipe", "pipe"],
      }),
    );
    expect(downTty.stdout).toMatch(/download big\/tty\.bin \[[█░]+\] 100%/);
    expect(readFileSync(join(home, "back2.bin")).equals(data)).toBe(true);
  });

  it("cp with - reads stdin and writes stdout; ls and rm", async () => {
    const up = await cli(home, ["storage", "cp", "-", "storage:notes/a.txt"], { env, input: "hello from stdin\n" });
    expect(up.code, up.stderr).toBe(0);
    const down = await cli(home, ["storage", "cp", "storage:notes/a.txt", "-"], { env });
    expect(down.stdout).toBe("hello from stdin\n");
    const ls = await cli(home, ["storage", "ls", "storage:notes", "-o", "json"], { env });
    expect(ls.code, ls.stderr).toBe(0);
    expect(JSON.parse(ls.stdout).map((e: { name: string }) => e.name)).toEqual(["a.txt"]);
    const rm = await cli(home, ["storage", "rm", "storage:notes/a.txt"], { env });
    expect(rm.code, rm.stderr).toBe(0);
    const missing = await cli(home, ["storage", "cp", "storage:notes/a.txt", "-", "-o", "json"], { env });
    expect(missing.code).toBe(1);
    expect(JSON.parse(missing.stdout)).toMatchObject({ code: "not_found" });
    const root = await cli(home, ["storage", "ls", "-o", "json"], { env });
    expect(root.code, root.stderr).toBe(0);
    expect(JSON.parse(root.stdout).map((e: { name: string }) => e.name)).not.toContain("notes");
  });
});
