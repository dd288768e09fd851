import type { AppContext } from "./context.js";

/** A database URL without its password (`postgres://user:***@host/db`), or the SQLite file it names. */
export function describeStore(databaseUrl: string): string {
  if (databaseUrl.startsWith("sqlite://")) return `SQLite, ${databaseUrl.slice("sqlite://".length)}`;
  try {
    const u = new URL(databaseUrl);
    if (u.password) u.password = "***";
    return `PostgreSQL, ${u.toString()}`;
  } catch {
    return "PostgreSQL";
  }
}

/** Where blobs live, as an operator reads it. */
export function describeStorage(storageUrl: string): string {
  if (storageUrl.startsWith("s3://")) return `S3, ${storageUrl}`;
  return `local directory, ${storageUrl.replace(/^file:\/\//, "")}`;
}

/**
 * The lines printed on stderr once the server listens: where it is, what it runs on, which optional parts are on,
 * and the next step (bootstrap on a server without users).
 */
export async function startupSummary(ctx: AppContext, listening: { url: string; ms: number; from: string; bootstrap: string }): Promise<string> {
  const c = ctx.config;
  const smtpPort = ctx.mail.port;
  const lines = [
    `MeshAgent server listening on ${listening.url} (started in ${(listening.ms / 1000).toFixed(1)} s, ${listening.from})`,
    `  public URL   ${c.publicUrl}${c.publicUrl === listening.url ? "" : "   (what clients are told; MESHAGENT_PUBLIC_URL sets it)"}`,
    `  data         ${c.dataDir}`,
    `  store        ${describeStore(c.databaseUrl)}`,
    `  storage      ${describeStorage(c.storageUrl)}`,
    `  SMTP         ${smtpPort !== null ? `on, port ${smtpPort} (mail to <mailbox>@<domain> lands in room queues)` : "off (MESHAGENT_SMTP_PORT turns it on)"}`,
    `  containers   ${
      ctx.hosting.runtime
        ? `Docker at ${c.docker.host}`
        : c.docker.host
          ? `off: the Docker daemon at ${c.docker.host} did not answer at start-up`
          : "off (no Docker daemon found: MESHAGENT_DOCKER_HOST or DOCKER_HOST names one)"
    }`,
    `  docs         ${c.publicUrl}/docs (OpenAPI at /openapi.json; metrics at /metrics; health at /healthz and /readyz)`,
  ];
  const next = (await ctx.users.any())
    ? `next: point a client at MESHAGENT_API_URL=${c.publicUrl} (${listening.bootstrap} issues a new API key)`
    : `next: ${listening.bootstrap}   (creates an admin user, a project and an API key, and writes them to .env)`;
  lines.push(next);
  return lines.join("\n") + "\n";
}
