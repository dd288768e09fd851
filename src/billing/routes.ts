import { Type } from "@sinclair/typebox";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { ApiError, badRequest } from "../core/errors.js";
import { errors, Nullable, ProjectParams, QueryInt, Uuid } from "../core/http.js";
import { actorId } from "../auth/principal.js";
import { csrfOf, html, installWeb, Page, Redirect, wantsHtml } from "../accounts/web.js";
import { checkoutPage, messagePage } from "../accounts/pages.js";
import { REPORTS, INTERVALS } from "./usage.js";
import { handleStripeEvent } from "./stripe.js";
import { fromMicros } from "./service.js";

const Balance = Type.Object(
  {
    balance: Type.Number({ description: "in `currency`: the sum of the project's transactions" }),
    currency: Type.String(),
    auto_recharge_enabled: Type.Boolean(),
    auto_recharge_threshold: Nullable(Type.Number()),
    auto_recharge_amount: Nullable(Type.Number()),
    last_recharge: Nullable(Type.String({ format: "date-time", description: "the last auto-recharge attempt" })),
    monthly_budget: Nullable(Type.Number()),
    auto_recharge_paused: Type.Boolean({ description: "a recharge failed; set_auto_recharge with enabled: true resumes" }),
    auto_recharge_error: Nullable(Type.String()),
    auto_recharged_this_month: Nullable(Type.Number({ description: "auto-recharges credited since the start of the month (UTC)" })),
  },
  { $id: "Balance" },
);
const Transaction = Type.Object(
  {
    id: Type.String(),
    amount: Type.Number({ description: "credits positive, debits negative, in `currency`" }),
    reference: Nullable(Type.String()),
    referenceType: Nullable(Type.String({ description: "camelCase on the wire (contract §7.5)" })),
    kind: Type.String({ description: "purchase | usage | adjustment | refund | recharge" }),
    description: Type.String(),
    created_at: Type.String({ format: "date-time" }),
  },
  { $id: "Transaction" },
);
const Subscription = Type.Object(
  {
    plan: Nullable(Type.String({ description: "the plan in force: the subscription's, else the pricing table's default plan" })),
    plan_name: Nullable(Type.String()),
    monthly_price: Nullable(Type.Number()),
    currency: Type.String(),
    status: Type.String({ description: "none | active | trialing | past_due | canceled | incomplete | unpaid (Stripe's statuses)" }),
    current_period_start: Nullable(Type.String({ format: "date-time" })),
    current_period_end: Nullable(Type.String({ format: "date-time" })),
    cancel_at_period_end: Type.Boolean(),
    provider: Nullable(Type.String({ description: "local | stripe" })),
  },
  { $id: "Subscription" },
);
const UsageEntry = Type.Object(
  {
    start: Type.String({ format: "date-time" }),
    end: Type.String({ format: "date-time" }),
    usage_type: Type.String(),
    unit: Type.Optional(Type.String()),
    quantity: Type.Number(),
    records: Type.Optional(Type.Integer()),
    room_name: Nullable(Type.String()),
    user_id: Nullable(Type.String()),
    role: Nullable(Type.String()),
    provider: Nullable(Type.String()),
    model: Nullable(Type.String()),
    client: Nullable(Type.String()),
    price_id: Type.Optional(Type.String()),
    amount: Type.Optional(Type.Number()),
    currency: Type.Optional(Type.String()),
  },
  { $id: "UsageEntry" },
);
const Checkout = Type.Object({ checkout_url: Type.String() });
const Urls = { success_url: Type.String({ maxLength: 2000 }), cancel_url: Type.String({ maxLength: 2000 }) };

const reportDoc = Object.entries(REPORTS)
  .map(([k, v]) => `\`${k}\` ${v.description}`)
  .join("; ");

