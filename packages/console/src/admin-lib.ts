/**
 * The pure logic of the account and project-administration pages (projects, settings, members, API keys, OAuth
 * clients, tokens): form values to request bodies, and the checks the server makes, made early so people see them as
 * they type. The server stays the judge: its error is shown when it refuses anyway.
 */
import type { OAuthClient } from "@meshagent-oss/sdk";

// ── Roles ─────────────────────────────────────────────────────────────────────────────────────────────────────────

export type MemberRole = "admin" | "developer" | "member";

export const ROLE_LABELS: Record<MemberRole, string> = {
  admin: "Admin",
  developer: "Developer",
  member: "Member",
};

export const ROLE_HINTS: Record<MemberRole, string> = {
  admin: "everything: members, keys, secrets, webhooks, OAuth clients, billing, settings",
  developer: "services, sessions, scheduled tasks and mailboxes, and the rooms",
  member: "the rooms they may use",
};

/** A member as get_users_in_project answers (its users are loosely typed objects). */
export interface Member {
  id: string;
  email: string;
  name: string;
  role: MemberRole;
  owner: boolean;
  invited: boolean;
  canCreateRooms: boolean;
  canUseLlmProxy: boolean;
  addedAt?: string;
}

const str = (v: unknown) => (typeof v === "string" ? v : "");

/** Reads one of get_users_in_project's users. */
export function toMember(u: Record<string, unknown>): Member {
  const role: MemberRole = u.is_owner || u.is_admin || u.role === "admin" ? "admin" : u.is_developer || u.role === "developer" ? "developer" : "member";
  const name = [str(u.first_name), str(u.last_name)].filter(Boolean).join(" ");
  return {
    id: str(u.user_id) || str(u.id),
    email: str(u.email),
    name,
    role,
    owner: !!u.is_owner,
    invited: !!u.invited,
    canCreateRooms: !!u.can_create_rooms,
    canUseLlmProxy: !!u.can_use_llm_proxy,
    addedAt: str(u.added_at) || undefined,
  };
}

/** The membership flags of a role (admins have the developer's abilities too). */
export function roleFlags(role: MemberRole): { is_admin: boolean; is_developer: boolean } {
  return { is_admin: role === "admin", is_developer: role !== "member" };
}

/** Why a member's role or membership cannot be changed from this page, or null when it can. */
export function lockedReason(m: Pick<Member, "id" | "owner">, meId: string | undefined): string | null {
  if (m.owner) return "The project's owner is always an admin and cannot be removed.";
  if (meId && m.id === meId) return "You cannot change your own role here (ask another admin), so you do not lock yourself out.";
  return null;
}

// ── Invitations ───────────────────────────────────────────────────────────────────────────────────────────────────

/** A plausible email address (the server decides; this catches typos early). */
export function emailError(email: string): string | null {
  const e = email.trim();
  if (!e) return "Enter the person's email address.";
  if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(e)) return "This does not look like an email address.";
  return null;
}

export interface InviteForm {
  email: string;
  role: MemberRole;
  canCreateRooms: boolean;
  canUseLlmProxy: boolean;
}

/** The options of addUserToProject(projectId, null, options) for the invite form. */
export function inviteBody(f: InviteForm) {
  const err = emailError(f.email);
  if (err) throw new Error(err);
  return {
    email: f.email.trim(),
    ...roleFlags(f.role),
    // Admins may create rooms anyway; the flag is stored as chosen for the other roles.
    can_create_rooms: f.role === "admin" || f.canCreateRooms,
    can_use_llm_proxy: f.role === "admin" || f.canUseLlmProxy,
  };
}

// ── Project settings ──────────────────────────────────────────────────────────────────────────────────────────────

