import http from "node:http";
import https from "node:https";
import { WebSocket } from "ws";
import type { Logger } from "pino";
import type { Clock } from "../core/clock.js";
import type { Sealer } from "../core/crypto.js";
import { ApiError, badRequest, tooLarge } from "../core/errors.js";
import { newId } from "../core/ids.js";
import { isObj } from "../core/json.js";
import { checkUrlTarget, guardedLookup, parseHttpUrl, UnsafeUrlError } from "../core/ssrf.js";
import type { DB } from "../store/db.js";
import type { RoomsService } from "../rooms/service.js";
import { roomUrl } from "../rooms/service.js";
import { agentDefaultScope, type Scope } from "../tokens/scope.js";
import type { ParticipantTokens } from "../tokens/service.js";
import { CALL_EVENT } from "../webhooks/catalog.js";
import type { DeliveryOutcome, WebhookCallDelivery } from "../webhooks/dispatcher.js";
import { pyJsonDumps } from "../webhooks/pyjson.js";
import { MAX_PAYLOAD_BYTES } from "../webhooks/service.js";
import { generateWebhookSecret, signedHeaders, standardSigner } from "../webhooks/signing.js";
import { EXCERPT_BYTES, postSigned, refusedLiteral } from "../webhooks/transport.js";
import type { CallConfig } from "./config.js";
import { callsRepo } from "./repo.js";

/** What `room.call` asks for (agents-protocol §1.7), resolved by the room server to its project and room. */
export interface CallInput {
  projectId: string;
  roomId: string;
  roomName: string;
  /** The participant name the token is minted for. */
  name: string;
  /** http(s): POST (a 426 answer switches to the WebSocket handoff); ws(s): the WebSocket handoff directly. */
  url: string;
  arguments: unknown;
  /** The calling participant's id (logged, never sent). */
  callerId: string;
  /** The token's ApiScope (default ApiScope.agent_default()): an endpoint's `meshagent.api` (src/hosting). */
  api?: Scope;
  /**
   * A target the server started itself (a service container on this host, src/hosting): loopback and private
   * addresses are allowed whatever MESHAGENT_WEBHOOK_ALLOW_PRIVATE says. Never set from what a participant sent.
   */
  trusted?: boolean;
}

export interface CallResult {
  /** The target's answer: its 2xx, or 101 for the WebSocket handoff. */
  status: number;
  via: "post" | "websocket";
}

/** What the WebSocket handoff needs of the room server (RoomServer.acceptCallSocket). */
export interface CallSocketHost {
  acceptCallSocket(ws: WebSocket, token: string): Promise<void>;
}

export interface CallDeps {
  db: DB;
  clock: Clock;
  sealer: Sealer;
  tokens: Pick<ParticipantTokens, "mint">;
  rooms: Pick<RoomsService, "byName">;
  publicUrl: () => string;
  /** The room server, built after this service (it calls `call`): looked up when a WebSocket handoff opens. */
  sockets: () => CallSocketHost;
  log?: Pick<Logger, "info" | "warn">;
}

export interface CallHandoffConfig extends CallConfig {
  /** MESHAGENT_WEBHOOK_ALLOW_PRIVATE: the SSRF rule of webhooks applies to call targets. */
  allowPrivate: boolean;
  /** MESHAGENT_ROOM_MAX_MESSAGE: the largest room frame, for the handoff socket. */
  maxMessageBytes: number;
}

/** The longest participant name a call may ask for. */
export const MAX_NAME_CHARS = 256;
const MAX_URL_CHARS = 2000;
/** The AAD a project's call secret is sealed with. */
export const callSecretAad = (projectId: string) => `call-secret:${projectId}`;

interface Handoff {
  projectId: string;
  roomName: string;
  name: string;
  /** The http(s) form of the target. */
  url: URL;
  websocket: boolean;
  args: unknown;
  secret: string;
  deliveryId: string;
  attempt: number;
  timeoutMs: number;
  signal?: AbortSignal;
  abortReason?: string;
  api?: Scope;
  allowPrivate: boolean;
}

type Outcome = DeliveryOutcome & { via: "post" | "websocket" };

