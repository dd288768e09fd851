import { Type } from "@sinclair/typebox";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { AnyObject, errors } from "../core/http.js";

export async function tokenRoutes(app: AreaApp, ctx: AppContext) {
  app.post(
    "/api/participant-token/validate",
    {
      config: { access: "public" },
      schema: {
        summary: "validate_participant_token",
        description:
          "Verifies a participant JWT (ours, or one a client signed with its API key) and returns its decoded payload. " +
          "Needs no credentials; 401 when the token is invalid, expired, of an unknown kid or not HS256.",
        body: Type.Object({ token: Type.String({ minLength: 1 }) }),
        response: { 200: AnyObject, ...errors(400, 401) },
      },
    },
    async (req) => ctx.tokens.verify(req.body.token),
  );
}
