import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { startServer, type TestServer } from "./helpers/server.js";
import { TYPES_FILE, typesFor } from "../scripts/sdk-types.js";

/** The SDK's checked-in types (packages/sdk/src/openapi.ts) are what a running server's /openapi.json generates. */
describe("SDK types and the server's OpenAPI document", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(() => s.close());

  it("have not drifted (run `npm run sdk:types` after changing a route's schema)", async () => {
    const doc = (await s.http("GET", "/openapi.json")).json;
    const generated = await typesFor(doc);
    const checkedIn = readFileSync(TYPES_FILE, "utf8");
    if (generated !== checkedIn) {
      const a = generated.split("\n");
      const b = checkedIn.split("\n");
      const at = a.findIndex((line, i) => line !== b[i]);
      expect.fail(`packages/sdk/src/openapi.ts is out of date at line ${at + 1}:\n  server:     ${a[at]}\n  checked in: ${b[at]}\nRun: npm run sdk:types`);
    }
  });
});
