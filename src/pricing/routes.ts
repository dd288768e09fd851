import { Type } from "@sinclair/typebox";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { Nullable } from "../core/http.js";

const Price = Type.Object({
  id: Type.String(),
  usage_type: Type.String(),
  unit: Type.String(),
  unit_price: Type.Number({ description: "in `currency` per one `unit`" }),
  provider: Type.Optional(Type.String()),
  model: Type.Optional(Type.String()),
  description: Type.String(),
  metered_unit: Type.String({ description: "the unit usage of this type is recorded in (get_usage `unit`)" }),
  unit_size: Type.Number({ description: "metered units per priced unit" }),
});
const Plan = Type.Object({
  id: Type.String(),
  name: Type.String(),
  monthly_price: Type.Number(),
  allowances: Type.Record(Type.String(), Type.Number(), { description: "price id → units free per calendar month" }),
});

export async function pricingRoutes(app: AreaApp, ctx: AppContext) {
  app.get(
    "/pricing",
    {
      config: { access: "public" },
      schema: {
        summary: "get_pricing",
        description:
          "The public price list in force now (and the next version when one is scheduled), with the plans and their free allowances; " +
          "no credentials needed (a bearer, junk or not, is ignored).",
        response: {
          200: Type.Object({
            currency: Type.String(),
            prices: Type.Array(Price),
            effective_from: Type.String({ format: "date-time" }),
            next: Type.Optional(Type.Object({ effective_from: Type.String({ format: "date-time" }), prices: Type.Array(Price) })),
            plans: Type.Array(Plan),
            default_plan: Nullable(Type.String()),
            subscription_plan: Nullable(Type.String()),
          }),
        },
      },
    },
    async () => ctx.pricing.table(ctx.clock.now()),
  );
}
