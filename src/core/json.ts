/** A JSON object: string keys, any values. */
export type Obj = Record<string, unknown>;

/** True for a plain object (not null, not an array). */
export const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * The deepest nesting of arrays and objects a request body may have. Checked once, on the text, before parsing
 * (app.ts's JSON parser, the OTLP/JSON receiver): no handler ever walks a deeper value, so no recursive walk can
 * overflow the stack. Size is bounded by the body limits (MESHAGENT_BODY_LIMIT, MESHAGENT_OTLP_BODY_LIMIT).
 */
export const MAX_JSON_DEPTH = 64;

/** True when JSON text nests arrays/objects deeper than `max`: one linear scan, strings skipped, no parsing. */
export function jsonTooDeep(text: string, max = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      // a backslash: skip the escaped character
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/** True when JSON text has a NUL character in a string (`\u0000`; a raw NUL is not valid JSON anyway). */
export const jsonHasNul = (text: string) => /(?<!\\)(?:\\\\)*\\u0000/i.test(text);
