import { randomUUID } from "node:crypto";
import type { AppContext } from "../../src/context.js";

/**
 * Create a room straight in the store, for tests of areas that need one before the rooms API lands.
 * Replace with the real create_room (REST or ctx.rooms) once it exists: same columns, same result.
 */
export async function createRoom(
  ctx: AppContext,
  projectId: string,
  name: string,
  opts: { metadata?: Record<string, unknown>; annotations?: Record<string, string> } = {},
): Promise<{ id: string; name: string; project_id: string }> {
  const now = ctx.clock.now();
  const id = randomUUID();
  await ctx.store.db
    .insertInto("rooms")
    .values({
      id,
      project_id: projectId,
      name,
      metadata: JSON.stringify(opts.metadata ?? {}),
      annotations: JSON.stringify(opts.annotations ?? {}),
      created_at: now,
      updated_at: now,
    })
    .execute();
  return { id, name, project_id: projectId };
}

/** Delete a room straight in the store (what delete_room will do); its mailboxes and queues cascade. */
export async function deleteRoom(ctx: AppContext, roomId: string): Promise<void> {
  await ctx.store.db.deleteFrom("rooms").where("id", "=", roomId).execute();
}
