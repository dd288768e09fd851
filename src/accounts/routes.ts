import { Type } from "@sinclair/typebox";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { ApiError } from "../core/errors.js";
import { errors } from "../core/http.js";
import {
  homePage,
  invitationPage,
  messagePage,
  passwordPage,
  resetChoosePage,
  resetRequestPage,
  signInPage,
  signUpPage,
  totpPage,
  totpSetupPage,
} from "./pages.js";
import { csrfOf, html, installWeb, Page, Redirect, safeNext, SESSION_COOKIE, wantsHtml } from "./web.js";
import { interactionRoutes } from "./interaction.js";
import { PASSWORD_MIN } from "./passwords.js";

/** What the sign-up page says when sign-up is not open. */
export const signupClosed = (policy: string) => ({
  title: "Sign-up is not open",
  text:
    policy === "invite"
      ? "This server takes new people by invitation: ask someone in your team to invite your email address, then follow the link in the mail."
      : "This server takes no new accounts: ask its administrator.",
  error: true,
});

export async function accountRoutes(app: AreaApp, ctx: AppContext) {
  const { invitations, signIn } = ctx;
  const web = await installWeb(app, ctx);
  const { sessionOf, setSession, redirect, signedIn, checkCsrf } = web;
  await interactionRoutes(app, ctx, web);

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
      return html(reply, 200, signInPage({ next, ...(await signupLink(next)) }));
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
        if (u.totp_sealed) return html(reply, 200, totpPage({ email: u.email, pending: signIn.secondStep(u.id), action: "/accounts/sign-in/code", next }));
        setSession(reply, await signIn.startSession(u.id));
        return redirect(reply, next);
      } catch (e) {
        if (e instanceof ApiError && wantsHtml(req))
          return html(reply, e.status, signInPage({ next, email: req.body.email, error: e.message, ...(await signupLink(next)) }));
        throw e;
      }
    },
  );

  /** The sign-up link, when the server's policy is open. */
  const signupLink = async (next?: string) =>
    (await ctx.admin.signupPolicy()) === "open"
      ? { signup: `/accounts/sign-up${next && next !== "/accounts" ? `?next=${encodeURIComponent(next)}` : ""}` }
      : {};

  app.post(
    "/accounts/sign-in/code",
    {
      config: { access: "public" },
      schema: {
        summary: "sign_in_code",
        description:
          "The second step of a sign-in for accounts with two-step verification (pending, code, next): the 6-digit TOTP code. " +
          "A code works once; wrong codes count as failed sign-ins.",
        consumes: ["application/x-www-form-urlencoded"],
        body: Type.Object({
          pending: Type.String({ maxLength: 1000 }),
          code: Type.String({ maxLength: 20 }),
          next: Type.Optional(Type.String({ maxLength: 2000 })),
        }),
        produces: ["text/html"],
        response: { 303: Redirect, ...errors(400, 401, 429) },
      },
    },
    async (req, reply) => {
      const next = safeNext(req.body.next);
      try {
        const u = await signIn.completeSecondStep(req.body.pending, req.body.code, req.ip);
        setSession(reply, await signIn.startSession(u.id));
        return redirect(reply, next);
      } catch (e) {
        if (e instanceof ApiError && e.status === 401 && wantsHtml(req)) {
          const who = await signIn.pendingUser(req.body.pending);
          if (who) return html(reply, 401, totpPage({ email: who.email, pending: req.body.pending, action: "/accounts/sign-in/code", next, error: e.message }));
        }
        if (e instanceof ApiError && wantsHtml(req)) return html(reply, e.status, signInPage({ next, error: e.message }));
        throw e;
      }
    },
  );

  app.get(
    "/accounts/sign-up",
    {
      config: { access: "public" },
      schema: {
        summary: "sign_up_page",
        description: "The sign-up form (HTML), when the server's sign-up policy is `open`; otherwise a page that says how to get an account (403).",
        querystring: Type.Object({ next: Type.Optional(Type.String({ maxLength: 2000 })) }),
        produces: ["text/html"],
        response: { 200: Page, ...errors(403) },
      },
    },
    async (req, reply) => {
      const next = req.query.next ? safeNext(req.query.next) : undefined;
      const policy = await ctx.admin.signupPolicy();
      if (policy !== "open") {
        if (!wantsHtml(req)) throw new ApiError(403, "signup_closed", signupClosed(policy).text);
        return html(reply, 403, messagePage(signupClosed(policy)));
      }
      return html(reply, 200, signUpPage({ ...(next ? { next } : {}), min: PASSWORD_MIN }));
    },
  );

  app.post(
    "/accounts/sign-up",
    {
      config: { access: "public" },
      schema: {
        summary: "sign_up",
        description:
          "The sign-up form's post (email, password, password_confirm, first_name, last_name, next): creates the account, signs in " +
          "and redirects to `next`. 403 when sign-up is not open, 409 when the email has an account, 400 for a weak password.",
        consumes: ["application/x-www-form-urlencoded"],
        body: Type.Object({
          email: Type.String({ maxLength: 320 }),
          password: Type.String({ maxLength: 2048 }),
          password_confirm: Type.String({ maxLength: 2048 }),
          first_name: Type.Optional(Type.String({ maxLength: 400 })),
          last_name: Type.Optional(Type.String({ maxLength: 400 })),
          next: Type.Optional(Type.String({ maxLength: 2000 })),
        }),
        produces: ["text/html"],
        response: { 303: Redirect, ...errors(400, 403, 409) },
      },
    },
    async (req, reply) => {
      const b = req.body;
      const next = safeNext(b.next);
      const policy = await ctx.admin.signupPolicy();
      if (policy !== "open") {
        const m = signupClosed(policy);
        if (wantsHtml(req)) return html(reply, 403, messagePage(m));
        throw new ApiError(403, "signup_closed", m.text);
      }
      try {
        const u = await signIn.signUp(b);
        setSession(reply, await signIn.startSession(u.id));
        return redirect(reply, next);
      } catch (e) {
        if (e instanceof ApiError && wantsHtml(req))
          return html(
            reply,
            e.status,
            signUpPage({ next, email: b.email, first_name: b.first_name ?? "", last_name: b.last_name ?? "", error: e.message, min: PASSWORD_MIN }),
          );
        throw e;
      }
    },
  );

  app.get(
    "/accounts/two-factor",
    {
      config: { access: "public" },
      schema: {
        summary: "two_factor_page",
        description: "Two-step verification (HTML; signed in): turn TOTP on (a new key and its otpauth:// link) or off.",
        produces: ["text/html"],
        response: { 200: Page, 303: Redirect },
      },
    },
    async (req, reply) => {
      const me = await signedIn(req, reply, "/accounts/two-factor");
      if (!me) return reply;
      const u = await ctx.users.get(me.userId);
      if (u?.totp_sealed) return html(reply, 200, totpSetupPage({ csrf: csrfOf(me.token), enabled: true }));
      return html(reply, 200, totpSetupPage({ csrf: csrfOf(me.token), enabled: false, ...signIn.totpSetup(me.email) }));
    },
  );

  app.post(
    "/accounts/two-factor",
    {
      config: { access: "public" },
      schema: {
        summary: "enable_two_factor",
        description: "Turns two-step verification on (csrf, secret, code): the code must come from the key shown.",
        consumes: ["application/x-www-form-urlencoded"],
        body: Type.Object({
          csrf: Type.Optional(Type.String({ maxLength: 100 })),
          secret: Type.String({ maxLength: 200 }),
          code: Type.String({ maxLength: 20 }),
        }),
        produces: ["text/html"],
        response: { 200: Page, 303: Redirect, ...errors(400, 403) },
      },
    },
    async (req, reply) => {
      const me = await signedIn(req, reply, "/accounts/two-factor");
      if (!me) return reply;
      checkCsrf(me.token, req.body.csrf);
      try {
        await signIn.enableTotp(me.userId, req.body.secret, req.body.code);
      } catch (e) {
        if (e instanceof ApiError && e.status === 400 && wantsHtml(req)) {
          const secret = req.body.secret;
          const uri = signIn.totpSetup(me.email).uri.replace(/secret=[^&]+/, `secret=${encodeURIComponent(secret)}`);
          return html(reply, 400, totpSetupPage({ csrf: csrfOf(me.token), enabled: false, secret, uri, error: e.message }));
        }
        throw e;
      }
      return html(
        reply,
        200,
        messagePage({
          title: "Two-step verification is on",
          text: "Signing in now asks for a code from your app.",
          link: { href: "/accounts", text: "Back to your account" },
        }),
      );
    },
  );

  app.post(
    "/accounts/two-factor/disable",
    {
      config: { access: "public" },
      schema: {
        summary: "disable_two_factor",
        description: "Turns two-step verification off (csrf, code: a current code).",
        consumes: ["application/x-www-form-urlencoded"],
        body: Type.Object({ csrf: Type.Optional(Type.String({ maxLength: 100 })), code: Type.String({ maxLength: 20 }) }),
        produces: ["text/html"],
        response: { 200: Page, 303: Redirect, ...errors(400, 403) },
      },
    },
    async (req, reply) => {
      const me = await signedIn(req, reply, "/accounts/two-factor");
      if (!me) return reply;
      checkCsrf(me.token, req.body.csrf);
      try {
        await signIn.disableTotp(me.userId, req.body.code);
      } catch (e) {
        if (e instanceof ApiError && e.status === 400 && wantsHtml(req))
          return html(reply, 400, totpSetupPage({ csrf: csrfOf(me.token), enabled: true, error: e.message }));
        throw e;
      }
      return html(
        reply,
        200,
        messagePage({
          title: "Two-step verification is off",
          text: "Signing in asks for your password only.",
          link: { href: "/accounts", text: "Back to your account" },
        }),
      );
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
      const u = await ctx.users.get(me.userId);
      return html(reply, 200, homePage({ email: me.email, csrf: csrfOf(me.token), api: ctx.config.publicUrl, totp: !!u?.totp_sealed }));
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
        response: { 200: Page, ...errors(400, 403, 404, 410) },
      },
    },
    async (req, reply) => {
      const b = req.body;
      try {
        if ((await ctx.admin.signupPolicy()) === "closed") throw new ApiError(403, "signup_closed", signupClosed("closed").text);
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
