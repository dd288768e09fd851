import { createRequire } from "node:module";

/**
 * The official client @meshagent/meshagent@0.39.9, unchanged. Its ESM build ships CommonJS code and fails to import,
 * so we load the Node (CommonJS) build, which is what `require("@meshagent/meshagent")` gives any Node user.
 */
const official = createRequire(import.meta.url)("@meshagent/meshagent") as typeof import("@meshagent/meshagent");
export default official;
export const { Meshagent, ParticipantToken, RoomClient, WebSocketClientProtocol, ApiScope, ServicesClient } = official;
