/**
 * Pure helpers of the room workspace page: storage paths, previews, the log buffer, and sync documents as trees
 * (a Yjs XML tree turned into plain nodes, and a thread's messages).
 */
import type { RoomLog, RoomParticipant } from "@meshagent-oss/sdk";

// ------------------------------------------------------------------------------------------------------------ files

export interface StorageEntry {
  name: string;
  is_folder: boolean;
  size: number | null;
  created_at?: string | null;
  updated_at?: string | null;
}

/** A folder and a name inside it ("" is the room's root). */
export const joinPath = (dir: string, name: string) => (dir ? `${dir.replace(/\/+$/, "")}/${name}` : name);

/** The folders from the root to `dir`, for a breadcrumb: [{label: "Room", path: ""}, {label: "a", path: "a"}, …]. */
export function breadcrumbs(dir: string): { label: string; path: string }[] {
  const out = [{ label: "Room files", path: "" }];
  let p = "";
  for (const seg of dir.split("/").filter(Boolean)) {
    p = joinPath(p, seg);
    out.push({ label: seg, path: p });
  }
  return out;
}

/** Folders first, then files, each by name. */
export function sortEntries(files: StorageEntry[]): StorageEntry[] {
  return [...files].sort((a, b) => (a.is_folder === b.is_folder ? a.name.localeCompare(b.name) : a.is_folder ? -1 : 1));
}

const IMAGE = new Set(["png", "jpg", "jpeg", "gif", "webp", "svg", "bmp", "ico", "avif"]);
const TEXT = new Set([
  "txt",
  "md",
  "markdown",
  "json",
  "jsonl",
  "ndjson",
  "csv",
  "tsv",
  "log",
  "yaml",
  "yml",
  "toml",
  "ini",
  "cfg",
  "conf",
  "xml",
  "html",
  "htm",
  "css",
  "js",
  "mjs",
  "cjs",
  "ts",
  "tsx",
  "jsx",
  "py",
  "rb",
  "go",
  "rs",
  "java",
  "c",
  "h",
  "cpp",
  "sh",
  "sql",
  "env",
  "gitignore",
  "dockerfile",
]);

export const extensionOf = (name: string) => {
  const base = name.slice(name.lastIndexOf("/") + 1);
  const dot = base.lastIndexOf(".");
  return dot > 0 ? base.slice(dot + 1).toLowerCase() : base.toLowerCase() === "dockerfile" ? "dockerfile" : "";
};

/** How a file can be previewed in the page: as an image, as text, or not at all. */
export function previewKind(name: string): "image" | "text" | null {
  const ext = extensionOf(name);
  if (IMAGE.has(ext)) return "image";
  if (TEXT.has(ext)) return "text";
  return null;
}

/** The most of a text file a preview shows. */
export const MAX_PREVIEW_BYTES = 256 * 1024;

/** A size for people: 0 B, 1.5 KB, 12 MB. */
export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "—";
  if (n < 1024) return `${n} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 10 ? Math.round(v) : Math.round(v * 10) / 10} ${units[i]}`;
}

// ------------------------------------------------------------------------------------------------------- presence

export interface PresenceRow {
  id: string;
  name: string;
  role: string;
  you: boolean;
  /** Seen through presence (messaging enabled), not only in the session's participant list. */
  live: boolean;
}

/** A participant of the session record (get_session's participant_list). */
export interface SessionParticipant {
  id: string;
  name: string;
  role: string;
  left_at: string | null;
}

/** The participants still connected, from a get_session answer (those without left_at). */
export function connectedParticipants(session: unknown): SessionParticipant[] {
  const list = session && typeof session === "object" ? (session as { participant_list?: unknown }).participant_list : undefined;
  if (!Array.isArray(list)) return [];
  const out: SessionParticipant[] = [];
  for (const p of list) {
    if (!p || typeof p !== "object") continue;
    const r = p as Record<string, unknown>;
    if (typeof r.id !== "string" || (r.left_at !== null && r.left_at !== undefined)) continue;
    out.push({ id: r.id, name: typeof r.name === "string" ? r.name : r.id, role: typeof r.role === "string" ? r.role : "user", left_at: null });
  }
  return out;
}

/**
 * The participants to list: this connection first ("you"), then the others by name. `others` come from presence
 * (live); `connected` (the session's record, for developers) adds those that did not turn presence on.
 */
export function presenceRows(
  self: { id: string; name: string; role: string; attributes?: Record<string, unknown> },
  others: RoomParticipant[],
  connected: SessionParticipant[] = [],
): PresenceRow[] {
  const nameOf = (a: Record<string, unknown> | undefined, fallback: string) => (typeof a?.name === "string" && a.name ? a.name : fallback);
  const rows = new Map<string, PresenceRow>();
  for (const p of others) if (p.id !== self.id) rows.set(p.id, { id: p.id, name: nameOf(p.attributes, p.id), role: p.role, you: false, live: true });
  for (const p of connected) if (p.id !== self.id && !rows.has(p.id)) rows.set(p.id, { id: p.id, name: p.name || p.id, role: p.role, you: false, live: false });
  const rest = [...rows.values()].sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
  return [{ id: self.id, name: nameOf(self.attributes, self.name || self.id), role: self.role, you: true, live: true }, ...rest];
}

// ------------------------------------------------------------------------------------------------------------ logs

/** The log box keeps this many lines. */
export const MAX_LOG_LINES = 500;

export interface LogLine {
  /** A number that grows with each line (a React key). */
  seq: number;
  at: string;
  who: string;
  type: string;
  text: string;
}

