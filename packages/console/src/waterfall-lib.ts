/**
 * The span waterfall's layout (pure): spans as the server lists them (created_at = start, duration in ns,
 * parent_span_id), nested under their parents, each placed on one time axis that runs from the earliest start to the
 * latest end of all the session's spans.
 */

export interface WaterfallRow {
  id: string;
  name: string;
  parentId: string | null;
  /** Nesting level: 0 for a root (no parent, or a parent that is not in the list). */
  depth: number;
  /** Epoch ms. */
  startMs: number;
  durationMs: number;
  /** From the start of the range, ms. */
  offsetMs: number;
  /** Where the bar starts and how wide it is, in percent of the whole range (0–100). */
  leftPct: number;
  widthPct: number;
  /** The span's status was an error (OTLP status code 2). */
  error: boolean;
  span: Record<string, unknown>;
}

export interface Waterfall {
  rows: WaterfallRow[];
  /** Epoch ms of the earliest start and latest end; 0 when there are no spans. */
  startMs: number;
  endMs: number;
  totalMs: number;
}

const str = (v: unknown): string | null => (typeof v === "string" && v !== "" ? v : typeof v === "number" ? String(v) : null);

function startOf(s: Record<string, unknown>): number {
  const v = s.created_at ?? s.start_time ?? s.start;
  if (typeof v === "number") return v;
  const t = typeof v === "string" ? Date.parse(v) : NaN;
  return Number.isFinite(t) ? t : 0;
}

/** The span's duration in ms: the server sends `duration` in nanoseconds. */
function durationOf(s: Record<string, unknown>): number {
  const d = Number(s.duration ?? s.duration_ns ?? 0);
  return Number.isFinite(d) && d > 0 ? d / 1e6 : 0;
}

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

/**
 * Lay out spans: parents before their children (depth-first), siblings by start time then name; a span whose parent is
 * missing is a root; a cycle of parents (bad data) is broken rather than followed forever.
 */
export function layoutWaterfall(spans: Record<string, unknown>[]): Waterfall {
  type Node = Omit<WaterfallRow, "depth" | "offsetMs" | "leftPct" | "widthPct">;
  const nodes: Node[] = spans.map((s, i) => ({
    id: str(s.span_id) ?? `#${i}`,
    name: str(s.span_name) ?? str(s.name) ?? "(unnamed span)",
    parentId: str(s.parent_span_id),
    startMs: startOf(s),
    durationMs: durationOf(s),
    error: Number(s.status_code) === 2,
    span: s,
  }));
  if (nodes.length === 0) return { rows: [], startMs: 0, endMs: 0, totalMs: 0 };

  const startMs = Math.min(...nodes.map((n) => n.startMs));
  const endMs = Math.max(...nodes.map((n) => n.startMs + n.durationMs));
  const totalMs = endMs - startMs;
  const byId = new Map<string, Node>();
  for (const n of nodes) if (!byId.has(n.id)) byId.set(n.id, n);
  const children = new Map<string, Node[]>();
  const roots: Node[] = [];
  for (const n of nodes) {
    if (n.parentId && n.parentId !== n.id && byId.has(n.parentId)) {
      const list = children.get(n.parentId) ?? [];
      list.push(n);
      children.set(n.parentId, list);
    } else roots.push(n);
  }
  const order = (a: Node, b: Node) => a.startMs - b.startMs || a.name.localeCompare(b.name) || a.id.localeCompare(b.id);

  const rows: WaterfallRow[] = [];
  const seen = new Set<Node>();
  const place = (n: Node, depth: number) => {
    seen.add(n);
    const offsetMs = n.startMs - startMs;
    const leftPct = totalMs > 0 ? clamp((offsetMs / totalMs) * 100, 0, 100) : 0;
    const widthPct = totalMs > 0 ? clamp((n.durationMs / totalMs) * 100, 0, 100 - leftPct) : 0;
    rows.push({ ...n, depth, offsetMs, leftPct, widthPct });
    // Iterative over siblings, recursive over depth (bounded by the number of spans, which the server caps).
    for (const c of (children.get(n.id) ?? []).sort(order)) if (!seen.has(c)) place(c, depth + 1);
  };
  for (const r of roots.sort(order)) place(r, 0);
  // Spans only reachable through a cycle of parents: show them as roots.
  for (const n of nodes.slice().sort(order)) if (!seen.has(n)) place(n, 0);
  return { rows, startMs, endMs, totalMs };
}

/** A duration for people: µs, ms, s or min with a sensible precision. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms <= 0) return "0 ms";
  if (ms < 1) return `${Math.round(ms * 1000)} µs`;
  if (ms < 1000) return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const m = Math.floor(ms / 60_000);
  const s = Math.round((ms % 60_000) / 1000);
  return `${m} min ${s} s`;
}

/** Tick marks for the time axis: `count + 1` evenly spaced offsets from 0 to the whole range, with labels. */
export function waterfallTicks(totalMs: number, count = 4): { pct: number; label: string }[] {
  if (!(totalMs > 0)) return [];
  return Array.from({ length: count + 1 }, (_, i) => ({ pct: (i / count) * 100, label: formatDuration((totalMs * i) / count) }));
}
