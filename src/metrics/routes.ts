import { timingSafeEqual } from "node:crypto";
import type { AreaApp } from "../domain.js";
import type { AppContext } from "../context.js";
import { ApiError } from "../core/errors.js";

function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? "");
  if (!m) return false;
  const a = Buffer.from(m[1].trim());
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** `GET /metrics`: the Prometheus text format. Public unless MESHAGENT_METRICS_TOKEN is set; off with MESHAGENT_METRICS=false. */
export async function metricsRoutes(app: AreaApp, ctx: AppContext) {
  const metrics = ctx.metrics;
  if (!metrics) return;
  const token = ctx.config.metrics.token;
  app.get("/metrics", { schema: { hide: true }, config: { access: "public" } }, async (req, reply) => {
    if (token && !bearerMatches(req.headers.authorization, token))
      throw new ApiError(401, "unauthorized", "GET /metrics needs Authorization: Bearer <MESHAGENT_METRICS_TOKEN>");
    return reply.type(metrics.contentType).send(await metrics.render());
  });
}
