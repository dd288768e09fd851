import { Type } from "@sinclair/typebox";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { InteractionResults } from "oidc-provider";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { ApiError } from "../core/errors.js";
import { errors } from "../core/http.js";
import { sha256Hex } from "../core/crypto.js";
import { API_RESOURCE } from "../oauth/server.js";
import { consentPage, messagePage, signInPage, totpPage } from "./pages.js";
import { html, Page, Redirect, wantsHtml, type Web } from "./web.js";

/** What each scope lets an application do, as the consent page says it. */
const SCOPE_TEXT: Record<string, string> = {
  profile: "see your name and email address",
  "project/*": "use every project you belong to, with your role in it",
  "room/*": "use the rooms of those projects",
  create_users: "add people to your projects",
  create_rooms: "create rooms",
  llm_proxy: "use the LLM proxy on your behalf",
  admin: "administer the projects you administer",
  developer: "manage services, secrets and webhooks where you are a developer",
  connect_room: "join rooms as you",
  delete_room: "delete rooms",
  update_room: "rename and change rooms",
  openid: "know who you are (OpenID Connect)",
  email: "see your email address",
  offline_access: "keep access when you are not using it",
};
const scopeText = (s: string) =>
  SCOPE_TEXT[s] ??
  (s.startsWith("project/") ? `use project ${s.slice(8)}` : s.startsWith("room/") ? `use the room ${s.slice(5)}` : "a permission of this server");

const Uid = Type.Object({ uid: Type.String({ minLength: 1, maxLength: 100 }) });

/**
 * The authorization server's interaction pages (src/oauth/server.ts sends the browser to /oauth/interaction/{uid}):
 * sign-in, signed in already, the second step, and consent for clients that are not official. The interaction is
 * bound to this browser by the provider's cookie; each step ends by handing the result back to the provider, which
 * redirects to the client (or to the device flow's success page).
 */
