import type { EventSpec } from "../core/events.js";
import type { Domain } from "../domain.js";
import { hostingRoutes, hostingSchemas } from "./routes.js";

const data = {
  service_id: "string",
  service_name: "string (metadata.name)",
  room_name: "string",
  room_id: "string",
  session_id: "string",
  container_id: "string (container services)",
};
const events: EventSpec[] = [
  { event: "service.started", description: "a service is running in a room (its container answered and its agents were invoked)", data },
  {
    event: "service.stopped",
    description: "a service stopped in a room (its session ended, it was replaced or deleted, or it exited 0)",
    data: { ...data, reason: "string" },
  },
  {
    event: "service.failed",
    description: "a service gave up in a room (restarts used up, a spec that cannot run here, the container limit)",
    data: { ...data, error: "string" },
  },
];

/** The service runtime: services in rooms (host.ts), what a container gets (launch.ts), the services and containers toolkits. */
export const hostingDomain: Domain = { name: "hosting", tag: "services", routes: hostingRoutes, schemas: hostingSchemas, events };
