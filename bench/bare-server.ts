// The baseline for bench/projects-get.ts and bench/services.ts: bare Fastify routes returning the same JSON, with the
// same logger setup. BARE_BODY answers GET /accounts/projects/:project_id; BARE_ROUTES is a JSON object of more
// GET routes (Fastify path pattern → body).
import Fastify from "fastify";

const body = JSON.parse(process.env.BARE_BODY ?? "{}");
const routes = JSON.parse(process.env.BARE_ROUTES ?? "{}") as Record<string, unknown>;
const app = Fastify({ logger: { level: process.env.MESHAGENT_LOG_LEVEL ?? "info" } });
app.get("/healthz", async () => ({ ok: true }));
app.get("/accounts/projects/:project_id", async () => body);
for (const [path, b] of Object.entries(routes)) app.get(path, async () => b);
await app.listen({ port: Number(process.env.MESHAGENT_PORT), host: "127.0.0.1" });
