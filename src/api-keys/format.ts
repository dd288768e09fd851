import { b64cToUuid, uuidToB64c } from "../core/ids.js";

/** "ma-" + b64c(key id) + "-" + b64c(project id) + "-" + secret (wire-contract §10.1). */
export function formatApiKey(keyId: string, projectId: string, secret: string): string {
  return `ma-${uuidToB64c(keyId)}-${uuidToB64c(projectId)}-${secret}`;
}

export interface ParsedApiKey {
  keyId: string;
  projectId: string;
  secret: string;
}

export function parseApiKey(value: string): ParsedApiKey | null {
  if (!value.startsWith("ma-")) return null;
  const rest = value.slice(3);
  const a = rest.indexOf("-");
  const b = rest.indexOf("-", a + 1);
  if (a < 0 || b < 0) return null;
  const keyId = b64cToUuid(rest.slice(0, a));
  const projectId = b64cToUuid(rest.slice(a + 1, b));
  const secret = rest.slice(b + 1);
  if (!keyId || !projectId || !secret) return null;
  return { keyId, projectId, secret };
}
