import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

/**
 * The console builds into dist/ (served by the server at /console). Pages are loaded on demand (React.lazy), so the
 * first load carries the shell and the current page only; uPlot comes with the pages that chart.
 */
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/console/",
  // The workspace SDK from its TypeScript sources (no build-order dependency on packages/sdk/dist).
  resolve: { alias: { "@meshagent-oss/sdk": fileURLToPath(new URL("../sdk/src/index.ts", import.meta.url)) } },
  oxc: { jsx: { runtime: "automatic" } },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: true,
    // No inline assets: the CSP allows the console's own files only (data: images aside).
    assetsInlineLimit: 0,
    reportCompressedSize: false,
    // dist/.vite/manifest.json: which files each page needs (bench/console.ts sums the initial load from it).
    manifest: true,
  },
});
