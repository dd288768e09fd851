// Builds the console into dist/ with Vite (the root `npm run build`, and so `npm install`, runs it). Without Vite (an
// install without dev dependencies) it says so and leaves the server to answer /console with how to build it.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
let vite;
try {
  createRequire(import.meta.url).resolve("vite");
  vite = await import("vite");
} catch {
  console.warn("console: vite is not installed (an install without dev dependencies); /console will say it is not built");
  process.exit(0);
}
await vite.build({ configFile: join(root, "vite.config.ts"), logLevel: "warn" });
console.log(`built ${join(root, "dist")}`);
