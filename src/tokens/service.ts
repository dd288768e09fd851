import { createHmac, webcrypto } from "node:crypto";
import { decodeJwt, decodeProtectedHeader, jwtVerify, type JWTPayload } from "jose";
import type { Clock } from "../core/clock.js";
import { randomSecret, type Sealer } from "../core/crypto.js";
import { quote, unauthorized } from "../core/errors.js";
import { isUuid, newId } from "../core/ids.js";
import type { Invalidator } from "../core/invalidation.js";
import type { ApiKeysService } from "../api-keys/service.js";
import type { DB } from "../store/db.js";
import { compactScope, type Scope } from "./scope.js";
import { signingKeysRepo } from "./repo.js";

/** The `version` claim of tokens we mint: the client release this server speaks (wire-contract §0). */
export const TOKEN_VERSION = "0.39.9";

export interface Grant {
  name: string;
  scope: unknown;
}

/** A participant JWT payload (wire-contract §10.2). Extra claims a client added are kept. */
export interface ParticipantClaims extends JWTPayload {
  name: string;
  grants: Grant[];
  sub: string;
  kid: string;
  version?: string;
}

interface VerificationKey {
  projectId: string;
  /** For jose's verification. */
  key: CryptoKey;
  /** The raw secret, for signing. */
  raw: Buffer;
  source: "api_key" | "project";
}

/** The key a token is signed with: the calling API key's secret, or the project's own signing key. */
export type Signer = { kind: "api_key"; keyId: string } | { kind: "project" };

const API_KEY_TOPIC = "api_key";
const CACHE_MAX = 100_000;

async function hmacKey(secret: string, projectId: string, source: VerificationKey["source"]): Promise<VerificationKey> {
  const raw = Buffer.from(secret, "utf8");
  const key = await webcrypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
  return { projectId, key, raw, source };
}

const JWT_HEADER = Buffer.from(JSON.stringify({ alg: "HS256", typ: "JWT" })).toString("base64url");

/**
 * HS256 compact JWS, byte for byte what jose's `new SignJWT(payload).setProtectedHeader({alg:"HS256",typ:"JWT"})`
 * produces, but with node:crypto's synchronous HMAC: WebCrypto's asynchronous HMAC (what jose uses) costs an order of
 * magnitude more per token than the rest of connect_room (see bench/rooms-connect.ts).
 */
function signHs256(payload: object, secret: Buffer): string {
  const input = `${JWT_HEADER}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}`;
  return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
}

/**
 * Participant tokens: minting (connect_room, connect_share) and the one verifier every part of the server uses
 * (the bearer check, POST /api/participant-token/validate, the room server's WebSocket upgrade).
 *
 * Verification = look up `kid` (a project signing key or an API key), check `sub` is that key's project, verify
 * HS256 with the key's secret, check `exp` against the injectable clock. Any other `alg` is refused. Keys are cached
 * by kid; an API key deleted anywhere is evicted at once through the invalidator, so its tokens stop verifying.
 */
export class ParticipantTokens {
  private keys = new Map<string, VerificationKey>();
  private projectKid = new Map<string, string>();
  private epoch = 0;

  constructor(
    private readonly db: DB,
    private readonly clock: Clock,
    private readonly sealer: Sealer,
    private readonly apiKeys: ApiKeysService,
    invalidator: Invalidator,
    private readonly ttlSeconds: number,
  ) {
    invalidator.subscribe(API_KEY_TOPIC, (kid) => {
      this.epoch++;
      if (kid === "*") this.keys.clear();
      else this.keys.delete(kid);
    });
  }

  private remember(kid: string, key: VerificationKey, epoch: number) {
    if (epoch !== this.epoch) return;
    if (this.keys.size >= CACHE_MAX) this.keys.clear();
    this.keys.set(kid, key);
  }

  /** The verification key of a kid: a project signing key or an API key; null when unknown (or deleted). */
  async keyFor(kid: string): Promise<VerificationKey | null> {
    const hit = this.keys.get(kid);
    if (hit) return hit;
    if (!isUuid(kid)) return null;
    const epoch = this.epoch;
    const sk = await signingKeysRepo.byId(this.db, kid);
    let entry: VerificationKey | null = null;
    if (sk) entry = await hmacKey(this.sealer.open(sk.secret_sealed), sk.project_id, "project");
    else {
      const ak = await this.apiKeys.secretOf(kid);
      if (ak) entry = await hmacKey(ak.secret, ak.projectId, "api_key");
    }
    if (entry) this.remember(kid, entry, epoch);
    return entry;
  }

