import { Type } from "@sinclair/typebox";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { ApiError } from "../core/errors.js";
import { errors } from "../core/http.js";
import { invitationPage, messagePage } from "./pages.js";
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
const wantsHtml = (req: FastifyRequest) => /\btext\/html\b/.test(String(req.headers.accept ?? ""));

export async function accountRoutes(app: AreaApp, ctx: AppContext) {
  const { invitations } = ctx;
  // HTML forms post application/x-www-form-urlencoded (only in this area's context).
  app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string", bodyLimit: FORM_LIMIT }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });

  // Browsers (Accept: text/html) get an HTML page for a bad link or form; other clients the API's JSON error.
  const failure = (req: FastifyRequest, reply: FastifyReply, e: unknown) => {
    if (!(e instanceof ApiError) || !wantsHtml(req)) throw e;
    const title = e.status === 410 ? "This link cannot be used any more" : "Invitation not found";
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
            next: `With the MeshAgent CLI: meshagent auth login --api-url ${ctx.config.publicUrl}`,
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
