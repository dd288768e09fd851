import { Cron } from "croner";
import { quote } from "../core/errors.js";

/**
 * Schedules of wire-contract §7.5: a 5-field cron expression (evaluated in an IANA time zone) or an interval
 * `"<n> second(s)|minute(s)|hour(s)|day(s)"`. All times are epoch milliseconds.
 */
export class ScheduleError extends Error {
  constructor(
    message: string,
    readonly code: string = "invalid_schedule",
  ) {
    super(message);
  }
}

const INTERVAL_RE = /^\s*(\d+)\s+(second|seconds|minute|minutes|hour|hours|day|days)\s*$/i;
const UNIT_SECONDS: Record<string, number> = { second: 1, minute: 60, hour: 3600, day: 86400 };
/** The nicknames croniter (the Python client's validator) and croner both understand. */
const NICKNAMES = new Set(["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@hourly"]);
/** Base of the spacing check, as in the Python client: the 100 gaps after 2026-01-01T00:00Z. */
const SPACING_BASE = Date.UTC(2026, 0, 1);
const SPACING_RUNS = 101;

export interface Schedule {
  readonly kind: "cron" | "interval";
  /** The first due time strictly after t, or null when there is none. */
  nextAfter(t: number): number | null;
  /** Due times in [from, to], ascending, at most `cap` of them (the earliest). */
  between(from: number, to: number, cap: number): number[];
  /** The latest `k` due times in [from, to], ascending. */
  latest(from: number, to: number, k: number): number[];
  /** The smallest spacing between two consecutive runs, in seconds. */
  minSpacingSeconds(): number;
}

/** Whether `tz` is an IANA time zone this runtime knows; returns its canonical spelling. */
const zones = new Map<string, string | null>();
export function canonicalTimeZone(tz: string): string | null {
  let c = zones.get(tz);
  if (c === undefined) {
    try {
      c = new Intl.DateTimeFormat("en-US", { timeZone: tz }).resolvedOptions().timeZone;
    } catch {
      c = null;
    }
    if (zones.size > 1000) zones.clear();
    zones.set(tz, c);
  }
  return c;
}

class IntervalSchedule implements Schedule {
  readonly kind = "interval";
  constructor(
    private readonly anchor: number,
    private readonly step: number,
  ) {}
  /** Due times are anchor + k·step for k ≥ 1. */
  private at(k: number) {
    return this.anchor + k * this.step;
  }
  nextAfter(t: number) {
    return this.at(Math.max(1, Math.floor((t - this.anchor) / this.step) + 1));
  }
  private range(from: number, to: number): [number, number] {
    return [Math.max(1, Math.ceil((from - this.anchor) / this.step)), Math.floor((to - this.anchor) / this.step)];
  }
  between(from: number, to: number, cap: number) {
    const [lo, hi] = this.range(from, to);
    const out: number[] = [];
    for (let k = lo; k <= hi && out.length < cap; k++) out.push(this.at(k));
    return out;
  }
  latest(from: number, to: number, k: number) {
    const [lo, hi] = this.range(from, to);
    const out: number[] = [];
    for (let i = Math.max(lo, hi - k + 1); i <= hi; i++) out.push(this.at(i));
    return out;
  }
  minSpacingSeconds() {
    return this.step / 1000;
  }
}

class CronSchedule implements Schedule {
  readonly kind = "cron";
  /** Recent nextAfter answers: tasks sharing a schedule are usually due at the same times (time zones make croner slow). */
  private memo = new Map<number, number | null>();
  constructor(private readonly cron: Cron) {}
  nextAfter(t: number) {
    const hit = this.memo.get(t);
    if (hit !== undefined) return hit;
    const r = this.cron.nextRun(new Date(t))?.getTime() ?? null;
    if (this.memo.size >= 256) this.memo.clear();
    this.memo.set(t, r);
    return r;
  }
  between(from: number, to: number, cap: number) {
    const out: number[] = [];
    // nextRun strips milliseconds and looks strictly after, so start just before `from` to include it.
    let d = this.cron.nextRun(new Date(from - 1));
    while (d && d.getTime() <= to && out.length < cap) {
      out.push(d.getTime());
      d = this.cron.nextRun(d);
    }
    return out;
  }
  latest(from: number, to: number, k: number) {
    if (k <= 0 || to < from) return [];
    // previousRuns includes a run in the same second as the reference but before it: reference just after `to`.
    return this.cron
      .previousRuns(k, new Date(to + 1))
      .map((d) => d.getTime())
      .filter((t) => t >= from && t <= to)
      .reverse();
  }
  private spacing?: number;
  minSpacingSeconds() {
    if (this.spacing === undefined) {
      const runs = this.cron.nextRuns(SPACING_RUNS, new Date(SPACING_BASE)).map((d) => d.getTime());
      let min = Infinity;
      for (let i = 1; i < runs.length; i++) min = Math.min(min, runs[i] - runs[i - 1]);
      this.spacing = min / 1000;
    }
    return this.spacing;
  }
}

