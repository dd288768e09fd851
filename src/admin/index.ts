import type { Domain } from "../domain.js";
import { adminRoutes, adminSchemas } from "./routes.js";

/** The server-administration area: users across the instance and instance-wide settings. */
export const adminDomain: Domain = { name: "admin", routes: adminRoutes, schemas: adminSchemas };
