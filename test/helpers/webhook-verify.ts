import { execFileSync } from "node:child_process";
import type { IncomingHttpHeaders } from "node:http";

/**
 * The receiver-side check of meshagent.api.webhooks.WebhookServer (0.39.9), in python3: parse the body, HS256-verify
 * the JWT of `Meshagent-Signature: Bearer …` with the secret (PyJWT is not installed here, so the HS256 check is
 * written out with hmac, exactly what jwt.decode(..., algorithms=["HS256"]) verifies for a claim set without exp),
 * then compare the `sha256` claim with sha256(json.dumps(parsed_body)). Prints "ok" or the reason it fails.
 */
const SCRIPT = String.raw`
import base64, hashlib, hmac, json, sys
inp = json.loads(sys.stdin.read())
def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
def check(body, header, secret):
    req = json.loads(body)
    if not isinstance(req, dict): return "invalid request body"
    if header is None or not header.startswith("Bearer "): return "missing signature"
    raw_jwt = header.removeprefix("Bearer ")
    h, p, s = raw_jwt.split(".")
    if json.loads(b64d(h)).get("alg") != "HS256": return "bad alg"
    mac = hmac.new(secret.encode(), (h + "." + p).encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(mac, b64d(s)): return "invalid jwt"
    claims = json.loads(b64d(p))
    payload = json.dumps(req)
    if hashlib.sha256(payload.encode()).hexdigest() != claims["sha256"]: return "signature does not match payload"
    if sorted(claims.keys()) != ["sha256"]: return "unexpected claims %r" % sorted(claims.keys())
    return "ok"
print(json.dumps([check(c["body"], c["header"], c["secret"]) for c in inp]))
`;

export function pythonVerify(cases: { body: string; headers: IncomingHttpHeaders; secret: string }[]): string[] {
  const input = JSON.stringify(cases.map((c) => ({ body: c.body, header: c.headers["meshagent-signature"] ?? null, secret: c.secret })));
  return JSON.parse(execFileSync("python3", ["-c", SCRIPT], { input, encoding: "utf8" }));
}