export async function interactionRoutes(app: AreaApp, ctx: AppContext, web: Web) {
  const { signIn, oauthServer } = ctx;
  const { sessionOf, setSession, redirect } = web;

  const details = async (req: FastifyRequest, reply: FastifyReply) => {
    const provider = await oauthServer.provider();
    const d = await provider.interactionDetails(req.raw, reply.raw).catch(() => null);
    if (!d || d.uid !== (req.params as { uid: string }).uid) return null;
    const client = await provider.Client.find(String(d.params.client_id));
    if (!client) return null;
    // Where this sign-in ends up: the client's redirect URI (the page's forms may lead there).
    const targets = new Set<string>();
    const to = typeof d.params.redirect_uri === "string" ? d.params.redirect_uri : undefined;
    if (to) targets.add(new URL(to).origin);
    return { d, client, name: String(client.clientName ?? client.clientId), targets: [...targets] };
  };
  const expired = (req: FastifyRequest, reply: FastifyReply) => {
    if (!wantsHtml(req)) throw new ApiError(400, "interaction_expired", "this sign-in expired or belongs to another browser: start again from the application");
    return html(
      reply,
      400,
      messagePage({
        title: "This sign-in expired",
        text: "It took too long, or it was started in another browser: start again from the application.",
        error: true,
      }),
    );
  };
  const finish = async (req: FastifyRequest, reply: FastifyReply, result: InteractionResults) => {
    const to = await (await oauthServer.provider()).interactionResult(req.raw, reply.raw, result, { mergeWithLastSubmission: false });
    return redirect(reply, to);
  };
  const here = (uid: string) => `/oauth/interaction/${encodeURIComponent(uid)}`;
  const signupLink = async (uid: string) =>
    (await ctx.admin.signupPolicy()) === "open" ? { signup: `/accounts/sign-up?next=${encodeURIComponent(here(uid))}` } : {};

  app.get(
    "/oauth/interaction/:uid",
    {
      config: { access: "public" },
      schema: {
        summary: "oauth_interaction_page",
        description:
          "Where /oauth/authorize and the device flow send the browser: the sign-in page (signed in already: straight on), then the " +
          "consent page for clients that are not official. 400 when the interaction expired or belongs to another browser.",
        params: Uid,
        produces: ["text/html"],
        response: { 200: Page, 303: Redirect, ...errors(400) },
      },
    },
    async (req, reply) => {
      const x = await details(req, reply);
      if (!x) return expired(req, reply);
      const { d, name, targets } = x;
      if (d.prompt.name === "login") {
        const who = await signIn.session(sessionOf(req));
        if (who) return finish(req, reply, { login: { accountId: who.userId } });
        return html(reply, 200, signInPage({ action: `${here(d.uid)}/login`, client: name, ...(await signupLink(d.uid)) }), targets);
      }
      const accountId = d.session?.accountId;
      const who = accountId ? await ctx.users.get(accountId) : undefined;
      if (!who) return expired(req, reply);
      const missing = d.prompt.details as { missingOIDCScope?: string[]; missingResourceScopes?: Record<string, string[]> };
      const scopes = [...(missing.missingOIDCScope ?? []), ...(missing.missingResourceScopes?.[API_RESOURCE] ?? [])];
      return html(
        reply,
        200,
        consentPage({
          client: name,
          email: who.email,
          scopes: scopes.map((s) => ({ name: s, text: scopeText(s) })),
          action: `${here(d.uid)}/consent`,
          csrf: consentCsrf(d.uid, who.id),
        }),
        targets,
      );
    },
  );

  app.post(
    "/oauth/interaction/:uid/login",
    {
      config: { access: "public" },
      schema: {
        summary: "oauth_interaction_sign_in",
        description: "The interaction's sign-in form (email, password): as /accounts/sign-in, then on to the client (or the code step).",
        params: Uid,
        consumes: ["application/x-www-form-urlencoded"],
        body: Type.Object({ email: Type.String({ maxLength: 320 }), password: Type.String({ maxLength: 2048 }) }),
        produces: ["text/html"],
        response: { 200: Page, 303: Redirect, ...errors(400, 401, 403, 429) },
      },
    },
    async (req, reply) => {
      const x = await details(req, reply);
      if (!x) return expired(req, reply);
      try {
        const u = await signIn.check(req.body.email, req.body.password, req.ip);
        if (u.totp_sealed) return html(reply, 200, totpPage({ email: u.email, pending: signIn.secondStep(u.id), action: `${here(x.d.uid)}/code` }), x.targets);
        setSession(reply, await signIn.startSession(u.id));
        return finish(req, reply, { login: { accountId: u.id, amr: ["pwd"] } });
      } catch (e) {
        if (e instanceof ApiError && wantsHtml(req))
          return html(
            reply,
            e.status,
            signInPage({ action: `${here(x.d.uid)}/login`, client: x.name, email: req.body.email, error: e.message, ...(await signupLink(x.d.uid)) }),
            x.targets,
          );
        throw e;
      }
    },
  );

  app.post(
    "/oauth/interaction/:uid/code",
    {
      config: { access: "public" },
      schema: {
        summary: "oauth_interaction_code",
        description: "The interaction's second step (pending, code): the TOTP code of an account with two-step verification.",
        params: Uid,
        consumes: ["application/x-www-form-urlencoded"],
        body: Type.Object({ pending: Type.String({ maxLength: 1000 }), code: Type.String({ maxLength: 20 }) }),
        produces: ["text/html"],
        response: { 200: Page, 303: Redirect, ...errors(400, 401, 429) },
      },
    },
    async (req, reply) => {
      const x = await details(req, reply);
      if (!x) return expired(req, reply);
      try {
        const u = await signIn.completeSecondStep(req.body.pending, req.body.code, req.ip);
        setSession(reply, await signIn.startSession(u.id));
        return finish(req, reply, { login: { accountId: u.id, amr: ["pwd", "otp"] } });
      } catch (e) {
        if (e instanceof ApiError && wantsHtml(req)) {
          const who = await signIn.pendingUser(req.body.pending);
          if (who && e.status === 401)
            return html(reply, 401, totpPage({ email: who.email, pending: req.body.pending, action: `${here(x.d.uid)}/code`, error: e.message }), x.targets);
          return html(reply, e.status, signInPage({ action: `${here(x.d.uid)}/login`, client: x.name, error: e.message }), x.targets);
        }
        throw e;
      }
    },
  );

  app.post(
    "/oauth/interaction/:uid/consent",
    {
      config: { access: "public" },
      schema: {
        summary: "oauth_interaction_consent",
        description: "The consent form (csrf, decision `allow` or `deny`): allow gives the client the scopes it asked for; deny sends it access_denied.",
        params: Uid,
        consumes: ["application/x-www-form-urlencoded"],
        body: Type.Object({ csrf: Type.Optional(Type.String({ maxLength: 100 })), decision: Type.Union([Type.Literal("allow"), Type.Literal("deny")]) }),
        produces: ["text/html"],
        response: { 303: Redirect, ...errors(400, 403) },
      },
    },
    async (req, reply) => {
      const x = await details(req, reply);
      if (!x) return expired(req, reply);
      const { d, client } = x;
      const accountId = d.session?.accountId;
      if (d.prompt.name !== "consent" || !accountId) return expired(req, reply);
      if (req.body.csrf !== consentCsrf(d.uid, accountId)) throw new ApiError(403, "forbidden", "this form expired: reload the page and send it again");
      if (req.body.decision === "deny") return finish(req, reply, { error: "access_denied", error_description: "the user did not allow it" });
      const provider = await oauthServer.provider();
      const grant = (d.grantId ? await provider.Grant.find(d.grantId) : undefined) ?? new provider.Grant({ accountId, clientId: client.clientId });
      const missing = d.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };
      if (missing.missingOIDCScope?.length) grant.addOIDCScope(missing.missingOIDCScope.join(" "));
      if (missing.missingOIDCClaims?.length) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [resource, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(resource, scopes.join(" "));
      const grantId = await grant.save();
      return finish(req, reply, { consent: { grantId } });
    },
  );
}

/** The consent form's anti-forgery value: bound to the interaction and the account (and the interaction to this browser). */
const consentCsrf = (uid: string, accountId: string) => sha256Hex(`consent\0${uid}\0${accountId}`).slice(0, 32);
