import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import Stripe from "stripe";
import { startServer, type TestServer } from "./helpers/server.js";
import { ManualClock } from "../src/core/clock.js";
import { ConfigError, loadConfig } from "../src/config.js";

/** One request the stand-in received: the form body flattened to Stripe's bracket keys (`metadata[project_id]`). */
interface StripeCall {
  method: string;
  path: string;
  query: Record<string, string>;
  form: Record<string, string>;
  idempotencyKey: string | undefined;
  authorization: string | undefined;
  /** What the stand-in answered. */
  status: number;
  reply: Record<string, any>;
}

/**
 * A local stand-in for the few Stripe endpoints the adapter calls: customers, Checkout Sessions, a customer's
 * payment methods and PaymentIntents (which succeed, or decline like Stripe when `decline` is set). It records every
 * request and, like Stripe, answers a repeated Idempotency-Key with the first answer.
 */
async function stripeStandIn() {
  const calls: StripeCall[] = [];
  const replies = new Map<string, { status: number; body: unknown }>();
  const state = { decline: false };
  let n = 0;
  const next = (prefix: string) => `${prefix}_test_${++n}`;

  const answer = (c: StripeCall): { status: number; body: unknown } => {
    const metadata = (prefix: string) =>
      Object.fromEntries(
        Object.entries(c.form)
          .filter(([k]) => k.startsWith(`${prefix}[`))
          .map(([k, v]) => [k.slice(prefix.length + 1, -1), v]),
      );
    if (c.method === "POST" && c.path === "/v1/customers")
      return {
        status: 200,
        body: { id: next("cus"), object: "customer", livemode: false, metadata: metadata("metadata"), created: Math.floor(Date.now() / 1000) },
      };
    if (c.method === "POST" && c.path === "/v1/checkout/sessions") {
      const id = next("cs");
      return {
        status: 200,
        body: {
          id,
          object: "checkout.session",
          livemode: false,
          mode: c.form.mode,
          customer: c.form.customer ?? null,
          client_reference_id: c.form.client_reference_id ?? null,
          metadata: metadata("metadata"),
          success_url: c.form.success_url,
          cancel_url: c.form.cancel_url,
          status: "open",
          payment_status: "unpaid",
          subscription: null,
          url: `https://checkout.stripe.test/c/${id}`,
        },
      };
    }
    const pms = /^\/v1\/customers\/([^/]+)\/payment_methods$/.exec(c.path);
    if (c.method === "GET" && pms)
      return {
        status: 200,
        body: {
          object: "list",
          url: c.path,
          has_more: false,
          data: [{ id: "pm_card_visa", object: "payment_method", type: "card", customer: pms[1], card: { brand: "visa", last4: "4242" } }],
        },
      };
    if (c.method === "POST" && c.path === "/v1/payment_intents") {
      if (state.decline)
        return {
          status: 402,
          body: { error: { type: "card_error", code: "card_declined", decline_code: "generic_decline", message: "Your card was declined." } },
        };
      return {
        status: 200,
        body: {
          id: next("pi"),
          object: "payment_intent",
          livemode: false,
          amount: Number(c.form.amount),
          currency: c.form.currency,
          customer: c.form.customer,
          payment_method: c.form.payment_method,
          metadata: metadata("metadata"),
          status: "succeeded",
        },
      };
    }
    return { status: 404, body: { error: { type: "invalid_request_error", message: `Unrecognized request URL (${c.method}: ${c.path})` } } };
  };

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (d: Buffer) => chunks.push(d));
    req.on("end", () => {
      const u = new URL(req.url ?? "/", "http://stripe.test");
      const header = (h: string) => (typeof req.headers[h] === "string" ? (req.headers[h] as string) : undefined);
      const c: StripeCall = {
        method: req.method ?? "GET",
        path: u.pathname,
        query: Object.fromEntries(u.searchParams),
        form: Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString("utf8"))),
        idempotencyKey: header("idempotency-key"),
        authorization: header("authorization"),
        status: 0,
        reply: {},
      };
      const key = c.idempotencyKey && c.method === "POST" ? `${c.path}\0${c.idempotencyKey}` : null;
      const r = (key && replies.get(key)) || answer(c);
      if (key && r.status < 500) replies.set(key, r);
      c.status = r.status;
      c.reply = r.body as Record<string, any>;
      calls.push(c);
      res.writeHead(r.status, { "content-type": "application/json", "request-id": `req_${calls.length}` });
      res.end(JSON.stringify(r.body));
    });
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    state,
    of: (method: string, path: string | RegExp) => calls.filter((c) => c.method === method && (typeof path === "string" ? c.path === path : path.test(c.path))),
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}

