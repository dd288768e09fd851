import { Type } from "@sinclair/typebox";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { AppContext } from "../context.js";
import { errors, Nullable, Ok } from "../core/http.js";

const Profile = Type.Object({
  id: Type.String(),
  email: Type.String(),
  first_name: Type.Optional(Type.String()),
  last_name: Type.Optional(Type.String()),
});
const Params = Type.Object({ user_id: Type.String({ minLength: 1, description: "a user id, or `me`" }) });

export const profileRoutes =
  (ctx: AppContext): FastifyPluginAsyncTypebox =>
  async (app) => {
    const tags = ["profiles"];
    app.get(
      "/accounts/profiles/:user_id",
      { schema: { tags, summary: "get_user_profile", params: Params, response: { 200: Profile, ...errors(401, 403, 404) } } },
      async (req) => {
        const user = await ctx.auth.user(req);
        return ctx.users.profileFor(user.userId, req.params.user_id);
      },
    );
    app.put(
      "/accounts/profiles/:user_id",
      {
        schema: {
          tags,
          summary: "update_user_profile",
          params: Params,
          body: Type.Object({ first_name: Nullable(Type.String({ maxLength: 200 })), last_name: Nullable(Type.String({ maxLength: 200 })) }),
          response: { 200: Ok, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => {
        const user = await ctx.auth.user(req);
        await ctx.users.updateProfile(user.userId, req.params.user_id, req.body);
        return { ok: true };
      },
    );
  };
