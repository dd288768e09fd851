import type { AppContext } from "../../src/context.js";

/** Create a room through the rooms service (what create_room does), for tests of areas that need one. */
export async function createRoom(
  ctx: AppContext,
  projectId: string,
  name: string,
  opts: { metadata?: Record<string, unknown>; annotations?: Record<string, string> } = {},
): Promise<{ id: string; name: string; project_id: string }> {
  const { room } = await ctx.rooms.create(projectId, { name, metadata: opts.metadata, annotations: opts.annotations });
  return { id: room.id, name: room.name, project_id: room.project_id };
}

/** Delete a room through the rooms service (what delete_room does): everything that belongs to it goes with it. */
export async function deleteRoom(ctx: AppContext, roomId: string): Promise<void> {
  const row = await ctx.store.db.selectFrom("rooms").select("project_id").where("id", "=", roomId).executeTakeFirstOrThrow();
  await ctx.rooms.delete(row.project_id, roomId);
}