/** A developer log record as one line. */
export function logLine(seq: number, log: RoomLog): LogLine {
  let text: string;
  const d = log.data;
  if (typeof d === "string") text = d;
  else if (d && typeof d === "object" && !Array.isArray(d) && Object.keys(d).length === 1 && typeof (d as Record<string, unknown>).message === "string")
    text = (d as Record<string, string>).message;
  else text = JSON.stringify(d);
  return { seq, at: log.createdAt ?? "", who: log.participantName || log.participantId || "", type: log.type, text };
}

/** Lines with `more` appended, newest last, at most `max` (the oldest dropped). */
export function appendCapped<T>(lines: T[], more: T[], max = MAX_LOG_LINES): T[] {
  const all = lines.concat(more);
  return all.length > max ? all.slice(all.length - max) : all;
}

// ------------------------------------------------------------------------------------------------- sync documents

/** The parts of Yjs XML types the tree needs (Y.XmlElement, Y.XmlText), so this stays free of Yjs itself. */
export interface XmlLike {
  nodeName?: unknown;
  getAttributes?: () => Record<string, unknown>;
  toArray?: () => XmlLike[];
  toString(): string;
}

export interface DocNode {
  /** A stable key within its parent (the element's $id, or its index). */
  key: string;
  tag: string;
  attributes: Record<string, unknown>;
  children: DocNode[];
  /** A text node's text (then tag is "#text" and there are no children). */
  text?: string;
}

/** The deepest nesting shown; deeper parts are cut (a document that large is not for reading in a tree anyway). */
export const MAX_TREE_DEPTH = 64;

const isElement = (n: XmlLike) => typeof n.nodeName === "string" && typeof n.toArray === "function";

/**
 * A Yjs XML element as plain nodes. The root is the document's `xml` element: its tag is the schema's root tag
 * (`rootTag`); each child element has its tag (nodeName) and attributes ($id included); XmlText becomes a text node.
 */
export function docTree(root: XmlLike, rootTag: string, depth = 0, key = "root"): DocNode {
  const tag = depth === 0 ? rootTag : String(root.nodeName);
  const attributes = { ...(root.getAttributes?.() ?? {}) };
  const children: DocNode[] = [];
  if (depth < MAX_TREE_DEPTH) {
    const kids = root.toArray?.() ?? [];
    kids.forEach((c, i) => {
      if (isElement(c)) {
        const id = c.getAttributes?.()["$id"];
        children.push(docTree(c, rootTag, depth + 1, typeof id === "string" ? id : `${i}`));
      } else children.push({ key: `t${i}`, tag: "#text", attributes: {}, children: [], text: c.toString() });
    });
  }
  return { key, tag, attributes, children };
}

/** The root tag a MeshSchema names (`$root_tag_ref` "#/$defs/thread" → "thread"). */
export function schemaRootTag(schema: Record<string, unknown> | null | undefined): string {
  const ref = schema?.$root_tag_ref;
  if (typeof ref === "string" && ref.includes("/")) return ref.slice(ref.lastIndexOf("/") + 1);
  return "document";
}

/** Counts of a tree's elements (a summary line). */
export function countNodes(n: DocNode): number {
  return 1 + n.children.reduce((a, c) => a + countNodes(c), 0);
}

export interface ThreadMessage {
  key: string;
  author: string;
  text: string;
  createdAt: string;
  attachments: string[];
}

/** The text an element holds: its `text` attribute, else the text of its text children. */
function textOf(n: DocNode): string {
  if (typeof n.attributes.text === "string") return n.attributes.text;
  const parts: string[] = [];
  const walk = (m: DocNode) => {
    if (m.text !== undefined) parts.push(m.text);
    else m.children.forEach(walk);
  };
  n.children.forEach(walk);
  return parts.join("");
}

/**
 * The messages of a thread document (MeshAgent's thread schema: <thread><messages><message id text author_name
 * created_at><file path/></message>…), in document order.
 */
export function threadMessages(tree: DocNode): ThreadMessage[] {
  const out: ThreadMessage[] = [];
  const walk = (n: DocNode) => {
    if (n.tag === "message") {
      const a = n.attributes;
      out.push({
        key: n.key + ":" + out.length,
        author: typeof a.author_name === "string" && a.author_name ? a.author_name : "unknown",
        text: textOf(n),
        createdAt: typeof a.created_at === "string" ? a.created_at : "",
        attachments: n.children.filter((c) => c.tag === "file" && typeof c.attributes.path === "string").map((c) => c.attributes.path as string),
      });
      return;
    }
    n.children.forEach(walk);
  };
  walk(tree);
  return out;
}

/** Whether a path looks like a thread document. */
export const isThread = (path: string) => extensionOf(path) === "thread";

/**
 * The sync documents among files: those whose extension has a schema in `.schemas/` (where the server finds schemas
 * for new documents) and `.thread` files.
 */
export function documentCandidates(paths: string[], schemaExtensions: Set<string>): string[] {
  return paths.filter((p) => {
    if (p.startsWith(".schemas/")) return false;
    const ext = extensionOf(p);
    return ext !== "" && (schemaExtensions.has(ext) || ext === "thread");
  });
}

/** The extensions `.schemas/<ext>.json` files give schemas for. */
export function schemaExtensions(names: string[]): Set<string> {
  return new Set(names.filter((n) => n.endsWith(".json") && n.length > 5).map((n) => n.slice(0, -5).toLowerCase()));
}
