import type { Queryable } from "../store/db.js";
import type { RoomSessionsTable, SessionEventsTable, SessionMetricsTable, SessionParticipantsTable, SessionSpansTable } from "../store/schema.js";

export type SessionRow = RoomSessionsTable;
export type ParticipantRow = SessionParticipantsTable;
export type EventRow = Omit<SessionEventsTable, "seq"> & { seq: number };
export type SpanRow = Omit<SessionSpansTable, "seq"> & { seq: number };
export type MetricRow = Omit<SessionMetricsTable, "seq"> & { seq: number };
export type NewSpan = Omit<SessionSpansTable, "seq">;
export type NewMetric = Omit<SessionMetricsTable, "seq">;

/** Session SQL. Other areas use SessionsService (ctx.sessions). */
export const sessionsRepo = {
  insert: (q: Queryable, row: SessionRow) => q.insertInto("room_sessions").values(row).execute(),

  byId: (q: Queryable, projectId: string, id: string) =>
    q.selectFrom("room_sessions").selectAll().where("project_id", "=", projectId).where("id", "=", id).executeTakeFirst(),

  active: (q: Queryable, projectId: string) =>
    q
      .selectFrom("room_sessions")
      .selectAll()
      .where("project_id", "=", projectId)
      .where("is_active", "=", 1)
      .orderBy("created_at", "desc")
      .orderBy("id")
      .limit(1000)
      .execute(),

  recent: (q: Queryable, projectId: string, limit: number, roomId?: string) => {
    let s = q.selectFrom("room_sessions").selectAll().where("project_id", "=", projectId);
    if (roomId) s = s.where("room_id", "=", roomId);
    return s.orderBy("created_at", "desc").orderBy("id").limit(limit).execute();
  },

  /** The running session of a room, or else its latest one. */
  currentForRoom: (q: Queryable, roomId: string) =>
    q
      .selectFrom("room_sessions")
      .selectAll()
      .where("room_id", "=", roomId)
      .orderBy("is_active", "desc")
      .orderBy("created_at", "desc")
      .limit(1)
      .executeTakeFirst(),

  /** Ends the session if it is still active; true when this call ended it. */
  end: async (q: Queryable, id: string, now: number, reason: string) => {
    const r = await q
      .updateTable("room_sessions")
      .set({ is_active: 0, ended_at: now, end_reason: reason })
      .where("id", "=", id)
      .where("is_active", "=", 1)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  },

  /** Renew the heartbeat of a node's active sessions; returns the ids that are still active. */
  heartbeat: async (q: Queryable, nodeId: string, now: number) => {
    await q.updateTable("room_sessions").set({ heartbeat_at: now }).where("node_id", "=", nodeId).where("is_active", "=", 1).execute();
    const rows = await q.selectFrom("room_sessions").select("id").where("node_id", "=", nodeId).where("is_active", "=", 1).execute();
    return new Set(rows.map((r) => r.id));
  },

  /** Active sessions of other nodes (candidates for reaping). */
  activeOfOthers: (q: Queryable, nodeId: string) =>
    q.selectFrom("room_sessions").selectAll().where("is_active", "=", 1).where("node_id", "!=", nodeId).execute(),

  activeForRoom: (q: Queryable, roomId: string) => q.selectFrom("room_sessions").selectAll().where("room_id", "=", roomId).where("is_active", "=", 1).execute(),

  // ---- participants ----
  addParticipant: (q: Queryable, row: ParticipantRow) => q.insertInto("session_participants").values(row).execute(),

  leaveParticipant: async (q: Queryable, id: string, now: number) => {
    const r = await q.updateTable("session_participants").set({ left_at: now }).where("id", "=", id).where("left_at", "is", null).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  },

  /** Participants still in the session; marks them left at `at`. */
  closeParticipants: async (q: Queryable, sessionId: string, at: number) => {
    const open = await q.selectFrom("session_participants").selectAll().where("session_id", "=", sessionId).where("left_at", "is", null).execute();
    if (open.length)
      await q.updateTable("session_participants").set({ left_at: at }).where("session_id", "=", sessionId).where("left_at", "is", null).execute();
    return open;
  },

  /** Participant counts by role for sessions: connected now (`current`) or everyone who joined. */
  roleCounts: async (q: Queryable, sessionIds: string[], current: boolean) => {
    if (!sessionIds.length) return [];
    let s = q
      .selectFrom("session_participants")
      .select((eb) => ["session_id", "role", eb.fn.countAll<number>().as("n")])
      .where("session_id", "in", sessionIds);
    if (current) s = s.where("left_at", "is", null);
    return s.groupBy(["session_id", "role"]).execute();
  },

  // ---- events, spans, metrics ----
  addEvents: (q: Queryable, rows: Omit<SessionEventsTable, "seq">[]) =>
    rows.length ? q.insertInto("session_events").values(rows).execute() : Promise.resolve([]),

  events: (q: Queryable, sessionId: string, limit: number) =>
    q.selectFrom("session_events").selectAll().where("session_id", "=", sessionId).orderBy("seq").limit(limit).execute() as Promise<EventRow[]>,

  addSpans: (q: Queryable, rows: NewSpan[]) => (rows.length ? q.insertInto("session_spans").values(rows).execute() : Promise.resolve([])),

  spans: (q: Queryable, sessionId: string, limit: number) =>
    q.selectFrom("session_spans").selectAll().where("session_id", "=", sessionId).orderBy("seq").limit(limit).execute() as Promise<SpanRow[]>,

  addMetrics: (q: Queryable, rows: NewMetric[]) => (rows.length ? q.insertInto("session_metrics").values(rows).execute() : Promise.resolve([])),

  metrics: (q: Queryable, sessionId: string, limit: number) =>
    q.selectFrom("session_metrics").selectAll().where("session_id", "=", sessionId).orderBy("seq").limit(limit).execute() as Promise<MetricRow[]>,

  /** Rows OTLP/HTTP added to a session: every span, the metric points of source otlp, the events of type log. */
  otlpRows: async (q: Queryable, sessionId: string) => {
    const counts = await Promise.all([
      q
        .selectFrom("session_spans")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("session_id", "=", sessionId)
        .executeTakeFirst(),
      q
        .selectFrom("session_metrics")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("session_id", "=", sessionId)
        .where("source", "=", "otlp")
        .executeTakeFirst(),
      q
        .selectFrom("session_events")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("session_id", "=", sessionId)
        .where("type", "=", "log")
        .executeTakeFirst(),
    ]);
    return counts.reduce((sum, r) => sum + Number(r?.n ?? 0), 0);
  },
};
