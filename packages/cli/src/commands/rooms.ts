import type { Command } from "commander";
import type { ApiScope, Meshagent } from "@meshagent-oss/sdk";
import { act, jsonArg } from "../context.js";
import { CliError, log, printList, printOne } from "../output.js";

const ROOM_COLUMNS = ["id", "name", "created_at"];
const GRANT_COLUMNS = ["room_name", "room_id", "user_id", "permissions"];
const flatGrant = (g: { room: { id: string; name: string }; user_id: string; permissions: unknown }) => ({
  room_name: g.room.name,
  room_id: g.room.id,
  user_id: g.user_id,
  permissions: g.permissions,
});

/** A room's id from its name (or its id). */
async function roomId(client: Meshagent, projectId: string, room: string) {
  return (await client.getRoom(projectId, room)).id;
}

export function registerRooms(program: Command) {
  const rooms = program.command("rooms").description("the project's rooms");
  rooms
    .command("create")
    .description("create a room")
    .requiredOption("--name <name>", "the room's name")
    .option("--if-not-exists", "succeed when the room exists")
    .option("--metadata <json>", "a JSON object")
    .option("--annotations <json>", "a JSON object of strings")
    .action(
      act(async (ctx, o: { name: string; ifNotExists?: boolean; metadata?: string; annotations?: string }) => {
        const client = await ctx.client();
        const room = await client.createRoom(ctx.projectId(), o.name, {
          if_not_exists: o.ifNotExists,
          metadata: jsonArg(o.metadata, "--metadata") as Record<string, unknown> | undefined,
          annotations: jsonArg(o.annotations, "--annotations") as Record<string, string> | undefined,
        });
        printOne(ctx.format, room);
      }),
    );
  rooms
    .command("list")
    .description("list rooms")
    .option("--limit <n>", "at most this many (≤500)", "50")
    .option("--offset <n>", "skip this many", "0")
    .option("--order-by <key>", "room_name or created_at")
    .option("--filter <text>", "only names containing this")
    .action(
      act(async (ctx, o: { limit: string; offset: string; orderBy?: string; filter?: string }) => {
        const client = await ctx.client();
        const list = await client.listRooms(ctx.projectId(), { limit: Number(o.limit), offset: Number(o.offset), order_by: o.orderBy, filter: o.filter });
        printList(ctx.format, list, ROOM_COLUMNS, "rooms");
      }),
    );
  rooms
    .command("get <name>")
    .description("one room, by name")
    .action(act(async (ctx, name: string) => printOne(ctx.format, await (await ctx.client()).getRoom(ctx.projectId(), name))));
  rooms
    .command("update <name>")
    .description("rename a room or change its metadata")
    .option("--new-name <name>", "the new name")
    .option("--metadata <json>", "a JSON object")
    .option("--annotations <json>", "a JSON object of strings")
    .action(
      act(async (ctx, name: string, o: { newName?: string; metadata?: string; annotations?: string }) => {
        const client = await ctx.client();
        const room = await client.getRoom(ctx.projectId(), name);
        const updated = await client.updateRoom(ctx.projectId(), room.id, o.newName ?? room.name, {
          metadata: (jsonArg(o.metadata, "--metadata") as Record<string, unknown> | undefined) ?? room.metadata,
          annotations: (jsonArg(o.annotations, "--annotations") as Record<string, string> | undefined) ?? room.annotations,
        });
        printOne(ctx.format, updated);
      }),
    );
  rooms
    .command("delete [name]")
    .description("delete a room, by name or --id")
    .option("--id <id>", "the room's id")
    .option("--name <name>", "the room's name")
    .action(
      act(async (ctx, name: string | undefined, o: { id?: string; name?: string }) => {
        const client = await ctx.client();
        const which = name ?? o.name;
        if (!o.id && !which) throw new CliError("which room?", "usage", "pass a name or --id", 2);
        const id = o.id ?? (await roomId(client, ctx.projectId(), which!));
        await client.deleteRoom(ctx.projectId(), id);
        log(`deleted room ${which ?? id}`);
      }),
    );

  const grants = program.command("grants").description("room grants: a user's permissions in a room");
  const grantWrite = (c: Command) =>
    c
      .requiredOption("--room <name>", "the room")
      .option("--user <id>", "the user's id")
      .option("--email <email>", "the user's email (create: invites them when unknown)")
      .option("--permissions <json>", "the ApiScope as JSON", "{}");
  grantWrite(grants.command("create").description("grant a user permissions in a room")).action(
    act(async (ctx, o: { room: string; user?: string; email?: string; permissions: string }) => {
      const client = await ctx.client();
      const p = ctx.projectId();
      const id = await roomId(client, p, o.room);
      const perms = jsonArg(o.permissions, "--permissions") as ApiScope;
      if (!o.user && !o.email) throw new CliError("whose grant?", "usage", "pass --user ID or --email ADDRESS", 2);
      const g = o.user ? await client.createRoomGrant(p, id, o.user, perms) : await client.createRoomGrantByEmail(p, id, o.email!, perms);
      printOne(ctx.format, ctx.format === "json" ? g : flatGrant(g));
    }),
  );
  grants
    .command("list")
    .description("the project's grants (or one room's, or one user's)")
    .option("--room <name>", "only this room's")
    .option("--user <id>", "only this user's")
    .action(
      act(async (ctx, o: { room?: string; user?: string }) => {
        const client = await ctx.client();
        const p = ctx.projectId();
        const list = o.room ? client.listRoomGrantsByRoom(p, o.room) : o.user ? client.listRoomGrantsByUser(p, o.user) : client.listRoomGrants(p);
        const all = await list.all();
        printList(ctx.format, ctx.format === "json" ? all : all.map(flatGrant), GRANT_COLUMNS, "grants");
      }),
    );
  grants
    .command("get")
    .description("one grant")
    .requiredOption("--room <name>", "the room")
    .requiredOption("--user <id>", "the user's id")
    .action(
      act(async (ctx, o: { room: string; user: string }) => {
        const client = await ctx.client();
        const g = await client.getRoomGrant(ctx.projectId(), await roomId(client, ctx.projectId(), o.room), o.user);
        printOne(ctx.format, ctx.format === "json" ? g : flatGrant(g));
      }),
    );
  grants
    .command("update")
    .description("replace a grant's permissions")
    .requiredOption("--room <name>", "the room")
    .requiredOption("--user <id>", "the user's id")
    .requiredOption("--permissions <json>", "the ApiScope as JSON")
    .action(
      act(async (ctx, o: { room: string; user: string; permissions: string }) => {
        const client = await ctx.client();
        const id = await roomId(client, ctx.projectId(), o.room);
        const g = await client.updateRoomGrant(ctx.projectId(), id, o.user, jsonArg(o.permissions, "--permissions") as ApiScope);
        printOne(ctx.format, ctx.format === "json" ? g : flatGrant(g));
      }),
    );
  grants
    .command("delete")
    .description("remove a grant")
    .requiredOption("--room <name>", "the room")
    .requiredOption("--user <id>", "the user's id")
    .action(
      act(async (ctx, o: { room: string; user: string }) => {
        const client = await ctx.client();
        await client.deleteRoomGrant(ctx.projectId(), await roomId(client, ctx.projectId(), o.room), o.user);
        log(`deleted the grant of ${o.user} in ${o.room}`);
      }),
    );
}
