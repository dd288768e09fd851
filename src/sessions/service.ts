import type { Clock } from "../core/clock.js";
import { KeyedSerial } from "../core/serial.js";
import { iso, isoOrNull } from "../core/clock.js";
import { notFound } from "../core/errors.js";
import type { EventBus } from "../core/events.js";
import { isUuid, newId } from "../core/ids.js";
import { roomUrl } from "../rooms/service.js";
import { inTx, type DB, type Queryable } from "../store/db.js";
import { sessionsRepo, type NewMetric, type NewSpan, type ParticipantRow, type SessionRow } from "./repo.js";

export type { SessionRow } from "./repo.js";

export interface SessionParticipant {
  id: string;
  name: string;
  role: string;
}

/** The bus event that carries participant time for usage metering (one per participant and session). */
export const USAGE_EVENT = "usage.recorded";

const MAX_ROWS = 10_000;
/** Sessions whose OTLP row count is kept in memory; an evicted one is counted again from the database. */
const OTLP_COUNTS_KEPT = 10_000;
const BATCH = 200;

/** RoomSession (wire-contract §7.2) plus `ended_at`. */
export function sessionJson(s: SessionRow, participants: Record<string, number>) {
  return {
    id: s.id,
    room_id: s.room_id,
    room_name: s.room_name,
    created_at: iso(s.created_at),
    is_active: !!s.is_active,
    participants,
    ended_at: isoOrNull(s.ended_at),
  };
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v ?? null) ?? "null";
  } catch {
    return "null";
  }
}

/**
 * Room sessions: one starts when the first participant joins a room and ends when the room has been empty for
 * MESHAGENT_ROOM_EMPTY_TIMEOUT (the room server decides when), or when it is terminated, or when its room is
 * deleted, or when the process that ran it died (reaped from its stale heartbeat).
 *
 * Writes of one session are applied in call order (a per-session chain), so a `participant.left` never overtakes
 * its `participant.joined`. Every row is written in a transaction together with its bus events.
 */
export class SessionsService {
  private readonly chains = new KeyedSerial();
  /** OTLP rows per session, as counted by otlpAllowance (the most recently first-seen OTLP_COUNTS_KEPT sessions). */
  private readonly otlpRows = new Map<string, number>();

  constructor(
    private readonly db: DB,
    private readonly clock: Clock,
    private readonly bus: EventBus,
    private readonly publicUrl: () => string,
  ) {}

  /** Run `fn` after every earlier write of the same session. */
  private serial<T>(sessionId: string, fn: () => Promise<T>): Promise<T> {
    return this.chains.run(sessionId, fn);
  }

  /** Wait until every write queued so far is applied (tests, shutdown). */
  async flush(): Promise<void> {
    await this.chains.idle();
  }

  async start(room: { id: string; project_id: string; name: string }, nodeId: string): Promise<SessionRow> {
    const now = this.clock.now();
    const row: SessionRow = {
      id: newId(),
      project_id: room.project_id,
      room_id: room.id,
      room_name: room.name,
      created_at: now,
      ended_at: null,
      is_active: 1,
      node_id: nodeId,
      heartbeat_at: now,
      end_reason: null,
    };
    const url = roomUrl(this.publicUrl(), room.name);
    const after = await inTx(this.db, async (tx) => {
      await sessionsRepo.insert(tx, row);
      await sessionsRepo.addEvents(tx, [
        { session_id: row.id, type: "room.started", data: safeJson({ room_name: room.name, room_url: url }), created_at: now },
      ]);
      return this.bus.publish(tx, {
        type: "room.started",
        project_id: room.project_id,
        data: { room_name: room.name, room_url: url, room_id: room.id, session_id: row.id },
      });
    });
    after();
    return row;
  }

  join(s: SessionRow, p: SessionParticipant, count: number): Promise<void> {
    return this.serial(s.id, async () => {
      const now = this.clock.now();
      await inTx(this.db, async (tx) => {
        await sessionsRepo.addParticipant(tx, { id: p.id, session_id: s.id, name: p.name, role: p.role, joined_at: now, left_at: null });
        await sessionsRepo.addEvents(tx, [
          { session_id: s.id, type: "participant.joined", data: safeJson({ participant_id: p.id, name: p.name, role: p.role }), created_at: now },
        ]);
        await sessionsRepo.addMetrics(tx, [this.serverMetric(s.id, "room.participants", "gauge", "{participant}", count, now)]);
      });
    });
  }

