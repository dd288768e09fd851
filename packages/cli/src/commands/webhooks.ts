import type { Command } from "commander";
import { act, collect, jsonArg } from "../context.js";
import { CliError, log, printList, printOne } from "../output.js";

interface HookOptions {
  name?: string;
  url?: string;
  event?: string[];
  description?: string;
  action?: string;
  payload?: string;
  enabled?: boolean;
}

const COLUMNS = ["id", "name", "url", "events", "state"];
const hookOptions = (c: Command) =>
  c
    .option("--name <name>", "the webhook's name")
    .option("--url <url>", "where deliveries are POSTed")
    .option("-e, --event <event>", "an event to deliver (repeatable)", collect)
    .option("--description <text>", "what it is for")
    .option("--action <action>", "the action name sent with deliveries")
    .option("--payload <json>", "a JSON object merged into every delivery");

export function registerWebhooks(program: Command) {
  const webhook = program.command("webhook").description("webhooks: deliveries of project events");
  hookOptions(webhook.command("create").description("create a webhook")).action(
    act(async (ctx, o: HookOptions) => {
      if (!o.name || !o.url || !o.event?.length) throw new CliError("--name, --url and at least one -e EVENT are required", "usage", undefined, 2);
      const body = { name: o.name, url: o.url, events: o.event, description: o.description, action: o.action, payload: jsonArg(o.payload, "--payload") };
      printOne(ctx.format, await (await ctx.client()).createWebhook(ctx.projectId(), body));
    }),
  );
  webhook
    .command("list")
    .description("the webhooks")
    .action(act(async (ctx) => printList(ctx.format, await (await ctx.client()).listWebhooks(ctx.projectId()), COLUMNS, "webhooks")));
  webhook
    .command("show <id>")
    .description("one webhook")
    .action(act(async (ctx, id: string) => printOne(ctx.format, await (await ctx.client()).getWebhook(ctx.projectId(), id))));
  hookOptions(webhook.command("update <id>").description("change a webhook (flags not given keep their values)"))
    .option("--enable", "enable it (again)")
    .option("--disable", "stop deliveries")
    .action(
      act(async (ctx, id: string, o: HookOptions & { enable?: boolean; disable?: boolean }) => {
        const client = await ctx.client();
        const cur = await client.getWebhook(ctx.projectId(), id);
        const body = {
          name: o.name ?? cur.name,
          url: o.url ?? cur.url,
          events: o.event ?? cur.events,
          description: o.description ?? cur.description,
          action: o.action ?? cur.action,
          payload: o.payload !== undefined ? jsonArg(o.payload, "--payload") : cur.payload,
          enabled: o.enable ? true : o.disable ? false : cur.enabled,
        };
        printOne(ctx.format, await client.updateWebhook(ctx.projectId(), id, body));
      }),
    );
  webhook
    .command("delete <id>")
    .description("delete a webhook")
    .action(
      act(async (ctx, id: string) => {
        await (await ctx.client()).deleteWebhook(ctx.projectId(), id);
        log(`deleted webhook ${id}`);
      }),
    );
  webhook
    .command("deliveries <id>")
    .description("a webhook's deliveries, newest first")
    .option("--limit <n>", "at most this many", "50")
    .action(
      act(async (ctx, id: string, o: { limit: string }) => {
        const list = await (await ctx.client()).listWebhookDeliveries(ctx.projectId(), id, { limit: Number(o.limit) });
        printList(ctx.format, list, ["id", "event", "status", "attempts", "created_at"], "deliveries");
      }),
    );
  webhook
    .command("replay <id> <delivery>")
    .description("send a delivery again")
    .action(
      act(async (ctx, id: string, delivery: string) => printOne(ctx.format, await (await ctx.client()).replayWebhookDelivery(ctx.projectId(), id, delivery))),
    );
  webhook
    .command("test <id>")
    .description("send a webhook.test ping")
    .action(act(async (ctx, id: string) => printOne(ctx.format, await (await ctx.client()).testWebhook(ctx.projectId(), id))));
}
