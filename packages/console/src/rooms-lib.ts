import { useEffect, useState } from "react";
import type { ApiScope } from "@meshagent-oss/sdk";
import { useDebounced } from "./hooks";
import { setQuery, useLocation } from "./router";

// ── Paging and filter state kept in the URL query ─────────────────────────────────────────────────────────────

/** The page size of the rooms and grants lists. */
export const PAGE_SIZE = 50;

/** `offset` and `filter` of a list page's query string; a bad or negative offset is 0. */
export function readPaging(query: URLSearchParams): { offset: number; filter: string } {
  const raw = query.get("offset") ?? "";
  const n = /^\d{1,9}$/.test(raw) ? Number(raw) : 0;
  return { offset: n, filter: query.get("filter") ?? "" };
}

/** What the pager shows: whether a next page exists (the server's total says so). */
export function hasMore(offset: number, count: number, total: number | undefined, limit = PAGE_SIZE): boolean {
  return total === undefined ? count >= limit : offset + count < total;
}

/**
 * A text kept in the URL query under `key` (so back/forward and reload keep it): `text` follows the input at once,
 * the URL follows it after `ms` without typing (with `offset` reset: a new filter starts at the first page), and a
 * URL changed from elsewhere puts its value back into the input.
 */
export function useUrlText(key: string, ms = 300) {
  const { query } = useLocation();
  const value = query.get(key) ?? "";
  const [text, setText] = useState(value);
  const typed = useDebounced(text, ms);
  useEffect(() => {
    if (typed !== value) setQuery({ [key]: typed.trim() ? typed : null, offset: null });
    // Only the debounced text moves the URL; the URL moving on its own is handled below.
  }, [typed]);
  useEffect(() => {
    if (value !== typed) setText(value);
  }, [value]);
  return { value, text, setText };
}

/** A list's paging (`offset`) and name filter (`filter`), both in the URL query. */
export function useUrlPaging(ms = 300) {
  const { query } = useLocation();
  const { offset } = readPaging(query);
  const { value: filter, text, setText } = useUrlText("filter", ms);
  return { offset, filter, text, setText, setOffset: (o: number) => setQuery({ offset: o || null }) };
}

// ── ApiScope (room grant permissions) as a form of checkboxes ────────────────────────────────────────────────

export interface ScopeSection {
  key: string;
  label: string;
  hint: string;
}

/** The ApiScope sections the server knows (src/tokens/scope.ts), in its order. */
export const SCOPE_SECTIONS: readonly ScopeSection[] = [
  { key: "livekit", label: "LiveKit", hint: "calls and breakout rooms" },
  { key: "queues", label: "Queues", hint: "send, receive and list queues" },
  { key: "messaging", label: "Messaging", hint: "broadcast and direct messages" },
  { key: "dataset", label: "Datasets", hint: "tables" },
  { key: "memory", label: "Memory", hint: "memories" },
  { key: "sync", label: "Sync", hint: "shared documents" },
  { key: "storage", label: "Storage", hint: "room files" },
  { key: "containers", label: "Containers", hint: "run containers and read their logs" },
  { key: "developer", label: "Developer", hint: "developer logs" },
  { key: "agents", label: "Agents", hint: "register and call agents and toolkits" },
  { key: "llm", label: "LLM", hint: "model proxy" },
  { key: "admin", label: "Admin", hint: "room configuration" },
  { key: "secrets", label: "Secrets", hint: "request OAuth tokens" },
  { key: "tunnels", label: "Tunnels", hint: "open ports" },
  { key: "services", label: "Services", hint: "list the room's services" },
];
const KEYS = SCOPE_SECTIONS.map((s) => s.key);
/** Input names the server reads as `dataset`. */
const DATASET_ALIASES = ["database", "datasets"];

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** A section of a stored scope (`dataset` also under its aliases); undefined when absent or null (no access). */
function sectionOf(scope: ApiScope | null | undefined, key: string): Record<string, unknown> | undefined {
  if (!scope) return undefined;
  const names = key === "dataset" ? [key, ...DATASET_ALIASES] : [key];
  for (const n of names) {
    const v = (scope as Record<string, unknown>)[n];
    if (isObj(v)) return v;
  }
  return undefined;
}

/** The sections a scope grants (a present, non-null section is access to that API). */
export function sectionsOf(scope: ApiScope | null | undefined): string[] {
  return KEYS.filter((k) => sectionOf(scope, k) !== undefined);
}

/**
 * The ApiScope the checkboxes describe: each checked section with its defaults (`{}`), or, when editing, with the
 * settings it already had (paths, tables, models… the form does not show are kept); unchecked sections are left out
 * (no access). Sections come out in the server's order, `dataset` under its canonical name.
 */
export function scopeFrom(checked: Iterable<string>, base?: ApiScope | null): ApiScope {
  const on = new Set(checked);
  const out: Record<string, unknown> = {};
  for (const k of KEYS) if (on.has(k)) out[k] = { ...(sectionOf(base, k) ?? {}) };
  return out as ApiScope;
}

/** Whether a section carries settings beyond its defaults (restrictions the checkbox alone does not show). */
export function isCustomized(scope: ApiScope | null | undefined, key: string): boolean {
  const s = sectionOf(scope, key);
  return !!s && Object.values(s).some((v) => v !== null && v !== undefined);
}

/** Presets, as the SDK names them: full(), user_default() (no llm, admin, tunnels), and nothing. */
export const SCOPE_PRESETS: { id: string; label: string; sections: string[] }[] = [
  { id: "user", label: "Default user", sections: KEYS.filter((k) => !["llm", "admin", "tunnels"].includes(k)) },
  { id: "full", label: "Everything", sections: [...KEYS] },
  { id: "none", label: "Nothing", sections: [] },
];

/** A scope for people: "Everything", "Nothing", or the labels of its sections ("(restricted)" when customized). */
export function describeScope(scope: ApiScope | null | undefined): string {
  const on = sectionsOf(scope);
  if (on.length === 0) return "Nothing";
  const custom = on.filter((k) => isCustomized(scope, k));
  if (on.length === KEYS.length && custom.length === 0) return "Everything";
  return on.map((k) => SCOPE_SECTIONS.find((s) => s.key === k)!.label + (custom.includes(k) ? " (restricted)" : "")).join(", ");
}
