import type { FastifyInstance } from "fastify";
import { isUuid } from "../core/ids.js";
import type { UsageMeter } from "./meter.js";

/**
 * API requests are metered per project and client: each answered request of a route that declares access and had
 * a caller (`usage_type: "api"`, `unit: "request"`, `client`: `api_key:<id>`, `user:<id>` or `participant:<kid>`;
 * `user_id` for users). Refused-by-rate-limit answers (429) are not counted.
 */
export function installUsageMeter(app: FastifyInstance, meter: UsageMeter) {
  app.addHook("onResponse", (req, reply, done) => {
    const p = req.principal;
    if (p && reply.statusCode !== 429 && req.routeOptions.config?.access) {
      const pid = (req.params as Record<string, unknown> | undefined)?.project_id;
      const projectId = typeof pid === "string" && isUuid(pid) ? pid : p.projectId;
      if (projectId)
        meter.count(projectId, {
          usage_type: "api",
          unit: "request",
          quantity: 1,
          client: p.kind === "user" ? `user:${p.userId}` : `${p.kind}:${p.keyId}`,
          user_id: p.kind === "user" ? p.userId : null,
        });
    }
    done();
  });
}
