import { hostname } from "node:os";
import type { Clock } from "../core/clock.js";
import type { DB } from "../store/db.js";

export interface NodeInfo {
  id: string;
  url: string;
  hostname: string;
  pid: number;
  heartbeat_at: number;
}

/** Whether a process id is alive on this host (signal 0 checks without signalling). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === "EPERM";
  }
}

/**
 * Room ownership across server processes: a room's sockets live in exactly one process, the holder of the room's
 * lease row. A lease is valid until `expires_at`; its holder renews all of its leases on every heartbeat. Another
 * process takes a lease over only when it expired or its holder is known dead (its node row is stale, or it ran on
 * this host and its pid is gone). Works the same on SQLite (one process) and PostgreSQL (many).
 */
export class Ownership {
  readonly hostname = hostname();

  constructor(
    private readonly db: DB,
    private readonly clock: Clock,
    readonly nodeId: string,
    readonly leaseMs: number,
  ) {}

  async register(url: string) {
    const now = this.clock.now();
    await this.db
      .insertInto("room_server_nodes")
      .values({ id: this.nodeId, url, hostname: this.hostname, pid: process.pid, started_at: now, heartbeat_at: now })
      .onConflict((oc) => oc.column("id").doUpdateSet({ url, heartbeat_at: now }))
      .execute();
  }

  async unregister() {
    await this.db.deleteFrom("room_leases").where("node_id", "=", this.nodeId).execute();
    await this.db.deleteFrom("room_server_nodes").where("id", "=", this.nodeId).execute();
  }

  /** Heartbeat: the node row and every lease it holds. Returns the room ids it still holds. */
  async heartbeat(): Promise<Set<string>> {
    const now = this.clock.now();
    await this.db.updateTable("room_server_nodes").set({ heartbeat_at: now }).where("id", "=", this.nodeId).execute();
    await this.db
      .updateTable("room_leases")
      .set({ expires_at: now + this.leaseMs })
      .where("node_id", "=", this.nodeId)
      .execute();
    const rows = await this.db.selectFrom("room_leases").select("room_id").where("node_id", "=", this.nodeId).execute();
    // Forget nodes that have been silent for a long time (their leases expired long ago).
    await this.db
      .deleteFrom("room_server_nodes")
      .where("heartbeat_at", "<", now - 100 * this.leaseMs)
      .execute();
    return new Set(rows.map((r) => r.room_id));
  }

  async node(id: string): Promise<NodeInfo | undefined> {
    const r = await this.db.selectFrom("room_server_nodes").selectAll().where("id", "=", id).executeTakeFirst();
    return r ? { id: r.id, url: r.url, hostname: r.hostname, pid: Number(r.pid), heartbeat_at: Number(r.heartbeat_at) } : undefined;
  }

  /** A node is dead when it is unknown, silent for longer than a lease, or on this host with its pid gone. */
  isDead(n: NodeInfo | undefined, now = this.clock.now()): boolean {
    if (!n) return true;
    if (n.id === this.nodeId) return false;
    if (n.hostname === this.hostname && !pidAlive(n.pid)) return true;
    return now - n.heartbeat_at > this.leaseMs;
  }

  async isNodeDead(id: string): Promise<boolean> {
    return this.isDead(await this.node(id));
  }

  /**
   * Take or renew the lease of a room. Returns null when this process holds it now, or the holder's node when
   * another live process does.
   */
  async acquire(roomId: string): Promise<NodeInfo | null> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const now = this.clock.now();
      const mine = await this.db
        .insertInto("room_leases")
        .values({ room_id: roomId, node_id: this.nodeId, acquired_at: now, expires_at: now + this.leaseMs })
        .onConflict((oc) =>
          oc
            .column("room_id")
            .doUpdateSet({ node_id: this.nodeId, acquired_at: now, expires_at: now + this.leaseMs })
            .where((eb) => eb.or([eb("room_leases.node_id", "=", this.nodeId), eb("room_leases.expires_at", "<", now)])),
        )
        .returning("node_id")
        .executeTakeFirst();
      if (mine?.node_id === this.nodeId) return null;
      const lease = await this.db.selectFrom("room_leases").selectAll().where("room_id", "=", roomId).executeTakeFirst();
      if (!lease) continue; // released in between: try again
      if (lease.node_id === this.nodeId) return null;
      const holder = await this.node(lease.node_id);
      if (!this.isDead(holder, now)) return holder!;
      // The holder died: take its lease over (only if it still has it).
      const r = await this.db
        .updateTable("room_leases")
        .set({ node_id: this.nodeId, acquired_at: now, expires_at: now + this.leaseMs })
        .where("room_id", "=", roomId)
        .where("node_id", "=", lease.node_id)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) > 0) return null;
    }
    const lease = await this.db.selectFrom("room_leases").select("node_id").where("room_id", "=", roomId).executeTakeFirst();
    return (lease && (await this.node(lease.node_id))) ?? { id: "unknown", url: "", hostname: "", pid: 0, heartbeat_at: 0 };
  }

  async release(roomId: string) {
    await this.db.deleteFrom("room_leases").where("room_id", "=", roomId).where("node_id", "=", this.nodeId).execute();
  }
}
