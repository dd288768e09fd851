#!/usr/bin/env node
// The server's entry point. It runs the compiled server (dist/main.js, from `npm run build`) in this same process when
// it is there and not older than the sources, and otherwise the TypeScript sources through tsx's loader (also in this
// process). Either way there is one node process, so SIGTERM and SIGINT reach the server itself.
// MESHAGENT_FROM_SOURCE=1 always runs the sources.
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const compiled = join(root, "dist", "main.js");
const sources = join(root, "src");

/** The newest modification time of the sources (tests excluded), or 0 when there are none (an installed image). */
function newestSource(dir) {
  let newest = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (e.name.endsWith(".ts") && !e.name.endsWith(".test.ts")) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

function pick() {
  if (process.env.MESHAGENT_FROM_SOURCE === "1" || process.env.MESHAGENT_FROM_SOURCE === "true") return "source";
  if (!existsSync(compiled)) return existsSync(sources) ? "source" : "compiled";
  if (newestSource(sources) > statSync(compiled).mtimeMs) {
    process.stderr.write("meshagent-server: dist/ is older than src/: running the sources through tsx (npm run build compiles them)\n");
    return "source";
  }
  return "compiled";
}

const mode = pick();
if (mode === "compiled") {
  await import(pathToFileURL(compiled).href);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import(pathToFileURL(join(sources, "main.ts")).href);
}
