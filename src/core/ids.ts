import { randomUUID } from "node:crypto";

export const newId = () => randomUUID();
/**
 * A time-ordered UUID (v7: 48-bit Unix milliseconds, then random bits), so rows inserted one after another land next
 * to each other in an index (queue messages). Built from randomUUID's random bits, which node draws from a cached pool.
 */
export function newTimeId(): string {
  const u = randomUUID();
  const ts = Date.now().toString(16).padStart(12, "0");
  return `${ts.slice(0, 8)}-${ts.slice(8, 12)}-7${u.slice(15)}`;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (s: string) => UUID_RE.test(s);

/** b64c(uuid) of wire-contract §10.1: urlsafe base64 of the 16 bytes, "-" → ".", no padding (22 chars). */
export function uuidToB64c(uuid: string): string {
  const bytes = Buffer.from(uuid.replace(/-/g, ""), "hex");
  return bytes.toString("base64url").replace(/-/g, ".");
}

export function b64cToUuid(s: string): string | null {
  if (!/^[A-Za-z0-9_.]{22}$/.test(s)) return null;
  const bytes = Buffer.from(s.replace(/\./g, "-"), "base64url");
  if (bytes.length !== 16) return null;
  const h = bytes.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
