// Bundles the CLI (its dependencies and the SDK's sources included) into one file, dist/meshagent.mjs, so that it
// starts fast and runs anywhere Node 20 does.
import { rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
rmSync(join(root, "dist"), { recursive: true, force: true });
await build({
  entryPoints: [join(root, "src/main.ts")],
  outfile: join(root, "dist/meshagent.mjs"),
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  conditions: ["meshagent-source"],
  // CommonJS dependencies bundled into an ES module still call require() for Node's built-ins.
  banner: { js: 'import { createRequire as __cr } from "node:module"; const require = __cr(import.meta.url);' },
  sourcemap: "linked",
  logLevel: "warning",
});
