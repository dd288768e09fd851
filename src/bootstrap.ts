import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { randomSecret } from "./core/crypto.js";
import { inTx } from "./store/db.js";
import type { AppContext } from "./context.js";

export interface BootstrapResult {
  api_url: string;
  user_id: string;
  email: string;
  project_id: string;
  api_key: string;
  user_token: string;
  created_user: boolean;
  created_project: boolean;
  password?: string;
}

/** What `bootstrap --json` prints (one line). */
export type BootstrapJson = Pick<BootstrapResult, "api_url" | "user_id" | "email" | "project_id" | "api_key" | "user_token">;

/**
 * Idempotent: reuses the admin user (matched by email) and their project (matched by name), and always issues a
 * new API key and a new personal access token. A password is set only when the user is new or one is given. The user
 * is (made) a server administrator.
 */
export async function bootstrap(ctx: AppContext, opts: { email: string; password?: string; project: string }): Promise<BootstrapResult> {
  let createdUser = false;
  let createdProject = false;
  let password = opts.password;
  let user = await ctx.users.byEmail(opts.email);
  if (!user) {
    password ??= randomSecret(12);
    user = await ctx.users.create({ email: opts.email, password });
    createdUser = true;
  } else if (opts.password) {
    await ctx.users.setPassword(user.id, opts.password);
  }
  // The operator who bootstraps the server administers it.
  if (user.is_server_admin !== 1) await ctx.users.makeServerAdmin(user.id);
  const project = await ctx.projects.byNameForOwner(user.id, opts.project);
  let projectId: string;
  if (!project) {
    projectId = (await ctx.projects.create(user.id, { name: opts.project })).id;
    createdProject = true;
  } else projectId = project.id;
  const { key, token } = await inTx(ctx.store.db, async (tx) => ({
    key: await ctx.apiKeys.create(projectId, { name: "bootstrap", description: "created by npm run bootstrap" }, user!.id, tx),
    token: await ctx.users.issueToken(user!.id, { kind: "pat", name: "bootstrap" }, tx),
  }));
  return {
    api_url: ctx.config.publicUrl,
    user_id: user.id,
    email: user.email,
    project_id: projectId,
    api_key: key.value,
    user_token: token,
    created_user: createdUser,
    created_project: createdProject,
    password: createdUser ? password : undefined,
  };
}

/** Set KEY=value lines in a .env file, keeping every other line as it was. */
export function updateEnvFile(file: string, values: Record<string, string>) {
  const lines = existsSync(file) ? readFileSync(file, "utf8").split("\n") : [];
  const seen = new Set<string>();
  const out = lines.map((line) => {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=/.exec(line);
    if (m && m[1] in values) {
      seen.add(m[1]);
      return `${m[1]}=${values[m[1]]}`;
    }
    return line;
  });
  while (out.length && out[out.length - 1] === "") out.pop();
  for (const [k, v] of Object.entries(values)) if (!seen.has(k)) out.push(`${k}=${v}`);
  writeFileSync(file, out.join("\n") + "\n", { mode: 0o600 });
}
