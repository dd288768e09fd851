import { createHash } from "node:crypto";
import type { Clock } from "../../core/clock.js";
import { newId } from "../../core/ids.js";
import { isObj } from "../../core/json.js";
import type { FoundRoomSecret, RoomRef, SecretFilter, SecretsService } from "../../secrets/service.js";
import type { Connection, Toolkit, ToolCall } from "../connection.js";
import {
  OAUTH_TOKEN_TYPE,
  oauthSecretId,
  parseOAuthConfig,
  parseStoredToken,
  pkce,
  tokenExpired,
  tokenRequest,
  type OAuthClientConfig,
  type StoredToken,
} from "../oauth.js";
import { denied, empty, ErrorCode, invalid, json, pack, ToolError, type Content } from "../protocol.js";
import { PendingRequests } from "../requests.js";

export type RoomSecrets = Pick<SecretsService, "visibleInRoom" | "findInRoom" | "putInRoom" | "deleteInRoom">;

export interface SecretsToolkitOptions {
  secrets: RoomSecrets;
  clock: Clock;
  /** MESHAGENT_SECRET_REQUEST_TIMEOUT: the longest a request_secret / request_oauth_token waits for its answer. */
  requestTimeoutMs: number;
  /** MESHAGENT_OAUTH_ALLOW_PRIVATE: token endpoints may be private, loopback or link-local addresses. */
  oauthAllowPrivate: boolean;
}

const MAX_URL = 2048;
const MAX_TYPE = 64;
const MAX_IDENTITY = 256;
const MAX_REFUSAL = 500;
/** Longest a token endpoint call may take once the authorization code is in. */
const EXCHANGE_TIMEOUT_MS = 30_000;

/** The id under which the secret provided for a request_secret (url, type) is kept: `requested.` + 32 hex digits. */
export function requestedSecretId(url: string, type: string): string {
  return "requested." + createHash("sha256").update(`${url}\n${type}`).digest("hex").slice(0, 32);
}

function optString(args: Record<string, unknown>, key: string, max = MAX_IDENTITY): string | undefined {
  const v = args[key];
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string") throw invalid(`${key} must be a string`);
  if (v.length > max) throw invalid(`${key} must be at most ${max} characters`);
  return v;
}

function reqString(args: Record<string, unknown>, key: string, max: number): string {
  const v = args[key];
  if (typeof v !== "string" || !v) throw invalid(`${key} must be a non-empty string`);
  if (v.length > max) throw invalid(`${key} must be at most ${max} characters`);
  return v;
}

const fileOf = (s: FoundRoomSecret): Content => ({ type: "file", name: s.info.name, mime_type: s.info.type, data: s.value });

interface SecretRequestData {
  url: string;
  type: string;
  /** Where the provided value is kept: the provider's identity, delegated to this identity ("" = not delegated). */
  delegatedTo: string;
  room: RoomRef;
  projectId: string;
}

interface OAuthRequestData {
  cfg: OAuthClientConfig;
  verifier: string | null;
  redirectUri: string;
  delegatedTo: string;
  room: RoomRef;
  projectId: string;
}

/**
 * The `secrets` toolkit, as the 0.39.9 SecretsClient calls it: room secrets (src/secrets, sealed at rest) seen by
 * participant identity (the token's `name`), and secret / OAuth requests from one participant to another.
 *
 * Identity rules: a participant owns the room secrets whose `for_identity` is its identity, and sees those plus the
 * ones delegated to it (`delegated_to` = its identity). Naming another `for_identity` needs the token's `admin`
 * section. Room secrets without an identity (REST, no `for_identity`) are not reachable from the room.
 */
