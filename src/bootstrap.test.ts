import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { updateEnvFile } from "./bootstrap.js";

describe("updateEnvFile", () => {
  it("creates the file, then updates only our keys and keeps every other line", () => {
    const dir = mkdtempSync(join(tmpdir(), "envf-"));
    const f = join(dir, ".env");
    updateEnvFile(f, { MESHAGENT_API_KEY: "a", MESHAGENT_PROJECT_ID: "p" });
    expect(readFileSync(f, "utf8")).toBe("MESHAGENT_API_KEY=a\nMESHAGENT_PROJECT_ID=p\n");
    writeFileSync(f, "# mine\nOTHER=1\nexport MESHAGENT_API_KEY=old\n\n");
    updateEnvFile(f, { MESHAGENT_API_KEY: "b", MESHAGENT_API_URL: "http://x" });
    expect(readFileSync(f, "utf8")).toBe("# mine\nOTHER=1\nMESHAGENT_API_KEY=b\nMESHAGENT_API_URL=http://x\n");
  });
});
