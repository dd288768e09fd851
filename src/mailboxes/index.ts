import type { Domain } from "../domain.js";
import { mailboxRoutes, mailboxSchemas } from "./routes.js";

/** The mailboxes area: mailboxes (inbound mail to room queues). */
export const mailboxesDomain: Domain = { name: "mailboxes", routes: mailboxRoutes, schemas: mailboxSchemas };
