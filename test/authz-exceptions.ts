/**
 * Where an operation's answers differ from what its declared access implies, and why. The generated matrix
 * (authz.test.ts) reads this table; an entry names the operation as "METHOD /path" from /openapi.json, the caller
 * and the status it gets instead. Keep it short: each row is a domain rule layered on the access level.
 */
type Caller = "none" | "garbage" | "deletedKey" | "otherKey" | "otherUser" | "member" | "developer" | "admin" | "apiKey" | "participant";

export const AUTHZ_EXCEPTIONS: Record<string, Partial<Record<Caller, { status: number; why: string }>>> = {
  "DELETE /accounts/projects/{project_id}/users/{user_id}": {
    member: { status: 403, why: "any member may leave (remove themselves); removing someone else needs the admin role" },
    participant: { status: 403, why: "a participant token has no user to remove; removing someone else needs the admin role" },
    developer: { status: 403, why: "removing someone else needs the admin role" },
  },
};
