import type { Domain } from "../domain.js";
import { otlpRoutes } from "./otlp.js";
import { sessionRoutes, sessionSchemas } from "./routes.js";

/** The sessions area: room sessions and the OTLP receiver. */
export const sessionsDomain: Domain = {
  name: "sessions",
  routes: (ctx) => async (app) => {
    await app.register(sessionRoutes(ctx));
    await app.register(otlpRoutes(ctx));
  },
  schemas: sessionSchemas,
  events: [
    { event: "room.started", description: "a room session started", data: { room_name: "string", room_url: "string (wss://…/rooms/{room})" } },
    { event: "room.ended", description: "a room session ended", data: { room_name: "string" } },
  ],
};