/** Settings keys the server reads itself (the document may hold any others, for your own use). */
export const KNOWN_SETTINGS: { key: string; about: string }[] = [
  { key: "storage_quota_bytes", about: "the project's storage quota in bytes (a whole number; absent: no quota)" },
];

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/** The settings document typed in the editor: a JSON object (the whole of it replaces the stored one). */
export function parseSettings(text: string): Parsed<Record<string, unknown>> {
  if (!text.trim()) return { ok: false, error: "The settings must be a JSON object; type {} for none." };
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return { ok: false, error: `Not valid JSON: ${e instanceof Error ? e.message : String(e)}` };
  }
  if (typeof v !== "object" || v === null || Array.isArray(v))
    return { ok: false, error: "The settings must be a JSON object ({ … }), not an array or a single value." };
  const q = (v as Record<string, unknown>).storage_quota_bytes;
  if (q !== undefined && q !== null && !(typeof q === "number" && Number.isInteger(q) && q >= 0))
    return { ok: false, error: "storage_quota_bytes must be a whole number of bytes, 0 or more (or leave it out for no quota)." };
  return { ok: true, value: v as Record<string, unknown> };
}

export const formatJson = (v: unknown) => JSON.stringify(v, null, 2);

// ── Projects ──────────────────────────────────────────────────────────────────────────────────────────────────────

/** A new project's name, trimmed, or why it cannot be used (the server's rules: 1–200 characters). */
export function projectNameError(name: string): string | null {
  const n = name.trim();
  if (!n) return "Give the project a name.";
  if (n.length > 200) return "A project name is at most 200 characters.";
  return null;
}

/** The page a project opens on. */
export const projectHome = (id: string) => `/projects/${encodeURIComponent(id)}/rooms`;

// ── API keys and tokens ───────────────────────────────────────────────────────────────────────────────────────────

export function keyNameError(name: string): string | null {
  const n = name.trim();
  if (!n) return "Give it a name that says where it is used.";
  if (n.length > 200) return "A name is at most 200 characters.";
  return null;
}

/** The expiries offered for a personal access token, as expires_in seconds (undefined: never expires). */
export const TOKEN_EXPIRIES: { id: string; label: string; seconds: number | undefined }[] = [
  { id: "1d", label: "1 day", seconds: 86400 },
  { id: "7d", label: "7 days", seconds: 7 * 86400 },
  { id: "30d", label: "30 days", seconds: 30 * 86400 },
  { id: "90d", label: "90 days", seconds: 90 * 86400 },
  { id: "365d", label: "1 year", seconds: 365 * 86400 },
  { id: "never", label: "Never", seconds: undefined },
];

/** The createUserToken options of an expiry choice. */
export function tokenOptions(expiry: string): { expires_in?: number } {
  const e = TOKEN_EXPIRIES.find((x) => x.id === expiry);
  if (!e) throw new Error(`unknown expiry ${expiry}`);
  return e.seconds === undefined ? {} : { expires_in: e.seconds };
}

export const DEFAULT_EXPIRY = "30d";

export const TOKEN_KIND_LABELS: Record<string, string> = { pat: "Personal access token", oauth: "Application (OAuth)" };

// ── OAuth clients ─────────────────────────────────────────────────────────────────────────────────────────────────

export const GRANT_TYPES: { id: string; label: string }[] = [
  { id: "authorization_code", label: "Authorization code (sign-in in a browser, with PKCE)" },
  { id: "refresh_token", label: "Refresh token (stay signed in)" },
  { id: "urn:ietf:params:oauth:grant-type:device_code", label: "Device code (sign-in on a device without a browser)" },
];

/** The scopes of the API a client may be allowed to ask for (`project/<id>` and `room/<name>` narrow the wildcards). */
export const API_SCOPES = [
  "profile",
  "project/*",
  "room/*",
  "create_users",
  "create_rooms",
  "llm_proxy",
  "admin",
  "developer",
  "connect_room",
  "delete_room",
  "update_room",
];

export const DEFAULT_SCOPE = "profile project/* room/*";

/**
 * How a client authenticates at the token endpoint, kept in its metadata (`token_endpoint_auth_method`): `none` is
 * a public client (a browser or native app: PKCE, no secret); the others are confidential (they hold the secret).
 */
export type ClientAuth = "client_secret_basic" | "client_secret_post" | "none";

export const CLIENT_AUTH_LABELS: Record<ClientAuth, string> = {
  client_secret_basic: "Confidential (secret by HTTP Basic)",
  client_secret_post: "Confidential (secret in the form body)",
  none: "Public (PKCE, no secret)",
};

