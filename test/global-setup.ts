import { execFileSync } from "node:child_process";

/**
 * The CLI's tests run its built bundle (packages/cli/dist), and the console's tests the console the server serves
 * (packages/console/dist): build both from the current sources once per run. MESHAGENT_TEST_CLI_BUILD=0 skips the
 * builds (when running other tests while those sources are mid-edit).
 */
export default function setup() {
  if (process.env.MESHAGENT_TEST_CLI_BUILD === "0") return;
  execFileSync(process.execPath, ["packages/cli/scripts/build.mjs"], { stdio: "inherit" });
  execFileSync(process.execPath, ["packages/console/scripts/build.mjs"], { stdio: "inherit" });
}
