import { Type } from "@sinclair/typebox";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";

const Price = Type.Object({
  id: Type.String(),
  usage_type: Type.String(),
  unit: Type.String(),
  unit_price: Type.Number(),
  provider: Type.Optional(Type.String()),
  model: Type.Optional(Type.String()),
  description: Type.String(),
});

export async function pricingRoutes(app: AreaApp, ctx: AppContext) {
  app.get(
    "/pricing",
    {
      config: { access: "public" },
      schema: {
        summary: "get_pricing",
        description: "The public price list; no credentials needed (a bearer, junk or not, is ignored).",
        response: { 200: Type.Object({ currency: Type.String(), prices: Type.Array(Price) }) },
      },
    },
    async () => ctx.pricing.table,
  );
}