  leave(s: SessionRow, p: SessionParticipant, count: number, detail: Record<string, unknown> = {}): Promise<void> {
    return this.serial(s.id, async () => {
      const now = this.clock.now();
      const after = await inTx(this.db, async (tx) => {
        const row = await tx.selectFrom("session_participants").selectAll().where("id", "=", p.id).executeTakeFirst();
        if (!row || row.left_at !== null || !(await sessionsRepo.leaveParticipant(tx, p.id, now))) return () => {};
        const seconds = Math.max(0, (now - Number(row.joined_at)) / 1000);
        await sessionsRepo.addEvents(tx, [
          {
            session_id: s.id,
            type: "participant.left",
            data: safeJson({ participant_id: p.id, name: p.name, role: p.role, seconds, ...detail }),
            created_at: now,
          },
        ]);
        await sessionsRepo.addMetrics(tx, [this.serverMetric(s.id, "room.participants", "gauge", "{participant}", count, now)]);
        return this.usage(tx, s, { ...row, left_at: now });
      });
      after();
    });
  }

  /** Record an event of the session (errors, logs, anything the room server wants kept). */
  event(sessionId: string, type: string, data: unknown): Promise<void> {
    return this.serial(sessionId, async () => {
      await sessionsRepo.addEvents(this.db, [{ session_id: sessionId, type, data: safeJson(data), created_at: this.clock.now() }]);
    });
  }

  /** Record several events in one go (OTLP logs). */
  events(sessionId: string, rows: { type: string; data: unknown; at?: number }[]): Promise<void> {
    return this.serial(sessionId, async () => {
      const now = this.clock.now();
      for (let i = 0; i < rows.length; i += BATCH)
        await sessionsRepo.addEvents(
          this.db,
          rows.slice(i, i + BATCH).map((r) => ({ session_id: sessionId, type: r.type, data: safeJson(r.data), created_at: r.at ?? now })),
        );
    });
  }

  serverMetric(sessionId: string, name: string, kind: string, unit: string, value: number, at: number, attributes: Record<string, unknown> = {}): NewMetric {
    return { session_id: sessionId, name, kind, unit, value, data: null, attributes: safeJson(attributes), time: at, source: "server", participant_name: null };
  }

  addMetrics(sessionId: string, rows: NewMetric[]): Promise<void> {
    return this.serial(sessionId, async () => {
      for (let i = 0; i < rows.length; i += BATCH) await sessionsRepo.addMetrics(this.db, rows.slice(i, i + BATCH));
    });
  }

  /**
   * How many of `wanted` OTLP rows (spans, metric points, log records) the session may still take under `cap`
   * (MESHAGENT_OTLP_MAX_ROWS_PER_SESSION; 0 = no cap); they are counted as taken. The count starts from what the
   * session holds when this process first sees it and runs in the session's write chain, so two concurrent exports
   * never both get the last rows. Other processes count for themselves: with several, a session may end up a little
   * over the cap (by what they accept at the same moment), never far.
   */
  otlpAllowance(sessionId: string, wanted: number, cap: number): Promise<number> {
    if (cap <= 0 || wanted <= 0) return Promise.resolve(Math.max(0, wanted));
    return this.serial(sessionId, async () => {
      let held = this.otlpRows.get(sessionId);
      if (held === undefined) {
        held = await sessionsRepo.otlpRows(this.db, sessionId);
        if (this.otlpRows.size >= OTLP_COUNTS_KEPT) this.otlpRows.delete(this.otlpRows.keys().next().value as string);
      }
      const allowed = Math.min(wanted, Math.max(0, cap - held));
      this.otlpRows.set(sessionId, held + allowed);
      return allowed;
    });
  }

  addSpans(sessionId: string, rows: NewSpan[]): Promise<void> {
    return this.serial(sessionId, async () => {
      for (let i = 0; i < rows.length; i += BATCH) await sessionsRepo.addSpans(this.db, rows.slice(i, i + BATCH));
    });
  }

  private async usage(q: Queryable, s: SessionRow, p: ParticipantRow) {
    const seconds = Math.max(0, (Number(p.left_at) - Number(p.joined_at)) / 1000);
    return this.bus.publish(q, {
      type: USAGE_EVENT,
      project_id: s.project_id,
      data: {
        usage_type: "room",
        unit: "participant_second",
        quantity: seconds,
        room_id: s.room_id,
        room_name: s.room_name,
        session_id: s.id,
        participant_id: p.id,
        participant_name: p.name,
        role: p.role,
        started_at: iso(Number(p.joined_at)),
        ended_at: iso(Number(p.left_at)),
      },
    });
  }