export async function billingRoutes(app: AreaApp, ctx: AppContext) {
  const { billing, usageReports } = ctx;
  const projectExists = (id: string) =>
    ctx.projects.get(id).catch(() => {
      throw new ApiError(404, "not_found", `there is no project ${id}`);
    });
  const actor = (req: { principal?: import("../auth/principal.js").Principal }) => (req.principal ? actorId(req.principal) : null);

  app.get(
    "/accounts/projects/:project_id/balance",
    { config: { access: "admin" }, schema: { summary: "get_balance", params: ProjectParams, response: { 200: Type.Ref("Balance") } } },
    async (req) => billing.balance(req.params.project_id),
  );

  app.get(
    "/accounts/projects/:project_id/transactions",
    {
      config: { access: "admin" },
      schema: {
        summary: "get_recent_transactions",
        description: "Newest first; `limit` 1–1000 (default 100).",
        params: ProjectParams,
        querystring: Type.Object({ limit: QueryInt({ minimum: 1, maximum: 1000 }) }),
        response: { 200: Type.Object({ transactions: Type.Array(Type.Ref("Transaction")) }), ...errors(400) },
      },
    },
    async (req) => billing.transactions(req.params.project_id, req.query.limit ?? 100),
  );

  app.post(
    "/accounts/projects/:project_id/recharge",
    {
      config: { access: "admin" },
      schema: {
        summary: "set_auto_recharge",
        description:
          "When the balance falls below `threshold`, charge `amount` through the payment provider and credit it, while the month's " +
          "auto-recharges stay within `monthly_budget` (null: no budget). A failed charge pauses auto-recharge (`billing.recharge.failed`); " +
          "setting it again with `enabled: true` resumes. Answers the balance.",
        params: ProjectParams,
        body: Type.Object({ enabled: Type.Boolean(), amount: Type.Number(), threshold: Type.Number(), monthly_budget: Nullable(Type.Number()) }),
        response: { 200: Type.Ref("Balance"), ...errors(400) },
      },
    },
    async (req) => billing.setAutoRecharge(req.params.project_id, req.body),
  );

  app.post(
    "/accounts/projects/:project_id/subscription",
    {
      config: { access: "admin" },
      schema: {
        summary: "get_checkout_url",
        description: "A checkout for the pricing table's `subscription_plan`: the local provider's page on this server, or a Stripe Checkout Session.",
        params: ProjectParams,
        body: Type.Object(Urls),
        response: { 200: Checkout, ...errors(400, 409, 502) },
      },
    },
    async (req) => billing.checkout(req.params.project_id, "subscription", req.body, actor(req)),
  );

  app.post(
    "/accounts/projects/:project_id/credits",
    {
      config: { access: "admin" },
      schema: {
        summary: "get_credits_checkout_url",
        description: "A checkout for `quantity` credits (one credit = one unit of the pricing currency; at least 1).",
        params: ProjectParams,
        body: Type.Object({ quantity: Type.Number(), ...Urls }),
        response: { 200: Checkout, ...errors(400, 502) },
      },
    },
    async (req) => billing.checkout(req.params.project_id, "credits", req.body, actor(req)),
  );

  app.get(
    "/accounts/projects/:project_id/subscription",
    { config: { access: "admin" }, schema: { summary: "get_subscription", params: ProjectParams, response: { 200: Type.Ref("Subscription") } } },
    async (req) => billing.subscription(req.params.project_id),
  );

  app.post(
    "/accounts/projects/:project_id/subscription/cancel",
    {
      config: { access: "admin" },
      schema: {
        summary: "cancel_subscription",
        description:
          "Local subscriptions: `at_period_end` (default true) keeps the plan until the period ends, false ends it now. Stripe's are " +
          "cancelled in Stripe (409 managed_by_provider); their webhooks update the status.",
        params: ProjectParams,
        body: Type.Optional(Type.Object({ at_period_end: Type.Optional(Type.Boolean()) })),
        response: { 200: Type.Ref("Subscription"), ...errors(400, 409) },
      },
    },
    async (req) => billing.cancelSubscription(req.params.project_id, req.body?.at_period_end !== false),
  );

  app.get(
    "/accounts/projects/:project_id/usage",
    {
      config: { access: "developer" },
      schema: {
        summary: "get_usage",
        description:
          `Usage records rolled up per \`interval\` (${INTERVALS.join(" | ")}, default day; UTC, weeks from Monday) between \`start\` and ` +
          "`end` (ISO 8601; default the last 30 days). Filters: `users` (comma-separated), `room`, `provider`, `model`, `usage_type`, " +
          `\`client\`, \`annotations\` (a JSON object: each key must hold that value). Reports: ${reportDoc}.`,
        params: ProjectParams,
        querystring: Type.Object({
          start: Type.Optional(Type.String({ maxLength: 64 })),
          end: Type.Optional(Type.String({ maxLength: 64 })),
          interval: Type.Optional(Type.String({ maxLength: 16 })),
          report: Type.Optional(Type.String({ maxLength: 32 })),
          users: Type.Optional(Type.String({ maxLength: 8000 })),
          room: Type.Optional(Type.String({ maxLength: 200 })),
          provider: Type.Optional(Type.String({ maxLength: 200 })),
          model: Type.Optional(Type.String({ maxLength: 200 })),
          usage_type: Type.Optional(Type.String({ maxLength: 64 })),
          client: Type.Optional(Type.String({ maxLength: 200 })),
          annotations: Type.Optional(Type.String({ maxLength: 4000 })),
        }),
        response: { 200: Type.Object({ usage: Type.Array(Type.Ref("UsageEntry")) }), ...errors(400) },
      },
    },
    async (req) => usageReports.usage(req.params.project_id, req.query),
  );

  // ---------------------------------------------------------------- server administrators

  app.post(
    "/admin/billing/adjustments",
    {
      config: { access: "server_admin" },
      schema: {
        summary: "adjust_balance",
        description:
          "An operator's adjustment of a project's balance (positive credits, negative debits) with its reason; recorded in the audit log. " +
          "`key` makes it idempotent (a second call with it changes nothing).",
        body: Type.Object({
          project_id: Uuid,
          amount: Type.Number(),
          reason: Type.String({ minLength: 1, maxLength: 500 }),
          key: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
        }),
        response: {
          200: Type.Object({ transaction: Nullable(Type.Ref("Transaction")), balance: Type.Number(), created: Type.Boolean() }),
          ...errors(400, 404),
        },
      },
    },
    async (req) => {
      await projectExists(req.body.project_id);
      return billing.adjust(req.body.project_id, req.body.amount, req.body.reason, actor(req), req.body.key);
    },
  );

  app.post(
    "/admin/billing/refunds",
    {
      config: { access: "server_admin" },
      schema: {
        summary: "refund_transaction",
        description: "Refunds a credit (purchase, recharge or positive adjustment) as a negative transaction referencing it; once per transaction.",
        body: Type.Object({ project_id: Uuid, transaction_id: Type.String({ minLength: 1, maxLength: 100 }) }),
        response: { 200: Type.Object({ balance: Type.Number(), created: Type.Boolean() }), ...errors(400, 404) },
      },
    },
    async (req) => {
      await projectExists(req.body.project_id);
      return billing.refund(req.body.project_id, req.body.transaction_id, actor(req));
    },
  );

  app.post(
    "/admin/billing/run",
    {
      config: { access: "server_admin" },
      schema: {
        summary: "run_billing_job",
        description:
          "Runs the billing job now (it also runs every MESHAGENT_BILLING_INTERVAL): prices closed periods, renews local subscriptions, runs due recharges.",
        response: {
          200: Type.Object({
            priced: Type.Array(
              Type.Object({ period_start: Type.String(), records: Type.Integer(), charges: Type.Integer(), debits: Type.Record(Type.String(), Type.Number()) }),
            ),
            recharges: Type.Record(Type.String(), Type.String()),
          }),
        },
      },
    },
    async () => ctx.billingEngine.tick(),
  );

  // ---------------------------------------------------------------- the local provider's checkout page

  await app.register(async (pages) => {
    const web = await installWeb(pages as AreaApp, ctx);
    const Params = Type.Object({ checkout_id: Uuid });
    const describe = (c: { kind: string; plan: string | null; amount_micros: number | null }) => {
      const cur = billing.currency.toUpperCase();
      if (c.kind === "credits") {
        const n = fromMicros(Number(c.amount_micros))!;
        return { heading: "Buy credits", item: `${n} credits`, price: `${n.toFixed(2)} ${cur}` };
      }
      const plan = ctx.pricing.plan(c.plan);
      return { heading: "Subscribe", item: `The ${plan?.name ?? c.plan} plan`, price: `${(plan?.monthly_price ?? 0).toFixed(2)} ${cur} per month` };
    };
    /** The signed-in user, who must administer the checkout's project. */
    const admin = async (req: import("fastify").FastifyRequest, reply: import("fastify").FastifyReply, projectId: string, here: string) => {
      const me = await web.signedIn(req, reply, here);
      if (!me) return null;
      const access = await ctx.auth.accessFor({ kind: "user", userId: me.userId, tokenId: "session" }, projectId);
      if (!access || access.role !== "admin") {
        if (!wantsHtml(req)) throw new ApiError(403, "forbidden", "only an administrator of this project can confirm its purchases");
        html(reply, 403, messagePage({ title: "Not allowed", text: "Only an administrator of this project can confirm its purchases.", error: true }));
        return null;
      }
      return me;
    };
    const page = async (req: import("fastify").FastifyRequest, reply: import("fastify").FastifyReply, id: string, error?: string) => {
      let c;
      try {
        c = await billing.openCheckout(id);
      } catch (e) {
        if (e instanceof ApiError && wantsHtml(req)) return html(reply, e.status, messagePage({ title: "Checkout unavailable", text: e.message, error: true }));
        throw e;
      }
      const me = await admin(req, reply, c.project_id, `/billing/checkout/${id}`);
      if (!me) return reply;
      const project = await ctx.projects.get(c.project_id);
      const origins = [...new Set([c.success_url, c.cancel_url].map((u) => new URL(u).origin))];
      return html(
        reply,
        error ? 400 : 200,
        checkoutPage({ id, project: project.name, email: me.email, csrf: csrfOf(me.token), error, ...describe(c) }),
        origins,
      );
    };

    pages.get(
      "/billing/checkout/:checkout_id",
      {
        config: { access: "public" },
        schema: {
          summary: "checkout_page",
          description: "The local payment provider's checkout: a signed-in project administrator confirms (or cancels) the purchase.",
          params: Params,
          produces: ["text/html"],
          response: { 200: Page, 303: Redirect, ...errors(403, 404, 410) },
        } as never,
      },
      async (req, reply) => page(req, reply, (req.params as { checkout_id: string }).checkout_id),
    );

    pages.post(
      "/billing/checkout/:checkout_id",
      {
        config: { access: "public" },
        schema: {
          summary: "checkout_confirm",
          description: "The checkout page's form: `action` confirm or cancel, and its `csrf`. Redirects (303) to the success or cancel URL.",
          params: Params,
          consumes: ["application/x-www-form-urlencoded"],
          produces: ["text/html"],
          response: { 200: Page, 303: Redirect, ...errors(400, 403, 404, 410) },
        } as never,
      },
      async (req, reply) => {
        const id = (req.params as { checkout_id: string }).checkout_id;
        const body = (req.body ?? {}) as Record<string, string>;
        let c;
        try {
          c = await billing.openCheckout(id);
        } catch (e) {
          if (e instanceof ApiError && wantsHtml(req))
            return html(reply, e.status, messagePage({ title: "Checkout unavailable", text: e.message, error: true }));
          throw e;
        }
        const me = await admin(req, reply, c.project_id, `/billing/checkout/${id}`);
        if (!me) return reply;
        web.checkCsrf(me.token, body.csrf);
        if (body.action === "cancel") {
          await billing.cancelCheckout(c);
          return web.redirect(reply, c.cancel_url);
        }
        if (body.action !== "confirm") return page(req, reply, id, "Choose Confirm purchase or Cancel.");
        await billing.completeCheckout({ ...c, actor: me.userId }, { payment_method: "local_card" });
        return web.redirect(reply, c.success_url);
      },
    );
  });

  // ---------------------------------------------------------------- Stripe's webhook (raw body for its signature)

  await app.register(async (hook) => {
    hook.removeAllContentTypeParsers();
    hook.addContentTypeParser("*", { parseAs: "buffer", bodyLimit: 1024 * 1024 }, (_req, body, done) => done(null, body));
    hook.post(
      "/billing/stripe/webhook",
      {
        config: { access: "public", idempotency: false },
        schema: {
          summary: "stripe_webhook",
          description:
            "Stripe's events (MESHAGENT_BILLING_PROVIDER=stripe): verified with Stripe-Signature and MESHAGENT_STRIPE_WEBHOOK_SECRET, each event id handled once.",
          response: {
            200: Type.Object({ received: Type.Boolean(), duplicate: Type.Optional(Type.Boolean()), ignored: Type.Optional(Type.Boolean()) }),
            ...errors(400, 409),
          },
        },
      },
      async (req) => {
        const stripe = ctx.stripe;
        if (!stripe) throw new ApiError(409, "not_configured", "this server does not use Stripe (MESHAGENT_BILLING_PROVIDER=stripe)");
        if (!Buffer.isBuffer(req.body)) throw badRequest("the body must be Stripe's JSON event");
        const sig = req.headers["stripe-signature"];
        return handleStripeEvent(
          { db: ctx.store.db, clock: ctx.clock, billing, stripe, webhookSecret: ctx.config.billing.stripe.webhookSecret },
          req.body,
          typeof sig === "string" ? sig : undefined,
        );
      },
    );
  });
}

export const billingSchemas = [Balance, Transaction, Subscription, UsageEntry];
