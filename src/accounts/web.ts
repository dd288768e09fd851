import { Type } from "@sinclair/typebox";
import type { FastifyReply, FastifyRequest } from "fastify";
import cookie from "@fastify/cookie";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { ApiError } from "../core/errors.js";
import { sha256Hex } from "../core/crypto.js";
import { SESSION_TTL_MS } from "./sign-in.js";

const FORM_LIMIT = 16 * 1024;
const CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'";

/**
 * HTML answers: not cached, not framed, no referrer (the page's URL carries its token), no scripts. Forms post to
 * this server only, and to `formTargets` (the origins a form's answer redirects to: an OAuth client's redirect URI).
 */
export function html(reply: FastifyReply, status: number, body: string, formTargets: string[] = []) {
  return reply
    .code(status)
    .header("cache-control", "no-store")
    .header("referrer-policy", "no-referrer")
    .header("x-frame-options", "DENY")
    .header("content-security-policy", `${CSP}; form-action 'self'${formTargets.map((o) => ` ${o}`).join("")}`)
    .type("text/html; charset=utf-8")
    .send(body);
}

export const Page = Type.String({ description: "an HTML page" });
export const Redirect = Type.Null({ description: "a redirect (Location)" });
export const SESSION_COOKIE = "meshagent_session";
/** A form's anti-forgery value: derived from the session token, so another site cannot know it. */
export const csrfOf = (session: string) => sha256Hex(`csrf\0${session}`).slice(0, 32);
/** Where to go after signing in: only a path of this server (never another origin). */
export const safeNext = (v: unknown) => (typeof v === "string" && /^\/(?![/\\])[^\s]*$/.test(v) && v.length <= 2000 ? v : "/accounts");
export const wantsHtml = (req: FastifyRequest) => /\btext\/html\b/.test(String(req.headers.accept ?? ""));

export type Web = Awaited<ReturnType<typeof installWeb>>;

/** The browser machinery of the account pages, on the area's context: form bodies, the session cookie, CSRF. */
export async function installWeb(app: AreaApp, ctx: AppContext) {
  // HTML forms post application/x-www-form-urlencoded (only in this area's context).
  app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string", bodyLimit: FORM_LIMIT }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });
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
  return { sessionOf, setSession, redirect, signedIn, checkCsrf };
}
