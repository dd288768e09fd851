import type { Clock } from "../core/clock.js";
import { sha256Hex, type Sealer } from "../core/crypto.js";
import type { DB } from "../store/db.js";
import { artifactsRepo, type OAuthClientRow } from "./repo.js";
import { clientSecretAad, GRANT_TYPES } from "./service.js";
import type { OAuthServerClientsTable } from "../store/schema.js";

/** The grants the authorization server runs (rows registered earlier may name client_credentials: it is dropped). */
const SERVED_GRANTS = new Set(GRANT_TYPES);
/** The models looked up by uid or user code. */
const BY_UID = new Set(["Session", "DeviceCode", "Interaction"]);
const LOOPBACK = /^http:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d+)?\//;

/** What a client is to the provider: its metadata, with our own under `urn:meshagent:*`. */
export interface ClientMetadata {
  client_id: string;
  client_secret?: string;
  grant_types: string[];
  response_types: string[];
  redirect_uris: string[];
  token_endpoint_auth_method: string;
  application_type: "web" | "native";
  id_token_signed_response_alg: string;
  client_name?: string;
  "urn:meshagent:scope": string;
  "urn:meshagent:official": boolean;
  "urn:meshagent:project_id": string;
}

export const CLIENT_EXTRA = ["urn:meshagent:scope", "urn:meshagent:official", "urn:meshagent:project_id"];

function clientMetadata(
  c: { client_id: string; grant_types: string; redirect_uris: string; scope: string; metadata: string; official: number },
  secret: string | null,
  projectId: string,
): ClientMetadata {
  const meta = JSON.parse(c.metadata) as Record<string, string>;
  const grants = (JSON.parse(c.grant_types) as string[]).filter((g) => SERVED_GRANTS.has(g));
  const uris = JSON.parse(c.redirect_uris) as string[];
  const method = secret === null ? "none" : meta.token_endpoint_auth_method === "client_secret_post" ? "client_secret_post" : "client_secret_basic";
  return {
    client_id: c.client_id,
    ...(secret !== null ? { client_secret: secret } : {}),
    grant_types: grants,
    response_types: grants.includes("authorization_code") ? ["code"] : [],
    redirect_uris: uris,
    token_endpoint_auth_method: method,
    // Loopback http redirects are a native app's (RFC 8252); anything else a web client's.
    application_type: uris.length && uris.every((u) => LOOPBACK.test(u)) ? "native" : "web",
    id_token_signed_response_alg: "ES256",
    ...(meta.client_name || meta.name ? { client_name: meta.client_name || meta.name } : {}),
    "urn:meshagent:scope": c.scope,
    "urn:meshagent:official": c.official === 1,
    "urn:meshagent:project_id": projectId,
  };
}

export const projectClientMetadata = (row: OAuthClientRow, sealer: Sealer): ClientMetadata => {
  const meta = JSON.parse(row.metadata) as Record<string, string>;
  const publicClient = meta.token_endpoint_auth_method === "none";
  return clientMetadata(row, publicClient ? null : sealer.open(row.secret_sealed, clientSecretAad(row.client_id)), row.project_id);
};

export const serverClientMetadata = (row: OAuthServerClientsTable, sealer: Sealer): ClientMetadata =>
  clientMetadata(row, row.secret_sealed === null ? null : sealer.open(row.secret_sealed, clientSecretAad(row.client_id)), "");

type Payload = Record<string, unknown> & { jti?: string; grantId?: string; userCode?: string; uid?: string; accountId?: string; clientId?: string };

/**
 * oidc-provider's storage, in the store (so every server process shares codes, tokens, grants and sessions). Rows
 * are keyed by the SHA-256 of the artifact's id: an opaque token's value is its id, and it is never stored. A
 * second use of a code or refresh token (`consume` of a consumed one) is refused here, atomically, and revokes the
 * whole grant (every token issued from it), so two concurrent uses cannot both win. Destroyed tokens and revoked
 * grants are announced (`revoked`) so each process drops them from its bearer cache at once.
 */
