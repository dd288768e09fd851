import type { ByteRange } from "../blobs/types.js";

/** Parse an ETag list (If-None-Match, If-Match) into bare tags; "*" stays "*". */
function tags(header: string): string[] {
  return header
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean)
    .map((t) => (t === "*" ? t : t.replace(/^W\//, "").replace(/^"|"$/g, "")));
}

/** If-None-Match with the weak comparison (RFC 9110 §13.1.2): true when the client's copy is current (→ 304). */
export function notModified(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  return tags(ifNoneMatch).some((t) => t === "*" || t === etag);
}

/**
 * If-Range (RFC 9110 §13.1.5): the Range applies only when the validator still matches. An entity tag must match
 * strongly; a date must equal Last-Modified (to the second, as HTTP dates carry).
 */
export function ifRangeMatches(ifRange: string | undefined, etag: string, lastModified: number): boolean {
  if (!ifRange) return true;
  const v = ifRange.trim();
  if (v.startsWith('"')) return v === `"${etag}"`;
  if (v.startsWith("W/")) return false;
  const t = Date.parse(v);
  return Number.isFinite(t) && Math.floor(t / 1000) === Math.floor(lastModified / 1000);
}

/**
 * One byte range of a `Range: bytes=…` header for a representation of `size` bytes (RFC 9110 §14.2):
 * - a range to send;
 * - "unsatisfiable" (→ 416) when no requested range overlaps the content;
 * - null when the header is absent, malformed, not in bytes, or asks for several ranges: then the whole content is
 *   sent with 200, which the RFC allows for any Range the server chooses to ignore.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | "unsatisfiable" | null {
  if (!header) return null;
  const m = /^\s*bytes\s*=\s*(.+)$/i.exec(header);
  if (!m) return null;
  const specs = m[1]
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (specs.length !== 1) return null;
  const r = /^(\d*)\s*-\s*(\d*)$/.exec(specs[0]);
  if (!r || (r[1] === "" && r[2] === "")) return null;
  if (r[1] === "") {
    // suffix: the last N bytes
    const n = Number(r[2]);
    if (n === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(r[1]);
  const end = r[2] === "" ? size - 1 : Number(r[2]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end)) return null;
  if (start >= size) return "unsatisfiable";
  if (end < start) return null;
  return { start, end: Math.min(end, size - 1) };
}

/** RFC 5987 / 6266 Content-Disposition with a UTF-8 file name and an ASCII fallback. */
export function contentDisposition(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\%]/g, "_");
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}
