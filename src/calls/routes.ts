import { Type } from "@sinclair/typebox";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { ProjectParams } from "../core/http.js";

const CallSecret = Type.Object(
  {
    secret: Type.String({
      description:
        "signs every room.call handoff of the project that is not a webhook's (Meshagent-Signature and Standard Webhooks): the receiver's MESHAGENT_WEBHOOK_SECRET",
    }),
  },
  { $id: "CallSecret" },
);

export const callSchemas = [CallSecret];

export async function callRoutes(app: AreaApp, ctx: AppContext) {
  const { calls } = ctx;

  app.get(
    "/accounts/projects/:project_id/calls/secret",
    {
      config: { access: "admin" },
      schema: {
        summary: "the project's room.call signing secret",
        description: 'Generated (whsec_…) on first use. Webhooks with action "call" are signed with their own secret instead.',
        params: ProjectParams,
        response: { 200: Type.Ref("CallSecret") },
      },
    },
    async (req) => ({ secret: await calls.secret(req.params.project_id) }),
  );

  app.post(
    "/accounts/projects/:project_id/calls/secret",
    {
      config: { access: "admin" },
      schema: {
        summary: "replace the project's room.call signing secret",
        description: "A new secret (whsec_…) signs every room.call from now on; the old one stops at once.",
        params: ProjectParams,
        response: { 200: Type.Ref("CallSecret") },
      },
    },
    async (req) => ({ secret: await calls.rotateSecret(req.params.project_id) }),
  );
}
