import { badRequest } from "../core/errors.js";

/** Longest accepted path, in UTF-8 bytes (a backend may accept less: see BlobStore.maxKeyBytes). */
export const MAX_PATH_BYTES = 4096;
/** Longest segment, in UTF-8 bytes: what common filesystems allow for one name. */
export const MAX_SEGMENT_BYTES = 255;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
// C0 controls (NUL included), DEL, C1 controls.
// eslint-disable-next-line no-control-regex -- paths must not carry control characters
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// Bidirectional overrides/isolates and line/paragraph separators: they make names display as something else.
const SPOOFING = /[\u202a-\u202e\u2066-\u2069\u2028\u2029]/;

/**
 * Validates and normalizes a storage path. Paths are relative, "/"-separated, UTF-8 (normalized to NFC so the same
 * name typed on macOS and Linux is one file). Refused with 400, naming the rule:
 * absolute paths, backslashes, NUL and other control characters, bidi controls, empty segments ("a//b", a trailing
 * "/"), "." and ".." segments, segments over 255 bytes and paths over 4096 bytes.
 *
 * `folder: true` (list, stat, delete) also accepts "" (the root) and one trailing "/".
 */
export function normalizeStoragePath(raw: string | undefined | null, opts: { folder?: boolean } = {}): string {
  if (raw === undefined || raw === null) {
    if (opts.folder) return "";
    throw badRequest("path is required");
  }
  if (typeof raw !== "string") throw badRequest("path must be a string");
  if (LONE_SURROGATE.test(raw)) throw badRequest("path is not valid UTF-8");
  let p = raw.normalize("NFC");
  if (opts.folder && p.endsWith("/") && p.length > 1) p = p.slice(0, -1);
  if (p === "") {
    if (opts.folder) return "";
    throw badRequest("path must not be empty");
  }
  if (Buffer.byteLength(p, "utf8") > MAX_PATH_BYTES) throw badRequest(`path is longer than ${MAX_PATH_BYTES} bytes`);
  if (p.includes("\0")) throw badRequest("path must not contain NUL");
  if (CONTROL.test(p)) throw badRequest("path must not contain control characters");
  if (SPOOFING.test(p)) throw badRequest("path must not contain bidirectional control or line separator characters");
  if (p.includes("\\")) throw badRequest("path must not contain backslashes; use / between folders");
  if (p.startsWith("/")) throw badRequest("path must be relative (no leading /)");
  if (/^[A-Za-z]:/.test(p)) throw badRequest("path must be relative (no drive letter)");
  for (const seg of p.split("/")) {
    if (seg === "") throw badRequest("path must not contain empty segments (// or a trailing /)");
    if (seg === "." || seg === "..") throw badRequest(`path must not contain "${seg}" segments`);
    if (Buffer.byteLength(seg, "utf8") > MAX_SEGMENT_BYTES) throw badRequest(`each path segment must be at most ${MAX_SEGMENT_BYTES} bytes`);
  }
  return p;
}

/** The parent folders of a path, nearest last: "a/b/c" → ["a", "a/b"]. */
export function parentsOf(path: string): string[] {
  const segs = path.split("/");
  const out: string[] = [];
  for (let i = 1; i < segs.length; i++) out.push(segs.slice(0, i).join("/"));
  return out;
}

export function baseName(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? path : path.slice(i + 1);
}

/**
 * One query parameter, decoded strictly from the raw URL. Fastify's parser keeps invalid percent-encodings as
 * literal text ("%FF" would become a file named "%FF"); here they are refused as not UTF-8.
 */
export function rawQueryParam(url: string, name: string): string | undefined {
  const q = url.indexOf("?");
  if (q < 0) return undefined;
  let found: string | undefined;
  for (const part of url.slice(q + 1).split("&")) {
    if (!part) continue;
    const eq = part.indexOf("=");
    const k = eq < 0 ? part : part.slice(0, eq);
    let key: string;
    try {
      key = decodeURIComponent(k.replace(/\+/g, " "));
    } catch {
      continue;
    }
    if (key !== name) continue;
    if (found !== undefined) throw badRequest(`${name} must be given once`);
    try {
      found = eq < 0 ? "" : decodeURIComponent(part.slice(eq + 1).replace(/\+/g, " "));
    } catch {
      throw badRequest(`${name} is not valid UTF-8 percent-encoding`);
    }
  }
  return found;
}
