import { createCipheriv, createDecipheriv, createHash, randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { promisify } from "node:util";

const scryptAsync = promisify(scrypt) as (pw: string, salt: Buffer, len: number, opts: object) => Promise<Buffer>;

/** The id a master key is known by in sealed values: 16 hex characters of a hash of the key (never the key itself). */
export const masterKeyId = (key: Buffer) => createHash("sha256").update("meshagent master key id\0").update(key).digest("hex").slice(0, 16);

/** `v2:` + 16 hex characters + `:`: the prefix of every value sealed with the key of that id. */
export const sealedPrefix = (keyId: string) => `v2:${keyId}:`;

/**
 * AES-256-GCM sealing of values at rest under the master key, with a keyring for master-key rotation.
 *
 * Format: `v2:<key id>:` + base64(iv | tag | ciphertext), with optional additional authenticated data (AAD), e.g.
 * the id of the row the value lives in, so a sealed value copied into another row does not open there. Values
 * written before key ids existed are `v1:` + base64(iv | tag | ciphertext) without AAD; they still open.
 *
 * The keyring is one sealing key (every new value) and the keys that are accepted for opening (the sealing key among
 * them). A v2 value names its key; a v1 value is tried with each accepted key. `setKeys` swaps the whole keyring at
 * once (src/keyring does it while a rotation runs), so every service holding this Sealer follows.
 */
export class Sealer {
  private sealKey!: Buffer;
  private kid!: string;
  private keys!: Map<string, Buffer>;
  constructor(key: Buffer, accepted: Iterable<Buffer> = []) {
    this.setKeys(key, accepted);
  }
  /** Replace the keyring: `seal` seals every new value; it and every `accepted` key open values. */
  setKeys(seal: Buffer, accepted: Iterable<Buffer> = []): void {
    const keys = new Map<string, Buffer>();
    for (const k of [seal, ...accepted]) {
      if (k.length !== 32) throw new Error("master key must be 32 bytes");
      keys.set(masterKeyId(k), Buffer.from(k));
    }
    this.kid = masterKeyId(seal);
    this.sealKey = keys.get(this.kid)!;
    this.keys = keys;
  }
  /** The id of the key new values are sealed with. */
  get keyId(): string {
    return this.kid;
  }
  /** The ids of every key that opens values, the sealing key first. */
  get keyIds(): string[] {
    return [...this.keys.keys()];
  }
  /** Whether values sealed with this key id open here. */
  accepts(keyId: string): boolean {
    return this.keys.has(keyId);
  }
  /** The id of the key a v2 value is sealed with; null for a v1 value (no id) or anything that is not a sealed value. */
  sealedWith(sealed: string): string | null {
    return sealed.startsWith("v2:") && sealed[19] === ":" ? sealed.slice(3, 19) : null;
  }
  seal(plaintext: string | Buffer, aad?: string): string {
    const iv = randomBytes(12);
    const c = createCipheriv("aes-256-gcm", this.sealKey, iv);
    if (aad !== undefined) c.setAAD(Buffer.from(aad, "utf8"));
    const body = Buffer.concat([c.update(plaintext), c.final()]);
    return sealedPrefix(this.kid) + Buffer.concat([iv, c.getAuthTag(), body]).toString("base64");
  }
  openBuffer(sealed: string, aad?: string): Buffer {
    if (sealed.startsWith("v2:")) {
      const kid = this.sealedWith(sealed);
      if (kid === null) throw new Error("malformed sealed value");
      const key = this.keys.get(kid);
      if (!key) throw new Error(`sealed with master key ${kid}, which is not one of this keyring's keys (${this.keyIds.join(", ")})`);
      try {
        return decrypt(key, Buffer.from(sealed.slice(20), "base64"), aad);
      } catch {
        throw new Error(`cannot open a value sealed with master key ${kid}: wrong additional data, or the value was altered`);
      }
    }
    if (sealed.startsWith("v1:")) {
      const raw = Buffer.from(sealed.slice(3), "base64");
      for (const key of this.keys.values()) {
        try {
          return decrypt(key, raw, undefined);
        } catch {
          // not this key: try the next
        }
      }
      throw new Error("cannot open a v1 sealed value with any of this keyring's master keys");
    }
    throw new Error("unknown sealed format");
  }
  open(sealed: string, aad?: string): string {
    return this.openBuffer(sealed, aad).toString("utf8");
  }
}

function decrypt(key: Buffer, raw: Buffer, aad: string | undefined): Buffer {
  const d = createDecipheriv("aes-256-gcm", key, raw.subarray(0, 12));
  if (aad !== undefined) d.setAAD(Buffer.from(aad, "utf8"));
  d.setAuthTag(raw.subarray(12, 28));
  return Buffer.concat([d.update(raw.subarray(28)), d.final()]);
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