  /**
   * Calls routed to toolkits participants host, counted since the last report (the room server reports with its
   * stats, at every heartbeat and when the session ends): one usage.recorded `{usage_type: "tool_calls", unit:
   * "call", quantity}` for the interval.
   */
  toolCallUsage(s: SessionRow, quantity: number, from: number, to: number): Promise<void> {
    return this.intervalUsage(s, "tool_calls", "call", quantity, from, to);
  }

  /** LLM tokens an agent reported over OTLP: one usage.recorded `{usage_type: "llm", unit: input_token|output_token}`. */
  async llmUsage(s: SessionRow, t: { provider: string | null; model: string | null; unit: string; quantity: number; participant_name: string }) {
    const after = await this.bus.publish(this.db, {
      type: USAGE_EVENT,
      project_id: s.project_id,
      data: {
        usage_type: "llm",
        unit: t.unit,
        quantity: t.quantity,
        provider: t.provider,
        model: t.model,
        room_id: s.room_id,
        room_name: s.room_name,
        session_id: s.id,
        participant_name: t.participant_name,
      },
    });
    after();
  }

  /** One usage.recorded of a room's counted activity over `[from, to]` (tool calls, queue messages). */
  intervalUsage(s: SessionRow, usageType: string, unit: string, quantity: number, from: number, to: number): Promise<void> {
    return this.serial(s.id, async () => {
      const after = await inTx(this.db, (tx) =>
        this.bus.publish(tx, {
          type: USAGE_EVENT,
          project_id: s.project_id,
          data: {
            usage_type: usageType,
            unit,
            quantity,
            room_id: s.room_id,
            room_name: s.room_name,
            session_id: s.id,
            started_at: iso(from),
            ended_at: iso(to),
          },
        }),
      );
      after();
    });
  }

  /**
   * End a session inside the caller's transaction (room deletion). Returns the notifications to run once that
   * transaction committed, or null when the session had already ended.
   */
  async endInTx(tx: Queryable, s: SessionRow, reason: string, at?: number): Promise<(() => void)[] | null> {
    const when = at ?? this.clock.now();
    if (!(await sessionsRepo.end(tx, s.id, when, reason))) return null;
    const open = await sessionsRepo.closeParticipants(tx, s.id, when);
    const after: (() => void)[] = [];
    for (const p of open) after.push(await this.usage(tx, s, { ...p, left_at: when }));
    await sessionsRepo.addEvents(tx, [
      ...open.map((p) => ({
        session_id: s.id,
        type: "participant.left",
        data: safeJson({ participant_id: p.id, name: p.name, role: p.role, seconds: Math.max(0, (when - Number(p.joined_at)) / 1000), reason }),
        created_at: when,
      })),
      { session_id: s.id, type: "room.ended", data: safeJson({ room_name: s.room_name, reason }), created_at: when },
    ]);
    if (open.length) await sessionsRepo.addMetrics(tx, [this.serverMetric(s.id, "room.participants", "gauge", "{participant}", 0, when)]);
    after.push(
      await this.bus.publish(tx, {
        type: "room.ended",
        project_id: s.project_id,
        data: { room_name: s.room_name, room_id: s.room_id, session_id: s.id, reason },
      }),
    );
    return after;
  }

  /**
   * End a session (idempotent: false when it had already ended). Participants still in it leave at `at`
   * (now, or the last heartbeat of a process that died). Emits room.ended and the participants' usage.
   */
  end(s: SessionRow, reason: string, at?: number): Promise<boolean> {
    return this.serial(s.id, async () => {
      const after = await inTx(this.db, (tx) => this.endInTx(tx, s, reason, at));
      for (const fn of after ?? []) fn();
      return !!after;
    });
  }

  /** Renew this node's sessions; returns the ids still active (a terminated or deleted one is missing). */
  heartbeat(nodeId: string): Promise<Set<string>> {
    return sessionsRepo.heartbeat(this.db, nodeId, this.clock.now());
  }

