/**
 * Pure helpers of the webhooks, mailboxes, scheduled tasks, sessions and billing pages: form → request body (with the
 * messages people see when a value is wrong), table rows, chart series, and a browser-side schedule preview.
 */
import type { ScheduledTask, ScheduledTaskSpec, UsageEntry, WebhookDelivery } from "@meshagent-oss/sdk";

// ── Access ────────────────────────────────────────────────────────────────────────────────────────────────────────

/** Why a page shows nothing to this role (the API refuses it), and what to do. */
export function accessNote(need: "admin" | "developer", what: string): string {
  return need === "admin"
    ? `Only project administrators can see and manage ${what}. Ask an administrator of this project if you need access.`
    : `Only project developers and administrators can see and manage ${what}. Ask an administrator of this project to make you a developer.`;
}

// ── Shared parsing ────────────────────────────────────────────────────────────────────────────────────────────────

/** A JSON object typed in a text area; "" is `empty`. Throws a message people can act on. */
export function parseJsonObject(text: string, what: string): Record<string, unknown> | null {
  const t = text.trim();
  if (!t) return null;
  let v: unknown;
  try {
    v = JSON.parse(t);
  } catch (e) {
    throw new Error(`${what} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) throw new Error(`${what} must be a JSON object, like {"key": "value"}`);
  return v as Record<string, unknown>;
}

/** `key=value` lines (blank lines ignored) → annotations. */
export function parseAnnotations(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  text.split("\n").forEach((line, i) => {
    const l = line.trim();
    if (!l) return;
    const eq = l.indexOf("=");
    if (eq <= 0) throw new Error(`Annotations, line ${i + 1}: write key=value`);
    out[l.slice(0, eq).trim()] = l.slice(eq + 1).trim();
  });
  return out;
}

export const formatAnnotations = (a: Record<string, string> | null | undefined) =>
  Object.entries(a ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join("\n");

/** One line of at most `max` characters (an ellipsis when cut). */
export function excerpt(text: string | null | undefined, max = 120): string {
  if (!text) return "";
  const one = text.replace(/\s+/g, " ").trim();
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}

function httpUrl(raw: string, what: string): string {
  const v = raw.trim();
  if (!v) throw new Error(`${what} is required`);
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new Error(`${what} must be an absolute URL, like https://example.com/hooks`);
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") throw new Error(`${what} must start with https:// or http://`);
  return v;
}

// ── Webhooks ──────────────────────────────────────────────────────────────────────────────────────────────────────

export const ALL_EVENTS = "*";

export interface WebhookForm {
  name: string;
  url: string;
  description: string;
  /** Every event ("*"), or the ones in `events`. */
  all: boolean;
  events: string[];
  /** "" (a plain delivery) or "call". */
  action: string;
  payload: string;
  secret: string;
  enabled: boolean;
}

export const emptyWebhookForm = (): WebhookForm => ({
  name: "",
  url: "",
  description: "",
  all: true,
  events: [],
  action: "",
  payload: "",
  secret: "",
  enabled: true,
});

/** A name when none was typed: the URL's host ("hooks.example.com"). */
export function defaultWebhookName(url: string): string {
  try {
    return new URL(url.trim()).host || "webhook";
  } catch {
    return "webhook";
  }
}

export function webhookEvents(f: Pick<WebhookForm, "all" | "events">): string[] {
  if (f.all) return [ALL_EVENTS];
  if (f.events.length === 0) throw new Error("Pick at least one event, or All events");
  return [...new Set(f.events)];
}

/** The create_webhook body of the form (the secret only when one was typed: the server generates one otherwise). */
export function webhookCreateBody(f: WebhookForm) {
  const url = httpUrl(f.url, "URL");
  if (f.secret && f.secret.length < 8) throw new Error("The signing secret must be at least 8 characters (or empty to generate one)");
  const payload = parseJsonObject(f.payload, "Extra payload");
  return {
    name: f.name.trim() || defaultWebhookName(url),
    url,
    events: webhookEvents(f),
    description: f.description.trim(),
    enabled: f.enabled,
    ...(f.action ? { action: f.action } : {}),
    ...(payload ? { payload } : {}),
    ...(f.secret ? { secret: f.secret } : {}),
  };
}

/** The update_webhook body: every field set (an empty payload clears it; the secret is changed elsewhere). */
export function webhookUpdateBody(f: WebhookForm) {
  const url = httpUrl(f.url, "URL");
  const payload = parseJsonObject(f.payload, "Extra payload");
  return {
    name: f.name.trim() || defaultWebhookName(url),
    url,
    events: webhookEvents(f),
    description: f.description.trim(),
    enabled: f.enabled,
    action: f.action,
    payload: payload ?? "",
  };
}

export function webhookFormOf(w: {
  name: string;
  url: string;
  description: string;
  events: string[];
  action: string | null;
  payload: unknown;
  enabled: boolean;
}): WebhookForm {
  const all = w.events.includes(ALL_EVENTS);
  return {
    name: w.name,
    url: w.url,
    description: w.description,
    all,
    events: all ? [] : w.events,
    action: w.action ?? "",
    payload: w.payload && typeof w.payload === "object" ? JSON.stringify(w.payload, null, 2) : "",
    secret: "",
    enabled: w.enabled,
  };
}

/** The event catalog grouped by its first segment ("room", "storage", …), for the picker. */
export function groupEvents<E extends { event: string }>(events: E[]): { group: string; events: E[] }[] {
  const groups = new Map<string, E[]>();
  for (const e of [...events].sort((a, b) => a.event.localeCompare(b.event))) {
    const g = e.event.split(".")[0];
    groups.set(g, [...(groups.get(g) ?? []), e]);
  }
  return [...groups].map(([group, evs]) => ({ group, events: evs }));
}

export type Tone = "ok" | "bad" | "";

export interface DeliveryRow {
  id: string;
  event: string;
  status: string;
  tone: Tone;
  /** The last attempt's HTTP status, or "—" when there was no answer (yet). */
  httpStatus: string;
  attempts: number;
  /** The last attempt's start, else when the delivery was queued (ISO). */
  time: string;
  /** The response's first characters, else the error. */
  response: string;
}

export function deliveryTone(status: string): Tone {
  return status === "delivered" ? "ok" : status === "failed" || status === "held" ? "bad" : "";
}

/** A delivery as a table row of the webhook page. */
export function deliveryRow(d: WebhookDelivery): DeliveryRow {
  const last = d.history.length ? d.history.reduce((a, b) => (b.attempt > a.attempt ? b : a)) : null;
  const code = last ? last.status_code : d.last_status_code;
  return {
    id: d.id,
    event: d.event,
    status: d.status,
    tone: deliveryTone(d.status),
    httpStatus: code === null || code === undefined ? "—" : String(code),
    attempts: d.attempts,
    time: last?.started_at ?? d.created_at,
    response: excerpt(last?.response_excerpt || last?.error || d.last_error || ""),
  };
}

// ── Mailboxes ─────────────────────────────────────────────────────────────────────────────────────────────────────

export interface MailboxForm {
  address: string;
  room: string;
  queue: string;
  public: boolean;
  annotations: string;
}

export function mailboxBody(f: MailboxForm) {
  const address = f.address.trim();
  if (!address) throw new Error("Address is required");
  if (!/^[^\s@]+@[^\s@]+$/.test(address)) throw new Error("Address must be an email address (local@domain), like support@example.com");
  const room = f.room.trim();
  if (!room) throw new Error("Room is required: the room whose queue receives the mail");
  const queue = f.queue.trim();
  if (!queue) throw new Error("Queue is required");
  return { address, room, queue, options: { public: f.public, annotations: parseAnnotations(f.annotations) } };
}

// ── Scheduled tasks ───────────────────────────────────────────────────────────────────────────────────────────────

export interface TaskForm {
  room: string;
  name: string;
  schedule: string;
  timezone: string;
  target: "queue" | "container";
  queue: string;
  payload: string;
  storagePath: string;
  image: string;
  command: string;
  active: boolean;
  once: boolean;
  misfirePolicy: string;
  catchUpMax: string;
}

export const MISFIRE_POLICIES = [
  { value: "run_once", label: "Run once for everything missed" },
  { value: "skip", label: "Skip what was missed" },
  { value: "catch_up", label: "Catch up every missed run" },
];

export const emptyTaskForm = (): TaskForm => ({
  room: "",
  name: "",
  schedule: "",
  timezone: "UTC",
  target: "queue",
  queue: "",
  payload: "",
  storagePath: "",
  image: "",
  command: "",
  active: true,
  once: false,
  misfirePolicy: "run_once",
  catchUpMax: "10",
});

const SETTINGS_ANNOTATIONS = ["meshagent.schedule.timezone", "meshagent.schedule.misfire-policy", "meshagent.schedule.catch-up-max"];

/**
 * The form as create_scheduled_task's arguments: the room, the spec, and the settings. `base` keeps the annotations
 * and container keys of the task being edited (the form does not show them).
 */
export function taskRequest(f: TaskForm, base?: ScheduledTaskSpec) {
  const room = f.room.trim();
  if (!room) throw new Error("Room is required");
  const schedule = f.schedule.trim();
  if (!schedule) throw new Error('Schedule is required: a cron expression like "0 * * * *" or an interval like "30 minutes"');
  const timezone = f.timezone.trim() || "UTC";
  if (!knownTimeZone(timezone)) throw new Error(`Time zone "${timezone}" is not a known IANA time zone (e.g. UTC, Europe/Berlin)`);
  const catchUp = f.catchUpMax.trim() === "" ? null : Number(f.catchUpMax);
  if (catchUp !== null && (!Number.isInteger(catchUp) || catchUp < 1 || catchUp > 1000))
    throw new Error("Catch-up limit must be a whole number from 1 to 1000");
  const annotations = Object.fromEntries(Object.entries(base?.metadata.annotations ?? {}).filter(([k]) => !SETTINGS_ANNOTATIONS.includes(k)));
  const spec: ScheduledTaskSpec = {
    version: "v1",
    kind: "ScheduledTask",
    metadata: { ...(f.name.trim() ? { name: f.name.trim() } : {}), annotations },
    schedule,
    active: f.active,
    once: f.once,
  };
  if (f.target === "queue") {
    const name = f.queue.trim();
    if (!name) throw new Error("Queue is required for a queue task");
    const payload = parseJsonObject(f.payload, "Payload") ?? {};
    spec.queue = { name, payload, ...(f.storagePath.trim() ? { storage_write_path: f.storagePath.trim() } : {}) };
  } else {
    const image = f.image.trim();
    if (!image) throw new Error("Image is required for a container task");
    const { image: _i, command: _c, ...rest } = (base?.container ?? {}) as Record<string, unknown>;
    spec.container = { ...rest, image, ...(f.command.trim() ? { command: f.command.trim() } : {}) };
  }
  return { room, spec, options: { timezone, misfire_policy: f.misfirePolicy, ...(catchUp !== null ? { catch_up_max: catchUp } : {}) } };
}

export function taskFormOf(t: ScheduledTask): TaskForm {
  const c = (t.spec.container ?? null) as { image?: string; command?: string } | null;
  return {
    room: t.room_name,
    name: t.spec.metadata.name ?? "",
    schedule: t.schedule,
    timezone: t.timezone,
    target: t.spec.queue ? "queue" : "container",
    queue: t.spec.queue?.name ?? "",
    payload: t.spec.queue && Object.keys(t.spec.queue.payload ?? {}).length ? JSON.stringify(t.spec.queue.payload, null, 2) : "",
    storagePath: t.spec.queue?.storage_write_path ?? "",
    image: c?.image ?? "",
    command: c?.command ?? "",
    active: t.active,
    once: t.once,
    misfirePolicy: t.misfire_policy,
    catchUpMax: String(t.catch_up_max),
  };
}

/** What a task does, in a few words. */
export function taskTarget(t: Pick<ScheduledTask, "queue_name" | "container">): string {
  if (t.queue_name) return `queue ${t.queue_name}`;
  const image = (t.container as { image?: string } | null)?.image;
  return image ? `container ${image}` : "—";
}

export function knownTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

const INTERVAL_RE = /^\s*(\d+)\s+(second|seconds|minute|minutes|hour|hours|day|days)\s*$/i;
const UNIT_MS: Record<string, number> = { second: 1000, minute: 60_000, hour: 3_600_000, day: 86_400_000 };
const NICKNAMES: Record<string, string> = {
  "@yearly": "0 0 1 1 *",
  "@annually": "0 0 1 1 *",
  "@monthly": "0 0 1 * *",
  "@weekly": "0 0 * * 0",
  "@daily": "0 0 * * *",
  "@hourly": "0 * * * *",
};
const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

function cronField(text: string, lo: number, hi: number, what: string, names?: string[], nameBase = 0): Set<number> {
  const out = new Set<number>();
  const num = (s: string) => {
    const n = names?.indexOf(s.toLowerCase()) ?? -1;
    if (n >= 0) return n + nameBase;
    if (!/^\d+$/.test(s)) throw new Error(`${what}: "${s}" is not a number`);
    return Number(s);
  };
  for (const part of text.split(",")) {
    const [range, stepText] = part.split("/");
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!Number.isInteger(step) || step < 1) throw new Error(`${what}: the step in "${part}" must be a positive number`);
    let a: number, b: number;
    if (range === "*") [a, b] = [lo, hi];
    else if (range.includes("-")) {
      const [x, y] = range.split("-");
      [a, b] = [num(x), num(y)];
    } else {
      a = num(range);
      b = stepText === undefined ? a : hi;
    }
    if (a < lo || b > hi || a > b) throw new Error(`${what}: "${part}" is out of range (${lo}–${hi})`);
    for (let v = a; v <= b; v += step) out.add(v);
  }
  return out;
}

interface Wall {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  weekday: number;
}

const walls = new Map<string, Intl.DateTimeFormat>();
/** The wall-clock time of an instant in a time zone. */
function wallOf(t: number, tz: string): Wall {
  if (tz === "UTC") {
    const d = new Date(t);
    return {
      year: d.getUTCFullYear(),
      month: d.getUTCMonth() + 1,
      day: d.getUTCDate(),
      hour: d.getUTCHours(),
      minute: d.getUTCMinutes(),
      weekday: d.getUTCDay(),
    };
  }
  let f = walls.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone: tz,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      weekday: "short",
    });
    walls.set(tz, f);
  }
  const p: Record<string, string> = {};
  for (const x of f.formatToParts(t)) p[x.type] = x.value;
  return {
    year: Number(p.year),
    month: Number(p.month),
    day: Number(p.day),
    hour: Number(p.hour) % 24,
    minute: Number(p.minute),
    weekday: DAYS.indexOf(p.weekday.slice(0, 3).toLowerCase()),
  };
}

