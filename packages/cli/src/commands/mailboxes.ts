import type { Command } from "commander";
import { act, jsonArg } from "../context.js";
import { log, printList, printOne } from "../output.js";

const COLUMNS = ["address", "room", "queue", "public"];
interface MailboxOptions {
  room: string;
  queue: string;
  public?: boolean;
  annotations?: string;
}
const mailboxOptions = (c: Command) =>
  c
    .requiredOption("--room <room>", "the room mail is delivered to")
    .requiredOption("--queue <queue>", "the room queue that receives it")
    .option("--public", "accept mail from anyone (default: only known senders)")
    .option("--annotations <json>", "a JSON object of strings");
const extra = (o: MailboxOptions) => ({ public: o.public, annotations: jsonArg(o.annotations, "--annotations") as Record<string, string> | undefined });

export function registerMailboxes(program: Command) {
  const mailbox = program.command("mailbox").description("mailboxes: inbound mail into room queues");
  mailboxOptions(mailbox.command("create <address>").description("create a mailbox")).action(
    act(async (ctx, address: string, o: MailboxOptions) =>
      printOne(ctx.format, await (await ctx.client()).createMailbox(ctx.projectId(), address, o.room, o.queue, extra(o))),
    ),
  );
  mailboxOptions(mailbox.command("update <address>").description("change a mailbox's room, queue or flags")).action(
    act(async (ctx, address: string, o: MailboxOptions) =>
      printOne(ctx.format, await (await ctx.client()).updateMailbox(ctx.projectId(), address, o.room, o.queue, extra(o))),
    ),
  );
  mailbox
    .command("show <address>")
    .description("one mailbox")
    .action(act(async (ctx, address: string) => printOne(ctx.format, await (await ctx.client()).getMailbox(ctx.projectId(), address))));
  mailbox
    .command("list")
    .description("the mailboxes (of one room with --room)")
    .option("--room <room>", "only this room's")
    .action(
      act(async (ctx, o: { room?: string }) => {
        const client = await ctx.client();
        const list = o.room ? client.listRoomMailboxes(ctx.projectId(), o.room) : client.listMailboxes(ctx.projectId());
        printList(ctx.format, await list.all(), COLUMNS, "mailboxes");
      }),
    );
  mailbox
    .command("delete <address>")
    .description("delete a mailbox")
    .action(
      act(async (ctx, address: string) => {
        await (await ctx.client()).deleteMailbox(ctx.projectId(), address);
        log(`deleted mailbox ${address}`);
      }),
    );
}
