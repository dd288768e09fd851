import { Command, CommanderError, Option } from "commander";
import { CurlPrinted, reportError, type Format } from "./output.js";
import { registerAuth } from "./commands/auth.js";
import { registerProjects } from "./commands/projects.js";
import { registerRooms } from "./commands/rooms.js";
import { registerStorage } from "./commands/storage.js";
import { registerServices } from "./commands/services.js";
import { registerSecrets } from "./commands/secrets.js";
import { registerWebhooks } from "./commands/webhooks.js";
import { registerMailboxes } from "./commands/mailboxes.js";
import { registerSessions } from "./commands/sessions.js";
import { registerScheduledTasks } from "./commands/scheduled-tasks.js";
import { registerBilling } from "./commands/billing.js";
import { registerToken } from "./commands/token.js";
import { registerDev } from "./commands/dev.js";
import { registerCompletion } from "./commands/completion.js";

const PRECEDENCE = `
Settings are resolved in this order (first wins):
  API URL   --api-url > MESHAGENT_API_URL > the active profile's api_url > ${"http://localhost:8080"}
  bearer    --api-key / --token > MESHAGENT_API_KEY > MESHAGENT_TOKEN > the profile's session (meshagent auth login)
            > the profile's active API key for the active project
  project   --project > MESHAGENT_PROJECT_ID > the profile's active project > the project of the API key in use
The profile (~/.meshagent/settings.json) is used only when its api_url is the API URL in use.

Output: -o table|json (default: table on a terminal, JSON when piped); results on stdout, logs on stderr.
Errors: one "error: <message> (<code>)" line and maybe a "hint:" line on stderr; with JSON output also
{"code","message","hint"} on stdout. Exit codes: 0 ok, 1 error, 2 usage.
--curl prints the request as a curl command (bearer redacted) instead of sending it.`;

const program = new Command("meshagent")
  .description("the command line for a MeshAgent server")
  .version("0.1.0")
  .addOption(new Option("--api-url <url>", "the server's URL"))
  .addOption(new Option("--api-key <key>", "a project API key (ma-…)").conflicts("token"))
  .addOption(new Option("--token <token>", "a user access token"))
  .addOption(new Option("--project <id>", "the project id"))
  .addOption(new Option("-o, --output <format>", "table or json").choices(["table", "json"]))
  .addOption(new Option("--curl", "print the equivalent curl command(s) and send nothing"))
  .addHelpText("after", PRECEDENCE)
  .showSuggestionAfterError()
  .configureHelp({ showGlobalOptions: true })
  .exitOverride();

for (const register of [
  registerAuth,
  registerProjects,
  registerRooms,
  registerStorage,
  registerServices,
  registerSecrets,
  registerWebhooks,
  registerMailboxes,
  registerSessions,
  registerScheduledTasks,
  registerBilling,
  registerToken,
  registerDev,
  registerCompletion,
])
  register(program);

/** The output format asked for, read from argv (the error may come before commander parsed the options). */
function formatOf(argv: string[]): Format {
  const i = argv.findIndex((a) => a === "-o" || a === "--output" || a.startsWith("--output=") || a.startsWith("-o="));
  const v = i < 0 ? undefined : argv[i].includes("=") ? argv[i].split("=")[1] : argv[i + 1];
  if (v === "json" || v === "table") return v;
  return process.stdout.isTTY ? "table" : "json";
}

// `meshagent … | head` closes stdout early: that is no error.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(0);
  throw e;
});

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    // Help and --version exit 0; every other commander error is a usage error (it already printed its message).
    process.exitCode = e.exitCode === 0 || e.code === "commander.helpDisplayed" || e.code === "commander.version" ? 0 : 2;
  } else if (e instanceof CurlPrinted || (e as { cause?: unknown } | null)?.cause instanceof CurlPrinted) process.exitCode = 0;
  else process.exitCode = reportError(e, formatOf(process.argv));
}