function checkName(name: unknown, what = "name"): string {
  if (typeof name !== "string" || !name.trim()) throw badRequest(`${what} must be a non-empty participant name`);
  if (name.length > MAX_NAME_CHARS) throw badRequest(`${what} must be at most ${MAX_NAME_CHARS} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) throw badRequest(`${what} must not contain control characters`);
  return name;
}

/**
 * The delivery side of `room.call` (wire-contract §9, agents-protocol §1.7): mint a participant token (role `agent`,
 * ApiScope.agentDefault(), signed with the project's signing key) for `name` in the room, and hand the call to `url`
 * as the `room.call` event `{"event": "room.call", "data": {room_name, room_url, token, arguments}}`, signed exactly
 * like a webhook delivery (Meshagent-Signature over the Python json.dumps text, and the Standard Webhooks headers).
 *
 * As a POST by default. As the WebSocket handoff when the URL is `ws://`/`wss://`, or when the POST is answered
 * 426 Upgrade Required: then the JSON goes in the `Meshagent-Webhook` header of a `GET` upgrade, and once the socket
 * is open the room server serves it as the token's participant (the target speaks the room protocol over it).
 *
 * Calls from `room.call` are signed with the project's call secret ({@link secret}); webhooks with action "call"
 * come here through the dispatcher ({@link deliverWebhookCall}) and are signed with the webhook's secret.
 */
/** What the dispatcher hands over for one attempt of a webhook with action "call" (its interface, one definition). */
type WebhookCallAttempt = Parameters<WebhookCallDelivery["deliverWebhookCall"]>[0];

export class CallHandoff implements WebhookCallDelivery {
  private readonly agents: { http: http.Agent; https: https.Agent };
  /** For trusted targets (the server's own containers): private addresses allowed. */
  private readonly trustedAgents: { http: http.Agent; https: https.Agent };

  constructor(
    private readonly deps: CallDeps,
    private readonly config: CallHandoffConfig,
  ) {
    const agentOpts = { keepAlive: true, maxSockets: 64, lookup: guardedLookup(config.allowPrivate) };
    this.agents = { http: new http.Agent(agentOpts as http.AgentOptions), https: new https.Agent(agentOpts as https.AgentOptions) };
    const trustedOpts = { keepAlive: true, maxSockets: 64, lookup: guardedLookup(true) };
    this.trustedAgents = { http: new http.Agent(trustedOpts as http.AgentOptions), https: new https.Agent(trustedOpts as https.AgentOptions) };
  }

  /**
   * Hand a `room.call` to its target and answer once it accepted: `{status, via}`. Bad input is a 400 (a name, a URL
   * that is not http/https/ws/wss or points into a private range), arguments over 256 KiB a 413; a target that
   * answers anything but a 2xx (or, for the WebSocket handoff, does not upgrade) a 502 naming the status, a network
   * error a 502 naming it, no acceptance within MESHAGENT_CALL_TIMEOUT_MS a 504.
   */
  async call(input: CallInput): Promise<CallResult> {
    const name = checkName(input.name);
    if (typeof input.roomName !== "string" || !input.roomName) throw badRequest("the room is unknown");
    const allowPrivate = input.trusted === true || this.config.allowPrivate;
    const { url, websocket, origin } = await this.checkTarget(input.url, allowPrivate);
    const args = input.arguments === undefined ? null : input.arguments;
    const argBytes = pyJsonDumps(args).length;
    if (argBytes > MAX_PAYLOAD_BYTES) throw tooLarge(`arguments must be at most ${MAX_PAYLOAD_BYTES} bytes as JSON (got ${argBytes})`);
    const secret = await this.secret(input.projectId);
    const t0 = performance.now();
    const out = await this.deliver({
      projectId: input.projectId,
      roomName: input.roomName,
      name,
      url,
      websocket,
      args,
      secret,
      deliveryId: newId(),
      attempt: 1,
      timeoutMs: this.config.timeoutMs,
      api: input.api,
      allowPrivate,
    });
    const ok = out.final === "delivered" || (out.status !== null && out.status >= 200 && out.status < 300);
    // Logged: who called whom where, and how it went. Never the token, the body, the secret or the URL's path/query.
    this.deps.log?.info(
      {
        project_id: input.projectId,
        room: input.roomName,
        caller: input.callerId,
        name,
        target: origin,
        via: out.via,
        status: out.status,
        ms: Math.round(performance.now() - t0),
      },
      ok ? "room.call handed off" : "room.call handoff failed",
    );
    if (ok) return { status: out.status!, via: out.via };
    throw callError(origin, out, this.config.timeoutMs);
  }

  /**
   * One attempt of a webhook with action "call" (the dispatcher's `room.call` rows): the participant is the webhook
   * payload's `participant_name` when it is a non-empty string, else the webhook's name; room and arguments come from
   * the row (see `callBody` in src/webhooks/service.ts); signed with the webhook's secret. A room that no longer
   * exists fails the delivery at once (no retries).
   */
  async deliverWebhookCall(d: WebhookCallAttempt): Promise<DeliveryOutcome> {
    let roomName: unknown;
    let args: unknown;
    let name: string;
    try {
      const parsed = JSON.parse(d.body) as { data?: { room_name?: unknown; arguments?: unknown } };
      roomName = parsed.data?.room_name;
      args = parsed.data?.arguments ?? null;
      const payload = d.webhook.payload ? (JSON.parse(d.webhook.payload) as unknown) : null;
      const chosen =
        isObj(payload) && typeof payload.participant_name === "string" && payload.participant_name.trim() ? payload.participant_name : d.webhook.name;
      name = checkName(chosen, "the participant name");
    } catch (e) {
      return { status: null, error: `not a valid call: ${(e as Error).message}`, excerpt: null, final: "failed" };
    }
    if (typeof roomName !== "string" || !roomName) return { status: null, error: "not a valid call: no room_name", excerpt: null, final: "failed" };
    try {
      await this.deps.rooms.byName(d.projectId, roomName);
      return await this.deliver({
        projectId: d.projectId,
        roomName,
        name,
        url: d.url,
        websocket: false,
        allowPrivate: this.config.allowPrivate,
        args,
        secret: d.secret,
        deliveryId: d.deliveryId,
        attempt: d.attempt,
        timeoutMs: d.timeoutMs,
        signal: d.signal,
        abortReason: "dispatcher stopping",
      });
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return { status: null, error: `room "${roomName}" not found`, excerpt: null, final: "failed" };
      // Anything else (the store unavailable, say) is a failed attempt, retried on the schedule.
      return { status: null, error: `the room.call handoff failed: ${(e as Error).message}`, excerpt: null };
    }
  }

  /** The project's call-signing secret (`whsec_…`), created on first use; receivers verify room.call with it. */
  async secret(projectId: string): Promise<string> {
    let row = await callsRepo.secret(this.deps.db, projectId);
    if (!row) {
      const now = this.deps.clock.now();
      await callsRepo.insertIfAbsent(this.deps.db, {
        project_id: projectId,
        secret_sealed: this.deps.sealer.seal(generateWebhookSecret(), callSecretAad(projectId)),
        created_at: now,
        updated_at: now,
      });
      row = await callsRepo.secret(this.deps.db, projectId);
      if (!row) throw new Error("the call secret vanished");
    }
    return this.deps.sealer.open(row.secret_sealed, callSecretAad(projectId));
  }

  /** Replace the project's call-signing secret with a new one; calls from now on are signed with it. */
  async rotateSecret(projectId: string): Promise<string> {
    const secret = generateWebhookSecret();
    const now = this.deps.clock.now();
    await callsRepo.put(this.deps.db, {
      project_id: projectId,
      secret_sealed: this.deps.sealer.seal(secret, callSecretAad(projectId)),
      created_at: now,
      updated_at: now,
    });
    return secret;
  }

  close() {
    this.agents.http.destroy();
    this.agents.https.destroy();
    this.trustedAgents.http.destroy();
    this.trustedAgents.https.destroy();
  }

  /** Parse and check a target URL: http/https (POST) or ws/wss (WebSocket handoff), SSRF rules as for webhooks. */
  private async checkTarget(raw: unknown, allowPrivate = this.config.allowPrivate): Promise<{ url: URL; websocket: boolean; origin: string }> {
    if (typeof raw !== "string" || !raw) throw badRequest("url must be a non-empty string", "invalid_url");
    if (raw.length > MAX_URL_CHARS) throw badRequest(`url must be at most ${MAX_URL_CHARS} characters`, "invalid_url");
    try {
      let u: URL;
      try {
        u = new URL(raw);
      } catch {
        throw new UnsafeUrlError("url is not a valid absolute URL");
      }
      const websocket = u.protocol === "ws:" || u.protocol === "wss:";
      const origin = u.origin;
      if (websocket) u.protocol = u.protocol === "wss:" ? "https:" : "http:";
      if (u.protocol !== "http:" && u.protocol !== "https:") throw new UnsafeUrlError("url must use http, https, ws or wss");
      const url = parseHttpUrl(u.href);
      await checkUrlTarget(url, allowPrivate);
      return { url, websocket, origin };
    } catch (e) {
      if (e instanceof UnsafeUrlError) throw badRequest(e.message, "invalid_url");
      throw e;
    }
  }

  /** Mint the token, build and sign the event, and send it: POST (426 → WebSocket) or the WebSocket handoff. */
  private async deliver(h: Handoff): Promise<Outcome> {
    const token = await this.deps.tokens.mint({
      projectId: h.projectId,
      signer: { kind: "project" },
      name: h.name,
      room: h.roomName,
      role: "agent",
      api: h.api ?? agentDefaultScope(),
    });
    // Key order as the reference sender and the SDK's CallEventData: room_name, room_url, token, arguments.
    const body = pyJsonDumps({
      event: CALL_EVENT,
      data: { room_name: h.roomName, room_url: roomUrl(this.deps.publicUrl(), h.roomName), token, arguments: h.args },
    });
    const signer = standardSigner(h.secret);
    const headers = () =>
      signedHeaders({ body, secret: h.secret, signer, event: CALL_EVENT, deliveryId: h.deliveryId, attempt: h.attempt, nowMs: this.deps.clock.now() });
    const deadline = performance.now() + h.timeoutMs;
    if (!h.websocket) {
      const out = await postSigned(h.url, body, headers(), {
        allowPrivate: h.allowPrivate,
        timeoutMs: h.timeoutMs,
        signal: h.signal,
        abortReason: h.abortReason,
        agents: h.allowPrivate && !this.config.allowPrivate ? this.trustedAgents : this.agents,
      });
      // 426 Upgrade Required: the target wants the WebSocket handoff.
      if (out.status !== 426) return { ...out, via: "post" };
    }
    const left = Math.round(deadline - performance.now());
    if (left <= 0) return { status: null, error: `timeout after ${h.timeoutMs} ms`, excerpt: null, via: "websocket" };
    return { ...(await this.upgrade(h, body, headers(), token, left)), via: "websocket" };
  }

  /**
   * The WebSocket handoff: `GET` upgrade of the target with the event in `Meshagent-Webhook` (and the same signature
   * headers, over that text). Once open, the socket is paused (no frame is lost) and handed to the room server.
   */
  private upgrade(h: Handoff, body: string, headers: Record<string, string>, token: string, timeoutMs: number): Promise<DeliveryOutcome> {
    const refused = refusedLiteral(h.url, h.allowPrivate);
    if (refused) return Promise.resolve({ status: null, error: refused, excerpt: null });
    const target = new URL(h.url);
    target.protocol = h.url.protocol === "https:" ? "wss:" : "ws:";
    const signal = h.signal;
    return new Promise<DeliveryOutcome>((resolve) => {
      let settled = false;
      const done = (o: DeliveryOutcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        resolve(o);
      };
      const ws = new WebSocket(target, {
        headers: { ...headers, "meshagent-webhook": body },
        handshakeTimeout: timeoutMs,
        perMessageDeflate: false,
        maxPayload: this.config.maxMessageBytes + 1024,
        followRedirects: false,
        lookup: guardedLookup(h.allowPrivate) as never,
      });
      const fail = (o: DeliveryOutcome) => {
        ws.terminate();
        done(o);
      };
      const timer = setTimeout(() => fail({ status: null, error: `timeout after ${h.timeoutMs} ms`, excerpt: null }), timeoutMs);
      const onAbort = () => fail({ status: null, error: `aborted: ${h.abortReason ?? "stopping"}`, excerpt: null });
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort);
      // Errors after the handoff belong to the room connection (it sees the close); none may go unhandled.
      ws.on("error", (err) => done({ status: null, error: err.message || "the WebSocket handoff failed", excerpt: null }));
      ws.on("unexpected-response", (_req, res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        const finish = () =>
          fail({
            status: res.statusCode ?? null,
            error: res.statusCode ? null : "invalid answer to the WebSocket upgrade",
            excerpt: Buffer.concat(chunks).subarray(0, EXCERPT_BYTES).toString("utf8") || null,
            retryAfter: res.headers["retry-after"],
          });
        res.on("data", (c: Buffer) => {
          if (size < EXCERPT_BYTES) chunks.push(c);
          size += c.length;
          if (size >= EXCERPT_BYTES) finish();
        });
        res.on("end", finish);
        res.on("error", finish);
      });
      ws.on("open", () => {
        ws.pause();
        if (settled) return void ws.terminate();
        this.deps
          .sockets()
          .acceptCallSocket(ws, token)
          .then(
            () => done({ status: 101, error: null, excerpt: null, final: "delivered" }),
            (e: Error) => fail({ status: null, error: `the room did not take the call's socket: ${e.message}`, excerpt: null }),
          );
      });
    });
  }
}

/** The error a failed `room.call` answers with: names the target's status, or the network error (never its body). */
function callError(origin: string, out: DeliveryOutcome, timeoutMs: number): ApiError {
  if (out.status !== null) return new ApiError(502, "call_failed", `room.call: the target ${origin} answered HTTP ${out.status}`);
  if (out.error?.startsWith("timeout")) return new ApiError(504, "call_timeout", `room.call: the target ${origin} did not accept within ${timeoutMs} ms`);
  return new ApiError(502, "call_failed", `room.call: could not reach the target ${origin}: ${out.error ?? "unknown error"}`);
}
