import type { Domain } from "../domain.js";
import { mcpRoutes } from "./routes.js";

/** The MCP area: discovery of MCP servers as external services (`POST /mcp/discover`). */
export const mcpDomain: Domain = { name: "mcp", routes: mcpRoutes, schemas: [] };
