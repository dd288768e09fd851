import { badRequest } from "../core/errors.js";
import { bool, check, obj, str, withFields } from "../core/strict.js";
import { checkQueueName } from "../queues/service.js";
import { ContainerSpecSchema as ContainerSpecBase } from "../services/spec.js";
import { canonicalTimeZone, MISFIRE_POLICIES, type MisfirePolicy } from "./schedule.js";

/**
 * ScheduledTaskSpec of wire-contract §7.5, validated the way the Python client's pydantic models do (every model
 * `extra="forbid"`), so whatever we store and echo back also validates in the strict clients. `null` counts as absent.
 */
export interface QueueTarget {
  name: string;
  payload: Record<string, unknown>;
  storage_write_path?: string;
}

export interface ScheduledTaskSpec {
  version: "v1";
  kind: "ScheduledTask";
  metadata: { name?: string; annotations: Record<string, string> };
  schedule: string;
  active: boolean;
  once: boolean;
  queue?: QueueTarget;
  container?: Record<string, unknown>;
}

/** Our extensions, kept in spec.metadata.annotations so the strict `spec` model has no unknown key. */
export const ANNOTATION_TIMEZONE = "meshagent.schedule.timezone";
export const ANNOTATION_MISFIRE_POLICY = "meshagent.schedule.misfire-policy";
export const ANNOTATION_CATCH_UP_MAX = "meshagent.schedule.catch-up-max";
export const SETTINGS_ANNOTATIONS = [ANNOTATION_TIMEZONE, ANNOTATION_MISFIRE_POLICY, ANNOTATION_CATCH_UP_MAX];

export const DEFAULT_TIMEZONE = "UTC";
export const DEFAULT_MISFIRE_POLICY: MisfirePolicy = "run_once";
export const DEFAULT_CATCH_UP_MAX = 10;
export const MAX_CATCH_UP = 1000;
export const MAX_NAME = 256;
export const MAX_STORAGE_PATH = 1024;

// The strict validator (src/core/strict.ts): unknown keys are refused, nulls dropped, every error names its path.
// ContainerSpec is the services area's (wire-contract §7.4), with the image required to be non-empty here.
const ContainerSpecSchema = withFields(ContainerSpecBase, { image: { t: "string", nonEmpty: true } });
const SpecSchema = obj(
  {
    version: { t: "enum", values: ["v1"] },
    kind: { t: "enum", values: ["ScheduledTask"] },
    metadata: obj({ name: str, annotations: { t: "strings" } }),
    schedule: str,
    active: bool,
    once: bool,
    queue: obj({ name: str, payload: { t: "json" }, storage_write_path: str }, ["name"]),
    container: ContainerSpecSchema,
  },
  ["schedule"],
);

