// Builds dist/: index.js (ESM) and index.cjs (CommonJS) with esbuild, and the declarations (*.d.ts, and a CommonJS copy in cjs/)
// with the TypeScript compiler.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });
const common = { entryPoints: [join(root, "src/index.ts")], bundle: true, platform: "neutral", target: "es2022", sourcemap: true, logLevel: "warning" };
await build({ ...common, format: "esm", outfile: join(dist, "index.js") });
await build({ ...common, format: "cjs", outfile: join(dist, "index.cjs") });

// Declarations: one .d.ts per source file.
const require = createRequire(import.meta.url);
const tsc = join(dirname(require.resolve("typescript/package.json")), "bin", readdirSync(join(dirname(require.resolve("typescript/package.json")), "bin"))[0]);
execFileSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json")], { stdio: "inherit" });
// The same declarations under a folder marked CommonJS, so that require() users' TypeScript reads them as CommonJS.
mkdirSync(join(dist, "cjs"));
writeFileSync(join(dist, "cjs", "package.json"), '{ "type": "commonjs" }\n');
for (const f of readdirSync(dist)) if (f.endsWith(".d.ts")) copyFileSync(join(dist, f), join(dist, "cjs", f));
console.log(`built ${dist}`);
