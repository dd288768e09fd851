import type { Domain } from "../domain.js";
import { AuditEntry, auditRoutes } from "./routes.js";

/** The audit area: the log of mutating calls (written by ./hook.ts, read here). */
export const auditDomain: Domain = { name: "audit", routes: auditRoutes, schemas: [AuditEntry] };
