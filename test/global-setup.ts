import { execFileSync } from "node:child_process";

/**
 * The CLI's tests run its built bundle (packages/cli/dist): build it from the current sources once per run.
 * MESHAGENT_TEST_CLI_BUILD=0 skips the build (when running other tests while the CLI's sources are mid-edit).
 */
export default function setup() {
  if (process.env.MESHAGENT_TEST_CLI_BUILD === "0") return;
  execFileSync(process.execPath, ["packages/cli/scripts/build.mjs"], { stdio: "inherit" });
}
