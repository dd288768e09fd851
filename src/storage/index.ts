import type { EventSpec } from "../core/events.js";
import type { Domain } from "../domain.js";
import { storageRoutes, storageSchemas } from "./routes.js";

const events: EventSpec[] = [
  {
    event: "storage.file.updated",
    description: "a file in project or room storage was written",
    data: { path: "string", participant_id: "string | null", room_id: "string (room storage only)", size: "number (bytes)", etag: "string" },
  },
  {
    event: "storage.file.deleted",
    description: "a file was deleted",
    data: { path: "string", participant_id: "string | null", room_id: "string (room storage only)", size: "number (bytes)", etag: "string | null" },
  },
  {
    event: "storage.file.moved",
    description: "a file was moved or renamed",
    data: { source_path: "string", destination_path: "string", participant_id: "string | null" },
  },
];

/** The storage area: project storage. */
export const storageDomain: Domain = { name: "storage", routes: storageRoutes, schemas: storageSchemas, events };
