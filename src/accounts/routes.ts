import { Type } from "@sinclair/typebox";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { ApiError } from "../core/errors.js";
import { errors } from "../core/http.js";
import cookie from "@fastify/cookie";
import { sha256Hex } from "../core/crypto.js";
import { homePage, invitationPage, messagePage, passwordPage, resetChoosePage, resetRequestPage, signInPage } from "./pages.js";
import { SESSION_TTL_MS } from "./sign-in.js";
import { PASSWORD_MIN } from "./passwords.js";

const FORM_LIMIT = 16 * 1024;

/** HTML answers: not cached, not framed, no referrer (the page's URL carries its token), no scripts. */
function html(reply: FastifyReply, status: number, body: string) {
  return reply
    .code(status)
    .header("cache-control", "no-store")
    .header("referrer-policy", "no-referrer")
    .header("x-frame-options", "DENY")
    .header("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
    .type("text/html; charset=utf-8")
    .send(body);
}

const Page = Type.String({ description: "an HTML page" });
const Redirect = Type.Null({ description: "a redirect (Location)" });
const SESSION_COOKIE = "meshagent_session";
/** A form's anti-forgery value: derived from the session token, so another site cannot know it. */
const csrfOf = (session: string) => sha256Hex(`csrf\0${session}`).slice(0, 32);
/** Where to go after signing in: only a path of this server (never another origin). */
const safeNext = (v: unknown) => (typeof v === "string" && /^\/(?![/\\])[^\s]*$/.test(v) && v.length <= 2000 ? v : "/accounts");
const wantsHtml = (req: FastifyRequest) => /\btext\/html\b/.test(String(req.headers.accept ?? ""));

export async function accountRoutes(app: AreaApp, ctx: AppContext) {
  const { invitations } = ctx;
  // HTML forms post application/x-www-form-urlencoded (only in this area's context).
  app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string", bodyLimit: FORM_LIMIT }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });

  // Browsers (Accept: text/html) get an HTML page for a bad link or form; other clients the API's JSON error.
  await app.register(cookie);
  const { signIn } = ctx;
  const secure = ctx.config.publicUrl.startsWith("https:");
  const sessionOf = (req: FastifyRequest) => req.cookies[SESSION_COOKIE];
  const setSession = (reply: FastifyReply, token: string) =>
    reply.setCookie(SESSION_COOKIE, token, { httpOnly: true, sameSite: "lax", secure, path: "/", maxAge: SESSION_TTL_MS / 1000 });
  const redirect = (reply: FastifyReply, to: string) => reply.code(303).header("cache-control", "no-store").header("location", to).send();
  /** The signed-in user, or a redirect to the sign-in page (null). */
  const signedIn = async (req: FastifyRequest, reply: FastifyReply, here: string) => {
    const token = sessionOf(req);
    const who = await signIn.session(token);
    if (!who || !token) {
      redirect(reply, `/accounts/sign-in?next=${encodeURIComponent(here)}`);
      return null;
    }
    return { ...who, token };
  };
  const checkCsrf = (token: string, given: unknown) => {
    if (typeof given !== "string" || given !== csrfOf(token)) throw new ApiError(403, "forbidden", "this form expired: reload the page and send it again");
  };

  app.get(
    "/accounts/sign-in",
    {
      config: { access: "public" },
      schema: {
        summary: "sign_in_page",
        description: "The sign-in form (HTML). Signed in already: a redirect to `next`.",
        querystring: Type.Object({ next: Type.Optional(Type.String({ maxLength: 2000 })) }),
        produces: ["text/html"],
        response: { 200: Page, 303: Redirect },
      },
    },
    async (req, reply) => {
      const next = safeNext(req.query.next);
      if (await signIn.session(sessionOf(req))) return redirect(reply, next);
      return html(reply, 200, signInPage({ next }));
    },
  );

  app.post(
    "/accounts/sign-in",
    {
      config: { access: "public" },
      schema: {
        summary: "sign_in",
        description:
          "The sign-in form's post (email, password, next): a session cookie and a redirect to `next`. Wrong credentials 401; " +
          "a disabled account 403; after 5 failures for an account (20 from an address) in 15 minutes, 429 for 15 minutes.",
        consumes: ["application/x-www-form-urlencoded"],
        body: Type.Object({
          email: Type.String({ maxLength: 320 }),
          password: Type.String({ maxLength: 2048 }),
          next: Type.Optional(Type.String({ maxLength: 2000 })),
        }),
        produces: ["text/html"],
        response: { 303: Redirect, ...errors(400, 401, 403, 429) },
      },
    },
    async (req, reply) => {
      const next = safeNext(req.body.next);
      try {
        const u = await signIn.check(req.body.email, req.body.password, req.ip);
        setSession(reply, await signIn.startSession(u.id));
        return redirect(reply, next);
      } catch (e) {
        if (e instanceof ApiError && wantsHtml(req)) return html(reply, e.status, signInPage({ next, email: req.body.email, error: e.message }));
        throw e;
      }
    },
  );

  app.post(
    "/accounts/sign-out",
    {
      config: { access: "public" },
      schema: {
        summary: "sign_out",
        description: "Ends this browser's session (form field `csrf` from the account page) and redirects to the sign-in page.",
        consumes: ["application/x-www-form-urlencoded"],
        body: Type.Object({ csrf: Type.Optional(Type.String({ maxLength: 100 })) }),
        response: { 303: Redirect, ...errors(403) },
      },
    },
    async (req, reply) => {
      const token = sessionOf(req);
      if (token) {
        checkCsrf(token, req.body.csrf);
        await signIn.endSession(token);
      }
      reply.clearCookie(SESSION_COOKIE, { path: "/" });
      return redirect(reply, "/accounts/sign-in");
    },
  );

  app.get(
    "/accounts",
    {
      config: { access: "public" },
      schema: {
        summary: "account_page",
        description: "Your account (HTML); not signed in: a redirect to the sign-in page.",
        produces: ["text/html"],
        response: { 200: Page, 303: Redirect },
      },
    },
    async (req, reply) => {
      const me = await signedIn(req, reply, "/accounts");
      if (!me) return reply;
      return html(reply, 200, homePage({ email: me.email, csrf: csrfOf(me.token), api: ctx.config.publicUrl }));
    },
  );

  app.get(
    "/accounts/password",
    {
      config: { access: "public" },
      schema: {
        summary: "password_page",
        description: "The password change form (HTML; signed in).",
        produces: ["text/html"],
        response: { 200: Page, 303: Redirect },
      },
    },
    async (req, reply) => {
      const me = await signedIn(req, reply, "/accounts/password");
      if (!me) return reply;
      return html(reply, 200, passwordPage({ csrf: csrfOf(me.token), min: PASSWORD_MIN }));
    },
  );

  app.post(
    "/accounts/password",
    {
      config: { access: "public" },
      schema: {
        summary: "change_password",
        description: "The password change form's post (csrf, current, password, password_confirm): your other browsers are signed out.",
        consumes: ["application/x-www-form-urlencoded"],
        body: Type.Object({
          csrf: Type.Optional(Type.String({ maxLength: 100 })),
          current: Type.String({ maxLength: 2048 }),
          password: Type.String({ maxLength: 2048 }),
          password_confirm: Type.String({ maxLength: 2048 }),
        }),
        produces: ["text/html"],
        response: { 200: Page, 303: Redirect, ...errors(400, 403) },
      },
    },
    async (req, reply) => {
      const me = await signedIn(req, reply, "/accounts/password");
      if (!me) return reply;
      try {
        checkCsrf(me.token, req.body.csrf);
        await signIn.changePassword(me.userId, me.token, req.body);
        return html(
          reply,
          200,
          messagePage({
            title: "Password changed",
            text: "Your password is changed; your other browsers are signed out.",
            link: { href: "/accounts", text: "Back to your account" },
          }),
        );
      } catch (e) {
        if (e instanceof ApiError && e.status === 400 && wantsHtml(req))
          return html(reply, 400, passwordPage({ csrf: csrfOf(me.token), error: e.message, min: PASSWORD_MIN }));
        throw e;
      }
    },
  );

  app.get(
    "/accounts/password-reset",
    {
      config: { access: "public" },
      schema: {
        summary: "password_reset_page",
        description: "The form to ask for a password reset link (HTML).",
        produces: ["text/html"],
        response: { 200: Page },
      },
    },
    async (_req, reply) => html(reply, 200, resetRequestPage({})),
  );

  app.post(
    "/accounts/password-reset",
    {
      config: { access: "public" },
      schema: {
        summary: "request_password_reset",
        description:
          "Mails a single-use link (valid one hour) to the account with this email, if there is one; the answer is the same either way. " +
          "At most one mail a minute per account.",
        consumes: ["application/x-www-form-urlencoded"],
        body: Type.Object({ email: Type.String({ maxLength: 320 }) }),
        produces: ["text/html"],
        response: { 200: Page, ...errors(400) },
      },
    },
    async (req, reply) => {
      try {
        await signIn.requestReset(req.body.email);
      } catch (e) {
        if (e instanceof ApiError && wantsHtml(req)) return html(reply, e.status, resetRequestPage({ error: e.message }));
        throw e;
      }
      return html(
        reply,
        200,
        messagePage({
          title: "Check your mail",
          text: "If an account has this address, a link to choose a new password is on its way. It works once, for one hour.",
          link: { href: "/accounts/sign-in", text: "Back to sign in" },
        }),
      );
    },
  );

  app.get(
    "/accounts/password-reset/choose",
    {
      config: { access: "public" },
      schema: {
        summary: "password_reset_choose_page",
        description: "The page a reset mail links to (`?token=`): a form for the new password. 404 unknown link, 410 used or expired.",
        querystring: Type.Object({ token: Type.String({ maxLength: 200 }) }),
        produces: ["text/html"],
        response: { 200: Page, ...errors(400, 404, 410) },
      },
    },
    async (req, reply) => {
      try {
        const { user } = await signIn.openReset(req.query.token);
        return html(reply, 200, resetChoosePage({ token: req.query.token, email: user.email, min: PASSWORD_MIN }));
      } catch (e) {
        return failure(req, reply, e);
      }
    },
  );

  app.post(
    "/accounts/password-reset/choose",
    {
      config: { access: "public" },
      schema: {
        summary: "complete_password_reset",
        description: "The new password from a reset link (token, password, password_confirm): every session of the account ends.",
        consumes: ["application/x-www-form-urlencoded"],
        body: Type.Object({
          token: Type.String({ maxLength: 200 }),
          password: Type.String({ maxLength: 2048 }),
          password_confirm: Type.String({ maxLength: 2048 }),
        }),
        produces: ["text/html"],
        response: { 200: Page, ...errors(400, 404, 410) },
      },
    },
    async (req, reply) => {
      try {
        await signIn.completeReset(req.body.token, req.body);
        return html(
          reply,
          200,
          messagePage({ title: "Password changed", text: "Your new password is set.", link: { href: "/accounts/sign-in", text: "Sign in" } }),
        );
      } catch (e) {
        if (e instanceof ApiError && e.status === 400 && wantsHtml(req)) {
          const r = await signIn.openReset(req.body.token).catch(() => null);
          if (r) return html(reply, 400, resetChoosePage({ token: req.body.token, email: r.user.email, error: e.message, min: PASSWORD_MIN }));
        }
        return failure(req, reply, e);
      }
    },
  );

  const failure = (req: FastifyRequest, reply: FastifyReply, e: unknown) => {
    if (!(e instanceof ApiError) || !wantsHtml(req)) throw e;
    const title = e.status === 410 ? "This link cannot be used any more" : e.status === 404 ? "Link not found" : "Something is wrong with this link";
    return html(reply, e.status, messagePage({ title, text: e.message, error: true }));
  };

  app.get(
    "/accounts/invitation",
    {
      config: { access: "public" },
      schema: {
        summary: "invitation_page",
        description:
          "The page an invitation mail links to (`?token=`): a form to choose a password. 404 unknown link, 410 used or expired " +
          "(HTML pages for browsers, `Accept: text/html`; the JSON error otherwise).",
        querystring: Type.Object({ token: Type.String({ maxLength: 200 }) }),
        produces: ["text/html"],
        response: { 200: Page, ...errors(400, 404, 410) },
      },
    },
    async (req, reply) => {
      try {
        const inv = await invitations.open(req.query.token);
        return html(reply, 200, invitationPage({ token: req.query.token, email: inv.user.email, project: inv.projectName, min: PASSWORD_MIN }));
      } catch (e) {
        return failure(req, reply, e);
      }
    },
  );

  app.post(
    "/accounts/invitation",
    {
      config: { access: "public" },
      schema: {
        summary: "accept_invitation",
        description:
          "The invitation form's post (application/x-www-form-urlencoded: token, password, password_confirm, first_name, last_name): " +
          "creates the account. 400 (the form again, with the problem), 404, 410.",
        consumes: ["application/x-www-form-urlencoded"],
        body: Type.Object({
          token: Type.String({ maxLength: 200 }),
          password: Type.String({ maxLength: 2048 }),
          password_confirm: Type.String({ maxLength: 2048 }),
          first_name: Type.Optional(Type.String({ maxLength: 400 })),
          last_name: Type.Optional(Type.String({ maxLength: 400 })),
        }),
        produces: ["text/html"],
        response: { 200: Page, ...errors(400, 404, 410) },
      },
    },
    async (req, reply) => {
      const b = req.body;
      try {
        const { email } = await invitations.accept(b.token, b);
        return html(
          reply,
          200,
          messagePage({
            title: "Your account is ready",
            text: `You can now sign in as ${email}.`,
            link: { href: "/accounts/sign-in", text: "Sign in" },
          }),
        );
      } catch (e) {
        if (e instanceof ApiError && e.status === 400 && wantsHtml(req)) {
          const inv = await invitations.open(b.token).catch(() => null);
          if (inv)
            return html(
              reply,
              400,
              invitationPage({
                token: b.token,
                email: inv.user.email,
                project: inv.projectName,
                error: e.message,
                first_name: b.first_name ?? "",
                last_name: b.last_name ?? "",
                min: PASSWORD_MIN,
              }),
            );
        }
        return failure(req, reply, e);
      }
    },
  );
}
