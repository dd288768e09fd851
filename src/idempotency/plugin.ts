import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { Type, type TObject } from "@sinclair/typebox";
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from "fastify";
import { sha256Hex } from "../core/crypto.js";
import { errors } from "../core/http.js";
import { AuthService } from "../auth/service.js";
import { IdempotencyService, MAX_KEY_LENGTH, type Claim } from "./service.js";

declare module "fastify" {
  interface FastifyContextConfig {
    /** `false`: the route ignores Idempotency-Key (routes that stream their request body, e.g. storage upload). */
    idempotency?: false;
  }
  interface FastifyRequest {
    idempotency?: { body: HashingBody; claim?: Claim; replayed?: boolean };
  }
}

export const HEADER = "idempotency-key";
export const REPLAYED_HEADER = "idempotent-replayed";
/** After the connection closed without a response, a claim is still renewed this long (the handler may still finish). */
const ABANDON_AFTER_MS = 60_000;
const EMPTY_SHA256 = sha256Hex("");

/**
 * The request body as it is read, hashed on the way (the fingerprint of a request includes its body bytes). It reads
 * from the original stream only when someone reads from it: a route whose parser buffers the body (JSON, OTLP) reads
 * it through here and the hash is ready before the handler; a route that streams `req.raw` itself (storage upload)
 * never touches it, and the request is left alone.
 */
class HashingBody extends Readable {
  private hash = createHash("sha256");
  private started = false;
  private bytes = 0;
  /** The body's SHA-256 once it was read to its end. */
  digest?: string;

  constructor(private readonly source: NodeJS.ReadableStream & { receivedEncodedLength?: number }) {
    super();
    // An error after the parser stopped listening (the body was refused as too large) must not go unhandled.
    this.on("error", () => {});
  }

  /** Fastify compares it with Content-Length: the bytes received from the client, as an earlier preParsing stream says. */
  get receivedEncodedLength(): number {
    return this.source.receivedEncodedLength ?? this.bytes;
  }

  get touched() {
    return this.started;
  }

  override _read() {
    if (!this.started) {
      this.started = true;
      this.source.on("data", (chunk: Buffer | string) => {
        const b = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
        this.bytes += b.length;
        this.hash.update(b);
        if (!this.push(b)) this.source.pause();
      });
      this.source.on("end", () => {
        this.digest = this.hash.digest("hex");
        this.push(null);
      });
      this.source.on("error", (err: Error) => this.destroy(err));
      this.source.on("close", () => {
        if (this.digest === undefined && !this.destroyed) this.destroy(Object.assign(new Error("request body aborted"), { statusCode: 400 }));
      });
    }
    this.source.resume();
  }
}

/** Who the key belongs to: the API key, the user, the participant token, or (routes that take no credentials) the IP. */
async function callerScope(req: FastifyRequest, auth: AuthService): Promise<string> {
  if (req.routeOptions.config.access === "public") return `ip:${req.ip}`;
  const p = req.principal ?? (await auth.principal(req));
  if (p.kind === "api_key") return `api_key:${p.keyId}`;
  if (p.kind === "user") return `user:${p.userId}`;
  // Participant tokens carry no stable identity of their own (guests share a kid and may share a name): the token is it.
  return `participant:${sha256Hex(AuthService.bearerOf(req) ?? "")}`;
}

const bodyless = (req: FastifyRequest) =>
  req.headers["transfer-encoding"] === undefined && (req.headers["content-length"] === undefined || req.headers["content-length"] === "0");

const isPost = (method: RouteOptions["method"]) => (Array.isArray(method) ? method.includes("POST") : method === "POST");

const KeyHeader = Type.String({
  minLength: 1,
  maxLength: MAX_KEY_LENGTH,
  description:
    "Makes the call safe to retry (Stripe's semantics): the first call with a key runs and its response is kept 24 h; a retry with " +
    "the same key and the same request gets that response again (status and body, with `Idempotent-Replayed: true`); the same key " +
    "with another request is a 409 `idempotency_key_reused`. A retry while the first call runs waits for it.",
});

