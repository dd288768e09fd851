import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";

type Method = "GET" | "POST";
const FORM = ["application/x-www-form-urlencoded"];

/** The authorization server's endpoints (oidc-provider answers them; the OpenAPI document lists them). */
const ENDPOINTS: { methods: Method[]; url: string; summary: string; description: string; form?: boolean }[] = [
  {
    methods: ["GET", "POST"],
    url: "/oauth/authorize",
    summary: "oauth_authorize",
    description:
      "The authorization endpoint (RFC 6749 §4.1): response_type=code, client_id, redirect_uri, scope, state, code_challenge " +
      "(S256, required). The browser signs in (and consents, for clients that are not official), then goes to redirect_uri with code and state.",
  },
  { methods: ["GET"], url: "/oauth/authorize/:uid", summary: "oauth_authorize_resume", description: "Where the sign-in pages hand the browser back." },
  {
    methods: ["POST"],
    url: "/oauth/token",
    form: true,
    summary: "exchange_oauth_token",
    description:
      "The token endpoint: grant_type authorization_code (code, redirect_uri, code_verifier), refresh_token (rotated on every use; " +
      "a reused one is refused and ends its grant) or urn:ietf:params:oauth:grant-type:device_code. Client authentication: " +
      "client_secret_basic, client_secret_post, or none (public clients). Answers RFC 6749 JSON (`access_token`, `token_type`, " +
      "`expires_in`, `refresh_token`, `scope`) or `{error, error_description}`.",
  },
  { methods: ["POST"], url: "/oauth/revoke", form: true, summary: "revoke_oauth_token", description: "Token revocation (RFC 7009): token, token_type_hint." },
  {
    methods: ["POST"],
    url: "/oauth/introspect",
    form: true,
    summary: "introspect_oauth_token",
    description: "Token introspection (RFC 7662): token; an authenticated client may introspect its own tokens.",
  },
  {
    methods: ["POST"],
    url: "/oauth/device/auth",
    form: true,
    summary: "oauth_device_authorization",
    description: "The device authorization endpoint (RFC 8628): client_id, scope → device_code, user_code, verification_uri, interval.",
  },
  { methods: ["GET", "POST"], url: "/oauth/device", summary: "oauth_device_page", description: "Where a person enters a device's user code (HTML)." },
  { methods: ["GET"], url: "/oauth/device/:uid", summary: "oauth_device_resume", description: "Where the sign-in pages hand a device sign-in back." },
  { methods: ["GET"], url: "/oauth/jwks", summary: "oauth_jwks", description: "The public keys of ID tokens (ES256)." },
  {
    methods: ["GET", "POST"],
    url: "/oauth/userinfo",
    summary: "oauth_userinfo",
    description: "OpenID Connect userinfo, for tokens issued with the `openid` scope.",
  },
  {
    methods: ["GET"],
    url: "/.well-known/oauth-authorization-server",
    summary: "oauth_metadata",
    description: "Authorization server metadata (RFC 8414): the endpoints above, grant types, PKCE methods.",
  },
  { methods: ["GET"], url: "/.well-known/openid-configuration", summary: "openid_configuration", description: "OpenID Connect discovery." },
];

/**
 * The provider reads its own request bodies: in this context nothing parses them (Fastify leaves the stream unread),
 * and each route hands the raw request and response to oidc-provider.
 */
export async function authorizationServerRoutes(app: AreaApp, ctx: AppContext) {
  await app.register(async (op) => {
    op.removeAllContentTypeParsers();
    op.addContentTypeParser("*", (_req, _payload, done) => done(null, undefined));
    for (const e of ENDPOINTS)
      op.route({
        method: e.methods,
        url: e.url,
        // The provider writes the response itself (a hijacked reply): nothing an Idempotency-Key could store and replay.
        config: { access: "public", idempotency: false },
        // Their errors are the protocol's (RFC 6749 §5.2 JSON, or an HTML page for a browser), not the API's error shape.
        schema: { summary: e.summary, description: e.description, tags: ["oauth"], "x-error-shape": "oauth", ...(e.form ? { consumes: FORM } : {}) },
        handler: async (req, reply) => {
          // The device pages' later steps need the session the first page started (oidc-provider fails with a 500 without
          // one): the code form's post goes back to the form, the resume says to start again.
          if (e.url.startsWith("/oauth/device") && e.url !== "/oauth/device/auth" && !/(^|;\s*)_session=/.test(req.headers.cookie ?? "")) {
            if (e.url === "/oauth/device" && req.method === "POST") return reply.code(303).header("location", "/oauth/device").send();
            if (e.url === "/oauth/device/:uid")
              return reply
                .code(400)
                .send({ error: "invalid_request", error_description: "this device sign-in was started in another browser, or expired: start again" });
          }
          reply.hijack();
          await ctx.oauthServer.handle(req.raw, reply.raw);
        },
      });
  });
}
