import type { EventSpec } from "../core/events.js";
import type { Domain } from "../domain.js";
import { otlpRoutes } from "./otlp.js";
import { sessionRoutes, sessionSchemas } from "./routes.js";

const events: EventSpec[] = [
  { event: "room.started", description: "a room session started", data: { room_name: "string", room_url: "string (wss://…/rooms/{room})" } },
  { event: "room.ended", description: "a room session ended", data: { room_name: "string" } },
];

/** The OTLP receiver reads every body as bytes, so it gets a context (content-type parsers) of its own. */
const routes: Domain["routes"] = async (app, ctx) => {
  await sessionRoutes(app, ctx);
  await app.register(async (otlp) => otlpRoutes(otlp, ctx));
};

/** The sessions area: room sessions and the OTLP receiver. */
export const sessionsDomain: Domain = { name: "sessions", routes, schemas: sessionSchemas, events };
