// The baseline for bench/projects-get.ts: a bare Fastify route returning the same JSON, with the same logger setup.
import Fastify from "fastify";

const body = JSON.parse(process.env.BARE_BODY ?? "{}");
const app = Fastify({ logger: { level: process.env.MESHAGENT_LOG_LEVEL ?? "info" } });
app.get("/healthz", async () => ({ ok: true }));
app.get("/accounts/projects/:project_id", async () => body);
await app.listen({ port: Number(process.env.MESHAGENT_PORT), host: "127.0.0.1" });
