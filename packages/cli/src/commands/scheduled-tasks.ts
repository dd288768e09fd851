import type { Command } from "commander";
import type { ScheduledTaskSpec } from "@meshagent-oss/sdk";
import { act } from "../context.js";
import { CliError, log, printList, printOne } from "../output.js";
import { readYaml } from "../spec.js";

const COLUMNS = ["id", "room_name", "schedule", "active", "next_run_at", "last_status"];

function specOf(file: string): ScheduledTaskSpec {
  const { doc } = readYaml(file);
  if (doc.kind !== "ScheduledTask") throw new CliError(`${file}: kind must be ScheduledTask`, "invalid_spec");
  return doc as ScheduledTaskSpec;
}

export function registerScheduledTasks(program: Command) {
  const task = program.command("scheduled-task").description("scheduled tasks: queue messages or containers on a schedule");
  task
    .command("add")
    .description("schedule a task for a room from a ScheduledTask spec")
    .requiredOption("--room <room>", "the room")
    .requiredOption("-f, --file <file>", "the YAML spec")
    .action(
      act(async (ctx, o: { room: string; file: string }) => {
        const r = await (await ctx.client()).createScheduledTask(ctx.projectId(), o.room, specOf(o.file));
        printOne(ctx.format, r);
      }),
    );
  task
    .command("list")
    .description("the scheduled tasks")
    .option("--room <room>", "only this room's")
    .action(
      act(async (ctx, o: { room?: string }) => {
        const all = await (await ctx.client()).listScheduledTasks(ctx.projectId(), o.room ? { room_name: o.room } : {}).all();
        printList(ctx.format, all, COLUMNS, "scheduled tasks");
      }),
    );
  task
    .command("show <id>")
    .description("one scheduled task")
    .action(act(async (ctx, id: string) => printOne(ctx.format, await (await ctx.client()).getScheduledTask(ctx.projectId(), id))));
  task
    .command("update <id>")
    .description("replace a task's spec")
    .requiredOption("-f, --file <file>", "the YAML spec")
    .action(
      act(async (ctx, id: string, o: { file: string }) =>
        printOne(ctx.format, await (await ctx.client()).updateScheduledTask(ctx.projectId(), id, specOf(o.file))),
      ),
    );
  task
    .command("delete <id>")
    .description("delete a scheduled task")
    .action(
      act(async (ctx, id: string) => {
        await (await ctx.client()).deleteScheduledTask(ctx.projectId(), id);
        log(`deleted scheduled task ${id}`);
      }),
    );
  task
    .command("runs <id>")
    .description("a task's runs")
    .action(
      act(async (ctx, id: string) =>
        printList(
          ctx.format,
          await (await ctx.client()).listScheduledTaskRuns(ctx.projectId(), id).all(),
          ["id", "status", "scheduled_time", "started_at", "completed_at"],
          "runs",
        ),
      ),
    );
}