/** A room-storage path: relative, `/`-separated, no `.`/`..` segments or control characters. Returns its segments. */
export function storagePathSegments(path: string, field: string): string[] {
  if (path.length > MAX_STORAGE_PATH) throw badRequest(`${field} must be at most ${MAX_STORAGE_PATH} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\\]/.test(path)) throw badRequest(`${field} must not contain control characters or backslashes`);
  const segs = path.split("/").filter((s) => s !== "");
  if (segs.length === 0) throw badRequest(`${field} must name a folder of the room's storage (e.g. "scheduled/outbox")`);
  for (const s of segs) if (s === "." || s === "..") throw badRequest(`${field} must not contain "." or ".." segments`);
  return segs;
}

/**
 * Validate a ScheduledTaskSpec and normalize it (defaults filled in, nulls dropped). `label` renames spec paths in
 * messages (the flat form reports `queue_name` rather than `spec.queue.name`).
 */
export function parseSpec(raw: unknown, label: (path: string) => string = (p) => p): ScheduledTaskSpec {
  let v: Record<string, unknown>;
  try {
    v = check(SpecSchema, raw, "spec") as Record<string, unknown>;
  } catch (err) {
    throw relabel(err, label);
  }
  const meta = (v.metadata as { name?: string; annotations?: Record<string, string> } | undefined) ?? {};
  const where = (p: string) => label(p);
  if (typeof v.schedule === "string" && v.schedule.trim() === "") throw badRequest(`${where("spec.schedule")} must not be empty`);
  if (meta.name !== undefined) {
    if (meta.name.trim() === "") throw badRequest(`${where("spec.metadata.name")} must not be empty`);
    if (meta.name.length > MAX_NAME) throw badRequest(`${where("spec.metadata.name")} must be at most ${MAX_NAME} characters`);
  }
  const queue = v.queue as QueueTarget | undefined;
  const container = v.container as Record<string, unknown> | undefined;
  if (!queue === !container) throw badRequest(`${where("spec")} needs exactly one target: queue or container`);
  const spec: ScheduledTaskSpec = {
    version: "v1",
    kind: "ScheduledTask",
    metadata: { ...(meta.name !== undefined ? { name: meta.name } : {}), annotations: meta.annotations ?? {} },
    schedule: v.schedule as string,
    active: (v.active as boolean | undefined) ?? true,
    once: (v.once as boolean | undefined) ?? false,
  };
  if (queue) {
    try {
      checkQueueName(queue.name, "spec.queue.name");
    } catch (err) {
      throw relabel(err, label);
    }
    spec.queue = { name: queue.name, payload: queue.payload ?? {} };
    if (queue.storage_write_path !== undefined) {
      storagePathSegments(queue.storage_write_path, where("spec.queue.storage_write_path"));
      spec.queue.storage_write_path = queue.storage_write_path;
    }
  } else spec.container = { ...container, private: container!.private ?? true };
  return spec;
}

function relabel(err: unknown, label: (p: string) => string): unknown {
  if (err instanceof Error && "status" in err) {
    const m = /^(spec(?:\.[A-Za-z_]+)*)(.*)$/s.exec(err.message);
    if (m) {
      // Find the longest prefix the caller renames.
      const parts = m[1].split(".");
      for (let i = parts.length; i > 0; i--) {
        const p = parts.slice(0, i).join(".");
        const l = label(p);
        if (l !== p) {
          err.message = l + (i < parts.length ? "." + parts.slice(i).join(".") : "") + m[2];
          break;
        }
      }
    }
  }
  return err;
}

export interface TaskSettings {
  timezone: string;
  misfirePolicy: MisfirePolicy;
  catchUpMax: number;
}

export interface SettingsInput {
  timezone?: string | null;
  misfire_policy?: string | null;
  catch_up_max?: number | null;
}

function checkTimeZone(tz: unknown, field: string): string {
  if (typeof tz !== "string" || tz.trim() === "") throw badRequest(`${field} must be an IANA time zone name such as "Europe/Berlin"`, "invalid_timezone");
  const c = canonicalTimeZone(tz.trim());
  if (!c) throw badRequest(`${field}: "${tz}" is not a known IANA time zone (e.g. "UTC", "America/New_York")`, "invalid_timezone");
  return c;
}

function checkPolicy(p: unknown, field: string): MisfirePolicy {
  if (typeof p !== "string" || !MISFIRE_POLICIES.includes(p as MisfirePolicy))
    throw badRequest(`${field} must be one of ${MISFIRE_POLICIES.join(", ")}`, "invalid_misfire_policy");
  return p as MisfirePolicy;
}

function checkCatchUpMax(n: unknown, field: string): number {
  const v = typeof n === "string" && /^\d+$/.test(n.trim()) ? Number(n) : n;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > MAX_CATCH_UP) throw badRequest(`${field} must be an integer from 1 to ${MAX_CATCH_UP}`);
  return v;
}

/**
 * The task's time zone, misfire policy and catch-up bound. They live in spec.metadata.annotations; the top-level
 * request fields `timezone`, `misfire_policy` and `catch_up_max` win and are written into the annotations, so the
 * stored spec always carries them (a client that reads a task and PUTs its spec back keeps them).
 */
export function resolveSettings(spec: ScheduledTaskSpec, input: SettingsInput, label: (p: string) => string = (p) => p): TaskSettings {
  const ann = spec.metadata.annotations;
  const annField = (k: string) => `${label("spec.metadata.annotations")}["${k}"]`;
  const timezone =
    input.timezone != null
      ? checkTimeZone(input.timezone, "timezone")
      : ann[ANNOTATION_TIMEZONE] !== undefined
        ? checkTimeZone(ann[ANNOTATION_TIMEZONE], annField(ANNOTATION_TIMEZONE))
        : DEFAULT_TIMEZONE;
  const misfirePolicy =
    input.misfire_policy != null
      ? checkPolicy(input.misfire_policy, "misfire_policy")
      : ann[ANNOTATION_MISFIRE_POLICY] !== undefined
        ? checkPolicy(ann[ANNOTATION_MISFIRE_POLICY], annField(ANNOTATION_MISFIRE_POLICY))
        : DEFAULT_MISFIRE_POLICY;
  const catchUpMax =
    input.catch_up_max != null
      ? checkCatchUpMax(input.catch_up_max, "catch_up_max")
      : ann[ANNOTATION_CATCH_UP_MAX] !== undefined
        ? checkCatchUpMax(ann[ANNOTATION_CATCH_UP_MAX], annField(ANNOTATION_CATCH_UP_MAX))
        : DEFAULT_CATCH_UP_MAX;
  if (input.timezone != null) ann[ANNOTATION_TIMEZONE] = timezone;
  if (input.misfire_policy != null) ann[ANNOTATION_MISFIRE_POLICY] = misfirePolicy;
  if (input.catch_up_max != null) ann[ANNOTATION_CATCH_UP_MAX] = String(catchUpMax);
  return { timezone, misfirePolicy, catchUpMax };
}

/** Flat (legacy ≤ 0.39.3) field names for spec paths, for error messages. */
export const flatLabel = (p: string) =>
  (
    ({
      "spec.schedule": "schedule",
      "spec.active": "active",
      "spec.once": "once",
      "spec.queue.name": "queue_name",
      "spec.queue.payload": "payload",
      "spec.queue.storage_write_path": "storage_write_path",
      "spec.metadata.annotations": "annotations",
      "spec.queue": "queue_name",
      spec: "body",
    }) as Record<string, string>
  )[p] ?? p;
