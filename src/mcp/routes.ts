import { Type } from "@sinclair/typebox";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { AnyObject, errors, Nullable } from "../core/http.js";
import { MAX_URL_LENGTH } from "./service.js";

const DiscoverBody = Type.Object({
  url: Type.String({ minLength: 1, maxLength: MAX_URL_LENGTH, description: "the MCP server's endpoint, http(s), without credentials, query or fragment" }),
  format: Nullable(
    Type.Union([Type.Literal("service"), Type.Literal("template")], {
      description: '"service" (default): a ServiceSpec; "template": a ServiceTemplateSpec declaring the credentials discovery could not supply',
    }),
  ),
});

/** Wire-contract §4.2 `discover_mcp_spec`: describe an MCP server as an external service (not project-scoped). */
export async function mcpRoutes(app: AreaApp, ctx: AppContext) {
  app.post(
    "/mcp/discover",
    {
      config: { access: "principal" },
      schema: {
        summary: "discover_mcp_spec",
        description:
          "Connects to the MCP server at `url` (Streamable HTTP, else the legacy HTTP+SSE transport), reads its name, " +
          "description, instructions and tools, or its OAuth metadata when it requires authorization, and answers an " +
          "external ServiceSpec (or ServiceTemplateSpec) that POST /accounts/projects/{project_id}/services accepts as is. " +
          "400 `invalid_url`, 400 `address_not_allowed` (private addresses, unless MESHAGENT_MCP_ALLOW_PRIVATE), " +
          "422 `mcp_unreachable` (no answer: refused, unknown host, timeout), 422 `not_mcp_server` (it answered, but not as MCP), " +
          "429 `too_many_discoveries`.",
        body: DiscoverBody,
        response: { 200: AnyObject, ...errors(400, 422, 429) },
      },
    },
    async (req) => ctx.mcp.discover(req.body.url, req.body.format ?? "service"),
  );
}
