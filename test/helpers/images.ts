/**
 * Container test images, built here from what the machine has (no registry is reachable), once per content:
 *
 *  - busybox: Debian's `busybox-static` (/bin/busybox) and a symlink per applet, nothing else;
 *  - node: the machine's `node` binary with the shared libraries `ldd` lists, busybox (for `sh`), and `/agent`
 *    holding test/fixtures/agent (a small agent) plus the official client `@meshagent/meshagent` and its dependencies
 *    copied from node_modules, so that `node /agent/agent.cjs` joins a room with the official client.
 *
 * Each image is tagged `meshagent-test/<name>:<hash of its content>`; an image with that tag is reused, so a run
 * builds each at most once (and later runs not at all while the inputs are unchanged). Older tags of the same name
 * are removed when a new one is built. Tests remove the containers they run; these cached images are kept on purpose.
 *
 * {@link dockerForTests} is the gate for tests that need a daemon: it answers null (and says why) when none answers,
 * unless MESHAGENT_TEST_REQUIRE_DOCKER=1 (CI sets it once it started dockerd), then it throws.
 */
import { createHash } from "node:crypto";
import { execFileSync, spawn } from "node:child_process";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  copyFileSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import type { Readable } from "node:stream";
import { DEFAULT_DOCKER_SOCKET } from "../../src/config.js";
import { DockerRuntime, detectRuntime } from "../../src/runtime/index.js";

export const ROOT = join(import.meta.dirname, "..", "..");
export const AGENT_DIR = join(ROOT, "test", "fixtures", "agent");
/** Every image built here carries this label (and the repository prefix). */
export const TEST_IMAGE_LABEL = "meshagent.test";
export const TEST_IMAGE_REPO = "meshagent-test";

export const REQUIRE_DOCKER = /^(1|true)$/i.test(process.env.MESHAGENT_TEST_REQUIRE_DOCKER ?? "");

/** The Docker host tests use: what the server would pick (MESHAGENT_DOCKER_HOST, DOCKER_HOST, the default socket). */
export function testDockerHost(): string | null {
  const configured = process.env.MESHAGENT_DOCKER_HOST || process.env.DOCKER_HOST;
  if (configured === "none") return null;
  if (configured) return configured;
  return existsSync(DEFAULT_DOCKER_SOCKET) ? `unix://${DEFAULT_DOCKER_SOCKET}` : null;
}

/**
 * The runtime for tests that need Docker: null (after a warning naming `file` and the reason) when no daemon
 * answers; with MESHAGENT_TEST_REQUIRE_DOCKER=1 an absent daemon throws instead, so CI cannot pass by skipping.
 */
export async function dockerForTests(file: string): Promise<DockerRuntime | null> {
  const found = await detectRuntime(testDockerHost(), { timeoutMs: 5000 });
  if (found.status === "ready") return found.runtime as DockerRuntime;
  if (REQUIRE_DOCKER) throw new Error(`${file}: MESHAGENT_TEST_REQUIRE_DOCKER=1 but ${found.reason}`);
  console.warn(`${file}: skipped, ${found.reason} (start dockerd, or set MESHAGENT_TEST_REQUIRE_DOCKER=1 to fail instead)`);
  return null;
}

/** One thing in an image's root filesystem. */
type Entry =
  | { dest: string; kind: "file"; src: string; mode: number }
  | { dest: string; kind: "text"; text: string; mode: number }
  | { dest: string; kind: "symlink"; target: string }
  | { dest: string; kind: "dir"; mode: number };

const fileHashes = new Map<string, string>();
function hashFile(path: string): string {
  let h = fileHashes.get(path);
  if (!h) {
    h = createHash("sha256").update(readFileSync(path)).digest("hex");
    fileHashes.set(path, h);
  }
  return h;
}

/** The content hash of an image plan: every entry (path, kind, mode, content) and the image's config changes. */
function planHash(entries: Entry[], changes: string[]): string {
  const h = createHash("sha256");
  for (const e of [...entries].sort((a, b) => (a.dest < b.dest ? -1 : a.dest > b.dest ? 1 : 0))) {
    const body = e.kind === "file" ? hashFile(e.src) : e.kind === "text" ? e.text : e.kind === "symlink" ? e.target : "";
    const mode = "mode" in e ? e.mode.toString(8) : "";
    h.update(`${e.kind}\0${e.dest}\0${mode}\0${body}\n`);
  }
  for (const c of changes) h.update(`change\0${c}\n`);
  return h.digest("hex").slice(0, 16);
}

