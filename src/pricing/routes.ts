import { Type } from "@sinclair/typebox";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { AppContext } from "../context.js";

const Price = Type.Object({
  id: Type.String(),
  usage_type: Type.String(),
  unit: Type.String(),
  unit_price: Type.Number(),
  provider: Type.Optional(Type.String()),
  model: Type.Optional(Type.String()),
  description: Type.String(),
});

export const pricingRoutes =
  (ctx: AppContext): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.get(
      "/pricing",
      {
        config: { access: "public" },
        schema: {
          tags: ["billing"],
          summary: "get_pricing",
          description: "The public price list; no credentials needed (a bearer, junk or not, is ignored).",
          response: { 200: Type.Object({ currency: Type.String(), prices: Type.Array(Price) }) },
        },
      },
      async () => ctx.pricing.table,
    );
  };
