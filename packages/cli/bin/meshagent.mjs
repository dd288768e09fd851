#!/usr/bin/env node
// The built CLI (npm run build -w @meshagent-oss/cli, which `npm install` runs through the root's prepare script).
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const bundle = new URL("../dist/meshagent.mjs", import.meta.url);
if (!existsSync(fileURLToPath(bundle))) {
  process.stderr.write("meshagent: the CLI is not built; run `npm run build -w @meshagent-oss/cli` (or `npm install`) first\n");
  process.exit(1);
}
await import(bundle.href);
