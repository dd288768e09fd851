import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { parseSchedule, planDue, ScheduleError } from "../src/scheduler/schedule.js";
import { loadConfig, ConfigError } from "../src/config.js";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const at = (iso: string) => Date.parse(iso);
const isoOf = (xs: number[]) => xs.map((x) => new Date(x).toISOString().slice(11, 16));

describe("schedules", () => {
  it("cron: next, between and latest agree, in UTC and in a time zone", () => {
    const s = parseSchedule("0 */6 * * *", { timezone: "UTC", anchor: 0 });
    expect(new Date(s.nextAfter(at("2026-01-15T06:00:00Z"))!).toISOString()).toBe("2026-01-15T12:00:00.000Z");
    expect(isoOf(s.between(at("2026-01-15T00:00:00Z"), at("2026-01-15T18:00:00Z"), 100))).toEqual(["00:00", "06:00", "12:00", "18:00"]);
    expect(isoOf(s.latest(at("2026-01-15T00:00:00Z"), at("2026-01-15T18:00:00Z"), 2))).toEqual(["12:00", "18:00"]);
    expect(isoOf(s.latest(at("2026-01-15T07:00:00Z"), at("2026-01-15T11:59:59Z"), 5))).toEqual([]);
    const tokyo = parseSchedule("0 9 * * *", { timezone: "Asia/Tokyo", anchor: 0 });
    expect(new Date(tokyo.nextAfter(at("2026-01-15T00:00:00Z"))!).toISOString()).toBe("2026-01-16T00:00:00.000Z");
  });

  it("interval: due times are anchor + k·step, k ≥ 1 (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2e12 }), fc.integer({ min: 1, max: 86400 }), fc.integer({ min: -1e9, max: 1e9 }), (anchor, stepS, dt) => {
        const s = parseSchedule(`${stepS} seconds`, { timezone: "UTC", anchor });
        const step = stepS * 1000;
        const t = anchor + dt;
        const n = s.nextAfter(t)!;
        expect(n).toBeGreaterThan(t);
        expect((n - anchor) % step).toBe(0);
        expect(n - anchor).toBeGreaterThanOrEqual(step);
        if (t >= anchor + step) expect(n - t).toBeLessThanOrEqual(step);
        const b = s.between(t, t + 5 * step, 100);
        expect(b.every((x, i) => x >= t && x <= t + 5 * step && (i === 0 || x - b[i - 1] === step))).toBe(true);
        expect(s.latest(t, t + 5 * step, 3)).toEqual(b.slice(-3));
      }),
    );
  });

  it("spacing: the smallest gap between runs, as the Python client computes it", () => {
    const sp = (e: string) => parseSchedule(e, { timezone: "UTC", anchor: 0 }).minSpacingSeconds();
    expect(sp("*/15 * * * *")).toBe(900);
    expect(sp("0,5 0 1 1 *")).toBe(300);
    expect(sp("@hourly")).toBe(3600);
    expect(sp("2 days")).toBe(172800);
  });

  it("rejects what croniter would not parse", () => {
    for (const bad of ["", "* * * *", "0 0 * * * *", "@reboot", "0 0 ? * 1", "0 0 * * 1#2", "0 0 15W * *", "x y z a b", "0 0 30 2 *"])
      expect(() => parseSchedule(bad, { timezone: "UTC", anchor: 0 }), bad).toThrow(ScheduleError);
    expect(() => parseSchedule("0 9 * * MON-FRI", { timezone: "UTC", anchor: 0 })).not.toThrow();
  });
});

describe("misfire planning", () => {
  const hourly = parseSchedule("0 * * * *", { timezone: "UTC", anchor: 0 });
  const base = { schedule: hourly, once: false, nextRunAt: at("2026-01-15T11:00:00Z"), catchUpMax: 3 };
  const grace = 60_000;

  it("on time (within the grace): every policy fires the due time and moves to the next", () => {
    for (const policy of ["skip", "run_once", "catch_up"] as const) {
      const p = planDue({ ...base, policy }, at("2026-01-15T11:00:59Z"), grace);
      expect(isoOf(p.fire), policy).toEqual(["11:00"]);
      expect(p).toMatchObject({ skipped: 0, next: at("2026-01-15T12:00:00Z") });
    }
  });

  it("missed: skip fires none, run_once the latest, catch_up the latest catchUpMax; on-time ones always fire", () => {
    const now = at("2026-01-15T15:20:00Z"); // 11:00 … 15:00 missed
    expect(planDue({ ...base, policy: "skip" }, now, grace)).toMatchObject({ fire: [], skipped: 5, next: at("2026-01-15T16:00:00Z") });
    expect(isoOf(planDue({ ...base, policy: "run_once" }, now, grace).fire)).toEqual(["15:00"]);
    expect(planDue({ ...base, policy: "run_once" }, now, grace).skipped).toBe(4);
    expect(isoOf(planDue({ ...base, policy: "catch_up" }, now, grace).fire)).toEqual(["13:00", "14:00", "15:00"]);
    const justAfter = at("2026-01-15T15:00:30Z"); // 15:00 on time, 11:00 … 14:00 missed
    expect(isoOf(planDue({ ...base, policy: "skip" }, justAfter, grace).fire)).toEqual(["15:00"]);
    expect(isoOf(planDue({ ...base, policy: "run_once" }, justAfter, grace).fire)).toEqual(["15:00"]);
  });

  it("one-time tasks: fire (late too) and deactivate; skip drops a missed one", () => {
    const once = { ...base, once: true };
    expect(planDue({ ...once, policy: "run_once" }, at("2026-01-15T18:00:00Z"), grace)).toEqual({ fire: [base.nextRunAt], skipped: 0, next: null });
    expect(planDue({ ...once, policy: "skip" }, at("2026-01-15T18:00:00Z"), grace)).toEqual({ fire: [], skipped: 1, next: null });
    expect(planDue({ ...once, policy: "skip" }, at("2026-01-15T11:00:10Z"), grace)).toEqual({ fire: [base.nextRunAt], skipped: 0, next: null });
  });
});

describe("scheduler configuration", () => {
  const env = (e: Record<string, string>) => ({ MESHAGENT_DATA_DIR: mkdtempSync(join(tmpdir(), "cfg-")), MESHAGENT_MASTER_KEY: "a".repeat(64), ...e });
  it("defaults and validation", () => {
    expect(loadConfig(env({})).scheduler).toEqual({ enabled: true, minIntervalSeconds: 900, misfireGraceSeconds: 60, runRetentionDays: 90 });
    expect(loadConfig(env({ MESHAGENT_SCHEDULER_ENABLED: "false", MESHAGENT_SCHEDULE_MIN_INTERVAL: "1" })).scheduler).toMatchObject({
      enabled: false,
      minIntervalSeconds: 1,
    });
    expect(() => loadConfig(env({ MESHAGENT_SCHEDULE_MIN_INTERVAL: "0" }))).toThrow(ConfigError);
    expect(() => loadConfig(env({ MESHAGENT_SCHEDULE_MISFIRE_GRACE: "0" }))).toThrow(ConfigError);
    expect(() => loadConfig(env({ MESHAGENT_SCHEDULER_ENABLED: "maybe" }))).toThrow(/MESHAGENT_SCHEDULER_ENABLED/);
  });
});