export function artifactAdapter(deps: {
  db: DB;
  clock: Clock;
  sealer: Sealer;
  revoked: (key: string) => Promise<unknown>;
  /** The provider's invalid_grant error, for a second use. */
  reused: (message: string) => Error;
  /** Redirect URIs a server client has beyond its stored ones (the console's, which follow the public URL). */
  extraRedirects?: (clientId: string) => string[];
}) {
  const { db, clock, sealer, revoked, reused } = deps;
  return class ArtifactAdapter {
    constructor(private readonly model: string) {}

    async upsert(id: string, payload: Payload, expiresIn: number) {
      const { jti: _jti, ...rest } = payload;
      // Found later by uid or user code, without their id: keep it, sealed.
      if (BY_UID.has(this.model)) rest._id = sealer.seal(id, `oauth_artifact:${this.model}`);
      const now = clock.now();
      await artifactsRepo.upsert(db, {
        model: this.model,
        id_hash: sha256Hex(id),
        payload: JSON.stringify(rest),
        grant_id: this.model === "Grant" ? id : (payload.grantId ?? null),
        user_code: payload.userCode ? sha256Hex(payload.userCode) : null,
        uid: payload.uid ?? null,
        account_id: payload.accountId ?? null,
        client_id: payload.clientId ?? null,
        expires_at: expiresIn ? now + expiresIn * 1000 : null,
        consumed_at: typeof payload.consumed === "number" ? payload.consumed * 1000 : null,
        created_at: now,
      });
    }

    private async row(r: Awaited<ReturnType<typeof artifactsRepo.byId>>, id?: string) {
      if (!r) return undefined;
      if (r.expires_at !== null && Number(r.expires_at) <= clock.now()) return undefined;
      const payload = JSON.parse(r.payload) as Payload;
      delete payload._id;
      if (id !== undefined) payload.jti = id;
      if (r.consumed_at !== null) payload.consumed = Math.floor(Number(r.consumed_at) / 1000);
      return payload;
    }

    async find(id: string) {
      if (this.model === "Client") return this.client(id);
      return this.row(await artifactsRepo.byId(db, this.model, sha256Hex(id)), id);
    }

    private async client(id: string) {
      if (typeof id !== "string" || id.length > 200) return undefined;
      const own = await artifactsRepo.serverClient(db, id);
      if (own) {
        const meta = serverClientMetadata(own, sealer);
        const extra = deps.extraRedirects?.(id) ?? [];
        return extra.length ? { ...meta, redirect_uris: [...new Set([...meta.redirect_uris, ...extra])] } : meta;
      }
      const p = await artifactsRepo.projectClient(db, id);
      return p ? projectClientMetadata(p, sealer) : undefined;
    }

    /** Sessions and interactions are found by uid, device codes by user code; both carry their id in the payload. */
    async findByUid(uid: string) {
      const r = await artifactsRepo.by(db, this.model, "uid", uid);
      return r ? this.withJti(r) : undefined;
    }

    async findByUserCode(userCode: string) {
      const r = await artifactsRepo.by(db, this.model, "user_code", sha256Hex(userCode));
      return r ? this.withJti(r) : undefined;
    }

    // The models found this way keep their id sealed in `_id` (upsert).
    private async withJti(r: NonNullable<Awaited<ReturnType<typeof artifactsRepo.byId>>>) {
      const p = await this.row(r);
      const sealed = (JSON.parse(r.payload) as Payload)._id;
      if (p && typeof sealed === "string") p.jti = sealer.open(sealed, `oauth_artifact:${this.model}`);
      return p;
    }

    async consume(id: string) {
      if (await artifactsRepo.consume(db, this.model, sha256Hex(id), clock.now())) return;
      // Used already (two requests raced with the same code or refresh token): refuse, and end the grant.
      const r = await artifactsRepo.byId(db, this.model, sha256Hex(id));
      if (r?.grant_id) await this.revokeGrant(r.grant_id);
      throw reused(`${this.model === "RefreshToken" ? "refresh token" : "grant"} already used`);
    }

    async destroy(id: string) {
      await artifactsRepo.destroy(db, this.model, sha256Hex(id));
      if (this.model === "AccessToken") await revoked(sha256Hex(id));
      if (this.model === "Grant") await this.revokeGrant(id);
    }

    async revokeByGrantId(grantId: string) {
      await artifactsRepo.destroyGrantMembers(db, this.model, grantId);
      if (this.model === "AccessToken") await revoked(`oauth:${grantId}`);
    }

    private async revokeGrant(grantId: string) {
      await artifactsRepo.destroyGrant(db, grantId);
      await revoked(`oauth:${grantId}`);
    }
  };
}
