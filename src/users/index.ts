import type { Domain } from "../domain.js";
import { profileRoutes, profileSchemas } from "./routes.js";

/** The users area: users and their profiles. */
export const usersDomain: Domain = { name: "users", tag: "profiles", routes: profileRoutes, schemas: profileSchemas };
