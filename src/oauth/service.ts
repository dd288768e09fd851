import { randomBytes } from "node:crypto";
import type { Clock } from "../core/clock.js";
import { badRequest, forbidden, notFound } from "../core/errors.js";
import { isObj } from "../core/json.js";
import type { EventBus } from "../core/events.js";
import { randomSecret, Sealer, sha256Hex } from "../core/crypto.js";
import { pageOffset, pageSize } from "../core/paging.js";
import { inTx, type DB } from "../store/db.js";
import { oauthClientsRepo, type OAuthClientRow } from "./repo.js";

/** The grants a client may be registered for (client_credentials is not offered: machines use project API keys). */
export const GRANT_TYPES = ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"];
export const RESPONSE_TYPES = ["code"];
const MAX_URIS = 20;
const MAX_METADATA_KEYS = 50;
/** RFC 6749 §3.3 scope-token characters. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;
const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** The sealed secret's additional data: a secret cannot be moved to another client's row. */
export const clientSecretAad = (clientId: string) => `oauth_client:${clientId}`;

/** A client id like the official CLI's: 32 letters and digits. */
function newClientId(): string {
  const b = randomBytes(32);
  let s = "";
  for (const x of b) s += ALNUM[x % 62];
  return s;
}

export interface OAuthClientInput {
  grant_types?: unknown;
  response_types?: unknown;
  redirect_uris?: unknown;
  scope?: unknown;
  metadata?: unknown;
  official?: unknown;
}

/** The wire shape (§6.3): every key present; `client_secret` is the secret only in create's answer, else "". */
function clientJson(r: OAuthClientRow, secret = "") {
  return {
    client_id: r.client_id,
    client_secret: secret,
    grant_types: JSON.parse(r.grant_types) as string[],
    response_types: JSON.parse(r.response_types) as string[],
    redirect_uris: JSON.parse(r.redirect_uris) as string[],
    scope: r.scope,
    project_id: r.project_id,
    metadata: JSON.parse(r.metadata) as Record<string, string>,
    official: r.official === 1,
  };
}

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** A redirect URI: absolute https, or http on a loopback host (RFC 8252 §7.3), no fragment. */
export function checkRedirectUri(v: unknown, at: string): string {
  if (typeof v !== "string" || !v) throw badRequest(`${at} must be a URL`, "invalid_redirect_uri");
  if (v.length > 2000) throw badRequest(`${at} must be at most 2000 characters`, "invalid_redirect_uri");
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw badRequest(`${at} is not an absolute URL`, "invalid_redirect_uri");
  }
  if (u.hash || v.includes("#")) throw badRequest(`${at} must not have a fragment`, "invalid_redirect_uri");
  if (u.username || u.password) throw badRequest(`${at} must not carry credentials`, "invalid_redirect_uri");
  if (u.protocol === "https:") return v;
  if (u.protocol === "http:" && LOOPBACK.has(u.hostname)) return v;
  throw badRequest(`${at} must be https, or http on a loopback host (localhost, 127.0.0.1, [::1])`, "invalid_redirect_uri");
}

function stringList(v: unknown, at: string, allowed: string[] | null, max: number): string[] {
  if (!Array.isArray(v)) throw badRequest(`${at} must be a list of strings`);
  if (v.length > max) throw badRequest(`${at} may have at most ${max} entries`);
  const out: string[] = [];
  v.forEach((x, i) => {
    if (typeof x !== "string") throw badRequest(`${at}[${i}] must be a string`);
    if (allowed && !allowed.includes(x)) throw badRequest(`${at}[${i}]: "${x.slice(0, 80)}" is not one of ${allowed.join(", ")}`);
    if (!out.includes(x)) out.push(x);
  });
  return out;
}

function checkScope(v: unknown): string {
  if (typeof v !== "string") throw badRequest("scope must be a string of space-separated scopes");
  if (v.length > 2000) throw badRequest("scope must be at most 2000 characters");
  const tokens = v.split(" ").filter(Boolean);
  for (const t of tokens) if (!SCOPE_TOKEN.test(t)) throw badRequest(`scope: "${t.slice(0, 80)}" is not a valid scope token (RFC 6749 §3.3)`);
  return [...new Set(tokens)].join(" ");
}

function checkMetadata(v: unknown): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isObj(v)) throw badRequest("metadata must be an object of strings");
  const entries = Object.entries(v);
  if (entries.length > MAX_METADATA_KEYS) throw badRequest(`metadata may have at most ${MAX_METADATA_KEYS} keys`);
  for (const [k, x] of entries) {
    if (typeof x !== "string") throw badRequest(`metadata.${k.slice(0, 80)} must be a string`);
    if (k.length > 200 || x.length > 4000) throw badRequest(`metadata.${k.slice(0, 80)}: keys are at most 200 characters, values 4000`);
  }
  return v as Record<string, string>;
}

/**
 * OAuth clients of projects (wire-contract §6.3): the applications that may ask for tokens. The secret is returned
 * once, at creation; at rest it is sealed with the master key (and its SHA-256 kept for the token endpoint). A client
 * marked `official` skips the consent page, so only a server administrator may set it.
 */
export class OAuthClientsService {
  constructor(
    private readonly db: DB,
    private readonly clock: Clock,
    private readonly sealer: Sealer,
    private readonly bus: EventBus,
  ) {}