/**
 * The next `n` due times (epoch ms) of a schedule after `from`, computed here in the browser for the create form (the
 * API previews saved tasks only). Cron: 5 fields (minute hour day-of-month month day-of-week, names, ranges, steps,
 * lists; day-of-month and day-of-week OR-ed when both are set, as cron does) or a nickname, in `timezone`. Intervals
 * count from `from` (a new task's start). The server has the last word: it validates again when the task is saved.
 */
export function previewSchedule(expr: string, timezone: string, from: number, n = 5, once = false): { times: number[] } | { error: string } {
  try {
    const s = expr.trim();
    if (!s) return { error: "Type a schedule to see when it runs" };
    if (!knownTimeZone(timezone)) return { error: `"${timezone}" is not a known time zone` };
    const count = once ? 1 : n;
    const m = INTERVAL_RE.exec(s);
    if (m) {
      const step = Number(m[1]) * UNIT_MS[m[2].toLowerCase().replace(/s$/, "")];
      if (!(step > 0)) return { error: "The interval must be positive" };
      return { times: Array.from({ length: count }, (_, i) => from + (i + 1) * step) };
    }
    const fields = (s.startsWith("@") ? (NICKNAMES[s.toLowerCase()] ?? "") : s).split(/\s+/);
    if (s.startsWith("@") && fields.length !== 5) return { error: `Unknown nickname; known: ${Object.keys(NICKNAMES).join(", ")}` };
    if (fields.length !== 5) return { error: 'Not a 5-field cron expression (minute hour day-of-month month day-of-week) nor an interval like "30 minutes"' };
    if (/[?#LW]/i.test(fields.join(" ").replace(/[a-z]{3}/gi, "")))
      return { error: "This expression cannot be previewed here; the server checks it when you save" };
    const minute = cronField(fields[0], 0, 59, "minute");
    const hour = cronField(fields[1], 0, 23, "hour");
    const dom = cronField(fields[2], 1, 31, "day of month");
    const month = cronField(fields[3], 1, 12, "month", MONTHS, 1);
    const dowRaw = cronField(fields[4], 0, 7, "day of week", DAYS);
    const dow = new Set([...dowRaw].map((d) => d % 7));
    const domStar = fields[2].startsWith("*");
    const dowStar = fields[4].startsWith("*");
    const dayOk = (w: Wall) => {
      const a = dom.has(w.day);
      const b = dow.has(w.weekday);
      return domStar || dowStar ? a && b : a || b;
    };
    const minutes = [...minute].sort((a, b) => a - b);
    const times: number[] = [];
    let t = Math.floor(from / 60_000) * 60_000 + 60_000;
    // Day steps for a few years at most: a date that never comes (Feb 30) ends the search.
    for (let i = 0; i < 200_000 && times.length < count; i++) {
      const w = wallOf(t, timezone);
      if (w.year > new Date(from).getUTCFullYear() + 8) break;
      if (!month.has(w.month) || !dayOk(w)) t += ((24 - w.hour) * 60 - w.minute) * 60_000;
      else if (!hour.has(w.hour)) t += (60 - w.minute) * 60_000;
      else {
        const next = minutes.find((x) => x >= w.minute);
        if (next === undefined) t += (60 - w.minute) * 60_000;
        else if (next > w.minute) t += (next - w.minute) * 60_000;
        else {
          times.push(t);
          t += 60_000;
        }
      }
    }
    if (!times.length) return { error: "This schedule never comes due" };
    return { times };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

// ── Sessions ──────────────────────────────────────────────────────────────────────────────────────────────────────

/** Participants by role, in words: "2 users, 1 agent". */
export function participantsText(p: Record<string, number> | null | undefined): string {
  const parts = Object.entries(p ?? {})
    .filter(([, n]) => n > 0)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([role, n]) => `${n} ${role}${n === 1 || role.endsWith("s") ? "" : "s"}`);
  return parts.length ? parts.join(", ") : "none";
}

/** How long a session ran (or has run so far), in words. */
export function elapsed(fromIso: string, toIso: string | null | undefined, now = Date.now()): string {
  const a = Date.parse(fromIso);
  const b = toIso ? Date.parse(toIso) : now;
  if (!Number.isFinite(a) || !Number.isFinite(b)) return "—";
  const s = Math.max(0, Math.round((b - a) / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

// ── Chart series ──────────────────────────────────────────────────────────────────────────────────────────────────

export interface Series {
  label: string;
  values: (number | null)[];
}
/** Series on one shared x axis (seconds since the epoch), as the chart draws them. */
export interface ChartData {
  x: number[];
  series: Series[];
}

/**
 * Points → aligned series: every distinct x (ascending), one series per key (sorted by label); several points of a
 * key at one x are summed (`sum`) or the last wins (`last`); a missing point is `fill`.
 */
export function alignSeries(points: { x: number; key: string; value: number }[], opts: { combine?: "sum" | "last"; fill?: number | null } = {}): ChartData {
  const combine = opts.combine ?? "sum";
  const fill = opts.fill === undefined ? null : opts.fill;
  const xs = [...new Set(points.map((p) => p.x))].sort((a, b) => a - b);
  const at = new Map(xs.map((x, i) => [x, i]));
  const keys = [...new Set(points.map((p) => p.key))].sort((a, b) => a.localeCompare(b));
  const vals = new Map(keys.map((k) => [k, xs.map(() => null as number | null)]));
  for (const p of points) {
    const arr = vals.get(p.key)!;
    const i = at.get(p.x)!;
    arr[i] = combine === "sum" && arr[i] !== null ? arr[i]! + p.value : p.value;
  }
  return { x: xs, series: keys.map((k) => ({ label: k, values: vals.get(k)!.map((v) => (v === null ? fill : v)) })) };
}

const seconds = (iso: string) => Math.floor(Date.parse(iso) / 1000);

export interface UsageChart extends ChartData {
  /** What the y axis counts: the unit (tokens, seconds, …) or the currency of a cost report. */
  unit: string;
}

/**
 * get_usage entries as charts: one chart per unit (a y axis means one thing), one series per usage type, one point
 * per interval (an interval with no usage of a type is 0). `measure` "amount" charts the cost report's `amount`.
 */
export function usageCharts(entries: UsageEntry[], measure: "quantity" | "amount" = "quantity"): UsageChart[] {
  const byUnit = new Map<string, UsageEntry[]>();
  for (const e of entries) {
    const unit = (measure === "amount" ? e.currency?.toUpperCase() : e.unit) || "units";
    byUnit.set(unit, [...(byUnit.get(unit) ?? []), e]);
  }
  return [...byUnit]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([unit, list]) => ({
      unit,
      ...alignSeries(
        list.map((e) => ({ x: seconds(e.start), key: e.usage_type, value: Number((measure === "amount" ? e.amount : e.quantity) ?? 0) })),
        { combine: "sum", fill: 0 },
      ),
    }));
}

/** Totals per usage type and unit over the whole range, largest first. */
export function usageTotals(entries: UsageEntry[], measure: "quantity" | "amount" = "quantity"): { type: string; unit: string; total: number }[] {
  const m = new Map<string, { type: string; unit: string; total: number }>();
  for (const e of entries) {
    const unit = (measure === "amount" ? e.currency?.toUpperCase() : e.unit) || "units";
    const k = `${e.usage_type}\u0000${unit}`;
    const row = m.get(k) ?? { type: e.usage_type, unit, total: 0 };
    row.total += Number((measure === "amount" ? e.amount : e.quantity) ?? 0);
    m.set(k, row);
  }
  return [...m.values()].sort((a, b) => b.total - a.total || a.type.localeCompare(b.type));
}

export interface MetricChart extends ChartData {
  name: string;
  unit: string;
  kind: string;
}

/** Session metric points as charts: one chart per metric name, one series per participant (or the server). */
export function metricCharts(points: Record<string, unknown>[]): MetricChart[] {
  const byName = new Map<string, Record<string, unknown>[]>();
  for (const p of points) {
    if (typeof p.name !== "string" || typeof p.timestamp !== "string" || !Number.isFinite(Number(p.value))) continue;
    byName.set(p.name, [...(byName.get(p.name) ?? []), p]);
  }
  return [...byName]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, list]) => ({
      name,
      // OpenTelemetry writes a count's unit as an annotation in braces ("{participant}").
      unit: String(list.find((p) => p.unit)?.unit ?? "").replace(/^\{(.*)\}$/, "$1"),
      kind: String(list[0].kind ?? ""),
      ...alignSeries(
        list.map((p) => ({
          x: seconds(p.timestamp as string),
          key: typeof p.participant_name === "string" && p.participant_name ? p.participant_name : String(p.source ?? "server"),
          value: Number(p.value),
        })),
        { combine: "last", fill: null },
      ),
    }));
}

// ── Billing ───────────────────────────────────────────────────────────────────────────────────────────────────────

export function formatMoney(amount: number | null | undefined, currency: string): string {
  if (amount === null || amount === undefined || !Number.isFinite(amount)) return "—";
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency: currency.toUpperCase() }).format(amount);
  } catch {
    return `${amount.toFixed(2)} ${currency.toUpperCase()}`;
  }
}

