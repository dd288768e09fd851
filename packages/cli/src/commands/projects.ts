import type { Command } from "commander";
import { act, parseApiKey, type Context } from "../context.js";
import { CliError, log, out, printList, printOne } from "../output.js";

function profileOrFail(ctx: Context) {
  const p = ctx.profile;
  if (!p) throw new CliError(`no profile for ${ctx.apiUrl.url}`, "not_logged_in", "run meshagent auth login (activation is stored in the profile)");
  return p;
}

export function registerProjects(program: Command) {
  const project = program.command("project").description("projects");
  project
    .command("create <name>")
    .description("create a project")
    .action(act(async (ctx, name: string) => printOne(ctx.format, await (await ctx.client()).createProject(name))));
  project
    .command("list")
    .description("your projects (* marks the active one)")
    .action(
      act(async (ctx) => {
        const projects = await (await ctx.client()).listProjects();
        const active = ctx.profile?.project.active_project;
        const rows = projects.map((p) => ({ ...p, active: p.id === active ? "*" : "" }));
        printList(ctx.format, ctx.format === "json" ? projects : rows, ["active", "id", "name"], "projects");
      }),
    );
  project
    .command("activate <id>")
    .description("make a project the profile's active one (checked against your projects)")
    .action(
      act(async (ctx, id: string) => {
        const p = profileOrFail(ctx);
        const found = (await (await ctx.client()).listProjects()).find((x) => x.id === id || x.name === id);
        if (!found) throw new CliError(`no project "${id}"`, "not_found", "meshagent project list shows your projects");
        p.project.active_project = found.id;
        ctx.save();
        log(`active project: ${found.name} (${found.id})`);
      }),
    );

  const key = program.command("api-key").description("the active project's API keys");
  key
    .command("create <name>")
    .description("issue an API key (its value is shown only now)")
    .option("--description <text>", "what it is for", "")
    .option("--activate", "use it for this project from now on (stored in the profile)")
    .option("--silent", "print nothing")
    .action(
      act(async (ctx, name: string, o: { description: string; activate?: boolean; silent?: boolean }) => {
        const projectId = ctx.projectId();
        const k = await (await ctx.client()).createApiKey(projectId, name, o.description);
        if (o.activate) {
          profileOrFail(ctx).project.active_api_keys[projectId] = k.value;
          ctx.save();
        }
        if (!o.silent) printOne(ctx.format, k);
      }),
    );
  key
    .command("list")
    .description("the project's API keys (without their values)")
    .action(
      act(async (ctx) =>
        printList(ctx.format, await (await ctx.client()).listApiKeys(ctx.projectId()), ["id", "name", "description", "created_at"], "api keys"),
      ),
    );
  key
    .command("delete <id>")
    .description("revoke an API key")
    .action(
      act(async (ctx, id: string) => {
        await (await ctx.client()).deleteApiKey(ctx.projectId(), id);
        log(`deleted api key ${id}`);
      }),
    );
  key
    .command("activate <value>")
    .description("use this API key value for its project (local)")
    .action(
      act((ctx, value: string) => {
        const parsed = parseApiKey(value);
        if (!parsed) throw new CliError("that is not an API key value (ma-…)", "usage", "the value is shown once, by meshagent api-key create", 2);
        const p = profileOrFail(ctx);
        p.project.active_api_keys[parsed.projectId] = value;
        ctx.save();
        out(parsed.keyId);
      }),
    );
}