  private fields(input: OAuthClientInput, cur: OAuthClientRow | null, serverAdmin: boolean) {
    const patch: Partial<OAuthClientRow> = {};
    if (input.official !== undefined && input.official !== null) {
      if (typeof input.official !== "boolean") throw badRequest("official must be a boolean");
      if (input.official !== (cur?.official === 1)) {
        if (!serverAdmin) throw forbidden("official clients skip the consent page: only a server administrator may mark a client official");
        patch.official = input.official ? 1 : 0;
      }
    }
    if (Array.isArray(input.grant_types) && input.grant_types.includes("client_credentials"))
      throw badRequest("grant_types: client_credentials is not offered here: a program acting for a project uses a project API key");
    if (input.grant_types !== undefined && input.grant_types !== null)
      patch.grant_types = JSON.stringify(stringList(input.grant_types, "grant_types", GRANT_TYPES, GRANT_TYPES.length));
    if (input.response_types !== undefined && input.response_types !== null)
      patch.response_types = JSON.stringify(stringList(input.response_types, "response_types", RESPONSE_TYPES, RESPONSE_TYPES.length));
    if (input.redirect_uris !== undefined && input.redirect_uris !== null)
      patch.redirect_uris = JSON.stringify(
        stringList(input.redirect_uris, "redirect_uris", null, MAX_URIS).map((u, i) => checkRedirectUri(u, `redirect_uris[${i}]`)),
      );
    if (input.scope !== undefined && input.scope !== null) patch.scope = checkScope(input.scope);
    if (input.metadata !== undefined && input.metadata !== null) patch.metadata = JSON.stringify(checkMetadata(input.metadata));
    // The whole client must hang together: the code flow needs `code` and somewhere to send it.
    const grants = JSON.parse(patch.grant_types ?? cur?.grant_types ?? "[]") as string[];
    const responses = JSON.parse(patch.response_types ?? cur?.response_types ?? "[]") as string[];
    const uris = JSON.parse(patch.redirect_uris ?? cur?.redirect_uris ?? "[]") as string[];
    if (!grants.length) throw badRequest(`grant_types must name at least one of ${GRANT_TYPES.join(", ")}`);
    if (grants.includes("authorization_code") && !responses.includes("code"))
      throw badRequest('a client with the authorization_code grant needs response_types ["code"]');
    if (responses.includes("code") && !grants.includes("authorization_code")) throw badRequest('response_types "code" needs the authorization_code grant');
    if (grants.includes("authorization_code") && !uris.length) throw badRequest("a client with the authorization_code grant needs at least one redirect URI");
    return patch;
  }

  /** `serverAdmin`: the caller administers the server (only they may mark a client official). */
  async create(projectId: string, input: OAuthClientInput, serverAdmin = false) {
    if (input.grant_types === undefined || input.grant_types === null) throw badRequest("grant_types is required");
    if (input.scope === undefined || input.scope === null) throw badRequest("scope is required");
    const fields = this.fields({ response_types: [], redirect_uris: [], ...input }, null, serverAdmin);
    const clientId = newClientId();
    const secret = randomSecret(32);
    const now = this.clock.now();
    const row: OAuthClientRow = {
      client_id: clientId,
      project_id: projectId,
      secret_sealed: this.sealer.seal(secret, clientSecretAad(clientId)),
      secret_hash: sha256Hex(secret),
      grant_types: fields.grant_types!,
      response_types: fields.response_types ?? "[]",
      redirect_uris: fields.redirect_uris ?? "[]",
      scope: fields.scope!,
      metadata: fields.metadata ?? "{}",
      official: fields.official ?? 0,
      created_at: now,
      updated_at: now,
    };
    const after = await inTx(this.db, async (tx) => {
      await oauthClientsRepo.insert(tx, row);
      return this.bus.publish(tx, { type: "oauth_client.created", project_id: projectId, data: { client_id: clientId } });
    });
    after();
    return clientJson(row, secret);
  }

  async get(projectId: string, clientId: string) {
    const row = await oauthClientsRepo.byId(this.db, projectId, clientId);
    if (!row) throw notFound("oauth client");
    return clientJson(row);
  }

  async list(projectId: string, opts: { count?: number; offset?: number; filter?: string }) {
    const filter = opts.filter?.trim();
    const { rows, total } = await oauthClientsRepo.page(this.db, projectId, {
      limit: pageSize(opts.count, 100),
      offset: pageOffset(opts.offset),
      ...(filter ? { filter } : {}),
    });
    return { clients: rows.map((r) => clientJson(r)), total };
  }

  /** Changes the keys given (the secret and the client id stay). */
  async update(projectId: string, clientId: string, input: OAuthClientInput, serverAdmin = false) {
    await inTx(this.db, async (tx) => {
      const cur = await oauthClientsRepo.byId(tx, projectId, clientId);
      if (!cur) throw notFound("oauth client");
      const patch = this.fields(input, cur, serverAdmin);
      await oauthClientsRepo.update(tx, projectId, clientId, { ...patch, updated_at: this.clock.now() });
    });
  }

  async delete(projectId: string, clientId: string) {
    const after = await inTx(this.db, async (tx) => {
      if (!(await oauthClientsRepo.delete(tx, projectId, clientId))) throw notFound("oauth client");
      return this.bus.publish(tx, { type: "oauth_client.deleted", project_id: projectId, data: { client_id: clientId } });
    });
    after();
  }
}
