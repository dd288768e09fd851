import { createRequire } from "node:module";

/** The server's version, from package.json (one level above src/ and dist/ alike). */
export const SERVER_VERSION: string = (createRequire(import.meta.url)("../package.json") as { version: string }).version;
