import type { Command } from "commander";
import { act } from "../context.js";
import { printList, printOne } from "../output.js";

export function registerBilling(program: Command) {
  const billing = program.command("billing").description("the project's balance, transactions and usage");
  billing
    .command("balance")
    .description("the balance and auto-recharge settings")
    .action(act(async (ctx) => printOne(ctx.format, await (await ctx.client()).getBalance(ctx.projectId()))));
  billing
    .command("transactions")
    .description("recent transactions")
    .option("--limit <n>", "at most this many", "50")
    .action(
      act(async (ctx, o: { limit: string }) =>
        printList(
          ctx.format,
          await (await ctx.client()).getRecentTransactions(ctx.projectId(), { limit: Number(o.limit) }),
          ["id", "created_at", "kind", "amount", "description"],
          "transactions",
        ),
      ),
    );
  billing
    .command("usage")
    .description("usage reports")
    .option("--start <date>", "from (ISO date)")
    .option("--end <date>", "until (ISO date)")
    .option("--interval <interval>", "hour, day, week or month")
    .option("--report <report>", "usage, rooms, users, models, clients or cost")
    .action(
      act(async (ctx, o: { start?: string; end?: string; interval?: string; report?: string }) => {
        const usage = await (await ctx.client()).getUsage(ctx.projectId(), o);
        printList(ctx.format, usage, Object.keys(usage[0] ?? {}).slice(0, 6), "usage");
      }),
    );
}
