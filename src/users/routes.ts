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

export async function profileRoutes(app: AreaApp, ctx: AppContext) {
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
