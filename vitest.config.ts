import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  // Tests use the workspace SDK's TypeScript sources (what its "meshagent-source" export condition names).
  resolve: { alias: { "@meshagent-oss/sdk": fileURLToPath(new URL("./packages/sdk/src/index.ts", import.meta.url)) } },
  // The console's components (packages/console) are TSX with React's automatic runtime.
  oxc: { jsx: { runtime: "automatic" } },
  test: {
    include: ["test/**/*.test.ts", "src/**/*.test.ts", "packages/*/test/**/*.test.ts", "packages/*/test/**/*.test.tsx"],
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    maxWorkers: 2,
  },
});
