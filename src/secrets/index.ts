import type { EventSpec } from "../core/events.js";
import type { Domain } from "../domain.js";
import { secretRoutes, secretSchemas } from "./routes.js";
import { secretAad } from "./service.js";

const data = { id: "string", name: "string", type: "string", room_name: "string (room secrets only)" };
const events: EventSpec[] = [
  { event: "secret.created", description: "a project or room secret was created (never its value)", data },
  { event: "secret.updated", description: "a secret's value, name or type was replaced (never its value)", data },
  { event: "secret.deleted", description: "a secret was deleted", data },
];

/** The secrets area: project and room secrets, sealed at rest; the register of which services use which secret. */
export const secretsDomain: Domain = {
  name: "secrets",
  routes: secretRoutes,
  schemas: secretSchemas,
  events,
  sealed: [{ table: "secrets", key: "id", column: "value_sealed", aad: (row) => secretAad(String(row.id)) }],
};