/** Entries for a directory tree copied from `src` to `dest` (symlinks kept; `skip(name)` leaves out a top-level child). */
function treeEntries(src: string, dest: string, skip: (name: string) => boolean = () => false): Entry[] {
  const out: Entry[] = [{ dest, kind: "dir", mode: 0o755 }];
  for (const name of readdirSync(src)) {
    if (skip(name)) continue;
    const s = join(src, name);
    const d = `${dest}/${name}`;
    const st = lstatSync(s);
    if (st.isSymbolicLink()) out.push({ dest: d, kind: "symlink", target: readlinkSync(s) });
    else if (st.isDirectory()) out.push(...treeEntries(s, d));
    else if (st.isFile()) out.push({ dest: d, kind: "file", src: s, mode: st.mode & 0o777 });
  }
  return out;
}

function busyboxEntries(): Entry[] {
  const busybox = "/bin/busybox";
  let linked = "";
  try {
    execFileSync("ldd", [busybox], { stdio: "pipe" });
    linked = "dynamically linked";
  } catch {
    // ldd exits 1 for "not a dynamic executable": what we want
  }
  if (!existsSync(busybox) || linked) {
    throw new Error(`${busybox} ${linked || "is missing"}: install Debian's busybox-static (apt-get install busybox-static; .ci/run does)`);
  }
  const applets = execFileSync(busybox, ["--list"], { encoding: "utf8" })
    .split("\n")
    .filter((a) => a && a !== "busybox");
  return [
    { dest: "/bin", kind: "dir", mode: 0o755 },
    { dest: "/bin/busybox", kind: "file", src: realpathSync(busybox), mode: 0o755 },
    ...applets.map((a): Entry => ({ dest: `/bin/${a}`, kind: "symlink", target: "busybox" })),
    { dest: "/tmp", kind: "dir", mode: 0o1777 },
    { dest: "/etc", kind: "dir", mode: 0o755 },
    { dest: "/etc/passwd", kind: "text", text: "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n", mode: 0o644 },
    { dest: "/etc/group", kind: "text", text: "root:x:0:\nnogroup:x:65534:\n", mode: 0o644 },
  ];
}

/** The shared libraries `ldd` lists for a binary, as [path in the image, real file on this machine]. */
function sharedLibraries(binary: string): [string, string][] {
  const out: [string, string][] = [];
  for (const line of execFileSync("ldd", [binary], { encoding: "utf8" }).split("\n")) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) out.push([m[1], realpathSync(m[1])]);
  }
  return out;
}

/** The package directories `name` needs at run time (itself and its dependencies, transitively), resolved like Node does. */
export function packageClosure(name: string, from = ROOT): string[] {
  const seen = new Set<string>();
  const resolveFrom = (dir: string, pkg: string): string | null => {
    for (let d = dir; ; d = dirname(d)) {
      const candidate = join(d, "node_modules", pkg);
      if (existsSync(join(candidate, "package.json"))) return candidate;
      if (d === dirname(d) || relative(ROOT, d).startsWith("..")) return null;
    }
  };
  const visit = (dir: string) => {
    if (seen.has(dir)) return;
    seen.add(dir);
    const pj = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as Record<string, Record<string, string> | undefined>;
    for (const [deps, optional] of [
      [pj.dependencies, false],
      [pj.optionalDependencies, true],
    ] as const) {
      for (const dep of Object.keys(deps ?? {})) {
        const found = resolveFrom(dir, dep);
        if (found) visit(found);
        else if (!optional) throw new Error(`packageClosure: ${dep} (needed by ${dir}) is not installed`);
      }
    }
  };
  const top = resolveFrom(from, name);
  if (!top) throw new Error(`packageClosure: ${name} is not installed`);
  visit(top);
  return [...seen].sort();
}

function nodeEntries(agentDir: string): Entry[] {
  const node = realpathSync(process.execPath);
  const entries: Entry[] = [...busyboxEntries(), { dest: "/usr/local/bin/node", kind: "file", src: node, mode: 0o755 }];
  for (const [dest, src] of sharedLibraries(node)) entries.push({ dest, kind: "file", src, mode: 0o755 });
  entries.push(...treeEntries(agentDir, "/agent", (n) => n === "node_modules"));
  const modules = join(ROOT, "node_modules");
  for (const dir of packageClosure("@meshagent/meshagent")) {
    const rel = relative(modules, dir).split("\\").join("/");
    // nested node_modules of a package are packages of their own: the closure lists those it needs
    entries.push(...treeEntries(dir, `/agent/node_modules/${rel}`, (n) => n === "node_modules"));
  }
  return entries;
}