const WHSEC = "whsec_test";
// A fixed hour (plus a few minutes) so that advancing past the recharge gap never closes a usage period.
const T0 = Date.UTC(2026, 2, 10, 10, 5);

describe("billing with Stripe (a local stand-in of Stripe's API)", () => {
  let s: TestServer;
  let api: Awaited<ReturnType<typeof stripeStandIn>>;
  const clock = new ManualClock(T0);
  // Only for its webhook signing helper: it never makes a request.
  const signer = new Stripe("sk_test_x");
  let projectId: string;
  let eventN = 0;

  beforeAll(async () => {
    api = await stripeStandIn();
    s = await startServer({
      clock,
      env: {
        MESHAGENT_BILLING_ENABLED: "false",
        MESHAGENT_BILLING_PROVIDER: "stripe",
        MESHAGENT_STRIPE_SECRET_KEY: "sk_test_x",
        MESHAGENT_STRIPE_WEBHOOK_SECRET: WHSEC,
        MESHAGENT_STRIPE_PRICE_ID: "price_pro",
        MESHAGENT_STRIPE_API_URL: api.url,
      },
    });
    projectId = s.admin.projectId;
  });
  afterAll(async () => {
    await s?.close();
    await api?.close();
  });

  const event = (type: string, object: Record<string, unknown>, id = `evt_test_${++eventN}`) => ({
    id,
    object: "event",
    api_version: "2025-01-01",
    created: Math.floor(Date.now() / 1000),
    livemode: false,
    pending_webhooks: 1,
    type,
    data: { object },
  });
  /** Post a raw webhook body: signed for `signed` (default the body itself) with `secret`, or with the given header. */
  const webhook = (payload: string, o: { secret?: string; signed?: string; signature?: string | null; timestamp?: number } = {}) => {
    const signature =
      o.signature === null
        ? undefined
        : (o.signature ?? signer.webhooks.generateTestHeaderString({ payload: o.signed ?? payload, secret: o.secret ?? WHSEC, timestamp: o.timestamp }));
    return s.http("POST", "/billing/stripe/webhook", {
      token: null,
      body: payload,
      headers: { "content-type": "application/json", ...(signature ? { "stripe-signature": signature } : {}) },
    });
  };
  const balanceOf = async () => (await s.http("GET", `/accounts/projects/${projectId}/balance`, { token: s.admin.userToken })).json;
  const transactions = async () => (await s.http("GET", `/accounts/projects/${projectId}/transactions`, { token: s.admin.userToken })).json.transactions;
  const adjust = (amount: number) =>
    s.http("POST", "/admin/billing/adjustments", { token: s.admin.userToken, json: { project_id: projectId, amount, reason: "test" } });
  const urls = { successUrl: "https://app.example.com/billing/ok", cancelUrl: "https://app.example.com/billing/cancel" };

  /** The Checkout Session the stand-in made for the i-th checkout: what the server sent, and the session's id. */
  const session = (i: number) => {
    const c = api.of("POST", "/v1/checkout/sessions")[i];
    return { form: c.form, idempotencyKey: c.idempotencyKey, id: c.reply.id as string, url: c.reply.url as string };
  };
  /** The session (Stripe's checkout.session object) completed and paid, as Stripe would post it. */
  const completed = (i: number, extra: Record<string, unknown> = {}) => {
    const { form, id } = session(i);
    return {
      id,
      object: "checkout.session",
      mode: form.mode,
      status: "complete",
      payment_status: "paid",
      customer: form.customer,
      client_reference_id: form.client_reference_id,
      metadata: { project_id: form["metadata[project_id]"], checkout_id: form["metadata[checkout_id]"], kind: form["metadata[kind]"] },
      subscription: null,
      ...extra,
    };
  };

  it("checkout: the official client answers the Stripe Checkout Sessions' URLs; the project's customer is made once", async () => {
    const c = s.client();
    const creditsUrl = await c.getCreditsCheckoutUrl(projectId, { ...urls, quantity: 25 });
    expect(creditsUrl).toMatch(/^https:\/\/checkout\.stripe\.test\/c\/cs_test_\d+$/);
    expect(creditsUrl).toBe(session(0).url);

    const customers = api.of("POST", "/v1/customers");
    expect(customers).toHaveLength(1);
    expect(customers[0].form).toEqual({ "metadata[project_id]": projectId });
    expect(customers[0].authorization).toBe("Bearer sk_test_x");
    const customer = customers[0].reply.id;
    expect(customer).toMatch(/^cus_test_\d+$/);

    const credits = session(0);
    expect(credits.form).toMatchObject({
      mode: "payment",
      customer,
      client_reference_id: projectId,
      success_url: urls.successUrl,
      cancel_url: urls.cancelUrl,
      "metadata[project_id]": projectId,
      "metadata[kind]": "credits",
      "line_items[0][quantity]": "1",
      "line_items[0][price_data][currency]": "usd",
      "line_items[0][price_data][unit_amount]": String(25 * 100),
      "line_items[0][price_data][product_data][name]": expect.any(String),
      "payment_intent_data[setup_future_usage]": "off_session",
      "payment_intent_data[metadata][project_id]": projectId,
    });
    const checkoutId = credits.form["metadata[checkout_id]"];
    expect(checkoutId).toMatch(/^[0-9a-f-]{36}$/);
    expect(credits.form["payment_intent_data[metadata][checkout_id]"]).toBe(checkoutId);
    expect(credits.idempotencyKey).toBe(`checkout:${checkoutId}`);

    const subUrl = await c.getCheckoutUrl(projectId, urls);
    expect(subUrl).toMatch(/^https:\/\/checkout\.stripe\.test\/c\/cs_test_\d+$/);
    expect(subUrl).not.toBe(creditsUrl);
    expect(subUrl).toBe(session(1).url);
    // The second checkout reuses the customer saved with the first.
    expect(api.of("POST", "/v1/customers")).toHaveLength(1);
    const sub = session(1);
    expect(sub.form).toMatchObject({
      mode: "subscription",
      customer,
      client_reference_id: projectId,
      "line_items[0][price]": "price_pro",
      "line_items[0][quantity]": "1",
      "metadata[project_id]": projectId,
      "metadata[kind]": "subscription",
      "subscription_data[metadata][project_id]": projectId,
    });
    expect(sub.form["metadata[checkout_id]"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(sub.form["metadata[checkout_id]"]).not.toBe(checkoutId);
    expect(sub.idempotencyKey).toBe(`checkout:${sub.form["metadata[checkout_id]"]}`);
    expect(Object.keys(sub.form).some((k) => k.startsWith("line_items[0][price_data]"))).toBe(false);

    // Nothing is credited before Stripe says the session was paid.
    expect(await c.getBalance(projectId)).toMatchObject({ balance: 0 });
  });

  it("webhook: a signed checkout.session.completed credits the purchase", async () => {
    const payload = JSON.stringify(event("checkout.session.completed", completed(0), "evt_credits_paid"));
    const r = await webhook(payload);
    expect(r.status, r.text).toBe(200);
    expect(r.json).toEqual({ received: true });

    const c = s.client();
    expect(await c.getBalance(projectId)).toMatchObject({ balance: 25 });
    const list = await c.getRecentTransactions(projectId);
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ amount: 25, reference: session(0).id, referenceType: "stripe_checkout" });
    expect((await transactions())[0]).toMatchObject({ kind: "purchase", amount: 25 });
  });

  it("webhook: the same event replayed is acknowledged as a duplicate and changes nothing", async () => {
    const payload = JSON.stringify(event("checkout.session.completed", completed(0), "evt_credits_paid"));
    const r = await webhook(payload);
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ received: true, duplicate: true });
    // Another event for the same session (Stripe can send both completed and async_payment_succeeded) credits once too.
    const other = await webhook(JSON.stringify(event("checkout.session.async_payment_succeeded", completed(0))));
    expect(other.status).toBe(200);
    expect((await balanceOf()).balance).toBe(25);
    expect(await transactions()).toHaveLength(1);
  });

  it("webhook: a wrong, missing, stale or tampered signature is refused with 400 invalid_signature", async () => {
    const original = event("checkout.session.completed", completed(0, { id: "cs_forged" }));
    const payload = JSON.stringify(original);
    const tampered = JSON.stringify({ ...original, id: "evt_forged" });
    const attempts = [
      webhook(payload, { secret: "whsec_wrong" }),
      webhook(payload, { signature: null }),
      webhook(payload, { signature: "t=1,v1=deadbeef" }),
      webhook(payload, { signature: "garbage" }),
      webhook(tampered, { signed: payload }),
      webhook(payload, { timestamp: Math.floor(Date.now() / 1000) - 3600 }),
    ];
    for (const r of await Promise.all(attempts)) {
      expect(r.status, r.text).toBe(400);
      expect(r.json).toMatchObject({ error: { code: "invalid_signature", message: expect.any(String) } });
    }
    expect((await balanceOf()).balance).toBe(25);
    expect(await transactions()).toHaveLength(1);
  });

  it("webhook: unknown events and sessions are acknowledged and ignored; an unpaid session credits nothing", async () => {
    const unknown = await webhook(JSON.stringify(event("invoice.paid", { id: "in_1", object: "invoice" })));
    expect(unknown.status).toBe(200);
    expect(unknown.json).toEqual({ received: true, ignored: true });
    const stranger = await webhook(
      JSON.stringify(event("checkout.session.completed", { id: "cs_elsewhere", object: "checkout.session", payment_status: "paid", metadata: {} })),
    );
    expect(stranger.json).toEqual({ received: true, ignored: true });
    const unpaid = await webhook(JSON.stringify(event("checkout.session.completed", completed(1, { payment_status: "unpaid" }))));
    expect(unpaid.json).toEqual({ received: true, ignored: true });
    expect((await balanceOf()).balance).toBe(25);
    expect((await s.http("GET", `/accounts/projects/${projectId}/subscription`)).json.status).toBe("none");
  });

  it("webhook: an event whose handling failed is handled again when Stripe retries it", async () => {
    const p = await s.otherProject();
    const url = await s.client(p.apiKey).getCreditsCheckoutUrl(p.projectId, { ...urls, quantity: 3 });
    const call = api.of("POST", "/v1/checkout/sessions").at(-1)!;
    expect(url).toBe(call.reply.url);
    const obj = {
      id: call.reply.id,
      object: "checkout.session",
      mode: "payment",
      payment_status: "paid",
      customer: call.form.customer,
      metadata: { project_id: p.projectId, checkout_id: call.form["metadata[checkout_id]"] },
    };
    const payload = JSON.stringify(event("checkout.session.completed", obj, "evt_retried"));
    const spy = vi.spyOn(s.ctx.billing, "completeCheckout").mockRejectedValueOnce(new Error("the store is down"));
    try {
      const failed = await webhook(payload);
      expect(failed.status).toBe(500);
    } finally {
      spy.mockRestore();
    }
    const retried = await webhook(payload);
    expect(retried.status).toBe(200);
    expect(retried.json).toEqual({ received: true });
    expect((await s.client(p.apiKey).getBalance(p.projectId)).balance).toBe(3);
    expect((await webhook(payload)).json).toEqual({ received: true, duplicate: true });
  });

  it("subscription: the completed checkout starts it, customer.subscription.* events keep its period and status", async () => {
    const done = await webhook(JSON.stringify(event("checkout.session.completed", completed(1, { subscription: "sub_123" }))));
    expect(done.status, done.text).toBe(200);
    expect(done.json).toEqual({ received: true });
    expect((await s.http("GET", `/accounts/projects/${projectId}/subscription`)).json).toMatchObject({ plan: "pro", status: "active", provider: "stripe" });

    const start = Math.floor(T0 / 1000) - 3600;
    const end = start + 30 * 86400;
    const customer = session(1).form.customer;
    const subscription = (extra: Record<string, unknown>) => ({
      id: "sub_123",
      object: "subscription",
      customer,
      status: "active",
      cancel_at_period_end: true,
      items: {
        object: "list",
        data: [{ id: "si_1", object: "subscription_item", price: { id: "price_pro" }, current_period_start: start, current_period_end: end }],
      },
      ...extra,
    });
    const updated = await webhook(JSON.stringify(event("customer.subscription.updated", subscription({ metadata: { project_id: projectId } }))));
    expect(updated.status, updated.text).toBe(200);
    expect(updated.json).toEqual({ received: true });
    const sub = await s.http("GET", `/accounts/projects/${projectId}/subscription`);
    expect(sub.status).toBe(200);
    expect(sub.json).toMatchObject({
      plan: "pro",
      status: "active",
      current_period_start: new Date(start * 1000).toISOString(),
      current_period_end: new Date(end * 1000).toISOString(),
      cancel_at_period_end: true,
      provider: "stripe",
    });
    expect(await s.client().getSubscription(projectId)).toMatchObject({ plan: "pro", status: "active", cancel_at_period_end: true });
    // Stripe's subscriptions are cancelled in Stripe.
    const cancel = await s.http("POST", `/accounts/projects/${projectId}/subscription/cancel`, { json: {} });
    expect(cancel.status).toBe(409);
    expect(cancel.json.error.code).toBe("managed_by_provider");

    // No metadata: the subscription is found by its id.
    const deleted = await webhook(JSON.stringify(event("customer.subscription.deleted", subscription({ status: "canceled", metadata: {} }))));
    expect(deleted.status).toBe(200);
    expect(deleted.json).toEqual({ received: true });
    expect((await s.http("GET", `/accounts/projects/${projectId}/subscription`)).json).toMatchObject({
      status: "canceled",
      current_period_end: new Date(end * 1000).toISOString(),
      provider: "stripe",
    });
  });

  it("auto-recharge charges the saved card off-session through a PaymentIntent; a decline pauses it with the reason", async () => {
    const customer = session(0).form.customer;
    const set = await s.http("POST", `/accounts/projects/${projectId}/recharge`, { json: { enabled: true, amount: 10, threshold: 5, monthly_budget: null } });
    expect(set.status, set.text).toBe(200);
    expect(api.of("POST", "/v1/payment_intents")).toHaveLength(0);

    expect((await adjust(-30)).json.balance).toBe(-5);
    const before = (await balanceOf()).balance;
    const tick = await s.ctx.billingEngine.tick();
    expect(tick.recharges).toEqual({ [projectId]: "recharged" });

    expect(api.of("GET", `/v1/customers/${customer}/payment_methods`)).toHaveLength(1);
    const intents = api.of("POST", "/v1/payment_intents");
    expect(intents).toHaveLength(1);
    expect(intents[0].form).toMatchObject({
      amount: "1000",
      currency: "usd",
      customer,
      payment_method: "pm_card_visa",
      off_session: "true",
      confirm: "true",
      "metadata[project_id]": projectId,
      "metadata[purpose]": "auto_recharge",
    });
    expect(intents[0].idempotencyKey).toBe(`recharge:${projectId}:${clock.now()}`);
    const after = await balanceOf();
    expect(after.balance).toBe(before + 10);
    expect(after).toMatchObject({
      auto_recharge_paused: false,
      auto_recharge_error: null,
      auto_recharged_this_month: 10,
      last_recharge: new Date(clock.now()).toISOString(),
    });
    expect((await transactions())[0]).toMatchObject({ kind: "recharge", amount: 10, reference: intents[0].reply.id, referenceType: "stripe_charge" });

    // The card is declined now.
    api.state.decline = true;
    expect((await adjust(-10)).json.balance).toBe(-5);
    // Within the recharge gap nothing is attempted.
    expect((await s.ctx.billingEngine.tick()).recharges).toEqual({ [projectId]: "skipped" });
    expect(api.of("POST", "/v1/payment_intents")).toHaveLength(1);
    clock.advance(61_000);
    expect((await s.ctx.billingEngine.tick()).recharges).toEqual({ [projectId]: "failed" });
    expect(api.of("POST", "/v1/payment_intents")).toHaveLength(2);
    expect(api.of("POST", "/v1/payment_intents")[1].idempotencyKey).toBe(`recharge:${projectId}:${clock.now()}`);

    expect(await s.client().getBalance(projectId)).toMatchObject({ balance: -5, autoRechargePaused: true });
    const paused = await balanceOf();
    expect(paused.auto_recharge_error).toMatch(/declined/);
    expect(paused.auto_recharge_error).toContain("Your card was declined.");
    expect((await transactions()).filter((t: { kind: string }) => t.kind === "recharge")).toHaveLength(1);
    // Paused: later runs charge nothing.
    clock.advance(61_000);
    await s.ctx.billingEngine.tick();
    expect(api.of("POST", "/v1/payment_intents")).toHaveLength(2);

    // Setting it again resumes; the card works again.
    api.state.decline = false;
    const resumed = await s.http("POST", `/accounts/projects/${projectId}/recharge`, {
      json: { enabled: true, amount: 10, threshold: 5, monthly_budget: null },
    });
    expect(resumed.json).toMatchObject({ auto_recharge_paused: false, auto_recharge_error: null });
    expect((await s.ctx.billingEngine.tick()).recharges).toEqual({ [projectId]: "recharged" });
    expect((await balanceOf()).balance).toBe(5);
  });

  it("auto-recharge without a Stripe customer pauses with the reason and calls Stripe not at all", async () => {
    const p = await s.otherProject();
    const calls = api.calls.length;
    await s.http("POST", `/accounts/projects/${p.projectId}/recharge`, {
      token: p.apiKey,
      json: { enabled: true, amount: 10, threshold: 5, monthly_budget: null },
    });
    expect((await s.ctx.billingEngine.tick()).recharges[p.projectId]).toBe("failed");
    const b = (await s.http("GET", `/accounts/projects/${p.projectId}/balance`, { token: p.apiKey })).json;
    expect(b).toMatchObject({ balance: 0, auto_recharge_paused: true });
    expect(b.auto_recharge_error).toMatch(/no Stripe customer/);
    expect(api.calls.length).toBe(calls);
  });
});

describe("Stripe configuration", () => {
  it("MESHAGENT_BILLING_PROVIDER=stripe without a secret key is a ConfigError naming MESHAGENT_STRIPE_SECRET_KEY", () => {
    let err: unknown;
    try {
      loadConfig({ MESHAGENT_DATA_DIR: mkdtempSync(join(tmpdir(), "meshagent-config-")), MESHAGENT_BILLING_PROVIDER: "stripe" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain("MESHAGENT_STRIPE_SECRET_KEY");
  });
});
