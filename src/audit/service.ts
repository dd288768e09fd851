import type { Clock } from "../core/clock.js";
import { iso } from "../core/clock.js";
import { badRequest } from "../core/errors.js";
import { pageOffset, pageSize } from "../core/paging.js";
import type { AuditLogTable } from "../store/schema.js";
import type { Queryable } from "../store/db.js";
import { auditRepo, type AuditFilter, type AuditRow, type NewAuditRow } from "./repo.js";

/** One entry of `GET …/audit-log`: the row, with its id as a number, its outcome and an ISO time. */
export type AuditEntry = Omit<AuditLogTable, "id" | "created_at"> & { id: number; outcome: "ok" | "error"; created_at: string };

export interface AuditQuery {
  limit?: number;
  offset?: number;
  actor?: string;
  operation?: string;
  target?: string;
  since?: string;
  until?: string;
}

export interface AuditOptions {
  /** Entries older than this many days are deleted by the sweep; 0 keeps them forever. */
  retentionDays: number;
  log?: (msg: string, err: unknown) => void;
}

const DAY_MS = 86_400_000;
/** Rows deleted per statement by the sweep. */
const SWEEP_BATCH = 5000;
const DEFAULT_PAGE = 100;

const ISO_DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(?:[Zz]|[+-](\d{2}):?(\d{2}))$/;

/**
 * An ISO 8601 date-time with a time zone (`2026-01-31T12:00:00Z`, `…+02:00`, fractions allowed) as epoch ms; a 400
 * naming the filter otherwise. Calendar fields are checked (Date.parse would take February 30 as March 1).
 */
export function parseDateTime(value: string, name: string): number {
  const m = ISO_DATE_TIME.exec(value);
  const bad = () => badRequest(`${name} must be an ISO 8601 date-time with a time zone, e.g. 2026-01-31T12:00:00Z`);
  if (!m) throw bad();
  const [year, month, day, hour, minute, second = 0, offH = 0, offM = 0] = m.slice(1).map((x) => (x === undefined ? undefined : Number(x)));
  const daysInMonth = new Date(Date.UTC(year!, month!, 0)).getUTCDate();
  if (month! < 1 || month! > 12 || day! < 1 || day! > daysInMonth || hour! > 23 || minute! > 59 || second > 59 || offH > 23 || offM > 59) throw bad();
  const ms = Date.parse(value.replace(" ", "T"));
  if (!Number.isFinite(ms)) throw bad();
  return ms;
}

export function auditJson(r: AuditRow): AuditEntry {
  return {
    id: Number(r.id),
    actor: r.actor,
    project_id: r.project_id,
    operation: r.operation,
    method: r.method,
    route: r.route,
    target_id: r.target_id,
    request_id: r.request_id,
    ip: r.ip,
    status: r.status,
    outcome: r.status < 400 ? "ok" : "error",
    created_at: iso(Number(r.created_at)),
  };
}

/**
 * The audit log: one row per mutating HTTP call, written by the hook in ./hook.ts before the response is sent;
 * read by project admins; swept after `retentionDays`.
 */
export class AuditService {
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<number> | undefined;

  constructor(
    private readonly db: Queryable,
    private readonly clock: Clock,
    private readonly opts: AuditOptions,
  ) {}

  /** Store one entry (stamped with the clock); resolves once the row is written. */
  record(entry: Omit<NewAuditRow, "created_at">): Promise<void> {
    return auditRepo.insert(this.db, { ...entry, created_at: this.clock.now() });
  }

  /** A page of a project's entries, newest first, with the count of every match. */
  async list(projectId: string, q: AuditQuery): Promise<{ entries: AuditEntry[]; total: number }> {
    const limit = pageSize(q.limit, DEFAULT_PAGE);
    const offset = pageOffset(q.offset);
    const f: AuditFilter = { actor: q.actor, operation: q.operation, target: q.target };
    if (q.since !== undefined) f.since = parseDateTime(q.since, "since");
    if (q.until !== undefined) f.until = parseDateTime(q.until, "until");
    const [rows, total] = await Promise.all([auditRepo.list(this.db, projectId, f, limit, offset), auditRepo.count(this.db, projectId, f)]);
    return { entries: rows.map(auditJson), total };
  }

  /** Delete entries older than the retention period (none when it is 0); returns how many were deleted. */
  sweep(): Promise<number> {
    this.sweeping ??= (async () => {
      try {
        const days = this.opts.retentionDays;
        if (days <= 0) return 0;
        const before = this.clock.now() - days * DAY_MS;
        let total = 0;
        for (;;) {
          const n = await auditRepo.deleteOlder(this.db, before, SWEEP_BATCH);
          total += n;
          if (n < SWEEP_BATCH) return total;
        }
      } catch (err) {
        this.opts.log?.("audit: retention sweep failed", err);
        return 0;
      } finally {
        this.sweeping = undefined;
      }
    })();
    return this.sweeping;
  }

  /** Sweep now and then every `intervalMs` (servers only; CLI commands don't). Stopped by stop(). */
  start(intervalMs = 3_600_000) {
    if (this.timer) return;
    void this.sweep();
    this.timer = setInterval(() => void this.sweep(), intervalMs);
    this.timer.unref();
  }

  async stop() {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.sweeping;
  }
}