/** Document the header (and the 400/409 it may cause) on the route's OpenAPI operation. */
function document(route: RouteOptions) {
  const schema = (route.schema ??= {}) as { headers?: TObject; response?: Record<string, unknown> };
  const headers = schema.headers;
  if (headers && headers.type === "object" && headers.properties)
    schema.headers = { ...headers, properties: { ...headers.properties, [HEADER]: Type.Optional(KeyHeader) } } as TObject;
  else if (!headers) schema.headers = Type.Object({ [HEADER]: Type.Optional(KeyHeader) });
  schema.response = { ...errors(400, 409), ...(schema.response ?? {}) };
}

/**
 * Idempotency-Key on every POST route registered after this, with Stripe's semantics (README "Idempotency").
 * Install it right before the access gate: the gate's preHandler then runs first (it puts its own in front of a
 * route's), so the caller is known when the key is claimed. The body is hashed as it is parsed (preParsing), the key
 * claimed or replayed in preHandler, the response stored in onSend (after every other onSend hook shaped it).
 */
export function installIdempotency(app: FastifyInstance, service: IdempotencyService, auth: AuthService) {
  async function preParsing(req: FastifyRequest, _reply: FastifyReply, payload: NodeJS.ReadableStream) {
    if (req.method !== "POST" || req.headers[HEADER] === undefined) return payload;
    const body = new HashingBody(payload);
    req.idempotency = { body };
    return body;
  }

  async function preHandler(req: FastifyRequest, reply: FastifyReply) {
    const st = req.idempotency;
    if (!st) return;
    const key = IdempotencyService.checkKey(req.headers[HEADER]);
    if (key === undefined) return;
    const bodyHash = st.body.digest ?? (!st.body.touched && bodyless(req) ? EMPTY_SHA256 : undefined);
    // A body the route streams itself (not read before the handler) cannot be fingerprinted: the key is ignored.
    if (bodyHash === undefined) return;
    const scope = `${await callerScope(req, auth)} ${req.method} ${req.routeOptions.url}`;
    const fingerprint = sha256Hex(`${req.method} ${req.url}\n${bodyHash}`);
    const r = await service.begin(scope, key, fingerprint);
    if (r.kind === "replay") {
      st.replayed = true;
      reply.code(r.response.status).header(REPLAYED_HEADER, "true");
      if (r.response.contentType) reply.header("content-type", r.response.contentType);
      return reply.send(r.response.body);
    }
    const claim = r.claim;
    st.claim = claim;
    // No response will come (connection gone, reply hijacked): let the claim lapse so a retry can run.
    reply.raw.once("close", () => {
      if (st.claim === claim) setTimeout(() => claim.abandon(), ABANDON_AFTER_MS).unref();
    });
  }

  async function onSend(req: FastifyRequest, reply: FastifyReply, payload: unknown) {
    const claim = req.idempotency?.claim;
    if (!claim) return payload;
    req.idempotency!.claim = undefined;
    const body = typeof payload === "string" ? Buffer.from(payload) : Buffer.isBuffer(payload) ? payload : payload == null ? Buffer.alloc(0) : null;
    try {
      if (body === null)
        await claim.release(); // a streamed response is not stored
      else {
        const ct = reply.getHeader("content-type");
        await claim.complete({ status: reply.statusCode, contentType: ct === undefined ? null : String(ct), body });
      }
    } catch (err) {
      req.log.warn({ err }, "could not store the idempotent response");
      await claim.release().catch(() => {});
    }
    return payload;
  }

  app.addHook("onRoute", (route: RouteOptions) => {
    if (!isPost(route.method) || route.config?.idempotency === false || !route.config?.access) return;
    document(route);
    const list = <T>(h: T | T[] | undefined): T[] => (h === undefined ? [] : Array.isArray(h) ? h : [h]);
    route.preParsing = [preParsing as never, ...list(route.preParsing)];
    route.preHandler = [preHandler, ...list(route.preHandler)];
    route.onSend = [...list(route.onSend), onSend as never];
  });
  app.addHook("onReady", async () => service.start());
  app.addHook("onClose", async () => service.stop());
}