export function clientAuth(c: Pick<OAuthClient, "metadata">): ClientAuth {
  const m = c.metadata?.token_endpoint_auth_method;
  return m === "none" || m === "client_secret_post" ? m : "client_secret_basic";
}

export const isPublic = (c: Pick<OAuthClient, "metadata">) => clientAuth(c) === "none";

export function clientName(c: Pick<OAuthClient, "metadata" | "client_id">): string {
  return c.metadata?.client_name || c.metadata?.name || c.client_id;
}

/** Redirect URIs typed one per line (or separated by spaces or commas), without blanks and repeats. */
export function parseUris(text: string): string[] {
  return [
    ...new Set(
      text
        .split(/[\s,]+/)
        .map((s) => s.trim())
        .filter(Boolean),
    ),
  ];
}

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** What is wrong with a redirect URI, as the server checks it (https, or http on a loopback host; no fragment). */
export function redirectUriError(v: string): string | null {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return `${v} is not an absolute URL`;
  }
  if (u.hash || v.includes("#")) return `${v} must not have a fragment (#…)`;
  if (u.username || u.password) return `${v} must not carry a user name or password`;
  if (u.protocol === "https:") return null;
  if (u.protocol === "http:" && LOOPBACK.has(u.hostname)) return null;
  return `${v} must be https, or http on localhost, 127.0.0.1 or [::1]`;
}

export interface ClientForm {
  name: string;
  auth: ClientAuth;
  grants: string[];
  redirectUris: string;
  scope: string;
}

export function emptyClientForm(): ClientForm {
  return { name: "", auth: "client_secret_basic", grants: ["authorization_code", "refresh_token"], redirectUris: "", scope: DEFAULT_SCOPE };
}

export function clientToForm(c: OAuthClient): ClientForm {
  return {
    name: c.metadata?.client_name ?? c.metadata?.name ?? "",
    auth: clientAuth(c),
    grants: [...c.grant_types],
    redirectUris: c.redirect_uris.join("\n"),
    scope: c.scope,
  };
}

/** Every problem of the form, by field (empty: it can be sent). */
export function clientFormErrors(f: ClientForm): Partial<Record<"grants" | "redirectUris" | "scope" | "name", string>> {
  const out: Partial<Record<"grants" | "redirectUris" | "scope" | "name", string>> = {};
  if (f.name.length > 200) out.name = "A name is at most 200 characters.";
  if (!f.grants.length) out.grants = "Choose at least one grant type.";
  const uris = parseUris(f.redirectUris);
  const bad = uris.map(redirectUriError).filter((e): e is string => !!e);
  if (bad.length) out.redirectUris = bad.join("\n");
  else if (uris.length > 20) out.redirectUris = "At most 20 redirect URIs.";
  else if (f.grants.includes("authorization_code") && !uris.length) out.redirectUris = "The authorization code grant needs at least one redirect URI.";
  const tokens = f.scope.split(" ").filter(Boolean);
  if (!tokens.length) out.scope = "Name at least one scope, e.g. profile.";
  else {
    const badScope = tokens.find((t) => !/^[\x21\x23-\x5b\x5d-\x7e]+$/.test(t));
    if (badScope) out.scope = `"${badScope}" is not a valid scope (letters, digits and punctuation other than " and \\).`;
  }
  return out;
}

/**
 * The body of createOAuthClient / updateOAuthClient for the form. `base`: the client's current metadata on edit
 * (its other keys are kept). The code flow needs response type `code`; the server requires the two together.
 */
export function clientBody(f: ClientForm, base: Record<string, string> = {}) {
  const errs = Object.values(clientFormErrors(f));
  if (errs.length) throw new Error(errs.join("\n"));
  const metadata: Record<string, string> = { ...base };
  const name = f.name.trim();
  if (name) metadata.client_name = name;
  else delete metadata.client_name;
  metadata.token_endpoint_auth_method = f.auth;
  const grants = GRANT_TYPES.map((g) => g.id).filter((g) => f.grants.includes(g));
  return {
    grant_types: grants,
    response_types: grants.includes("authorization_code") ? ["code"] : [],
    redirect_uris: parseUris(f.redirectUris),
    scope: [...new Set(f.scope.split(" ").filter(Boolean))].join(" "),
    metadata,
  };
}
