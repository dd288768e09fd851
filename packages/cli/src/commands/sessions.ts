import type { Command } from "commander";
import { act } from "../context.js";
import { out, printList, printOne } from "../output.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function registerSessions(program: Command) {
  const session = program.command("session").description("room sessions, their traces and events");
  session
    .command("list")
    .description("recent sessions (newest first)")
    .option("--room <name>", "only this room's")
    .option("--limit <n>", "at most this many", "50")
    .option("--active", "only the live ones")
    .action(
      act(async (ctx, o: { room?: string; limit: string; active?: boolean }) => {
        const client = await ctx.client();
        const p = ctx.projectId();
        const room_id = o.room ? (await client.getRoom(p, o.room)).id : undefined;
        const list = o.active
          ? (await client.listActiveSessions(p)).filter((s) => !room_id || s.room_id === room_id)
          : await client.listRecentSessions(p, { limit: Number(o.limit), room_id });
        printList(ctx.format, list, ["id", "room_name", "is_active", "created_at", "ended_at"], "sessions");
      }),
    );
  session
    .command("show <id>")
    .description("one session")
    .action(act(async (ctx, id: string) => printOne(ctx.format, await (await ctx.client()).getSession(ctx.projectId(), id))));
  session
    .command("traces <id>")
    .description("a session's spans")
    .action(
      act(async (ctx, id: string) =>
        printList(
          ctx.format,
          await (await ctx.client()).listSessionSpans(ctx.projectId(), id),
          ["trace_id", "span_id", "name", "start_time", "end_time"],
          "spans",
        ),
      ),
    );
  session
    .command("logs <id>")
    .description("a session's events; --follow polls every second until the session ends (or Ctrl-C)")
    .option("-f, --follow", "keep printing new events")
    .action(
      act(async (ctx, id: string, o: { follow?: boolean }) => {
        const client = await ctx.client();
        const p = ctx.projectId();
        const seen = new Set<string>();
        // Events as JSON lines when following (a list that grows has no end to close a JSON array at).
        const print = (events: Record<string, unknown>[]) => {
          const fresh = events.filter((e) => !seen.has(JSON.stringify(e)));
          for (const e of fresh) seen.add(JSON.stringify(e));
          if (!o.follow)
            return printList(
              ctx.format,
              events,
              ["created_at", "kind", "type", "name"].filter((c) => events.some((e) => c in e)),
              "events",
            );
          for (const e of fresh) out(ctx.format === "json" ? JSON.stringify(e) : `${String(e.created_at ?? e.timestamp ?? "")}  ${JSON.stringify(e)}`);
        };
        for (;;) {
          print((await client.listSessionEvents(p, id)) as Record<string, unknown>[]);
          if (!o.follow) return;
          const s = (await client.getSession(p, id)) as { is_active?: boolean; ended_at?: string | null };
          if (!s.is_active || s.ended_at) {
            print((await client.listSessionEvents(p, id)) as Record<string, unknown>[]);
            return;
          }
          await sleep(1000);
        }
      }),
    );
}
