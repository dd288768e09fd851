import type { Queryable } from "../store/db.js";
import type { ServiceRunsTable } from "../store/schema.js";

export type ServiceRunRow = ServiceRunsTable;

/** Service-run and task-container SQL. Other areas reach them through ServiceHost (ctx.hosting). */
export const hostingRepo = {
  upsertRun: (q: Queryable, row: ServiceRunRow) =>
    q
      .insertInto("service_runs")
      .values(row)
      .onConflict((oc) =>
        oc.columns(["room_id", "service_id"]).doUpdateSet({
          project_id: row.project_id,
          session_id: row.session_id,
          node_id: row.node_id,
          state: row.state,
          revision: row.revision,
          container_id: row.container_id,
          restart_count: row.restart_count,
          last_error: row.last_error,
          last_exit_code: row.last_exit_code,
          last_exit_at: row.last_exit_at,
          started_at: row.started_at,
          restart_scheduled_at: row.restart_scheduled_at,
          updated_at: row.updated_at,
        }),
      )
      .execute(),

  /** The rows of one service (every room it ran in), newest first. */
  runsOfService: (q: Queryable, projectId: string, serviceId: string) =>
    q
      .selectFrom("service_runs")
      .innerJoin("rooms", "rooms.id", "service_runs.room_id")
      .selectAll("service_runs")
      .select("rooms.name as room_name")
      .where("service_runs.project_id", "=", projectId)
      .where("service_runs.service_id", "=", serviceId)
      .orderBy("service_runs.updated_at", "desc")
      .limit(1000)
      .execute(),

  runInRoom: (q: Queryable, roomId: string, serviceId: string) =>
    q.selectFrom("service_runs").selectAll().where("room_id", "=", roomId).where("service_id", "=", serviceId).executeTakeFirst(),

  /** A session's state for reconciliation: active (keep its containers), ended (remove them), or unknown to this database. */
  sessionState: async (q: Queryable, sessionId: string): Promise<"active" | "ended" | "unknown"> => {
    const r = await q.selectFrom("room_sessions").select("is_active").where("id", "=", sessionId).executeTakeFirst();
    return !r ? "unknown" : Number(r.is_active) === 1 ? "active" : "ended";
  },

  /** Whether a project is this database's (another installation may share the Docker engine). */
  projectExists: async (q: Queryable, projectId: string) => !!(await q.selectFrom("projects").select("id").where("id", "=", projectId).executeTakeFirst()),

  /** Rows left `running`-like by sessions that ended (a killed process): they become `stopped`. */
  stopStale: (q: Queryable, now: number) =>
    q
      .updateTable("service_runs")
      .set({ state: "stopped", container_id: null, restart_scheduled_at: null, updated_at: now })
      .where("state", "not in", ["stopped", "failed", "no_runtime"])
      .where((eb) =>
        eb.not(eb.exists(eb.selectFrom("room_sessions").select("id").whereRef("room_sessions.id", "=", "service_runs.session_id").where("is_active", "=", 1))),
      )
      .execute(),
};
