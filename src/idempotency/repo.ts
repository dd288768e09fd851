import type { Queryable } from "../store/db.js";
import type { IdempotencyKeysTable } from "../store/schema.js";

export type IdempotencyRow = IdempotencyKeysTable;

/** The claim: a new row for (scope, key_hash), or nothing when one exists (the primary key decides, in any process). */
export async function insertClaim(
  db: Queryable,
  row: Pick<IdempotencyRow, "scope" | "key_hash" | "fingerprint" | "owner" | "created_at" | "heartbeat_at">,
): Promise<boolean> {
  const r = await db
    .insertInto("idempotency_keys")
    .values({ ...row, status: null, content_type: null, body: null })
    .onConflict((oc) => oc.columns(["scope", "key_hash"]).doNothing())
    .executeTakeFirst();
  return Number(r.numInsertedOrUpdatedRows ?? 0) === 1;
}

export function find(db: Queryable, scope: string, keyHash: string): Promise<IdempotencyRow | undefined> {
  return db.selectFrom("idempotency_keys").selectAll().where("scope", "=", scope).where("key_hash", "=", keyHash).executeTakeFirst();
}

/** Delete the row if it is still the one that was read (same created_at and owner): an expired key, for a new claim. */
export async function deleteIfUnchanged(db: Queryable, row: Pick<IdempotencyRow, "scope" | "key_hash" | "created_at" | "owner">) {
  await db
    .deleteFrom("idempotency_keys")
    .where("scope", "=", row.scope)
    .where("key_hash", "=", row.key_hash)
    .where("created_at", "=", row.created_at)
    .where("owner", "=", row.owner)
    .execute();
}

/** Take over a running claim whose owner stopped renewing it (its process died); true when this caller won it. */
export async function takeOver(db: Queryable, scope: string, keyHash: string, staleOwner: string, owner: string, now: number, staleBefore: number) {
  const r = await db
    .updateTable("idempotency_keys")
    .set({ owner, heartbeat_at: now })
    .where("scope", "=", scope)
    .where("key_hash", "=", keyHash)
    .where("owner", "=", staleOwner)
    .where("status", "is", null)
    .where("heartbeat_at", "<=", staleBefore)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

/** Renew a running claim (only its owner can). */
export async function heartbeat(db: Queryable, scope: string, keyHash: string, owner: string, now: number) {
  await db
    .updateTable("idempotency_keys")
    .set({ heartbeat_at: now })
    .where("scope", "=", scope)
    .where("key_hash", "=", keyHash)
    .where("owner", "=", owner)
    .where("status", "is", null)
    .execute();
}

/** Store the response of a running claim (only its owner can); false when the claim is no longer this owner's. */
export async function complete(
  db: Queryable,
  scope: string,
  keyHash: string,
  owner: string,
  response: { status: number; content_type: string | null; body: string },
) {
  const r = await db
    .updateTable("idempotency_keys")
    .set(response)
    .where("scope", "=", scope)
    .where("key_hash", "=", keyHash)
    .where("owner", "=", owner)
    .where("status", "is", null)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

/** Release a running claim without a stored response (a 5xx, an unstorable response): the next request runs again. */
export async function release(db: Queryable, scope: string, keyHash: string, owner: string) {
  await db
    .deleteFrom("idempotency_keys")
    .where("scope", "=", scope)
    .where("key_hash", "=", keyHash)
    .where("owner", "=", owner)
    .where("status", "is", null)
    .execute();
}

/** Delete every key created before `before`; returns how many. */
export async function sweep(db: Queryable, before: number): Promise<number> {
  const r = await db.deleteFrom("idempotency_keys").where("created_at", "<=", before).executeTakeFirst();
  return Number(r.numDeletedRows);
}
