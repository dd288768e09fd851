import { Type } from "@sinclair/typebox";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { callerUser } from "../auth/plugin.js";
import { errors, Nullable, Ok } from "../core/http.js";

const Profile = Type.Object({
  id: Type.String(),
  email: Type.String(),
  first_name: Type.Optional(Type.String()),
  last_name: Type.Optional(Type.String()),
});
const Params = Type.Object({ user_id: Type.String({ minLength: 1, description: "a user id, or `me`" }) });
const UserToken = Type.Object(
  {
    id: Type.String(),
    kind: Type.String({ description: "`pat` (personal access token) or `oauth` (an application you allowed: an OAuth grant, all its tokens)" }),
    name: Type.String({ description: "the token's name; for `oauth`, the application's name or client id" }),
    client_id: Type.Optional(Type.String({ description: "`oauth`: the application's client id" })),
    scope: Type.Optional(Type.String({ description: "`oauth`: the scopes it was given" })),
    created_at: Type.String(),
    expires_at: Type.Optional(Type.String()),
    current: Type.Boolean({ description: "the token this request was made with" }),
  },
  { $id: "UserToken" },
);

export async function profileRoutes(app: AreaApp, ctx: AppContext) {
  app.get(
    "/accounts/profiles/me/tokens",
    {
      config: { access: "user" },
      schema: {
        summary: "list_user_tokens",
        description:
          "The tokens you hold that have not expired (never their values), newest first: personal access tokens, then the OAuth grants " +
          "you gave applications (`oauth:<grant id>`; revoking one ends every token the application got from it).",
        response: { 200: Type.Object({ tokens: Type.Array(Type.Ref("UserToken")) }) },
      },
    },
    async (req) => {
      const me = callerUser(req);
      const grants = (await ctx.oauthServer.grantsOf(me.userId)).map((g) => ({ ...g, current: g.id === me.tokenId }));
      return { tokens: [...(await ctx.users.tokens(me.userId, me.tokenId)), ...grants] };
    },
  );
  app.post(
    "/accounts/profiles/me/tokens",
    {
      config: { access: "user" },
      schema: {
        summary: "create_user_token",
        description: "A new personal access token (`mpat_…`); `token` is its value, shown this once only.",
        body: Type.Object({
          name: Type.String({ minLength: 1, maxLength: 200 }),
          expires_in: Nullable(Type.Integer({ minimum: 60, maximum: 10 * 365 * 86400, description: "seconds; absent: no expiry" })),
        }),
        response: { 201: Type.Object({ ...UserToken.properties, current: Type.Optional(Type.Boolean()), token: Type.String() }), ...errors(400) },
      },
    },
    async (req, reply) => {
      reply.code(201);
      return ctx.users.createPat(callerUser(req).userId, req.body);
    },
  );
  app.delete(
    "/accounts/profiles/me/tokens/:token_id",
    {
      config: { access: "user" },
      schema: {
        summary: "revoke_user_token",
        description: "Revokes one of your tokens at once, in every server process (204). Revoking the one in use signs you out.",
        params: Type.Object({ token_id: Type.String({ minLength: 1, maxLength: 100 }) }),
        response: { 204: Type.Null({ description: "no body" }), ...errors(404) },
      },
    },
    async (req, reply) => {
      const me = callerUser(req);
      if (req.params.token_id.startsWith("oauth:")) await ctx.oauthServer.revokeGrant(me.userId, req.params.token_id.slice(6));
      else await ctx.auth.revokeToken(me.userId, req.params.token_id);
      return reply.code(204).send(null);
    },
  );

  app.get(
    "/accounts/profiles/:user_id",
    { config: { access: "user" }, schema: { summary: "get_user_profile", params: Params, response: { 200: Profile, ...errors(404) } } },
    async (req) => ctx.users.profileFor(callerUser(req).userId, req.params.user_id),
  );
  app.put(
    "/accounts/profiles/:user_id",
    {
      config: { access: "user" },
      schema: {
        summary: "update_user_profile",
        params: Params,
        body: Type.Object({ first_name: Nullable(Type.String({ maxLength: 200 })), last_name: Nullable(Type.String({ maxLength: 200 })) }),
        response: { 200: Ok, ...errors(400, 404) },
      },
    },
    async (req) => {
      await ctx.users.updateProfile(callerUser(req).userId, req.params.user_id, req.body);
      return { ok: true };
    },
  );
}
export const profileSchemas = [UserToken];
