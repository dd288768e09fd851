import type { Command } from "commander";
import type { Meshagent, ServiceSpec } from "@meshagent-oss/sdk";
import { act, collect, pairs, type Context } from "../context.js";
import { unifiedDiff } from "../diff.js";
import { CliError, log, out, printList, printOne } from "../output.js";
import { isTemplate, normalize, readText, readYaml, toYaml } from "../spec.js";

const ID_ANNOTATION = "meshagent.service.id";
type Spec = Record<string, unknown> & { metadata?: { name?: string; annotations?: Record<string, string> } };

interface WriteOptions {
  file: string;
  room?: string;
  value?: string[];
  replace?: boolean;
  dryRun?: boolean;
}

/** The local checks of a spec file: version v1, kind Service or ServiceTemplate, metadata.name. */
function checkSpec(doc: Record<string, unknown>, file: string) {
  const problems: string[] = [];
  if (doc.version !== "v1") problems.push(`version must be "v1" (got ${JSON.stringify(doc.version ?? null)})`);
  if (doc.kind !== "Service" && doc.kind !== "ServiceTemplate")
    problems.push(`kind must be Service or ServiceTemplate (got ${JSON.stringify(doc.kind ?? null)})`);
  const meta = doc.metadata as Spec["metadata"] | undefined;
  if (!meta || typeof meta !== "object" || typeof meta.name !== "string" || !meta.name) problems.push("metadata.name is required");
  if (problems.length) throw new CliError(`${file}: ${problems.join("; ")}`, "invalid_spec");
}

/** The official upsert key: the meshagent.service.id annotation, else the name. */
const keyOf = (s: Spec) => s.metadata?.annotations?.[ID_ANNOTATION] ?? s.metadata?.name ?? "";

const scope = (client: Meshagent, projectId: string, room?: string) => ({
  list: () => (room ? client.listRoomServices(projectId, room) : client.listServices(projectId)),
  get: (id: string) => (room ? client.getRoomService(projectId, room, id) : client.getService(projectId, id)),
  create: (s: ServiceSpec) => (room ? client.createRoomService(projectId, room, s) : client.createService(projectId, s)),
  createT: (t: string, v: Record<string, string>) =>
    room ? client.createRoomServiceFromTemplate(projectId, room, t, v) : client.createServiceFromTemplate(projectId, t, v),
  update: (id: string, s: ServiceSpec) => (room ? client.updateRoomService(projectId, room, id, s) : client.updateService(projectId, id, s)),
  updateT: (id: string, t: string, v: Record<string, string>) =>
    room ? client.updateRoomServiceFromTemplate(projectId, room, id, t, v) : client.updateServiceFromTemplate(projectId, id, t, v),
  delete: (id: string) => (room ? client.deleteRoomService(projectId, room, id) : client.deleteService(projectId, id)),
});

/** create and update: upsert by key; create refuses an existing one without --replace, update a missing one. */
async function write(ctx: Context, o: WriteOptions, mode: "create" | "update") {
  const text = readText(o.file);
  const template = isTemplate(text);
  const doc = template ? {} : readYaml(o.file, text).doc;
  if (!template) checkSpec(doc, o.file);
  const values = pairs(o.value);
  const client = await ctx.client();
  const svc = scope(client, ctx.projectId(), o.room);
  const where = o.room ? `room ${o.room}` : "the project";
  // --curl prints the write itself: no lookups (they would be the first request, and stop it), so an update's id is
  // a placeholder to fill in.
  if (ctx.opts.curl) {
    const id = "SERVICE_ID";
    if (mode === "update") log(`hint: replace ${id} with the service's id (meshagent service list)`);
    if (mode === "create") await (template ? svc.createT(text, values) : svc.create(doc as ServiceSpec));
    else await (template ? svc.updateT(id, text, values) : svc.update(id, doc as ServiceSpec));
    return;
  }
  const wanted = (template ? await client.renderTemplate(text, values) : doc) as Spec;
  if (template) checkSpec(wanted, `${o.file} (rendered)`);
  const key = keyOf(wanted);
  const all = (await svc.list()) as (Spec & { id: string })[];
  const existing = all.find((s) => s.metadata?.annotations?.[ID_ANNOTATION] === key) ?? all.find((s) => s.id === key || s.metadata?.name === key);
  if (o.dryRun) {
    // A template is stored as the Service it renders to (without its variables).
    const { variables: _variables, ...asService } = wanted;
    const next = template ? { ...asService, kind: "Service" } : wanted;
    const diff = unifiedDiff(toYaml(existing && normalize(existing)), toYaml(normalize(next)), [existing ? `stored ${existing.id}` : "/dev/null", o.file]);
    if (!diff) log(`no changes: service ${key} in ${where} matches ${o.file}`);
    else {
      log(existing ? `service ${key} (${existing.id}) would change:` : `service ${key} would be created in ${where}:`);
      out(diff);
    }
    return;
  }
  if (existing && mode === "create" && !o.replace)
    throw new CliError(
      `service ${key} exists in ${where} (${existing.id})`,
      "already_exists",
      `pass --replace to update it, or use meshagent service update -f ${o.file}`,
    );
  if (!existing && mode === "update") throw new CliError(`no service ${key} in ${where}`, "not_found", `create it with meshagent service create -f ${o.file}`);
  const saved = existing
    ? await (template ? svc.updateT(existing.id, text, values) : svc.update(existing.id, doc as ServiceSpec))
    : await (template ? svc.createT(text, values) : svc.create(doc as ServiceSpec));
  log(`${existing ? "updated" : "created"} service ${key} (${(saved as { id?: string }).id ?? existing?.id}) in ${where}`);
  printOne(ctx.format, saved);
}