/** A 5-field cron expression or a nickname; rejects what croniter would not accept (`?`, `#`, `W`, seconds). */
function cronSchedule(expr: string, timezone: string): Schedule {
  const s = expr.trim();
  if (s.startsWith("@")) {
    if (!NICKNAMES.has(s.toLowerCase())) throw new ScheduleError(`${quote(expr)} is not a cron expression (known nicknames: ${[...NICKNAMES].join(", ")})`);
  } else {
    const fields = s.split(/\s+/);
    if (fields.length !== 5)
      throw new ScheduleError(
        `${quote(expr)} is neither a 5-field cron expression (minute hour day-of-month month day-of-week) nor an interval like "30 minutes"`,
      );
    if (/[?#]/.test(s) || /\dW|(^|[\s,])LW/i.test(s)) throw new ScheduleError(`${quote(expr)}: ?, # and W are not supported in cron expressions`);
  }
  let cron: Cron;
  try {
    cron = new Cron(s.startsWith("@") ? s.toLowerCase() : s, { mode: "5-part", timezone, paused: true });
  } catch (err) {
    throw new ScheduleError(`${quote(expr)} is not a valid cron expression: ${(err as Error).message.replace(/^CronPattern: /, "")}`);
  }
  const sched = new CronSchedule(cron);
  if (sched.nextAfter(SPACING_BASE) === null) throw new ScheduleError(`${quote(expr)} never matches a date`);
  return sched;
}

const cronCache = new Map<string, Schedule>();

/** Parse a schedule. `anchor` (ms) is where interval schedules count from. Cron schedules are cached by (expression, zone). */
export function parseSchedule(expr: string, opts: { timezone: string; anchor: number }): Schedule {
  if (typeof expr !== "string" || expr.trim() === "") throw new ScheduleError("must not be empty");
  const m = INTERVAL_RE.exec(expr);
  if (m) {
    const n = Number(m[1]);
    const unit = m[2].toLowerCase().replace(/s$/, "");
    const seconds = n * UNIT_SECONDS[unit];
    if (!Number.isSafeInteger(seconds) || seconds <= 0) throw new ScheduleError(`${quote(expr)}: the interval must be positive`);
    if (seconds > 366 * 86400 * 100) throw new ScheduleError(`${quote(expr)}: the interval is too long`);
    return new IntervalSchedule(opts.anchor, seconds * 1000);
  }
  const key = `${opts.timezone}\u0000${expr}`;
  let sched = cronCache.get(key);
  if (!sched) {
    sched = cronSchedule(expr, opts.timezone);
    if (cronCache.size >= 2000) cronCache.clear();
    cronCache.set(key, sched);
  }
  return sched;
}

export type MisfirePolicy = "skip" | "run_once" | "catch_up";
export const MISFIRE_POLICIES: MisfirePolicy[] = ["skip", "run_once", "catch_up"];

export interface DuePlan {
  /** Due times to fire now, ascending. */
  fire: number[];
  /** Due times passed over by the misfire policy. */
  skipped: number;
  /** The next due time after now; null deactivates the task. */
  next: number | null;
}

/** Most due times one task fires in one tick, whatever the policy (a safety bound for tiny grace windows). */
const ON_TIME_CAP = 1000;

/**
 * What to fire for a task whose next_run_at has come, at `now`:
 * - due times at most `graceMs` old are on time and always fire;
 * - older ones were missed (the server was down or far behind), and the policy decides:
 *   `skip` fires none of them, `run_once` fires the latest one once (only when no on-time run fires anyway),
 *   `catch_up` fires the latest `catchUpMax` due times (missed and on time together), oldest first.
 * A one-time task has a single due time (next_run_at): it fires (late or not) except under `skip` when missed.
 */
export function planDue(
  task: { schedule: Schedule; once: boolean; nextRunAt: number; policy: MisfirePolicy; catchUpMax: number },
  now: number,
  graceMs: number,
): DuePlan {
  const due = task.nextRunAt;
  if (task.once) {
    const missed = now - due > graceMs;
    if (missed && task.policy === "skip") return { fire: [], skipped: 1, next: null };
    return { fire: [due], skipped: 0, next: null };
  }
  // The usual case: next_run_at is the only due time up to now (one schedule step, memoized per shared schedule).
  const after = task.schedule.nextAfter(due);
  if (after === null || after > now) {
    if (now - due > graceMs && task.policy === "skip") return { fire: [], skipped: 1, next: after };
    return { fire: [due], skipped: 0, next: after };
  }
  const next = task.schedule.nextAfter(now);
  const onTime = task.schedule.between(Math.max(due, now - graceMs), now, ON_TIME_CAP);
  let fire: number[];
  if (task.policy === "catch_up") fire = task.schedule.latest(due, now, Math.max(1, task.catchUpMax));
  else if (onTime.length > 0 || task.policy === "skip") fire = onTime;
  else {
    fire = task.schedule.latest(due, now, 1);
    // next_run_at is always one of the schedule's due times; if it was not (a changed schedule), fire it as such.
    if (fire.length === 0) fire = [due];
  }
  // Everything since next_run_at was on time (the usual case): nothing skipped, no need to count.
  if (due >= now - graceMs) return { fire, skipped: Math.max(0, onTime.length - fire.length), next };
  const total = task.schedule.between(due, now, ON_TIME_CAP + 1).length;
  return { fire, skipped: Math.max(0, total - fire.length), next };
}
