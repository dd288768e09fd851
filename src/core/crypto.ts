import { createCipheriv, createDecipheriv, createHash, randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { promisify } from "node:util";

const scryptAsync = promisify(scrypt) as (pw: string, salt: Buffer, len: number, opts: object) => Promise<Buffer>;

/** The id a master key is known by in sealed values: 16 hex characters of a hash of the key (never the key itself). */
export const masterKeyId = (key: Buffer) => createHash("sha256").update("meshagent master key id\0").update(key).digest("hex").slice(0, 16);

/**
 * AES-256-GCM sealing of values at rest under the master key.
 *
 * Format: `v2:<key id>:` + base64(iv | tag | ciphertext), with optional additional authenticated data (AAD), e.g.
 * the id of the row the value lives in, so a sealed value copied into another row does not open there. Values
 * written before key ids existed are `v1:` + base64(iv | tag | ciphertext) without AAD; they still open.
 */
export class Sealer {
  private readonly key: Buffer;
  private readonly kid: string;
  constructor(key: Buffer) {
    if (key.length !== 32) throw new Error("master key must be 32 bytes");
    this.key = key;
    this.kid = masterKeyId(key);
  }
  /** The id of the key new values are sealed with. */
  get keyId(): string {
    return this.kid;
  }
  seal(plaintext: string | Buffer, aad?: string): string {
    const iv = randomBytes(12);
    const c = createCipheriv("aes-256-gcm", this.key, iv);
    if (aad !== undefined) c.setAAD(Buffer.from(aad, "utf8"));
    const body = Buffer.concat([c.update(plaintext), c.final()]);
    return `v2:${this.kid}:` + Buffer.concat([iv, c.getAuthTag(), body]).toString("base64");
  }
  openBuffer(sealed: string, aad?: string): Buffer {
    let key: Buffer;
    let raw: Buffer;
    if (sealed.startsWith("v2:")) {
      const kid = sealed.slice(3, 19);
      if (kid !== this.kid || sealed[19] !== ":") throw new Error("sealed with an unknown master key");
      key = this.key;
      raw = Buffer.from(sealed.slice(20), "base64");
    } else if (sealed.startsWith("v1:")) {
      key = this.key;
      raw = Buffer.from(sealed.slice(3), "base64");
      aad = undefined;
    } else throw new Error("unknown sealed format");
    const d = createDecipheriv("aes-256-gcm", key, raw.subarray(0, 12));
    if (aad !== undefined) d.setAAD(Buffer.from(aad, "utf8"));
    d.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([d.update(raw.subarray(28)), d.final()]);
  }
  open(sealed: string, aad?: string): string {
    return this.openBuffer(sealed, aad).toString("utf8");
  }
}

export const sha256Hex = (s: string | Buffer) => createHash("sha256").update(s).digest("hex");

export function safeEqualHex(a: string, b: string): boolean {
  const x = Buffer.from(a, "hex");
  const y = Buffer.from(b, "hex");
  return x.length === y.length && timingSafeEqual(x, y);
}

/** A random URL-safe secret of n bytes. */
export const randomSecret = (n = 32) => randomBytes(n).toString("base64url");

const SCRYPT = { N: 16384, r: 8, p: 1 };

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scryptAsync(password, salt, 32, { ...SCRYPT, maxmem: 64 * 1024 * 1024 });
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString("base64")}$${hash.toString("base64")}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [alg, n, r, p, salt, hash] = stored.split("$");
  if (alg !== "scrypt" || !hash) return false;
  const expected = Buffer.from(hash, "base64");
  const got = await scryptAsync(password, Buffer.from(salt, "base64"), expected.length, {
    N: Number(n),
    r: Number(r),
    p: Number(p),
    maxmem: 64 * 1024 * 1024,
  });
  return timingSafeEqual(expected, got);
}
