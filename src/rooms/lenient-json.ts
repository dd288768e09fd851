import type { FastifyInstance } from "fastify";

/**
 * For body-less POSTs (connect_room, connect_share): the clients send `{}` with a JSON content type, but some send
 * nothing at all with the same header. Within the calling plugin only, an empty JSON body parses as `{}`; anything
 * else must still be valid JSON (400 otherwise).
 */
export function lenientJson(app: FastifyInstance) {
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (_req, body, done) => {
    const text = (body as string).trim();
    if (!text) return done(null, {});
    try {
      done(null, JSON.parse(text));
    } catch {
      const err = new Error("the body is not valid JSON") as Error & { statusCode: number; code: string };
      err.statusCode = 400;
      err.code = "FST_ERR_CTP_INVALID_JSON_BODY";
      done(err, undefined);
    }
  });
}
