import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { startServer, type TestServer } from "./helpers/server.js";
import { browser } from "./helpers/oauth.js";
import { ManualClock } from "../src/core/clock.js";
import { PERIOD_MS } from "../src/billing/engine.js";
import { inTx } from "../src/store/db.js";
import { joinRoom, mintToken, roomWsUrl, within } from "./helpers/room-client.js";

const HOUR = 3600_000;
const DAY = 24 * HOUR;
// 2026-03-30 10:00 UTC: a Monday, two days before a month boundary.
const T0 = Date.UTC(2026, 2, 30, 10);

/** A pricing table with a version change and small allowances, so the arithmetic is visible. */
function pricingFile() {
  const file = join(tmpdir(), `pricing-${randomBytes(4).toString("hex")}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      currency: "usd",
      versions: [
        {
          effective_from: "2020-01-01T00:00:00Z",
          prices: [
            { id: "room_minutes", usage_type: "room", unit: "participant_minute", unit_price: 0.01, description: "room" },
            { id: "api", usage_type: "api", unit: "request", unit_price: 0.001, description: "api" },
            { id: "llm_in", usage_type: "llm", unit: "1k_input_tokens", unit_price: 1, description: "any model" },
            { id: "llm_in_gpt", usage_type: "llm", provider: "openai", model: "gpt-4o", unit: "1k_input_tokens", unit_price: 2, description: "gpt-4o" },
          ],
        },
        {
          effective_from: new Date(T0 + 2 * HOUR).toISOString(),
          prices: [
            { id: "room_minutes", usage_type: "room", unit: "participant_minute", unit_price: 0.02, description: "room, dearer" },
            { id: "api", usage_type: "api", unit: "request", unit_price: 0.001, description: "api" },
          ],
        },
      ],
      plans: [
        { id: "free", name: "Free", monthly_price: 0, allowances: { room_minutes: 10 } },
        { id: "pro", name: "Pro", monthly_price: 20, allowances: { room_minutes: 1000, api: 1000 } },
      ],
      default_plan: "free",
      subscription_plan: "pro",
    }),
  );
  return file;
}

describe("billing: ledger, metering, pricing, auto-recharge, checkout", () => {
  let s: TestServer;
  const clock = new ManualClock(T0);
  const events: { type: string; project_id: string; data: Record<string, unknown> }[] = [];
  beforeAll(async () => {
    s = await startServer({
      clock,
      env: { MESHAGENT_PRICING_FILE: pricingFile(), MESHAGENT_BILLING_ENABLED: "false", MESHAGENT_BILLING_GRACE: "60", MESHAGENT_BILLING_METER_FLUSH: "0.05" },
    });
    s.ctx.bus.on((e) => events.push(e as never));
  });
  afterAll(() => s.close());

  /** What an area publishes for something it measured, in a transaction of its own. */
  const usage = async (projectId: string, data: Record<string, unknown>) => {
    const after = await inTx(s.ctx.store.db, (tx) => s.ctx.bus.publish(tx, { type: "usage.recorded", project_id: projectId, data }));
    after();
  };
  // The bootstrap user is a server administrator; it reads every project's ledger through the services.
  const balanceOf = (projectId: string) => s.ctx.billing.balance(projectId);
  const txs = async (projectId: string) => (await s.ctx.billing.transactions(projectId, 1000)).transactions as any[];
  const adjust = (projectId: string, amount: number, reason = "test", key?: string) =>
    s.http("POST", "/admin/billing/adjustments", { token: s.admin.userToken, json: { project_id: projectId, amount, reason, ...(key ? { key } : {}) } });
  const sumOf = (list: { amount: number }[]) => Math.round(list.reduce((a, t) => a + t.amount * 1e6, 0)) / 1e6;

  it("the official client's billing methods parse every answer of a fresh project", async () => {
    const p = await s.otherProject();
    const c = s.client(p.apiKey);
    const b = await c.getBalance(p.projectId);
    expect(b).toMatchObject({ balance: 0, autoRechargePaused: false, autoRechargeThreshold: null, lastRecharge: null, autoRechargedThisMonth: 0 });
    expect(await c.getRecentTransactions(p.projectId)).toEqual([]);
    await c.setAutoRecharge({ projectId: p.projectId, enabled: true, amount: 10, threshold: 2, monthlyBudget: 50 });
    expect(await c.getBalance(p.projectId)).toMatchObject({ autoRechargeAmount: 10, autoRechargeThreshold: 2, monthlyBudget: 50 });
    const url = await c.getCreditsCheckoutUrl(p.projectId, { successUrl: "https://example.com/ok", cancelUrl: "https://example.com/no", quantity: 5 });
    expect(url).toMatch(new RegExp(`^${s.url}/billing/checkout/[0-9a-f-]{36}$`));
    expect(await c.getCheckoutUrl(p.projectId, { successUrl: "https://example.com/ok", cancelUrl: "https://example.com/no" })).toMatch(/\/billing\/checkout\//);
    expect(await c.getSubscription(p.projectId)).toMatchObject({ plan: "free", status: "none", cancel_at_period_end: false, current_period_end: null });
    expect(await c.getUsage(p.projectId)).toEqual(expect.any(Array));
    const pricing: any = await c.getPricing();
    expect(pricing).toMatchObject({ currency: "usd", default_plan: "free", subscription_plan: "pro" });
    expect(pricing.plans.map((x: any) => x.id)).toEqual(["free", "pro"]);
  });

  it("Python shapes over raw HTTP: Balance keys, referenceType in camelCase, set_auto_recharge answers a body", async () => {
    const p = await s.otherProject();
    expect((await adjust(p.projectId, 12.5, "welcome credit")).status).toBe(200);
    const raw = await s.http("GET", `/accounts/projects/${p.projectId}/transactions`, { token: p.apiKey });
    const t = raw.json.transactions[0];
    expect(t).toMatchObject({
      id: expect.any(String),
      amount: 12.5,
      referenceType: "adjustment",
      description: "Adjustment: welcome credit",
      created_at: expect.any(String),
    });
    expect("reference_type" in t).toBe(false);
    const bal = await s.http("GET", `/accounts/projects/${p.projectId}/balance`, { token: p.apiKey });
    expect(bal.json).toMatchObject({ balance: 12.5, auto_recharge_paused: false });
    const r = await s.http("POST", `/accounts/projects/${p.projectId}/recharge`, {
      token: p.apiKey,
      json: { enabled: false, amount: 0, threshold: 0, monthly_budget: null },
    });
    expect(r.status).toBe(200);
    expect(r.json.balance).toBe(12.5);
    for (const bad of [
      { enabled: true, amount: -1, threshold: 1 },
      { enabled: true, amount: 5, threshold: 1, monthly_budget: 2 },
      { enabled: "yes", amount: 1, threshold: 1 },
    ]) {
      const x = await s.http("POST", `/accounts/projects/${p.projectId}/recharge`, { token: p.apiKey, json: bad });
      expect(x.status).toBe(400);
      expect(x.json.error).toMatchObject({ code: expect.any(String), message: expect.any(String) });
    }
    const bad = await s.http("POST", `/accounts/projects/${p.projectId}/credits`, {
      token: p.apiKey,
      json: { quantity: 0.5, success_url: "https://x", cancel_url: "https://y" },
    });
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toMatch(/quantity must be at least 1/);
    const ftp = await s.http("POST", `/accounts/projects/${p.projectId}/credits`, {
      token: p.apiKey,
      json: { quantity: 5, success_url: "ftp://x", cancel_url: "https://y" },
    });
    expect(ftp.status).toBe(400);
  });

  it("adjustments: server admins only, with a reason, idempotent on a key, in the audit log; refunds once", async () => {
    const p = await s.otherProject();
    const projectAdmin = await s.user({ is_admin: true }, p.projectId);
    expect((await s.http("GET", `/accounts/projects/${p.projectId}/balance`, { token: projectAdmin.token })).status).toBe(200);
    expect(
      (await s.http("POST", "/admin/billing/adjustments", { token: projectAdmin.token, json: { project_id: p.projectId, amount: 5, reason: "x" } })).status,
    ).toBe(403);
    expect((await s.http("POST", "/admin/billing/adjustments", { token: p.apiKey, json: { project_id: p.projectId, amount: 5, reason: "x" } })).status).toBe(
      403,
    );
    expect((await adjust(p.projectId, 5, "")).status).toBe(400);
    expect((await adjust("00000000-0000-4000-8000-000000000000", 5)).status).toBe(404);
    const a = await adjust(p.projectId, 20, "goodwill", "k1");
    expect(a.json).toMatchObject({ created: true, balance: 20, transaction: { amount: 20, kind: "adjustment" } });
    const again = await adjust(p.projectId, 20, "goodwill", "k1");
    expect(again.json).toMatchObject({ created: false, balance: 20 });
    expect((await adjust(p.projectId, -3.25, "correction")).json.balance).toBe(16.75);
    const audit = await s.http("GET", `/accounts/projects/${p.projectId}/audit`, { token: p.apiKey });
    if (audit.status === 200) expect(JSON.stringify(audit.json)).toContain("adjust_balance");
    const refund = await s.http("POST", "/admin/billing/refunds", {
      token: s.admin.userToken,
      json: { project_id: p.projectId, transaction_id: a.json.transaction.id },
    });
    expect(refund.json).toMatchObject({ created: true, balance: -3.25 });
    const twice = await s.http("POST", "/admin/billing/refunds", {
      token: s.admin.userToken,
      json: { project_id: p.projectId, transaction_id: a.json.transaction.id },
    });
    expect(twice.json).toMatchObject({ created: false, balance: -3.25 });
    const list = await txs(p.projectId);
    expect(list.map((t: any) => t.kind)).toEqual(["refund", "adjustment", "adjustment"]);
    expect(sumOf(list)).toBe((await balanceOf(p.projectId)).balance);
    // Another project's key sees nothing of this one.
    const q = await s.otherProject();
    expect((await s.http("GET", `/accounts/projects/${p.projectId}/balance`, { token: q.apiKey })).status).toBe(404);
  });

  it("prices closed hours with the version in force and the plan's allowance; re-runs and a second job charge nothing twice", async () => {
    const p = await s.otherProject();
    const start = Math.floor(clock.now() / PERIOD_MS) * PERIOD_MS;
    // 30 participant-minutes in the first hour: 10 are free (plan free), 20 × 0.01 = 0.20.
    await usage(p.projectId, { usage_type: "room", unit: "participant_second", quantity: 1800, room_name: "r1", participant_name: "alice", role: "user" });
    // LLM tokens: 2000 gpt-4o input tokens at 2/1k = 4, 1000 other-model tokens at 1/1k = 1.
    await usage(p.projectId, { usage_type: "llm", unit: "input_token", quantity: 2000, provider: "openai", model: "gpt-4o" });
    await usage(p.projectId, { usage_type: "llm", unit: "input_token", quantity: 1000, provider: "anthropic", model: "claude" });
    // Unpriced usage is recorded but costs nothing.
    await usage(p.projectId, { usage_type: "sync", unit: "update", quantity: 3 });
    // Not closed yet: nothing priced.
    expect((await s.ctx.billingEngine.tick()).priced.find((x) => x.debits[p.projectId])).toBeUndefined();
    clock.set(start + PERIOD_MS + 61_000);
    // Second hour (prices still v1): 30 more minutes, all billable.
    await usage(p.projectId, { usage_type: "room", unit: "participant_second", quantity: 1800 });
    const run = await s.ctx.billingEngine.tick();
    const first = run.priced.find((x) => x.period_start === new Date(start).toISOString())!;
    expect(first.debits[p.projectId]).toBeCloseTo(-(0.2 + 4 + 1), 6);
    clock.set(start + 3 * PERIOD_MS + 61_000);
    // Third hour: the second version (0.02 per minute) applies from its start.
    await usage(p.projectId, { usage_type: "room", unit: "participant_second", quantity: 600 });
    clock.set(start + 4 * PERIOD_MS + 61_000);
    const later = await s.ctx.billingEngine.tick();
    const byStart = Object.fromEntries(later.priced.map((x) => [x.period_start, x.debits[p.projectId] ?? 0]));
    // Hour 2 was priced with the first version (0.01), hour 4 with the second (10 minutes × 0.02).
    expect(byStart[new Date(start + 3 * PERIOD_MS).toISOString()]).toBeCloseTo(-0.2, 6);
    const hour2 = (await txs(p.projectId)).find((t: any) => t.reference === new Date(start + PERIOD_MS).toISOString());
    expect(hour2.amount).toBeCloseTo(-0.3, 6);
    const total = sumOf(await txs(p.projectId));
    expect(total).toBeCloseTo(-(5.2 + 0.3 + 0.2), 6);
    expect((await balanceOf(p.projectId)).balance).toBeCloseTo(total, 6);
    // Re-pricing a priced hour does nothing; two jobs at once price it once.
    expect(await s.ctx.billingEngine.pricePeriod(start)).toBeNull();
    const [x, y] = await Promise.all([s.ctx.billingEngine.tick(), s.ctx.billingEngine.pricePeriod(start + 10 * PERIOD_MS)]);
    expect(x).toBeDefined();
    expect(y === null || typeof y === "object").toBe(true);
    expect(await s.ctx.billingEngine.pricePeriod(start + 10 * PERIOD_MS)).toBeNull();
    expect((await balanceOf(p.projectId)).balance).toBeCloseTo(total, 6);
    const list = await txs(p.projectId);
    expect(list[0]).toMatchObject({ kind: "usage", referenceType: "usage_period", description: expect.stringMatching(/^Usage: room /) });
    expect(new Set(list.map((t: any) => t.id)).size).toBe(list.length);
    // The cost report shows what was charged per price.
    const cost = await s.http("GET", `/accounts/projects/${p.projectId}/usage?report=cost&interval=day&start=${new Date(start - DAY).toISOString()}`, {
      token: p.apiKey,
    });
    const amounts = Object.fromEntries(
      cost.json.usage.reduce((m: Map<string, number>, e: any) => m.set(e.price_id, (m.get(e.price_id) ?? 0) + e.amount), new Map()) as Map<string, number>,
    );
    expect(amounts.llm_in_gpt).toBeCloseTo(4, 6);
    expect(amounts.llm_in).toBeCloseTo(1, 6);
    expect(amounts.room_minutes).toBeCloseTo(0.7, 6);
  });

  it("meters API requests per client and reports usage with every filter and interval", async () => {
    const p = await s.otherProject();
    for (let i = 0; i < 5; i++) await s.http("GET", `/accounts/projects/${p.projectId}/rooms`, { token: p.apiKey });
    for (let i = 0; i < 2; i++) await s.http("GET", `/accounts/projects/${p.projectId}`, { token: p.userToken });
    await s.ctx.meter.flush();
    const t = clock.now();
    await usage(p.projectId, { usage_type: "room", unit: "participant_second", quantity: 60, room_name: "alpha", participant_name: "alice", role: "user" });
    await usage(p.projectId, { usage_type: "room", unit: "participant_second", quantity: 30, room_name: "beta", participant_name: "bob", role: "agent" });
    await usage(p.projectId, { usage_type: "llm", unit: "output_token", quantity: 500, provider: "openai", model: "gpt-4o", annotations: { team: "red" } });
    await usage(p.projectId, {
      usage_type: "llm",
      unit: "output_token",
      quantity: 70,
      provider: "openai",
      model: "gpt-4o-mini",
      annotations: { team: "blue" },
    });
    // Read with the API key: these reads are API requests too, counted under their own client.
    const get = async (q: string) => {
      const r = await s.http("GET", `/accounts/projects/${p.projectId}/usage?start=${encodeURIComponent(new Date(t - DAY).toISOString())}&${q}`, {
        token: p.apiKey,
      });
      expect(r.status, q + " " + r.text).toBe(200);
      return r.json.usage as any[];
    };
    const all = await get("interval=day");
    const api = all.find((e) => e.usage_type === "api");
    expect(api.quantity).toBeGreaterThanOrEqual(7);
    expect(all.find((e) => e.usage_type === "room")).toMatchObject({ unit: "participant_second", quantity: 90, records: 2 });
    expect(Date.parse(all[0].end) - Date.parse(all[0].start)).toBe(DAY);
    const clients = await get("report=clients&usage_type=api");
    expect(clients.find((e) => e.client === `user:${p.userId}`)?.quantity).toBe(2);
    expect(clients.find((e) => e.client?.startsWith("api_key:"))?.quantity).toBeGreaterThanOrEqual(5);
    expect((await get(`report=clients&usage_type=api&client=user:${p.userId}`)).map((e) => e.quantity)).toEqual([2]);
    expect((await get("report=rooms&room=alpha")).map((e) => [e.room_name, e.quantity])).toEqual([["alpha", 60]]);
    expect((await get("report=users&users=bob,carol")).map((e) => [e.user_id, e.role, e.quantity])).toEqual([["bob", "agent", 30]]);
    expect((await get("report=models&provider=openai&model=gpt-4o")).map((e) => e.quantity)).toEqual([500]);
    expect((await get(`annotations=${encodeURIComponent(JSON.stringify({ team: "blue" }))}`)).map((e) => e.quantity)).toEqual([70]);
    for (const interval of ["hour", "week", "month"]) {
      const list = await get(`interval=${interval}&usage_type=room`);
      expect(
        list.reduce((a, e) => a + e.quantity, 0),
        interval,
      ).toBe(90);
      const span = Date.parse(list[0].end) - Date.parse(list[0].start);
      if (interval === "hour") expect(span).toBe(HOUR);
      if (interval === "week") expect(new Date(list[0].start).getUTCDay()).toBe(1);
      if (interval === "month") expect(new Date(list[0].start).getUTCDate()).toBe(1);
    }
    // The official client sends the same query (users comma-joined, annotations as JSON, client).
    const official = await s
      .client(p.apiKey)
      .getUsage(p.projectId, { start: new Date(t - DAY), interval: "day", report: "users", users: ["alice"], usageType: "room" });
    expect(official.map((e: any) => e.quantity)).toEqual([60]);
    for (const bad of [
      "interval=minute",
      "report=nope",
      "start=yesterday",
      `start=${new Date(t).toISOString()}&end=${new Date(t - 1).toISOString()}`,
      "annotations=[1]",
      "report=cost&room=alpha",
      "interval=hour&start=2000-01-01T00:00:00Z",
    ]) {
      const r = await s.http("GET", `/accounts/projects/${p.projectId}/usage?${bad}`, { token: p.userToken });
      expect(r.status, bad).toBe(400);
      expect(r.json.error.message.length).toBeGreaterThan(10);
    }
    const member = await s.user({}, p.projectId);
    expect((await s.http("GET", `/accounts/projects/${p.projectId}/usage`, { token: member.token })).status).toBe(403);
    expect((await s.http("GET", `/accounts/projects/${p.projectId}/balance`, { token: member.token })).status).toBe(403);
  });

  it("get_usage answers the same from the hourly rollups as from the raw records", async () => {
    const p = await s.otherProject();
    const from = clock.now();
    for (let h = 0; h < 5; h++) {
      await usage(p.projectId, { usage_type: "room", unit: "participant_second", quantity: 100 + h, room_name: "r", participant_name: "a" });
      await usage(p.projectId, { usage_type: "llm", unit: "input_token", quantity: 10 * h + 1, provider: "openai", model: h % 2 ? "gpt-4o" : "o3" });
      clock.advance(HOUR);
    }
    const q = (rest: string) =>
      s
        .http("GET", `/accounts/projects/${p.projectId}/usage?start=${encodeURIComponent(new Date(from - 90 * 60_000).toISOString())}&${rest}`, {
          token: p.apiKey,
        })
        .then((r) => r.json.usage.filter((e: any) => e.usage_type !== "api"));
    const queries = ["interval=hour", "interval=day", "interval=week&usage_type=llm", "report=models&interval=hour", "report=models&model=gpt-4o"];
    const before = await Promise.all(queries.map(q));
    expect(before[0].length).toBeGreaterThanOrEqual(10);
    clock.advance(2 * 60_000);
    // Roll up hours 2–4 only (the job does them in order; here a gap before, within and after the rolled ones).
    const hour0 = Math.floor(from / HOUR) * HOUR;
    for (const h of [1, 2, 4]) expect(await inTx(s.ctx.store.db, (tx) => s.ctx.billingEngine.rollPeriod(tx, hour0 + h * HOUR))).toBe(true);
    expect(await inTx(s.ctx.store.db, (tx) => s.ctx.billingEngine.rollPeriod(tx, hour0 + HOUR))).toBe(false);
    expect(await Promise.all(queries.map(q))).toEqual(before);
  });

  it("the local checkout: a signed-in project admin confirms; credits land once; cancel returns to cancel_url", async () => {
    const pw = "a fine passphrase";
    await s.ctx.users.setPassword(s.admin.userId, pw);
    const c = s.client();
    const url = await c.getCreditsCheckoutUrl(s.admin.projectId, {
      successUrl: "https://app.example.com/paid",
      cancelUrl: "https://app.example.com/cancelled",
      quantity: 15,
    });
    const path = new URL(url).pathname;
    const b = browser(s.url);
    const first = await b.go("GET", path);
    expect(first.status).toBe(303);
    expect(first.location).toBe(`/accounts/sign-in?next=${encodeURIComponent(path)}`);
    const signin = await b.go("POST", "/accounts/sign-in", { email: s.admin.email, password: pw, next: path });
    expect(signin.status).toBe(303);
    const page = await b.go("GET", path);
    expect(page.status).toBe(200);
    expect(page.text).toContain("15 credits");
    expect(page.headers.get("content-security-policy")).toContain("form-action 'self' https://app.example.com");
    const csrf = /name="csrf" value="([^"]+)"/.exec(page.text)![1];
    const before = (await balanceOf(s.admin.projectId)).balance;
    expect((await b.go("POST", path, { action: "confirm", csrf: "wrong" })).status).toBe(403);
    const done = await b.go("POST", path, { action: "confirm", csrf });
    expect(done.status).toBe(303);
    expect(done.location).toBe("https://app.example.com/paid");
    expect((await balanceOf(s.admin.projectId)).balance).toBeCloseTo(before + 15, 6);
    expect((await b.go("POST", path, { action: "confirm", csrf })).status).toBe(410);
    expect((await txs(s.admin.projectId))[0]).toMatchObject({ amount: 15, kind: "purchase", referenceType: "local_checkout" });
    const url2 = await c.getCreditsCheckoutUrl(s.admin.projectId, {
      successUrl: "https://app.example.com/paid",
      cancelUrl: "https://app.example.com/cancelled",
      quantity: 3,
    });
    const p2 = new URL(url2).pathname;
    const page2 = await b.go("GET", p2);
    const csrf2 = /name="csrf" value="([^"]+)"/.exec(page2.text)![1];
    const cancel = await b.go("POST", p2, { action: "cancel", csrf: csrf2 });
    expect(cancel.location).toBe("https://app.example.com/cancelled");
    expect((await balanceOf(s.admin.projectId)).balance).toBeCloseTo(before + 15, 6);
    // A user who is not an admin of the project is refused.
    const dev = await s.user({ is_developer: true });
    await s.ctx.users.setPassword(dev.userId, pw);
    const url3 = await c.getCreditsCheckoutUrl(s.admin.projectId, {
      successUrl: "https://app.example.com/paid",
      cancelUrl: "https://app.example.com/cancelled",
      quantity: 3,
    });
    const d = browser(s.url);
    await d.go("POST", "/accounts/sign-in", { email: dev.email, password: pw, next: "/accounts" });
    expect((await d.go("GET", new URL(url3).pathname)).status).toBe(403);
    expect((await d.go("GET", "/billing/checkout/00000000-0000-4000-8000-000000000000")).status).toBe(404);
  });

  it("a subscription checkout starts the plan: its allowances apply, it renews monthly and cancels at the period's end", async () => {
    const pw = "a fine passphrase";
    await s.ctx.users.setPassword(s.admin.userId, pw);
    const p = s.admin.projectId;
    const url = await s.client().getCheckoutUrl(p, { successUrl: "https://app.example.com/ok", cancelUrl: "https://app.example.com/no" });
    const b = browser(s.url);
    await b.go("POST", "/accounts/sign-in", { email: s.admin.email, password: pw, next: "/accounts" });
    const page = await b.go("GET", new URL(url).pathname);
    expect(page.text).toContain("Pro plan");
    const csrf = /name="csrf" value="([^"]+)"/.exec(page.text)![1];
    expect((await b.go("POST", new URL(url).pathname, { action: "confirm", csrf })).status).toBe(303);
    const sub = await s.client().getSubscription(p);
    expect(sub).toMatchObject({ plan: "pro", plan_name: "Pro", status: "active", cancel_at_period_end: false, provider: "local" });
    const end = Date.parse(String(sub.current_period_end));
    expect(end).toBeGreaterThan(clock.now() + 27 * DAY);
    const canceled = await s.http("POST", `/accounts/projects/${p}/subscription/cancel`, { token: s.admin.apiKey, json: {} });
    expect(canceled.json).toMatchObject({ status: "active", cancel_at_period_end: true });
    clock.set(end + 1);
    await s.ctx.billingEngine.tick();
    expect(await s.client().getSubscription(p)).toMatchObject({ plan: "free", status: "canceled" });
    expect(events.some((e) => e.type === "billing.subscription.updated" && e.project_id === p)).toBe(true);
  });

  it("auto-recharge: a failed charge pauses it; with a saved card it recharges within the month's budget, again next month", async () => {
    const p = await s.otherProject();
    const api = (m: string, path: string, json?: unknown) => s.http(m, `/accounts/projects/${p.projectId}${path}`, { token: p.apiKey, json });
    clock.set(Date.UTC(2026, 5, 29, 12));
    await api("POST", "/recharge", { enabled: true, amount: 10, threshold: 5, monthly_budget: 20 });
    await adjust(p.projectId, 1, "seed");
    // Below the threshold, no payment method: the charge fails, auto-recharge pauses, billing.recharge.failed.
    expect((await s.ctx.billingEngine.tick()).recharges[p.projectId]).toBe("failed");
    let bal = (await api("GET", "/balance")).json;
    expect(bal).toMatchObject({ auto_recharge_paused: true, auto_recharge_error: expect.stringMatching(/no payment method/) });
    expect(events.find((e) => e.type === "billing.recharge.failed" && e.project_id === p.projectId)).toBeDefined();
    expect(events.filter((e) => e.type === "billing.balance_low" && e.project_id === p.projectId)).toHaveLength(1);
    // A confirmed checkout saves the local "card"; enabling again resumes.
    const row = await s.ctx.billing.openCheckout(
      new URL(
        (await api("POST", "/credits", { quantity: 1, success_url: "https://x.example/ok", cancel_url: "https://x.example/no" })).json.checkout_url,
      ).pathname
        .split("/")
        .pop()!,
    );
    await s.ctx.billing.completeCheckout(row, { payment_method: "local_card" });
    await api("POST", "/recharge", { enabled: true, amount: 10, threshold: 5, monthly_budget: 20 });
    clock.advance(61_000);
    expect((await s.ctx.billingEngine.tick()).recharges[p.projectId]).toBe("recharged");
    bal = (await api("GET", "/balance")).json;
    expect(bal).toMatchObject({ balance: 12, auto_recharged_this_month: 10, auto_recharge_paused: false, last_recharge: expect.any(String) });
    // Back above the threshold: the low-balance notice re-arms, and fires again on the next crossing.
    await adjust(p.projectId, -10, "spend");
    expect(events.filter((e) => e.type === "billing.balance_low" && e.project_id === p.projectId)).toHaveLength(2);
    clock.advance(61_000);
    expect((await s.ctx.billingEngine.tick()).recharges[p.projectId]).toBe("recharged");
    await adjust(p.projectId, -10, "spend");
    clock.advance(61_000);
    // 20 recharged this month: the budget holds the third.
    expect((await s.ctx.billingEngine.tick()).recharges[p.projectId]).toBe("budget");
    // Next month (July 1st, UTC) the budget is fresh.
    clock.set(Date.UTC(2026, 6, 1, 0, 5));
    expect((await s.ctx.billingEngine.tick()).recharges[p.projectId]).toBe("recharged");
    bal = (await api("GET", "/balance")).json;
    expect(bal.auto_recharged_this_month).toBe(10);
    expect(sumOf(await txs(p.projectId))).toBeCloseTo(bal.balance, 6);
  });

  it("property: any interleaving of usage, pricing runs, recharges, adjustments and refunds keeps balance = Σ transactions, charging each period once", async () => {
    const op = fc.oneof(
      fc.record({ k: fc.constant("usage" as const), seconds: fc.integer({ min: 1, max: 7200 }) }),
      fc.record({ k: fc.constant("advance" as const), minutes: fc.integer({ min: 1, max: 180 }) }),
      fc.record({ k: fc.constant("price" as const) }),
      fc.record({ k: fc.constant("adjust" as const), cents: fc.integer({ min: -5000, max: 5000 }).filter((c) => c !== 0) }),
      fc.record({ k: fc.constant("refund" as const) }),
      fc.record({ k: fc.constant("recharge" as const) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 3, maxLength: 14 }), async (ops) => {
        const p = await s.otherProject();
        const row = await s.ctx.billing.openCheckout(
          new URL(
            (
              await s.http("POST", `/accounts/projects/${p.projectId}/credits`, {
                token: p.apiKey,
                json: { quantity: 1, success_url: "https://x.example", cancel_url: "https://x.example" },
              })
            ).json.checkout_url,
          ).pathname
            .split("/")
            .pop()!,
        );
        await s.ctx.billing.completeCheckout(row, { payment_method: "local_card" });
        await s.ctx.billing.setAutoRecharge(p.projectId, { enabled: true, amount: 3, threshold: 0, monthly_budget: 9 });
        for (const o of ops) {
          if (o.k === "usage") await usage(p.projectId, { usage_type: "room", unit: "participant_second", quantity: o.seconds });
          else if (o.k === "advance") clock.advance(o.minutes * 60_000);
          else if (o.k === "price") await Promise.all([s.ctx.billingEngine.priceClosedPeriods(), s.ctx.billingEngine.priceClosedPeriods()]);
          else if (o.k === "adjust") await s.ctx.billing.adjust(p.projectId, o.cents / 100, "prop", null);
          else if (o.k === "refund") {
            const credit = (await txs(p.projectId)).find((t: any) => t.amount > 0 && t.kind !== "refund");
            if (credit) await s.ctx.billing.refund(p.projectId, credit.id, null).catch(() => {});
          } else {
            clock.advance(61_000);
            await s.ctx.billing.autoRecharge(p.projectId);
          }
        }
        const list = await s.ctx.billing.transactions(p.projectId, 1000);
        const bal = await s.ctx.billing.balance(p.projectId);
        expect(sumOf(list.transactions)).toBeCloseTo(bal.balance, 6);
        const usageDescriptions = list.transactions.filter((t) => t.kind === "usage").map((t) => `${t.reference}`);
        expect(new Set(usageDescriptions).size).toBe(usageDescriptions.length);
        const refunds = list.transactions.filter((t) => t.kind === "refund").map((t) => t.reference);
        expect(new Set(refunds).size).toBe(refunds.length);
        // Every priced room-second was charged once: Σ charged quantity = Σ recorded quantity of priced periods.
        const charged = await s.ctx.store.db
          .selectFrom("billing_charges")
          .where("project_id", "=", p.projectId)
          .select((eb) => eb.fn.sum<number>("quantity").as("q"))
          .executeTakeFirst();
        const lastEnd = await s.ctx.store.db
          .selectFrom("billing_periods")
          .select((eb) => eb.fn.max<number>("period_end").as("t"))
          .executeTakeFirst();
        const recorded = await s.ctx.store.db
          .selectFrom("usage_records")
          .where("project_id", "=", p.projectId)
          .where("usage_type", "=", "room")
          .where("recorded_at", "<", Number(lastEnd?.t ?? 0))
          .select((eb) => eb.fn.sum<number>("quantity").as("q"))
          .executeTakeFirst();
        expect(Number(charged?.q ?? 0)).toBeCloseTo(Number(recorded?.q ?? 0), 6);
      }),
      { numRuns: 12 },
    );
  }, 120_000);
});

describe("billing enforcement (MESHAGENT_BILLING_ENFORCE)", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer({ env: { MESHAGENT_BILLING_ENFORCE: "true", MESHAGENT_BILLING_ENABLED: "false" } });
  });
  afterAll(() => s.close());

  it("a negative balance without a subscription is refused connect_room and connect_share with 402 naming the balance", async () => {
    const p = s.admin.projectId;
    await s.client().createRoom({ projectId: p, name: "paid-room" });
    const connect = () => s.http("POST", `/accounts/projects/${p}/rooms/paid-room/connect`, { json: {} });
    expect((await connect()).status).toBe(200);
    const share = await s.http("POST", `/accounts/projects/${p}/shares`, { json: { settings: { room: "paid-room" } } });
    await s.ctx.billing.adjust(p, -2.5, "usage before enforcement", null);
    await new Promise((r) => setTimeout(r, 10));
    const refused = await connect();
    expect(refused.status).toBe(402);
    expect(refused.json.error).toMatchObject({ code: "payment_required", message: expect.stringContaining("-2.50 USD") });
    const viaShare = await s.http("POST", `/shares/${share.json.id}/connect`, { token: null });
    expect(viaShare.status).toBe(402);
    await expect(s.client().connectRoom(p, "paid-room")).rejects.toThrow(/402/);
    await s.ctx.billing.adjust(p, 5, "top-up", null);
    expect((await connect()).status).toBe(200);
  });

  it("queue sends in the project's rooms are refused while it owes, and work again once it does not", async () => {
    const p = s.admin.projectId;
    await s.client().createRoom({ projectId: p, name: "paid-queue" });
    const room = await joinRoom(roomWsUrl(s, "paid-queue"), await mintToken(s.admin.apiKey, "paid-queue", { name: "sender" }));
    try {
      await within(room.queues.send("q", { n: 1 }, { create: true }), 10_000, "send");
      const owed = await s.ctx.billing.adjust(p, -100, "big spend", null);
      expect(owed.balance).toBeLessThan(0);
      // The ledger's change drops this process's cached decision at once (other processes follow within two seconds).
      await expect(within(room.queues.send("q", { n: 2 }, { create: true }), 10_000, "refused send")).rejects.toThrow(/payment required/);
      await s.ctx.billing.adjust(p, 200, "paid up", null);
      await within(room.queues.send("q", { n: 3 }, { create: true }), 10_000, "send again");
    } finally {
      room.dispose();
    }
  });
});