export function formatNumber(n: number): string {
  return new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 }).format(n);
}

export interface RechargeForm {
  enabled: boolean;
  amount: string;
  threshold: string;
  budget: string;
}

/** set_auto_recharge's arguments; an empty budget means none. */
export function rechargeArgs(f: RechargeForm): { enabled: boolean; amount: number; threshold: number; monthly_budget: number | null } {
  const num = (s: string, what: string) => {
    const v = Number(s.trim());
    if (s.trim() === "" || !Number.isFinite(v) || v < 0) throw new Error(`${what} must be a number of at least 0`);
    return v;
  };
  const amount = num(f.amount, "Amount");
  const threshold = num(f.threshold, "Threshold");
  const monthly_budget = f.budget.trim() === "" ? null : num(f.budget, "Monthly budget");
  if (f.enabled && amount <= 0) throw new Error("Amount must be more than 0 to turn auto-recharge on");
  if (f.enabled && monthly_budget !== null && monthly_budget < amount) throw new Error("Monthly budget must be at least one recharge's amount");
  return { enabled: f.enabled, amount, threshold, monthly_budget };
}

/** The get_usage window: the last `days` days up to `now`. */
export function usageWindow(days: number, now = Date.now()): { start: string; end: string } {
  return { start: new Date(now - days * 86_400_000).toISOString(), end: new Date(now).toISOString() };
}
