import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { browser } from "../../../test/helpers/oauth.js";

export const ROOT = join(import.meta.dirname, "..", "..", "..");
export const BIN = join(ROOT, "packages/cli/bin/meshagent.mjs");

export const tempHome = () => mkdtempSync(join(tmpdir(), "meshagent-cli-home-"));

/** The environment of a CLI run: a fresh HOME and no MESHAGENT_* variables but the ones given. */
export function cliEnv(home: string, env: Record<string, string> = {}): NodeJS.ProcessEnv {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("MESHAGENT_")));
  return { ...base, HOME: home, ...env };
}

export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI to the end (stdout and stderr are pipes, so not TTYs). */
export function cli(home: string, args: string[], o: { env?: Record<string, string>; input?: string | Buffer; cwd?: string } = {}): Promise<Result> {
  const child = spawn(process.execPath, [BIN, ...args], { env: cliEnv(home, o.env), cwd: o.cwd ?? ROOT, stdio: ["pipe", "pipe", "pipe"] });
  return collect(child, o.input);
}

export function collect(child: ChildProcess, input?: string | Buffer): Promise<Result> {
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  child.stdin?.end(input);
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
}

/** Waits until the child's stream matches. */
export function waitFor(child: ChildProcess, stream: "stdout" | "stderr", re: RegExp, ms = 30_000): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let text = "";
    const t = setTimeout(() => reject(new Error(`no ${re} within ${ms} ms in ${stream}: ${text}`)), ms);
    child[stream]!.on("data", (d) => {
      text += d;
      const m = re.exec(text);
      if (m) {
        clearTimeout(t);
        resolve(m);
      }
    });
  });
}

export const settingsOf = (home: string) => JSON.parse(readFileSync(join(home, ".meshagent", "settings.json"), "utf8"));

/**
 * A headless browser through the authorize URL the CLI printed: sign-in form, consent when asked, and finally a GET
 * of the loopback callback (the redirect's location), which is what the CLI waits for. Returns that answer's status.
 */
export async function approveInBrowser(base: string, authorizeUrl: string, who: { email: string; password: string }) {
  const b = browser(base);
  let r = await b.go("GET", authorizeUrl);
  for (let i = 0; i < 12 && r.location; i++) {
    const loc = new URL(r.location, base).toString();
    if (/^http:\/\/localhost:\d+\/callback/.test(loc)) return (await fetch(loc)).status;
    r = await b.go("GET", loc);
    const login = /<form method="post" action="(\/oauth\/interaction\/[^"]+\/login)"/.exec(r.text);
    const consent = /action="(\/oauth\/interaction\/[^"]+\/consent)"/.exec(r.text);
    if (r.status === 200 && login) r = await b.go("POST", login[1], { email: who.email, password: who.password });
    else if (r.status === 200 && consent) r = await b.go("POST", consent[1], { csrf: /name="csrf" value="([^"]+)"/.exec(r.text)![1], decision: "allow" });
  }
  throw new Error(`the browser did not reach the callback: ${r.status} ${r.location} ${r.text.slice(0, 200)}`);
}