  /** End the active sessions of processes that are gone (`dead(node_id, heartbeat_at)`), as of their last heartbeat. */
  async reap(selfNodeId: string, dead: (s: SessionRow) => Promise<boolean> | boolean): Promise<number> {
    let n = 0;
    for (const s of await sessionsRepo.activeOfOthers(this.db, selfNodeId)) {
      if (await dead(s)) if (await this.end(s, "server_process_died", Number(s.heartbeat_at))) n++;
    }
    return n;
  }

  activeForRoom(roomId: string, q: Queryable = this.db) {
    return sessionsRepo.activeForRoom(q, roomId);
  }

  // ---- reads (routes, OTLP) ----

  private async withCounts(rows: SessionRow[]) {
    const active = rows.filter((r) => r.is_active).map((r) => r.id);
    const ended = rows.filter((r) => !r.is_active).map((r) => r.id);
    const counts = new Map<string, Record<string, number>>();
    for (const c of [...(await sessionsRepo.roleCounts(this.db, active, true)), ...(await sessionsRepo.roleCounts(this.db, ended, false))]) {
      const m = counts.get(c.session_id) ?? {};
      m[c.role] = Number(c.n);
      counts.set(c.session_id, m);
    }
    return rows.map((r) => sessionJson(r, counts.get(r.id) ?? {}));
  }

  async listActive(projectId: string) {
    return this.withCounts(await sessionsRepo.active(this.db, projectId));
  }

  async listRecent(projectId: string, limit: number, roomId?: string) {
    return this.withCounts(await sessionsRepo.recent(this.db, projectId, limit, roomId));
  }

  async row(projectId: string, id: string): Promise<SessionRow> {
    const r = isUuid(id) ? await sessionsRepo.byId(this.db, projectId, id) : undefined;
    if (!r) throw notFound("session");
    return r;
  }

  async get(projectId: string, id: string) {
    const r = await this.row(projectId, id);
    const [json] = await this.withCounts([r]);
    const parts = await this.db.selectFrom("session_participants").selectAll().where("session_id", "=", r.id).orderBy("joined_at").limit(MAX_ROWS).execute();
    const until = r.ended_at ?? this.clock.now();
    const seconds = parts.reduce((acc, p) => acc + Math.max(0, (Number(p.left_at ?? until) - Number(p.joined_at)) / 1000), 0);
    return {
      ...json,
      participant_seconds: seconds,
      end_reason: r.end_reason,
      participant_list: parts.map((p) => ({
        id: p.id,
        name: p.name,
        role: p.role,
        joined_at: iso(Number(p.joined_at)),
        left_at: p.left_at === null ? null : iso(Number(p.left_at)),
      })),
    };
  }

  async listEvents(projectId: string, id: string) {
    const r = await this.row(projectId, id);
    const rows = await sessionsRepo.events(this.db, r.id, MAX_ROWS);
    return rows.map((e) => ({ type: e.type, data: JSON.parse(e.data) as unknown, created_at: iso(Number(e.created_at)) }));
  }

  async listSpans(projectId: string, id: string) {
    const r = await this.row(projectId, id);
    const rows = await sessionsRepo.spans(this.db, r.id, MAX_ROWS);
    return rows.map((s) => ({
      trace_id: s.trace_id,
      span_id: s.span_id,
      parent_span_id: s.parent_span_id,
      span_name: s.name,
      name: s.name,
      created_at: iso(Number(s.start_ms)),
      duration: Number(s.duration_ns),
      span_attributes: JSON.parse(s.attributes) as Record<string, unknown>,
      resource_attributes: JSON.parse(s.resource_attributes) as Record<string, unknown>,
      kind: Number(s.kind),
      status_code: Number(s.status_code),
      status_message: s.status_message,
      participant_name: s.participant_name,
    }));
  }

  async listMetrics(projectId: string, id: string) {
    const r = await this.row(projectId, id);
    const rows = await sessionsRepo.metrics(this.db, r.id, MAX_ROWS);
    return rows.map((m) => ({
      name: m.name,
      kind: m.kind,
      unit: m.unit,
      value: Number(m.value),
      ...(m.data ? { data: JSON.parse(m.data) as unknown } : {}),
      attributes: JSON.parse(m.attributes) as Record<string, unknown>,
      timestamp: iso(Number(m.time)),
      source: m.source,
      participant_name: m.participant_name,
    }));
  }

  /** The session a participant's telemetry belongs to: the room's running session, else its latest one. */
  currentForRoom(roomId: string) {
    return sessionsRepo.currentForRoom(this.db, roomId);
  }
}