/** The entries written into a new temporary directory (parents first, directory modes set last); returns it. */
function stage(entries: Entry[]): string {
  const dir = mkdtempSync(join(tmpdir(), "meshagent-image-"));
  const modes: [string, number][] = [];
  for (const e of [...entries].sort((a, b) => a.dest.length - b.dest.length || (a.dest < b.dest ? -1 : 1))) {
    const p = join(dir, e.dest);
    mkdirSync(dirname(p), { recursive: true });
    if (e.kind === "dir") {
      mkdirSync(p, { recursive: true });
      modes.push([p, e.mode]);
    } else if (e.kind === "symlink") {
      if (!existsSync(p)) symlinkSync(e.target, p);
    } else if (e.kind === "text") {
      writeFileSync(p, e.text, { mode: e.mode });
    } else {
      copyFileSync(e.src, p);
      chmodSync(p, e.mode);
    }
  }
  for (const [p, mode] of modes) chmodSync(p, mode);
  return dir;
}

async function drain(stream: Readable): Promise<string> {
  let text = "";
  for await (const chunk of stream) text += typeof chunk === "string" ? chunk : (chunk as Buffer).toString("utf8");
  return text;
}

const built = new Map<string, Promise<string>>();

/**
 * The image `meshagent-test/<name>:<content hash>` of `entries`, imported with `changes` (Dockerfile instructions
 * such as `CMD`, `ENV`, `WORKDIR`) unless an image with that tag exists already.
 */
async function image(runtime: DockerRuntime, name: string, entries: Entry[], changes: string[]): Promise<string> {
  const all = [...changes, `LABEL ${TEST_IMAGE_LABEL}=1`];
  const tag = planHash(entries, all);
  const ref = `${TEST_IMAGE_REPO}/${name}:${tag}`;
  let p = built.get(ref);
  if (!p) {
    p = (async () => {
      if (await runtime.inspectImage(ref)) return ref;
      // test files run in parallel processes: one builds, the others wait for it and find the image
      const release = await buildLock(`${name}-${tag}`);
      try {
        if (await runtime.inspectImage(ref)) return ref;
        await build(runtime, ref, name, tag, entries, all);
      } finally {
        release();
      }
      return ref;
    })();
    built.set(ref, p);
    p.catch(() => built.delete(ref));
  }
  return p;
}

/** A lock shared by the processes of this machine (a directory); one older than 5 minutes is taken as abandoned. */
async function buildLock(key: string): Promise<() => void> {
  const lock = join(tmpdir(), `meshagent-test-image-${key}.lock`);
  for (const deadline = Date.now() + 300_000; ;) {
    try {
      mkdirSync(lock);
      return () => rmSync(lock, { recursive: true, force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      let age: number;
      try {
        age = Date.now() - statSync(lock).mtimeMs;
      } catch {
        continue; // released meanwhile
      }
      if (age > 300_000 || Date.now() > deadline) rmSync(lock, { recursive: true, force: true });
      else await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** Stage the root filesystem, `tar | docker import` it, then drop the older tags of the same image. */
async function build(runtime: DockerRuntime, ref: string, name: string, tag: string, entries: Entry[], all: string[]): Promise<void> {
  const dir = stage(entries);
  try {
    const tar = spawn("tar", ["-C", dir, "--numeric-owner", "--owner=0", "--group=0", "-c", "."], { stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    tar.stderr.on("data", (d) => (err += d));
    const res = (await runtime.docker.importImage(tar.stdout, { repo: `${TEST_IMAGE_REPO}/${name}`, tag, changes: all })) as Readable;
    const answer = await drain(res);
    const code = tar.exitCode ?? (await new Promise<number | null>((r) => tar.once("close", r)));
    if (code !== 0) throw new Error(`tar of ${ref} failed (${code}): ${err}`);
    if (/"error"/.test(answer) || !(await runtime.inspectImage(ref))) throw new Error(`docker import of ${ref} failed: ${answer}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // earlier builds of the same image (other content) are not needed any more
  for (const img of await runtime.listImages()) {
    const old = img.tags.filter((t) => t.startsWith(`${TEST_IMAGE_REPO}/${name}:`) && t !== ref);
    for (const t of old) await runtime.removeImage(t).catch(() => undefined);
  }
}

/** busybox on an empty root: `sh`, `wget`, `nc`, `sleep`, … (command: `sh`). */
export function busyboxImage(runtime: DockerRuntime): Promise<string> {
  return image(runtime, "busybox", busyboxEntries(), ["ENV PATH=/bin", 'CMD ["sh"]']);
}

/** The machine's node with the official client and the test agent in /agent (command: `node /agent/agent.cjs`). */
export function nodeImage(runtime: DockerRuntime, agentDir = AGENT_DIR): Promise<string> {
  if (!statSync(agentDir).isDirectory()) throw new Error(`nodeImage: ${agentDir} is not a directory`);
  return image(runtime, "node", nodeEntries(agentDir), [
    "ENV PATH=/usr/local/bin:/bin",
    "ENV NODE_PATH=/agent/node_modules",
    "WORKDIR /agent",
    'CMD ["node", "/agent/agent.cjs"]',
  ]);
}
