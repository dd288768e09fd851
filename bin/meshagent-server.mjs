#!/usr/bin/env node
// Runs the TypeScript entry point in this same process through tsx's loader, so signals reach the server directly.
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { register } from "tsx/esm/api";

register();
await import(pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), "..", "src/main.ts")).href);