export function secretsToolkit(o: SecretsToolkitOptions): Toolkit {
  const secretRequests = new PendingRequests<SecretRequestData, Buffer>();
  const oauthRequests = new PendingRequests<OAuthRequestData, string>();
  const roomOf = (call: ToolCall): RoomRef => ({ id: call.room.id, name: call.room.room.name });
  const projectOf = (call: ToolCall) => call.room.room.project_id;

  /** The owner a call names: itself, or (admin only) another identity. */
  function ownerOf(call: ToolCall, forIdentity: string | undefined): string {
    const me = call.conn.name;
    if (forIdentity === undefined || forIdentity === me) return me;
    if (!call.conn.scope.isAdmin()) throw denied(`addressing the secrets of identity "${forIdentity.slice(0, 100)}" needs the admin grant`);
    return forIdentity;
  }

  /**
   * The secret a get/exists means. No `delegated_to`: the owner's undelegated secret. `delegated_to` = the caller
   * (without for_identity): one delegated to it by anyone. Another `delegated_to`: the owner's secret delegated to
   * that identity. A secret delegated to the caller is never taken for its own: anyone may delegate to anyone.
   */
  async function lookup(call: ToolCall, match: SecretFilter, delegatedTo: string | undefined, forIdentity: string | undefined, open: boolean) {
    const me = call.conn.name;
    const owner = ownerOf(call, forIdentity);
    const find = (f: SecretFilter) => o.secrets.findInRoom(projectOf(call), roomOf(call), { ...match, ...f }, open);
    if (delegatedTo === undefined) return find({ forIdentity: owner, delegatedTo: "" });
    if (delegatedTo === me && forIdentity === undefined) return find({ delegatedTo: me });
    return find({ forIdentity: owner, delegatedTo });
  }

  /** The participant a request goes to: by participant id, else the latest connection of that identity. */
  function targetOf(call: ToolCall): Connection {
    const id = reqString(call.args, "participant_id", MAX_IDENTITY);
    const byId = call.room.connections.get(id);
    if (byId && !byId.closed) return byId;
    let byName: Connection | undefined;
    for (const c of call.room.connections.values()) if (c.name === id && !c.closed) byName = c;
    if (byName) return byName;
    throw new ToolError(`participant ${id} is not in the room`, ErrorCode.NOT_FOUND);
  }

  /** The client's `timeout` (seconds, default 300) bounded by the server's. */
  function timeoutOf(call: ToolCall): number {
    const t = call.args.timeout;
    if (t === undefined || t === null) return o.requestTimeoutMs;
    if (typeof t !== "number" || !Number.isFinite(t) || t <= 0) throw invalid("timeout must be a positive number of seconds");
    return Math.min(o.requestTimeoutMs, Math.max(1, Math.round(t * 1000)));
  }

  /** Where the answer to a request is kept: the target's secret, delegated to `delegate_to`, else to the requester. */
  function delegationOf(call: ToolCall, target: Connection): string {
    const d = optString(call.args, "delegate_to");
    if (d !== undefined) return d;
    return target.name === call.conn.name ? "" : call.conn.name;
  }

  /** A stored token that can be used now: as it is, or refreshed (and stored again). Null when it cannot. */
  async function usableToken(call: ToolCall, found: FoundRoomSecret, cfg: OAuthClientConfig): Promise<string | null> {
    const t = parseStoredToken(found.value);
    if (!t) return null;
    const now = o.clock.now();
    if (!tokenExpired(t, now)) return t.access_token;
    // The endpoint the token came from: a refresh token is never sent to an endpoint the caller names instead.
    const endpoint = t.token_endpoint ?? cfg.token_endpoint ?? null;
    if (!t.refresh_token || !endpoint) return null;
    const fresh = await tokenRequest(
      { ...cfg, token_endpoint: endpoint },
      { grant_type: "refresh_token", refresh_token: t.refresh_token },
      { allowPrivate: o.oauthAllowPrivate, timeoutMs: EXCHANGE_TIMEOUT_MS, nowMs: now },
    );
    await storeToken(
      call.room.room.project_id,
      { id: call.room.id, name: call.room.room.name },
      found.info.for_identity ?? "",
      found.info.delegated_to ?? "",
      cfg,
      fresh,
    );
    return fresh.access_token;
  }

  function storeToken(projectId: string, room: RoomRef, owner: string, delegatedTo: string, cfg: OAuthClientConfig, t: StoredToken) {
    return o.secrets.putInRoom(projectId, room, {
      secretId: oauthSecretId(cfg),
      name: `${cfg.client_id} @ ${cfg.authorization_endpoint}`.slice(0, 256),
      type: OAUTH_TOKEN_TYPE,
      forIdentity: owner,
      delegatedTo,
      value: Buffer.from(JSON.stringify(t), "utf8"),
    });
  }

  return {
    tools: {
      async list_secrets(call) {
        call.conn.scope.require("secrets");
        return json({ secrets: await o.secrets.visibleInRoom(projectOf(call), roomOf(call), call.conn.name) });
      },

      async get_secret(call) {
        call.conn.scope.require("secrets");
        const secretId = optString(call.args, "secret_id");
        const name = optString(call.args, "name");
        const type = optString(call.args, "type", MAX_TYPE);
        if (secretId === undefined && name === undefined) throw invalid("get_secret needs secret_id or name");
        const match: SecretFilter = secretId !== undefined ? { secretId } : { name };
        if (type !== undefined) match.type = type;
        const found = await lookup(call, match, optString(call.args, "delegated_to"), undefined, true);
        return found ? fileOf(found) : empty();
      },

      async exists(call) {
        call.conn.scope.require("secrets");
        const secretId = reqString(call.args, "secret_id", 256);
        const found = await lookup(call, { secretId }, optString(call.args, "delegated_to"), optString(call.args, "for_identity"), false);
        return json({ exists: !!found });
      },

      async set_secret(call) {
        call.conn.scope.require("secrets");
        if (call.input.type !== "binary")
          throw invalid("set_secret takes binary content: the value, with headers {secret_id, type, name, delegated_to, for_identity}");
        const h = call.input.headers;
        if (h.has_data === false) throw invalid("set_secret needs the value (has_data: true)");
        const secretId = optString(h, "secret_id") ?? newId();
        const owner = ownerOf(call, optString(h, "for_identity"));
        await o.secrets.putInRoom(projectOf(call), roomOf(call), {
          secretId,
          name: optString(h, "name"),
          type: optString(h, "type", MAX_TYPE),
          forIdentity: owner,
          delegatedTo: optString(h, "delegated_to") ?? "",
          value: call.input.data,
        });
        return json({ id: secretId });
      },

      async delete_secret(call) {
        call.conn.scope.require("secrets");
        const secretId = reqString(call.args, "id", 256);
        const me = call.conn.name;
        const delegatedTo = optString(call.args, "delegated_to");
        const room = roomOf(call);
        // The caller's own secret; or, with delegated_to naming the caller, one delegated to it (it gives it up).
        let gone = await o.secrets.deleteInRoom(projectOf(call), room, { secretId, forIdentity: me, delegatedTo: delegatedTo ?? "" });
        if (!gone && delegatedTo === me) gone = await o.secrets.deleteInRoom(projectOf(call), room, { secretId, delegatedTo: me });
        if (!gone) throw new ToolError(`secret ${JSON.stringify(secretId.slice(0, 100))} not found`, ErrorCode.NOT_FOUND);
        return empty();
      },

      async delete_requested_secret(call) {
        call.conn.scope.require("secrets");
        const url = reqString(call.args, "url", MAX_URL);
        const type = reqString(call.args, "type", MAX_TYPE);
        const me = call.conn.name;
        const delegatedTo = optString(call.args, "delegated_to") ?? me;
        const secretId = requestedSecretId(url, type);
        const filter: SecretFilter = delegatedTo === me ? { secretId, delegatedTo: me } : { secretId, forIdentity: me, delegatedTo };
        // Every copy (one per provider identity); bounded, in case they are being re-provided meanwhile.
        for (let i = 0; i < 100 && (await o.secrets.deleteInRoom(projectOf(call), roomOf(call), filter)); i++);
        return empty();
      },

      async request_secret(call) {
        call.conn.scope.require("secrets");
        const url = reqString(call.args, "url", MAX_URL);
        const type = reqString(call.args, "type", MAX_TYPE);
        const target = targetOf(call);
        const delegateTo = optString(call.args, "delegate_to") ?? null;
        const data = await secretRequests.open({
          kind: "secret",
          requester: call.conn,
          target,
          timeoutMs: timeoutOf(call),
          data: { url, type, delegatedTo: delegationOf(call, target), room: roomOf(call), projectId: projectOf(call) },
          send: (requestId) =>
            target.send(
              "secrets.request_secret",
              pack({
                request_id: requestId,
                request: { url, type, delegate_to: delegateTo },
                from_participant_id: call.conn.id,
                from_participant_name: call.conn.name,
              }),
            ),
        });
        return { type: "file", name: url, mime_type: type, data };
      },

      async provide_secret(call) {
        call.conn.scope.require("secrets");
        if (call.input.type !== "binary") throw invalid("provide_secret takes binary content: the value, with headers {request_id, error}");
        const { headers, data } = call.input;
        const req = secretRequests.claim(headers.request_id, call.conn);
        if (!req)
          throw new ToolError(
            `no pending secret request ${JSON.stringify(String(headers.request_id).slice(0, 100))} for this participant`,
            ErrorCode.NOT_FOUND,
          );
        if (typeof headers.error === "string" && headers.error) {
          req.reject(
            new ToolError(
              `participant ${call.conn.id} (${call.conn.name}) refused the secret request: ${headers.error.slice(0, MAX_REFUSAL)}`,
              ErrorCode.OPERATION_FAILED,
            ),
          );
          return empty();
        }
        const d = req.data;
        try {
          // Kept as the provider's room secret, delegated to the requester (or to delegate_to), like the real server.
          await o.secrets.putInRoom(d.projectId, d.room, {
            secretId: requestedSecretId(d.url, d.type),
            name: d.url.slice(0, 256),
            type: d.type,
            forIdentity: call.conn.name,
            delegatedTo: d.delegatedTo,
            value: data,
          });
        } catch (e) {
          const err = call.conn.errorFor(e, "secrets.provide_secret");
          req.reject(new ToolError(`the provided secret could not be kept: ${err.type === "error" ? err.text : "failed"}`, ErrorCode.OPERATION_FAILED));
          return err;
        }
        req.resolve(data);
        return empty();
      },

      async request_oauth_token(call) {
        call.conn.scope.secretsOAuth(isObj(call.args.oauth) ? call.args.oauth : null);
        const cfg = parseOAuthConfig(call.args.oauth, true);
        const redirectUri = reqString(call.args, "redirect_uri", MAX_URL);
        const target = targetOf(call);
        const delegatedTo = delegationOf(call, target);
        const room = roomOf(call);
        // A valid (or refreshable) token the target already gave the caller: no need to ask again. One delegated to
        // someone else is not the caller's to take: then the target is asked.
        const mine = delegatedTo === call.conn.name || (delegatedTo === "" && target.name === call.conn.name);
        const stored = mine ? await o.secrets.findInRoom(projectOf(call), room, { secretId: oauthSecretId(cfg), forIdentity: target.name, delegatedTo }) : null;
        if (stored) {
          const token = await usableToken(call, stored, cfg).catch(() => null);
          if (token) return json({ access_token: token });
        }
        const p = cfg.no_pkce ? null : pkce();
        const accessToken = await oauthRequests.open({
          kind: "OAuth authorization",
          requester: call.conn,
          target,
          timeoutMs: timeoutOf(call),
          data: { cfg, verifier: p?.verifier ?? null, redirectUri, delegatedTo, room, projectId: projectOf(call) },
          send: (requestId) =>
            target.send(
              "secrets.request_oauth_token",
              pack({
                request_id: requestId,
                challenge: p?.challenge ?? null,
                challenge_method: p ? "S256" : null,
                request: {
                  oauth: {
                    client_id: cfg.client_id,
                    authorization_endpoint: cfg.authorization_endpoint,
                    token_endpoint: cfg.token_endpoint,
                    scopes: cfg.scopes,
                    no_pkce: cfg.no_pkce,
                  },
                  redirect_uri: redirectUri,
                  delegate_to: optString(call.args, "delegate_to") ?? null,
                },
                from_participant_id: call.conn.id,
                from_participant_name: call.conn.name,
              }),
            ),
        });
        return json({ access_token: accessToken });
      },

      async provide_oauth_authorization(call) {
        call.conn.scope.require("secrets");
        const req = oauthRequests.claim(call.args.request_id, call.conn);
        if (!req)
          throw new ToolError(
            `no pending OAuth request ${JSON.stringify(String(call.args.request_id).slice(0, 100))} for this participant`,
            ErrorCode.NOT_FOUND,
          );
        const error = call.args.error;
        if (typeof error === "string" && error) {
          req.reject(
            new ToolError(
              `participant ${call.conn.id} (${call.conn.name}) refused the OAuth authorization: ${error.slice(0, MAX_REFUSAL)}`,
              ErrorCode.OPERATION_FAILED,
            ),
          );
          return empty();
        }
        const code = call.args.code;
        if (typeof code !== "string" || !code || code.length > 4096) {
          req.reject(new ToolError(`participant ${call.conn.id} answered the OAuth request without an authorization code`, ErrorCode.OPERATION_FAILED));
          throw invalid("provide_oauth_authorization needs a code (or an error)");
        }
        const d = req.data;
        const form: Record<string, string> = { grant_type: "authorization_code", code, redirect_uri: d.redirectUri };
        if (d.verifier) form.code_verifier = d.verifier;
        let token: StoredToken;
        try {
          token = await tokenRequest(d.cfg, form, { allowPrivate: o.oauthAllowPrivate, timeoutMs: EXCHANGE_TIMEOUT_MS, nowMs: o.clock.now() });
          await storeToken(d.projectId, d.room, call.conn.name, d.delegatedTo, d.cfg, token);
        } catch (e) {
          const err = call.conn.errorFor(e, "secrets.provide_oauth_authorization");
          req.reject(
            new ToolError(
              err.type === "error" ? err.text : "the OAuth authorization failed",
              err.type === "error" && err.code ? err.code : ErrorCode.OPERATION_FAILED,
            ),
          );
          return err;
        }
        req.resolve(token.access_token);
        return empty();
      },

      async get_offline_oauth_token(call) {
        call.conn.scope.secretsOAuth(isObj(call.args.oauth) ? call.args.oauth : null);
        const cfg = parseOAuthConfig(call.args.oauth, false);
        const me = call.conn.name;
        const delegatedBy = optString(call.args, "delegated_by");
        const delegatedToArg = optString(call.args, "delegated_to");
        const owner = delegatedBy ?? me;
        const delegatedTo = delegatedToArg ?? (owner !== me ? me : "");
        if (owner !== me && delegatedTo !== me && !call.conn.scope.isAdmin())
          throw denied("a participant reads only its own OAuth tokens and those delegated to it");
        const room = roomOf(call);
        const secretId = oauthSecretId(cfg);
        const found = await o.secrets.findInRoom(projectOf(call), room, { secretId, forIdentity: owner, delegatedTo });
        if (!found)
          throw new ToolError(
            `no stored OAuth token for client ${JSON.stringify(cfg.client_id.slice(0, 100))} at ${cfg.authorization_endpoint.slice(0, 200)}; get one with request_oauth_token`,
            ErrorCode.NOT_FOUND,
          );
        const token = await usableToken(call, found, cfg);
        if (!token)
          throw new ToolError(
            "the stored OAuth token has expired and cannot be refreshed (no refresh_token or token_endpoint); get a new one with request_oauth_token",
            ErrorCode.INVALID_STATE,
          );
        return json({ access_token: token });
      },
    },
  };
}
