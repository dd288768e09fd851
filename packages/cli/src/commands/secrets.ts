import type { Command } from "commander";
import type { Secret } from "@meshagent-oss/sdk";
import { act, collect, pairs, type Context } from "../context.js";
import { CliError, log, out, printList } from "../output.js";

interface SecretOptions {
  name?: string;
  data?: string[];
  server?: string;
  username?: string;
  password?: string;
  email?: string;
}

/** The typed secret from the flags, over the stored one's fields when updating. */
function secretOf(type: "keys" | "docker", o: SecretOptions, base?: Secret): Secret {
  const name = o.name ?? base?.name;
  if (!name) throw new CliError("--name is required", "usage", undefined, 2);
  if (type === "keys") {
    const data = o.data ? pairs(o.data, "--data") : base?.type === "keys" ? base.data : {};
    if (!Object.keys(data).length) throw new CliError("--data k=v is required", "usage", undefined, 2);
    return { type, name, data };
  }
  const b = base?.type === "docker" ? base : undefined;
  const server = o.server ?? b?.server;
  const username = o.username ?? b?.username;
  const password = o.password ?? b?.password;
  if (!server || !username || !password) throw new CliError("--server, --username and --password are required", "usage", undefined, 2);
  return { type, name, server, username, password, email: o.email ?? b?.email };
}

async function update(ctx: Context, id: string, o: SecretOptions, type?: "keys" | "docker") {
  const client = await ctx.client();
  const base = (await client.listSecrets(ctx.projectId())).find((s) => s.id === id);
  if (!base) throw new CliError(`no secret ${id}`, "not_found", "meshagent secret list shows the secrets");
  if (type && base.type !== type) throw new CliError(`secret ${id} is a ${base.type} secret`, "usage", `use meshagent secret ${base.type} update`, 2);
  await client.updateSecret(ctx.projectId(), { ...secretOf(base.type, o, base), id });
  log(`updated secret ${id}`);
}

export function registerSecrets(program: Command) {
  const secret = program.command("secret").description("project secrets (values are never printed)");
  const keys = secret.command("keys").description("key/value secrets");
  const docker = secret.command("docker").description("image-pull secrets");
  const keysOptions = (c: Command) => c.option("--name <name>", "the secret's name").option("--data <k=v>", "a key and its value (repeatable)", collect);
  const registryOptions = (c: Command) =>
    c
      .option("--server <server>", "the registry")
      .option("--username <user>", "the registry user")
      .option("--password <password>", "the registry password")
      .option("--email <email>", "the registry email");
  const dockerOptions = (c: Command) => registryOptions(c.option("--name <name>", "the secret's name"));
  for (const [group, type, options] of [
    [keys, "keys", keysOptions],
    [docker, "docker", dockerOptions],
  ] as const) {
    options(group.command("create").description(`create a ${type} secret`)).action(
      act(async (ctx, o: SecretOptions) => {
        const id = await (await ctx.client()).createSecret(ctx.projectId(), secretOf(type, o));
        log(`created secret ${o.name}`);
        out(ctx.format === "json" ? JSON.stringify({ id }) : id);
      }),
    );
    options(group.command("update <id>").description(`update a ${type} secret (flags not given keep their values)`)).action(
      act((ctx, id: string, o: SecretOptions) => update(ctx, id, o, type)),
    );
  }
  registryOptions(keysOptions(secret.command("update <id>").description("update a secret of either type"))).action(
    act((ctx, id: string, o: SecretOptions) => update(ctx, id, o)),
  );
  secret
    .command("list")
    .description("the secrets' ids, names and types")
    .action(act(async (ctx) => printList(ctx.format, await (await ctx.client()).listProjectSecrets(ctx.projectId()), ["id", "name", "type"], "secrets")));
  secret
    .command("delete <id>")
    .description("delete a secret")
    .action(
      act(async (ctx, id: string) => {
        await (await ctx.client()).deleteSecret(ctx.projectId(), id);
        log(`deleted secret ${id}`);
      }),
    );
}
