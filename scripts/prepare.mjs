// npm's `prepare` (npm install, npm ci): compile the server into dist/ and build the workspaces (npm run build).
// A production install (npm ci --omit=dev) has no TypeScript or esbuild: the build is skipped with a note, and the
// server runs what is there (dist/ if it was built before, else the sources through tsx, a runtime dependency).
import { existsSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
if (!existsSync(join(root, "node_modules", ".bin", "tsc"))) {
  const runs = existsSync(join(root, "dist", "main.js")) ? "the build in dist/" : "the TypeScript sources through tsx";
  console.warn(`meshagent-server: no TypeScript here (installed without dev dependencies): not compiling; the server runs ${runs}`);
  process.exit(0);
}
const r = spawnSync("npm", ["run", "build"], { cwd: root, stdio: "inherit" });
process.exit(r.status ?? 1);
