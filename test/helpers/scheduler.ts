import { expect } from "vitest";

/**
 * The Python client's models for scheduled tasks (wire-contract §7.5), as checks: ScheduledTaskSpec and ContainerSpec
 * (and their sub-models) forbid unknown keys; ScheduledTask and ScheduledTaskRun ignore extras but need their
 * required keys with the right types. A response that passes these parses in meshagent-api 0.39.9.
 */
const SPEC_KEYS = ["version", "kind", "metadata", "schedule", "active", "once", "queue", "container"];
const METADATA_KEYS = ["name", "annotations"];
const QUEUE_KEYS = ["name", "payload", "storage_write_path"];
const CONTAINER_KEYS = ["image", "command", "working_dir", "environment", "secrets", "pull_secret", "storage", "on_demand", "writable_root_fs", "private"];
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

const keysWithin = (o: object, allowed: string[], what: string) =>
  expect(
    Object.keys(o).filter((k) => !allowed.includes(k)),
    `unknown keys in ${what}`,
  ).toEqual([]);

export function expectStrictSpec(spec: any) {
  expect(typeof spec).toBe("object");
  keysWithin(spec, SPEC_KEYS, "ScheduledTaskSpec");
  expect(spec.version ?? "v1").toBe("v1");
  expect(spec.kind ?? "ScheduledTask").toBe("ScheduledTask");
  if (spec.metadata !== undefined) {
    keysWithin(spec.metadata, METADATA_KEYS, "ScheduledTaskMetadata");
    for (const v of Object.values(spec.metadata.annotations ?? {})) expect(typeof v).toBe("string");
  }
  expect(typeof spec.schedule).toBe("string");
  expect(typeof (spec.active ?? true)).toBe("boolean");
  expect(typeof (spec.once ?? false)).toBe("boolean");
  expect(spec.queue == null).not.toBe(spec.container == null); // exactly one target
  if (spec.queue != null) {
    keysWithin(spec.queue, QUEUE_KEYS, "ScheduledTaskQueueSpec");
    expect(typeof spec.queue.name).toBe("string");
    expect(spec.queue.name.trim()).not.toBe("");
    expect(typeof (spec.queue.payload ?? {})).toBe("object");
  }
  if (spec.container != null) {
    keysWithin(spec.container, CONTAINER_KEYS, "ContainerSpec");
    expect(typeof spec.container.image).toBe("string");
  }
}

const optStr = (v: unknown) => expect(v === null || v === undefined || typeof v === "string").toBe(true);
const optIso = (v: unknown) => {
  if (v !== null && v !== undefined) expect(v).toMatch(ISO);
};

/** ScheduledTask (0.39.9) and the legacy flat ScheduledTask (≤ 0.39.3) both parse this. */
export function expectPythonTask(t: any) {
  for (const k of ["id", "project_id", "room_id", "room_name", "schedule"]) expect(typeof t[k], k).toBe("string");
  for (const k of ["active", "once"]) expect(typeof t[k], k).toBe("boolean");
  expect(typeof t.annotations).toBe("object");
  for (const v of Object.values(t.annotations)) expect(typeof v).toBe("string");
  expect(typeof t.payload).toBe("object");
  expect(t.payload).not.toBeNull();
  optStr(t.queue_name);
  optStr(t.storage_write_path);
  optStr(t.last_status);
  optStr(t.last_return_message);
  if (t.last_run_id !== null && t.last_run_id !== undefined) expect(Number.isInteger(t.last_run_id)).toBe(true);
  optIso(t.last_start_time);
  optIso(t.last_end_time);
  expectStrictSpec(t.spec);
  // the flat mirror agrees with the spec
  expect(t.schedule).toBe(t.spec.schedule);
  expect(t.active).toBe(t.spec.active);
  expect(t.once).toBe(t.spec.once);
  expect(t.annotations).toEqual(t.spec.metadata?.annotations ?? {});
  expect(t.queue_name).toBe(t.spec.queue?.name ?? null);
  if (t.spec.queue) expect(t.payload).toEqual(t.spec.queue.payload ?? {});
}

export function expectPythonRun(r: any) {
  for (const k of ["id", "task_id", "project_id", "room_id", "room_name"]) expect(typeof r[k], k).toBe("string");
  expect(r.id).toMatch(/^\d+$/); // parses as str and as int
  expect(["queue", "container"]).toContain(r.target);
  expect(["pending", "submitting", "retrying", "submitted", "failed"]).toContain(r.status);
  expect(Number.isInteger(r.attempt_count)).toBe(true);
  expect(r.scheduled_time).toMatch(ISO);
  for (const k of ["timeout_at", "started_at", "lease_expires_at", "completed_at"]) optIso(r[k]);
  optStr(r.error);
  optStr(r.queued_message_id);
}

/** The body of client_test.py's create_scheduled_task (wire-contract §6.7), with overrides. */
export function pySpec(
  over: { schedule?: string; queue?: Record<string, unknown>; annotations?: Record<string, string>; active?: boolean; once?: boolean; name?: string } = {},
) {
  return {
    version: "v1",
    kind: "ScheduledTask",
    metadata: { ...(over.name ? { name: over.name } : {}), annotations: over.annotations ?? {} },
    schedule: over.schedule ?? "0 * * * *",
    active: over.active ?? true,
    once: over.once ?? false,
    queue: over.queue ?? { name: "jobs", payload: {}, storage_write_path: "scheduled/outbox" },
  };
}
