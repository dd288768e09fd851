import { join } from "node:path";
import type { FastifyReply } from "fastify";
import type { AreaApp } from "../domain.js";
import type { AppContext } from "../context.js";
import { ApiError } from "../core/errors.js";
import { CONSOLE_DIST, consoleCsp, consoleIndex } from "./service.js";

/**
 * `/console`: the web console's static files. Hashed assets (`/console/assets/*`) are immutable for a year; every
 * other path answers index.html (the console routes in the browser), never cached, under a strict CSP. When the
 * console was not built, `/console` says how to build it.
 */
export async function consoleRoutes(app: AreaApp, ctx: AppContext) {
  const publicUrl = () => ctx.config.publicUrl;
  const csp = () => consoleCsp(publicUrl());
  const dir = ctx.config.consoleDir ? join(ctx.config.consoleDir, "/") : CONSOLE_DIST;
  // Read once found (a build after start-up is picked up; a rebuild needs a restart, as its old assets are gone).
  let index: string | null = null;
  const page = () => (index ??= consoleIndex(dir));

  const hidden = { schema: { hide: true }, config: { access: "public" as const } };
  // The router ignores a trailing slash, so this is /console and /console/ (the console's own links need the slash).
  app.get("/console", hidden, async (req, reply) => (req.url.split("?")[0].endsWith("/") ? index_(reply) : reply.redirect("/console/", 302)));

  // @fastify/static streams the files (ranges, ETag, content types); the routes are ours, declared like any other.
  const { default: fastifyStatic } = await import("@fastify/static");
  // The caching headers go on files found only (setHeaders), never on a 404.
  await app.register(fastifyStatic, {
    root: dir,
    serve: false,
    cacheControl: false,
    setHeaders: (reply) => void reply.header("cache-control", "public, max-age=31536000, immutable").header("x-content-type-options", "nosniff"),
  });
  app.get("/console/assets/*", hidden, async (req, reply) => {
    if (page() === null) throw notBuilt();
    const file = (req.params as { "*": string })["*"];
    // Only files under assets/: a dot segment is not a console asset (send would refuse it too, with a 403).
    if (file.split(/[\\/]/).some((seg) => seg === ".." || seg === ".")) throw new ApiError(404, "not_found", "no such console asset");
    return reply.sendFile(`assets/${file}`, dir);
  });

  const index_ = (reply: FastifyReply) => {
    const html = page();
    if (html === null) throw notBuilt();
    return reply
      .header("content-type", "text/html; charset=utf-8")
      .header("cache-control", "no-cache")
      .header("content-security-policy", csp())
      .header("x-content-type-options", "nosniff")
      .header("referrer-policy", "no-referrer")
      .send(html);
  };
  app.get("/console/*", hidden, async (_req, reply) => index_(reply));
}

const notBuilt = () =>
  new ApiError(
    503,
    "console_not_built",
    "the web console is not built: run `npm run build -w @meshagent-oss/console` (an install without dev dependencies skips it)",
  );
