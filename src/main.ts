import { Command } from "commander";
import { resolve } from "node:path";
import { loadConfig } from "./config.js";
import { createContext } from "./wiring.js";
import { buildApp } from "./app.js";
import { bootstrap, updateEnvFile } from "./bootstrap.js";
import { migrate, openStore } from "./store/db.js";

try {
  process.loadEnvFile?.(".env");
} catch {
  // no .env: fine
}

async function serve() {
  const config = loadConfig();
  const ctx = await createContext(config);
  const app = await buildApp(ctx);
  await app.listen({ port: config.port, host: config.host });
  await ctx.webhookDispatcher.start();
  // Inbound SMTP for mailboxes, only when MESHAGENT_SMTP_PORT is set.
  await ctx.mail.start(app.log);
  // Scheduled tasks (unless MESHAGENT_SCHEDULER_ENABLED=false); stopped by ctx.close().
  ctx.schedulerEngine.start(app.log);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.log.info({ signal }, "shutting down");
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    await app.close();
    await ctx.close();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

const program = new Command("meshagent-server").description("Self-hostable MeshAgent server");

program.command("serve", { isDefault: true }).description("serve the API (migrations run first)").action(serve);

program
  .command("migrate")
  .description("apply database migrations and exit")
  .action(async () => {
    const config = loadConfig();
    const store = openStore(config.databaseUrl, { pool: config.dbPool });
    await migrate(store);
    await store.close();
    console.log("migrations applied");
  });

program
  .command("bootstrap")
  .description("create (or reuse) the admin user and a project, and issue a new API key and user token")
  .option("--email <email>", "admin email", "admin@example.com")
  .option("--password <password>", "admin password (generated for a new user when absent)")
  .option("--project <name>", "project name", "default")
  .option("--json", "print one line of JSON and nothing else")
  .action(async (opts: { email: string; password?: string; project: string; json?: boolean }) => {
    const config = loadConfig();
    const ctx = await createContext(config, { listen: false });
    try {
      const r = await bootstrap(ctx, opts);
      if (opts.json) {
        const { api_url, user_id, email, project_id, api_key, user_token } = r;
        process.stdout.write(JSON.stringify({ api_url, user_id, email, project_id, api_key, user_token }) + "\n");
      } else {
        const envFile = resolve(".env");
        updateEnvFile(envFile, { MESHAGENT_API_URL: r.api_url, MESHAGENT_API_KEY: r.api_key, MESHAGENT_PROJECT_ID: r.project_id });
        console.log(`MeshAgent server bootstrapped.

  API URL     ${r.api_url}
  Admin       ${r.email}${r.created_user ? " (new user)" : ""}${r.password ? `\n  Password    ${r.password}   <- shown once, keep it` : ""}
  Project     ${opts.project} (${r.project_id})${r.created_project ? " (new)" : ""}
  API key     ${r.api_key}
  User token  ${r.user_token}

Wrote MESHAGENT_API_URL, MESHAGENT_API_KEY and MESHAGENT_PROJECT_ID to ${envFile}.
The API key and token are shown only now; run bootstrap again for new ones.`);
      }
    } finally {
      await ctx.close();
    }
  });

program.parseAsync().catch((err) => {
  console.error(`error: ${err?.message ?? err}`);
  process.exit(1);
});
