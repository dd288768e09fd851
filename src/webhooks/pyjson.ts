/**
 * JSON serialization byte-identical to Python's `json.dumps(value)` with its defaults:
 * separators ", " and ": ", ensure_ascii=True (every character outside printable ASCII escaped as \uXXXX, lowercase
 * hex, one escape per UTF-16 code unit so astral characters become surrogate pairs), keys in insertion order.
 *
 * The MeshAgent receiver (`WebhookServer`) re-serializes the parsed body with `json.dumps` and compares its SHA-256
 * with the signed claim, so the body we hash and send must already be in that form: then
 * `json.dumps(json.loads(body)) == body` and the hashes agree.
 *
 * Numbers: an integer-valued number below 1e21 is written as JSON.stringify writes it (Python parses it as an int
 * and writes it back unchanged). Any other finite number is written as Python's `repr(float)`: the shortest round-trip digits,
 * in fixed notation when the decimal exponent is in [-4, 16), else in exponent notation with a sign and at least two
 * exponent digits ("1e-05", "1.5e+21"). NaN and ±Infinity are written as null, as JSON.stringify does (Python would
 * write the non-JSON tokens NaN/Infinity).
 */
export function pyJsonDumps(value: unknown): string {
  const out: string[] = [];
  write(value, out, "");
  return out.join("");
}

const ESCAPES: Record<string, string> = {
  '"': '\\"',
  "\\": "\\\\",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
  "\b": "\\b",
  "\f": "\\f",
};

// Printable ASCII minus the two characters that need a backslash: such strings need no escaping at all.
const SAFE = /^[ !#-[\]-~]*$/;

export function pyString(s: string): string {
  if (SAFE.test(s)) return '"' + s + '"';
  let r = '"';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c <= 0x7e && ch !== '"' && ch !== "\\") r += ch;
    else r += ESCAPES[ch] ?? "\\u" + c.toString(16).padStart(4, "0");
  }
  return r + '"';
}

export function pyNumber(n: number): string {
  if (!Number.isFinite(n)) return "null";
  if (Number.isInteger(n) && Math.abs(n) < 1e21) return String(n); // as JSON.stringify: shortest digits, zero-padded ("-0" prints as "0")
  // Shortest round-trip digits, as "d.ddde±x".
  const [mant, expStr] = n.toExponential().split("e");
  const exp = Number(expStr);
  const neg = mant.startsWith("-");
  const digits = mant.replace("-", "").replace(".", "");
  let body: string;
  if (exp >= -4 && exp < 16) {
    if (exp >= 0) {
      const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, "0");
      const frac = digits.slice(exp + 1);
      body = intPart + "." + (frac || "0");
    } else {
      body = "0." + "0".repeat(-exp - 1) + digits;
    }
  } else {
    const m = digits.length > 1 ? digits[0] + "." + digits.slice(1) : digits;
    const e = Math.abs(exp);
    body = m + "e" + (exp < 0 ? "-" : "+") + (e < 10 ? "0" + e : String(e));
  }
  return (neg ? "-" : "") + body;
}

function write(v: unknown, out: string[], key: string): void {
  if (v !== null && typeof v === "object" && typeof (v as { toJSON?: unknown }).toJSON === "function") v = (v as { toJSON(k: string): unknown }).toJSON(key);
  switch (typeof v) {
    case "string":
      out.push(pyString(v));
      return;
    case "number":
      out.push(pyNumber(v));
      return;
    case "boolean":
      out.push(v ? "true" : "false");
      return;
    case "bigint":
      out.push(v.toString());
      return;
    case "object":
      break;
    default:
      // undefined, functions, symbols: like JSON.stringify at the top level / inside arrays
      out.push("null");
      return;
  }
  if (v === null) {
    out.push("null");
    return;
  }
  if (Array.isArray(v)) {
    out.push("[");
    for (let i = 0; i < v.length; i++) {
      if (i) out.push(", ");
      write(v[i], out, String(i));
    }
    out.push("]");
    return;
  }
  out.push("{");
  let first = true;
  for (const k of Object.keys(v)) {
    const item = (v as Record<string, unknown>)[k];
    if (item === undefined || typeof item === "function" || typeof item === "symbol") continue; // as JSON.stringify
    if (!first) out.push(", ");
    first = false;
    out.push(pyString(k), ": ");
    write(item, out, k);
  }
  out.push("}");
}
