import { Command } from "commander";
import { join, resolve } from "node:path";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { loadConfig } from "./config.js";
import { createContext } from "./wiring.js";
import { buildApp } from "./app.js";
import { bootstrap, updateEnvFile } from "./bootstrap.js";
import { migrate, openStore } from "./store/db.js";
import { domains } from "./domains.js";
import { consoleReporter, rotateMasterKey } from "./keyring/rotate.js";
import { startupSummary } from "./startup.js";
import { BackupUnsupported, backupStore, defaultBackupFile, restoreStore } from "./store/backup.js";

/** How to run bootstrap here: from a checkout with npm, else (an installed build, the container image) the entry itself. */
const bootstrapCommand = () =>
  existsSync(fileURLToPath(new URL("../src/main.ts", import.meta.url)))
    ? "npm run bootstrap"
    : "node dist/main.js bootstrap (in the container: docker exec <container> node dist/main.js bootstrap)";

/** How this process runs the server: the compiled build (dist/main.js) or the TypeScript sources (through tsx). */
const runningFrom = () => (import.meta.url.endsWith(".js") ? "compiled build" : "TypeScript sources via tsx");

try {
  process.loadEnvFile?.(".env");
} catch {
  // no .env: fine
}

async function serve() {
  const config = loadConfig();
  const ctx = await createContext(config);
  const app = await buildApp(ctx);
  const url = await app.listen({ port: config.port, host: config.host });
  await ctx.webhookDispatcher.start();
  // Inbound SMTP for mailboxes, only when MESHAGENT_SMTP_PORT is set.
  await ctx.mail.start(app.log);
  // Scheduled tasks (unless MESHAGENT_SCHEDULER_ENABLED=false); stopped by ctx.close().
  ctx.schedulerEngine.start(app.log);
  // Invitation mails due (sent right after their commit; the sweep retries failures and crashes).
  ctx.invitations.start();
  // The billing job (unless MESHAGENT_BILLING_ENABLED=false): prices closed hours, renews, auto-recharges.
  if (config.billing.enabled) ctx.billingEngine.start();
  // Where it listens, what it runs on, what is on, and what to do next: on stderr, for the person who started it.
  process.stderr.write(await startupSummary(ctx, { url, ms: process.uptime() * 1000, from: runningFrom(), bootstrap: bootstrapCommand() }));
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
  .option("--write-env", "with --json: also write MESHAGENT_API_URL, MESHAGENT_API_KEY and MESHAGENT_PROJECT_ID to ./.env")
  .action(async (opts: { email: string; password?: string; project: string; json?: boolean; writeEnv?: boolean }) => {
    const config = loadConfig();
    const ctx = await createContext(config, { listen: false });
    try {
      const r = await bootstrap(ctx, opts);
      const env = { MESHAGENT_API_URL: r.api_url, MESHAGENT_API_KEY: r.api_key, MESHAGENT_PROJECT_ID: r.project_id };
      if (opts.json) {
        if (opts.writeEnv) updateEnvFile(resolve(".env"), env);
        const { api_url, user_id, email, project_id, api_key, user_token } = r;
        process.stdout.write(JSON.stringify({ api_url, user_id, email, project_id, api_key, user_token }) + "\n");
      } else {
        const envFile = resolve(".env");
        updateEnvFile(envFile, env);
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

program
  .command("backup")
  .description("write an online backup of the SQLite store while servers keep running (PostgreSQL: use pg_dump)")
  .option("--output <file>", "where to write it (default: <data dir>/backups/meshagent-<time>.db; never overwritten)")
  .option("--json", "print one line of JSON")
  .action(async (opts: { output?: string; json?: boolean }) => {
    const config = loadConfig();
    const file = opts.output ?? defaultBackupFile(config.dataDir);
    const tty = !opts.json && process.stderr.isTTY;
    try {
      const r = await backupStore(config.databaseUrl, file, {
        onProgress: tty
          ? (done, total) => process.stderr.write(`\rbacking up: ${Math.floor((done / Math.max(total, 1)) * 100)}% of ${total} pages`)
          : undefined,
      });
      if (tty) process.stderr.write("\n");
      if (opts.json) process.stdout.write(JSON.stringify(r) + "\n");
      else
        console.log(
          `wrote ${r.file} (${(r.bytes / 1048576).toFixed(1)} MiB, ${r.seconds.toFixed(1)} s).\n` +
            `Keep ${join(config.dataDir, "master.key")} (or MESHAGENT_MASTER_KEY) with it: sealed values open only with that key.\n` +
            `Files in local storage (${config.storageUrl}) are not in it: copy that directory too. Restore: npm run restore -- ${r.file}`,
        );
    } catch (e) {
      console.error(`backup failed: ${(e as Error).message}`);
      process.exit(e instanceof BackupUnsupported ? 2 : 1);
    }
  });

program
  .command("restore <file>")
  .description("replace the SQLite store with a backup (stop every server first; the current database is kept aside)")
  .option("--json", "print one line of JSON")
  .action(async (file: string, opts: { json?: boolean }) => {
    const config = loadConfig();
    try {
      const r = await restoreStore(config.databaseUrl, file, { port: config.port, host: config.host });
      if (opts.json) process.stdout.write(JSON.stringify(r) + "\n");
      else
        console.log(`restored ${r.restored} from ${resolve(file)}${r.previous ? `; the previous database is at ${r.previous}` : ""}. Start the server again.`);
    } catch (e) {
      console.error(`restore failed: ${(e as Error).message}`);
      process.exit(e instanceof BackupUnsupported ? 2 : 1);
    }
  });

const billingCmd = program.command("billing").description("operator commands of the billing ledger");
billingCmd
  .command("adjust <project_id> <amount>")
  .description("credit (positive) or debit (negative) a project's balance, with a reason (recorded in the audit log)")
  .requiredOption("--reason <text>", "why (kept on the transaction)")
  .option("--key <key>", "idempotency key: running the same adjustment again changes nothing")
  .option("--json", "print one line of JSON")
  .action(async (projectId: string, amount: string, opts: { reason: string; key?: string; json?: boolean }) => {
    const value = Number(amount);
    if (!Number.isFinite(value) || value === 0) {
      console.error(`amount must be a non-zero number (e.g. 25 or -3.5), got "${amount}"`);
      process.exit(2);
    }
    const config = loadConfig();
    const ctx = await createContext(config, { listen: false });
    try {
      await ctx.projects.get(projectId);
      const r = await ctx.billing.adjust(projectId, value, opts.reason, "operator:cli", opts.key);
      await ctx.audit.record({
        project_id: projectId,
        actor: "operator:cli",
        operation: "adjust_balance",
        method: "CLI",
        route: "npm run billing -- adjust",
        target_id: r.transaction?.id ?? null,
        request_id: `cli-${process.pid}`,
        ip: null,
        status: 200,
      });
      if (opts.json) process.stdout.write(JSON.stringify(r) + "\n");
      else
        console.log(
          r.created
            ? `Adjusted ${projectId} by ${value} ${ctx.billing.currency.toUpperCase()} (${opts.reason}); balance now ${r.balance}.`
            : `Nothing changed: an adjustment with key "${opts.key}" exists; balance ${r.balance}.`,
        );
    } catch (err) {
      console.error(`billing adjust failed: ${(err as Error).message}`);
      process.exitCode = 1;
    } finally {
      await ctx.close();
    }
  });

program
  .command("rotate-master-key")
  .description("re-seal every sealed value under a new master key while servers keep serving (rerun to resume)")
  .option("--new-key-file <file>", "the new master key: 32 raw bytes, 64 hex characters or base64 of 32 bytes")
  .option("--generate", "write a new random key to --new-key-file (mode 0600) and exit")
  .option("--retire", "after a finished rotation, once every server runs with the new key: forget the old keys")
  .option("--batch-size <n>", "values re-sealed per transaction", "500")
  .option("--switch-wait <seconds>", "how long running servers get to switch to the new key before re-sealing starts", "3")
  .option("--duty <fraction>", "share of the time spent re-sealing; between batches it sleeps the rest (1: flat out)", "0.5")
  .option("--pause <ms>", "a fixed pause between batches, on top of --duty", "0")
  .option("--max-passes <n>", "give up when values under an old key still appear after this many passes", "10")
  .option("--allow-unreadable", "finish even when some values open with no key (they are left as they are)")
  .option("--json", "print one JSON summary and nothing else")
  .action(
    async (opts: {
      newKeyFile?: string;
      generate?: boolean;
      retire?: boolean;
      batchSize: string;
      switchWait: string;
      duty: string;
      pause: string;
      maxPasses: string;
      allowUnreadable?: boolean;
      json?: boolean;
    }) => {
      const json = !!opts.json;
      const reporter = consoleReporter({ json, tty: !!process.stdout.isTTY, write: (s) => process.stdout.write(s) });
      const number = (name: string, v: string, min: number, max = Infinity) => {
        const n = Number(v);
        if (!Number.isFinite(n) || n < min || n > max) {
          throw new Error(`${name}: expected a number ${max === Infinity ? `of at least ${min}` : `from ${min} to ${max}`}, got ${JSON.stringify(v)}`);
        }
        return n;
      };
      try {
        const rotation = {
          newKeyFile: opts.newKeyFile,
          generate: opts.generate,
          retire: opts.retire,
          batchSize: Math.floor(number("--batch-size", opts.batchSize, 1)),
          switchWaitMs: number("--switch-wait", opts.switchWait, 0) * 1000,
          duty: number("--duty", opts.duty, 0.01, 1),
          pauseMs: number("--pause", opts.pause, 0),
          maxPasses: Math.floor(number("--max-passes", opts.maxPasses, 1)),
          allowUnreadable: opts.allowUnreadable,
        };
        // --generate needs no configuration (nor a database).
        const config = opts.generate ? undefined : loadConfig();
        const r = await rotateMasterKey(rotation, {
          databaseUrl: config?.databaseUrl ?? "",
          dbPool: 2,
          masterKey: config?.masterKey ?? Buffer.alloc(32),
          keySource: process.env.MESHAGENT_MASTER_KEY ? "env" : "file",
          dataDir: config?.dataDir ?? "",
          columns: domains.flatMap((d) => d.sealed ?? []),
          reporter,
        });
        reporter.end();
        if (json) process.stdout.write(JSON.stringify(r) + "\n");
        else if (r.action === "generated") console.log(`wrote a new master key (id ${r.new_key_id}) to ${opts.newKeyFile}\n${r.next}`);
        else {
          const cols = Object.entries(r.columns)
            .map(([c, n]) => `${c} ${n}`)
            .join(", ");
          console.log(
            r.action === "retired"
              ? `retired the old master keys; current key ${r.new_key_id} (${r.resealed} stray values re-sealed)`
              : `master key ${r.old_key_id} -> ${r.new_key_id}: ${r.resealed} values re-sealed in ${r.passes} passes, ${r.seconds} s` +
                  (r.resumed ? " (resumed)" : "") +
                  (cols ? `\n  ${cols}` : ""),
          );
          console.log(r.next);
        }
      } catch (err) {
        reporter.end();
        if (!json) throw err;
        process.stdout.write(JSON.stringify({ ok: false, error: (err as Error)?.message ?? String(err) }) + "\n");
        process.exit(1);
      }
    },
  );

program.parseAsync().catch((err) => {
  console.error(`error: ${err?.message ?? err}`);
  process.exit(1);
});