const writeOptions = (c: Command) =>
  c
    .requiredOption("-f, --file <file>", "the YAML spec (Service or ServiceTemplate; - for stdin)")
    .option("--room <room>", "a room service (default: a project service)")
    .option("--value <k=v>", "a template value (repeatable)", collect)
    .option("--dry-run", "show the difference with what is stored; change nothing");

export function registerServices(program: Command) {
  const service = program.command("service").description("project and room services, from YAML specs");
  writeOptions(service.command("create").description("create a service (upsert by the meshagent.service.id annotation, else the name)"))
    .option("--replace", "update it when it exists")
    .action(act((ctx, o: WriteOptions) => write(ctx, o, "create")));
  writeOptions(service.command("update").description("update an existing service from its spec")).action(
    act((ctx, o: WriteOptions) => write(ctx, o, "update")),
  );
  service
    .command("list")
    .description("the services")
    .option("--room <room>", "a room's services")
    .action(
      act(async (ctx, o: { room?: string }) => {
        const list = (await scope(await ctx.client(), ctx.projectId(), o.room).list()) as Spec[];
        const rows = list.map((s) => ({
          ...s,
          name: s.metadata?.name,
          image: (s.container as { image?: string } | undefined)?.image ?? (s.external ? "external" : ""),
        }));
        printList(ctx.format, ctx.format === "json" ? list : rows, ["id", "name", "image"], "services");
      }),
    );
  service
    .command("show <id>")
    .description("one service's stored spec")
    .option("--room <room>", "a room service")
    .action(
      act(async (ctx, id: string, o: { room?: string }) => {
        const s = await scope(await ctx.client(), ctx.projectId(), o.room).get(id);
        if (ctx.format === "json") printOne(ctx.format, s);
        else out(toYaml(s));
      }),
    );
  service
    .command("delete <id>")
    .description("delete a service")
    .option("--room <room>", "a room service")
    .action(
      act(async (ctx, id: string, o: { room?: string }) => {
        await scope(await ctx.client(), ctx.projectId(), o.room).delete(id);
        log(`deleted service ${id}`);
      }),
    );
  service
    .command("validate")
    .description("check a spec without storing anything (a template is rendered by the server)")
    .requiredOption("-f, --file <file>", "the YAML spec")
    .option("--value <k=v>", "a template value (repeatable)", collect)
    .action(
      act(async (ctx, o: { file: string; value?: string[] }) => {
        const text = readText(o.file);
        const doc = isTemplate(text)
          ? ((await (await ctx.client()).renderTemplate(text, pairs(o.value))) as Record<string, unknown>)
          : readYaml(o.file, text).doc;
        checkSpec(doc, o.file);
        log(`${o.file}: valid ${String(doc.kind)} ${keyOf(doc as Spec)}`);
        if (ctx.format === "json") printOne(ctx.format, { valid: true, kind: doc.kind, name: (doc as Spec).metadata?.name });
      }),
    );
  service
    .command("render-template")
    .description("render a ServiceTemplate with values (nothing is stored)")
    .requiredOption("-f, --file <file>", "the template")
    .option("--value <k=v>", "a template value (repeatable)", collect)
    .action(
      act(async (ctx, o: { file: string; value?: string[] }) => {
        const text = readText(o.file);
        const r = await (await ctx.client()).renderTemplate(text, pairs(o.value));
        if (ctx.format === "json") printOne(ctx.format, r);
        else out(toYaml(r));
      }),
    );
}