  /** The project's own signing key (created on first use, sealed at rest like an API-key secret). */
  async projectKey(projectId: string): Promise<{ kid: string; key: VerificationKey }> {
    const known = this.projectKid.get(projectId);
    const hit = known && this.keys.get(known);
    if (known && hit) return { kid: known, key: hit };
    let row = await signingKeysRepo.byProject(this.db, projectId);
    if (!row) {
      await signingKeysRepo.insertIfAbsent(this.db, {
        id: newId(),
        project_id: projectId,
        secret_sealed: this.sealer.seal(randomSecret(32)),
        created_at: this.clock.now(),
      });
      row = await signingKeysRepo.byProject(this.db, projectId);
      if (!row) throw new Error("project signing key vanished");
    }
    const entry = await hmacKey(this.sealer.open(row.secret_sealed), projectId, "project");
    this.remember(row.id, entry, this.epoch);
    this.projectKid.set(projectId, row.id);
    return { kid: row.id, key: entry };
  }

  /** Mint a participant JWT with the claims of the official ParticipantToken, plus `exp` (MESHAGENT_TOKEN_TTL). */
  async mint(input: {
    projectId: string;
    signer: Signer;
    name: string;
    room: string;
    role: string;
    api: Scope;
    ttlSeconds?: number;
    /** Epoch ms; the token never outlives it (a share's expiry). */
    notAfter?: number | null;
  }): Promise<string> {
    let kid: string;
    let key: VerificationKey;
    if (input.signer.kind === "api_key") {
      const k = await this.keyFor(input.signer.keyId);
      if (!k || k.projectId !== input.projectId) throw unauthorized("the API key was revoked");
      kid = input.signer.keyId;
      key = k;
    } else ({ kid, key } = await this.projectKey(input.projectId));
    const payload: Record<string, unknown> = {
      name: input.name,
      grants: [
        { name: "room", scope: input.room },
        { name: "role", scope: input.role },
        { name: "api", scope: compactScope(input.api) },
      ],
      sub: input.projectId,
      kid,
      version: TOKEN_VERSION,
    };
    const ttl = input.ttlSeconds ?? this.ttlSeconds;
    let exp = ttl > 0 ? Math.floor(this.clock.now() / 1000) + ttl : undefined;
    if (input.notAfter != null) exp = Math.min(exp ?? Infinity, Math.floor(input.notAfter / 1000));
    if (exp !== undefined) payload.exp = exp;
    return signHs256(payload, key.raw);
  }

  /** Verify a participant JWT; the decoded payload, or a 401 saying why not. */
  async verify(token: string): Promise<ParticipantClaims> {
    let header: ReturnType<typeof decodeProtectedHeader>;
    let claims: JWTPayload;
    try {
      header = decodeProtectedHeader(token);
      claims = decodeJwt(token);
    } catch {
      throw unauthorized("the token is not a JWT");
    }
    if (header.alg !== "HS256") throw unauthorized(`participant tokens must be HS256, not ${quote(header.alg)}`);
    const kid = typeof claims.kid === "string" ? claims.kid : typeof header.kid === "string" ? header.kid : undefined;
    if (!kid) throw unauthorized("the token has no kid");
    const key = await this.keyFor(kid);
    if (!key) throw unauthorized("the token's kid is unknown or revoked");
    if (claims.sub !== key.projectId) throw unauthorized("the token's sub is not the project of its kid");
    let verified: JWTPayload;
    try {
      ({ payload: verified } = await jwtVerify(token, key.key, { algorithms: ["HS256"], currentDate: new Date(this.clock.now()) }));
    } catch (e) {
      const code = (e as { code?: string }).code;
      throw unauthorized(
        code === "ERR_JWT_EXPIRED"
          ? "the token has expired"
          : code === "ERR_JWT_CLAIM_VALIDATION_FAILED"
            ? `the token is not valid: ${(e as Error).message}`
            : "the token's signature does not verify",
      );
    }
    if (typeof verified.name !== "string") throw unauthorized("the token has no name");
    if (verified.grants !== undefined && !Array.isArray(verified.grants)) throw unauthorized("the token's grants must be a list");
    return { ...verified, grants: (verified.grants as Grant[] | undefined) ?? [] } as ParticipantClaims;
  }
}

/** The scope of one named grant in verified claims (`room`, `role`, `api`). */
export function grantOf(claims: ParticipantClaims, name: string): unknown {
  return claims.grants.find((g) => g && typeof g === "object" && g.name === name)?.scope;
}
