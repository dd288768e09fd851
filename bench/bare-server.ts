// The baseline for bench/projects-get.ts and bench/services.ts: bare Fastify routes returning the same JSON, with the
// same logger setup. BARE_BODY answers GET /accounts/projects/:project_id; BARE_ROUTES is a JSON object of more
// GET routes (Fastify path pattern → body).
import Fastify from "fastify";

const body = JSON.parse(process.env.BARE_BODY ?? "{}");
const routes = JSON.parse(process.env.BARE_ROUTES ?? "{}") as Record<string, unknown>;
// BARE_ONE_LINE=1: one log line per request, as our server writes it (bench/startup.ts measures what logging costs).
const oneLine = process.env.BARE_ONE_LINE === "1";
const app = Fastify({ logger: { level: process.env.MESHAGENT_LOG_LEVEL ?? "info" }, disableRequestLogging: oneLine });
if (oneLine)
  app.addHook("onResponse", (req, reply, done) => {
    req.log.info(
      { statusCode: reply.statusCode, responseTime: Math.round(reply.elapsedTime * 10) / 10, ip: req.ip },
      `${req.method} ${req.url} ${reply.statusCode} ${reply.elapsedTime.toFixed(1)}ms`,
    );
    done();
  });
app.get("/healthz", async () => ({ ok: true }));
app.get("/accounts/projects/:project_id", async () => body);
for (const [path, b] of Object.entries(routes)) app.get(path, async () => b);
await app.listen({ port: Number(process.env.MESHAGENT_PORT), host: "127.0.0.1" });
