// @vitest-environment happy-dom
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { offsetPage, PagedList, type Project, type UsageEntry, type WebhookDelivery } from "@meshagent-oss/sdk";
import type { ReactNode } from "react";
import { formatDuration, layoutWaterfall, waterfallTicks } from "../src/waterfall-lib";
import {
  deliveryRow,
  emptyTaskForm,
  emptyWebhookForm,
  excerpt,
  metricCharts,
  mailboxBody,
  parseAnnotations,
  previewSchedule,
  rechargeArgs,
  taskFormOf,
  taskRequest,
  usageCharts,
  usageTotals,
  webhookCreateBody,
  webhookUpdateBody,
  participantsText,
} from "../src/ops-lib";
import { ProjectContext, type Role } from "../src/project";

// The SDK object the pages get from api(): each test fills in the methods it needs.
const sdk: Record<string, ReturnType<typeof vi.fn>> = {};
vi.mock("../src/api", async (orig) => ({ ...(await orig<typeof import("../src/api")>()), api: () => sdk }));

const { default: WebhooksPage } = await import("../src/pages/webhooks");
const { default: WebhookPage } = await import("../src/pages/webhook");
const { default: BillingPage } = await import("../src/pages/billing");
const { default: MailboxesPage } = await import("../src/pages/mailboxes");
const { default: SessionsPage } = await import("../src/pages/sessions");
const { SpanWaterfall } = await import("../src/pages/session");
const { Chart } = await import("../src/chart");

const paged = <T,>(items: T[]) => new PagedList<T>(async (o) => offsetPage(items.slice(o), o, 50, items.length), 0);

function inProject(role: Role, ui: ReactNode) {
  const project = { id: "p1", name: "Demo" } as unknown as Project;
  return render(<ProjectContext.Provider value={{ project, role, canCreateRooms: false }}>{ui}</ProjectContext.Provider>);
}

beforeEach(() => {
  for (const k of Object.keys(sdk)) delete sdk[k];
  history.replaceState(null, "", "/console/projects/p1");
});
afterEach(cleanup);

const span = (id: string, parent: string | null, startMs: number, durMs: number, extra: Record<string, unknown> = {}) => ({
  span_id: id,
  parent_span_id: parent,
  span_name: id,
  created_at: new Date(1_700_000_000_000 + startMs).toISOString(),
  duration: durMs * 1e6,
  ...extra,
});

describe("span waterfall layout", () => {
  it("nests children under parents, orders siblings by start and places bars on the whole range", () => {
    const w = layoutWaterfall([
      span("child-b", "root", 50, 50),
      span("root", null, 0, 200),
      span("child-a", "root", 10, 20),
      span("grandchild", "child-a", 15, 5),
    ]);
    expect(w.totalMs).toBe(200);
    expect(w.rows.map((r) => [r.name, r.depth])).toEqual([
      ["root", 0],
      ["child-a", 1],
      ["grandchild", 2],
      ["child-b", 1],
    ]);
    const b = w.rows.find((r) => r.name === "child-b")!;
    expect(b.leftPct).toBeCloseTo(25);
    expect(b.widthPct).toBeCloseTo(25);
    expect(b.offsetMs).toBe(50);
    expect(w.rows[0]).toMatchObject({ leftPct: 0, widthPct: 100 });
  });

  it("makes orphans roots, survives parent cycles and a zero-length range, flags errors", () => {
    const w = layoutWaterfall([span("a", "b", 0, 0), span("b", "a", 0, 0), span("orphan", "missing", 0, 0, { status_code: 2 })]);
    expect(w.rows).toHaveLength(3);
    expect(w.rows.every((r) => r.widthPct === 0 && r.leftPct === 0)).toBe(true);
    expect(w.rows.find((r) => r.name === "orphan")).toMatchObject({ depth: 0, error: true });
    expect(layoutWaterfall([])).toEqual({ rows: [], startMs: 0, endMs: 0, totalMs: 0 });
  });

  it("clamps a bar to the range and formats durations", () => {
    const w = layoutWaterfall([span("x", null, 0, 100), span("y", null, 90, 10)]);
    const y = w.rows.find((r) => r.name === "y")!;
    expect(y.leftPct + y.widthPct).toBeLessThanOrEqual(100);
    expect([0.5, 5, 250, 1500, 75_000].map(formatDuration)).toEqual(["500 µs", "5.0 ms", "250 ms", "1.50 s", "1 min 15 s"]);
    expect(waterfallTicks(100, 4).map((t) => t.pct)).toEqual([0, 25, 50, 75, 100]);
  });

  it("renders a row per span with its bar positioned by style", () => {
    const { container } = render(<SpanWaterfall spans={[span("root", null, 0, 100), span("kid", "root", 50, 25)]} />);
    const bars = container.querySelectorAll<HTMLElement>(".waterfall .track .bar");
    expect(bars).toHaveLength(2);
    expect(bars[1].style.left).toBe("50%");
    expect(bars[1].style.width).toBe("25%");
    expect(screen.getByRole("rowheader", { name: /kid/ }).textContent).toContain("Level 2");
  });
});

describe("usage and metric series", () => {
  const e = (start: string, type: string, quantity: number, unit = "tokens", extra: Partial<UsageEntry> = {}): UsageEntry => ({
    start,
    end: start,
    usage_type: type,
    quantity,
    unit,
    ...extra,
  });

  it("charts one series per usage type per unit, zero where a type had no usage, summing duplicates", () => {
    const charts = usageCharts([
      e("2026-01-02T00:00:00Z", "llm", 5),
      e("2026-01-01T00:00:00Z", "llm", 3),
      e("2026-01-01T00:00:00Z", "llm", 2),
      e("2026-01-02T00:00:00Z", "embeddings", 7),
      e("2026-01-01T00:00:00Z", "room", 60, "seconds"),
    ]);
    expect(charts.map((c) => c.unit)).toEqual(["seconds", "tokens"]);
    const tokens = charts[1];
    expect(tokens.x).toEqual([Date.UTC(2026, 0, 1) / 1000, Date.UTC(2026, 0, 2) / 1000]);
    expect(tokens.series).toEqual([
      { label: "embeddings", values: [0, 7] },
      { label: "llm", values: [5, 5] },
    ]);
  });

  it("charts the cost report's amounts by currency, and totals by type", () => {
    const list = [
      e("2026-01-01T00:00:00Z", "llm", 10, "tokens", { amount: 1.5, currency: "usd" }),
      e("2026-01-02T00:00:00Z", "llm", 10, "tokens", { amount: 2, currency: "usd" }),
    ];
    const [c] = usageCharts(list, "amount");
    expect(c.unit).toBe("USD");
    expect(c.series[0].values).toEqual([1.5, 2]);
    expect(usageTotals(list, "amount")).toEqual([{ type: "llm", unit: "USD", total: 3.5 }]);
  });

  it("charts metrics per name with a series per participant, gaps left empty", () => {
    const [a, b] = metricCharts([
      { name: "room.participants", kind: "gauge", value: 1, timestamp: "2026-01-01T00:00:00Z", source: "server" },
      { name: "agent.latency", unit: "ms", value: 30, timestamp: "2026-01-01T00:00:01Z", participant_name: "bot" },
      { name: "agent.latency", unit: "ms", value: 40, timestamp: "2026-01-01T00:00:02Z", participant_name: "other" },
    ]);
    expect(a.name).toBe("agent.latency");
    expect(a.unit).toBe("ms");
    expect(a.series).toEqual([
      { label: "bot", values: [30, null] },
      { label: "other", values: [null, 40] },
    ]);
    expect(b.series).toEqual([{ label: "server", values: [1] }]);
  });

  it("the chart is a named figure with its values in a table (no canvas needed)", () => {
    render(<Chart title="Usage in tokens" unit="tokens" data={{ x: [1_767_225_600, 1_767_312_000], series: [{ label: "llm", values: [3, 4] }] }} />);
    const fig = screen.getByRole("figure", { name: "Usage in tokens" });
    expect(within(fig).getByText(/llm: latest 4 tokens, lowest 3 tokens, highest 4 tokens/)).toBeTruthy();
    expect(within(fig).getByRole("columnheader", { name: "llm (tokens)" })).toBeTruthy();
    expect(within(fig).getAllByRole("row")).toHaveLength(3);
  });
});

describe("webhook forms and deliveries", () => {
  const delivery = (over: Partial<WebhookDelivery> = {}): WebhookDelivery => ({
    id: "d1",
    webhook_id: "w1",
    event_id: "e1",
    event: "webhook.test",
    status: "delivered",
    attempts: 2,
    next_attempt_at: null,
    locked_until: null,
    last_status_code: 200,
    last_error: null,
    created_at: "2026-01-01T00:00:00.000Z",
    updated_at: "2026-01-01T00:00:05.000Z",
    delivered_at: "2026-01-01T00:00:05.000Z",
    payload: {},
    history: [
      { attempt: 2, started_at: "2026-01-01T00:00:05.000Z", latency_ms: 12, status_code: 200, error: null, response_excerpt: "ok\n  thanks" },
      { attempt: 1, started_at: "2026-01-01T00:00:01.000Z", latency_ms: 30, status_code: 500, error: null, response_excerpt: "boom" },
    ],
    ...over,
  });

  it("formats a delivery row from its latest attempt", () => {
    expect(deliveryRow(delivery())).toEqual({
      id: "d1",
      event: "webhook.test",
      status: "delivered",
      tone: "ok",
      httpStatus: "200",
      attempts: 2,
      time: "2026-01-01T00:00:05.000Z",
      response: "ok thanks",
    });
    const pending = deliveryRow(delivery({ status: "pending", attempts: 0, history: [], last_status_code: null }));
    expect(pending).toMatchObject({ httpStatus: "—", tone: "", time: "2026-01-01T00:00:00.000Z", response: "" });
    const failed = deliveryRow(
      delivery({
        status: "failed",
        history: [{ attempt: 1, started_at: "x", latency_ms: 1, status_code: null, error: "ECONNREFUSED", response_excerpt: null }],
      }),
    );
    expect(failed).toMatchObject({ tone: "bad", httpStatus: "—", response: "ECONNREFUSED" });
    expect(excerpt("a".repeat(200), 10)).toBe("aaaaaaaaa…");
  });

  it("builds the create body: a name from the URL, every event by default, checks what it can", () => {
    const f = { ...emptyWebhookForm(), url: " https://hooks.example.com/x " };
    expect(webhookCreateBody(f)).toEqual({ name: "hooks.example.com", url: "https://hooks.example.com/x", events: ["*"], description: "", enabled: true });
    expect(
      webhookCreateBody({ ...f, all: false, events: ["room.created", "room.created"], payload: '{"a":1}', action: "call", secret: "12345678" }),
    ).toMatchObject({
      events: ["room.created"],
      payload: { a: 1 },
      action: "call",
      secret: "12345678",
    });
    expect(() => webhookCreateBody({ ...f, url: "ftp://x" })).toThrow(/https:\/\//);
    expect(() => webhookCreateBody({ ...f, all: false })).toThrow(/at least one event/);
    expect(() => webhookCreateBody({ ...f, payload: "[1]" })).toThrow(/JSON object/);
    expect(() => webhookCreateBody({ ...f, secret: "short" })).toThrow(/8 characters/);
    expect(webhookUpdateBody(f)).toMatchObject({ payload: "", action: "" });
  });

  it("creates a webhook and shows its secret once", async () => {
    sdk.listWebhooks = vi.fn(async () => []);
    sdk.listWebhookEvents = vi.fn(async () => [{ event: "room.created", description: "a room was created", data: {} }]);
    sdk.createWebhook = vi.fn(async (_p: string, body: { name: string; url: string }) => ({ id: "w1", ...body, secret: "whsec_abc" }));
    inProject("admin", <WebhooksPage params={{ project: "p1" }} />);
    expect(await screen.findByText("No webhooks yet.")).toBeTruthy();
    fireEvent.change(screen.getByLabelText("URL"), { target: { value: "https://example.com/h" } });
    fireEvent.click(screen.getByRole("button", { name: "Create webhook" }));
    await waitFor(() => expect(screen.getByTestId("shown-once-value").textContent).toBe("whsec_abc"));
    expect(sdk.createWebhook).toHaveBeenCalledWith("p1", { name: "example.com", url: "https://example.com/h", events: ["*"], description: "", enabled: true });
  });

  it("Send test adds a delivery row", async () => {
    history.replaceState(null, "", "/console/projects/p1/webhooks/w1");
    const rows: WebhookDelivery[] = [];
    sdk.getWebhook = vi.fn(async () => ({
      id: "w1",
      name: "hook",
      url: "https://e.com",
      description: "",
      events: ["*"],
      action: null,
      payload: null,
      enabled: true,
      state: "active",
      disabled_reason: null,
      secret: "s",
      created_at: "",
      updated_at: "1",
    }));
    sdk.listWebhookEvents = vi.fn(async () => []);
    sdk.listWebhookDeliveries = vi.fn(() => paged(rows));
    sdk.testWebhook = vi.fn(async () => {
      const d = delivery({ id: "t1", status: "pending", attempts: 0, history: [], last_status_code: null });
      rows.unshift(d);
      return d;
    });
    inProject("admin", <WebhookPage params={{ project: "p1", webhook: "w1" }} />);
    expect(await screen.findByText("No deliveries yet.")).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Send test" }));
    const table = await screen.findByRole("table", { name: "Deliveries, newest first" });
    expect(within(table).getByText("webhook.test")).toBeTruthy();
    expect(within(table).getByRole("button", { name: "Replay delivery t1" })).toBeTruthy();
  });
});

describe("schedules, mailboxes, billing forms", () => {
  it("previews intervals and cron expressions in UTC and in a zone", () => {
    const from = Date.UTC(2026, 0, 1, 10, 7);
    expect(previewSchedule("30 minutes", "UTC", from, 2)).toEqual({ times: [from + 1_800_000, from + 3_600_000] });
    expect(previewSchedule("0 9 * * 1-5", "UTC", from, 3)).toEqual({ times: [Date.UTC(2026, 0, 2, 9), Date.UTC(2026, 0, 5, 9), Date.UTC(2026, 0, 6, 9)] });
    expect(previewSchedule("*/15 10 * * *", "UTC", from, 2)).toEqual({ times: [Date.UTC(2026, 0, 1, 10, 15), Date.UTC(2026, 0, 1, 10, 30)] });
    // 09:00 in New York is 14:00 UTC in winter, 13:00 in summer.
    expect(previewSchedule("0 9 1 * *", "America/New_York", from, 1)).toEqual({ times: [Date.UTC(2026, 0, 1, 14)] });
    expect(previewSchedule("0 9 1 7 *", "America/New_York", from, 1)).toEqual({ times: [Date.UTC(2026, 6, 1, 13)] });
    // Day of month and day of week both set: either matches (cron's rule).
    expect(previewSchedule("0 0 13 * fri", "UTC", from, 2)).toEqual({ times: [Date.UTC(2026, 0, 2), Date.UTC(2026, 0, 9)] });
    expect(previewSchedule("@daily", "UTC", from, 1, true)).toEqual({ times: [Date.UTC(2026, 0, 2)] });
    expect(previewSchedule("0 0 30 2 *", "UTC", from, 1)).toEqual({ error: "This schedule never comes due" });
    expect(previewSchedule("61 * * * *", "UTC", from)).toMatchObject({ error: expect.stringMatching(/minute/) });
    expect(previewSchedule("every day", "UTC", from)).toMatchObject({ error: expect.stringMatching(/5-field/) });
    expect(previewSchedule("0 * * * *", "Mars/Base", from)).toMatchObject({ error: expect.stringMatching(/time zone/) });
  });

  it("builds a task spec from the form and back", () => {
    const f = { ...emptyTaskForm(), room: "ops", name: "nightly", schedule: "0 2 * * *", timezone: "Europe/Berlin", queue: "jobs", payload: '{"x":1}' };
    const r = taskRequest(f);
    expect(r).toEqual({
      room: "ops",
      spec: {
        version: "v1",
        kind: "ScheduledTask",
        metadata: { name: "nightly", annotations: {} },
        schedule: "0 2 * * *",
        active: true,
        once: false,
        queue: { name: "jobs", payload: { x: 1 } },
      },
      options: { timezone: "Europe/Berlin", misfire_policy: "run_once", catch_up_max: 10 },
    });
    const c = taskRequest({ ...f, target: "container", image: "alpine", command: "echo hi" }, {
      ...r.spec,
      container: { image: "old", private: false },
    } as never);
    expect(c.spec.container).toEqual({ private: false, image: "alpine", command: "echo hi" });
    expect(c.spec.queue).toBeUndefined();
    expect(() => taskRequest({ ...f, room: "" })).toThrow(/Room/);
    expect(() => taskRequest({ ...f, queue: "" })).toThrow(/Queue/);
    expect(() => taskRequest({ ...f, timezone: "Nowhere/X" })).toThrow(/time zone/);
    const task = {
      ...r,
      room_name: "ops",
      schedule: "0 2 * * *",
      timezone: "Europe/Berlin",
      active: true,
      once: false,
      misfire_policy: "run_once",
      catch_up_max: 10,
    };
    expect(taskFormOf(task as never)).toMatchObject({ room: "ops", name: "nightly", queue: "jobs", target: "queue", payload: '{\n  "x": 1\n}' });
  });

  it("checks mailbox and auto-recharge forms", () => {
    expect(parseAnnotations("a=1\n\n b = two \n")).toEqual({ a: "1", b: "two" });
    expect(() => parseAnnotations("nope")).toThrow(/line 1/);
    expect(mailboxBody({ address: " help@x.io ", room: "r", queue: "q", public: true, annotations: "" })).toEqual({
      address: "help@x.io",
      room: "r",
      queue: "q",
      options: { public: true, annotations: {} },
    });
    expect(() => mailboxBody({ address: "help", room: "r", queue: "q", public: false, annotations: "" })).toThrow(/email/);
    expect(rechargeArgs({ enabled: true, amount: "20", threshold: "5", budget: "" })).toEqual({
      enabled: true,
      amount: 20,
      threshold: 5,
      monthly_budget: null,
    });
    expect(() => rechargeArgs({ enabled: true, amount: "0", threshold: "5", budget: "" })).toThrow(/more than 0/);
    expect(() => rechargeArgs({ enabled: true, amount: "20", threshold: "5", budget: "10" })).toThrow(/budget/);
    expect(participantsText({ user: 2, agent: 1, bots: 0 })).toBe("1 agent, 2 users");
  });
});

describe("role gating", () => {
  it("explains instead of calling the API when the role may not see the page", () => {
    inProject("developer", <BillingPage params={{ project: "p1" }} />);
    expect(screen.getByText("Billing is for administrators")).toBeTruthy();
    cleanup();
    inProject("developer", <WebhooksPage params={{ project: "p1" }} />);
    expect(screen.getByText(/Only project administrators can see and manage webhooks/)).toBeTruthy();
    cleanup();
    inProject("member", <SessionsPage params={{ project: "p1" }} />);
    expect(screen.getByText("Sessions are for developers")).toBeTruthy();
    expect(Object.keys(sdk)).toHaveLength(0);
  });

  it("shows developers the mailboxes with their actions", async () => {
    sdk.listMailboxes = vi.fn(() => paged([{ address: "in@x.io", room: "r", room_id: "1", queue: "mail", public: false, annotations: {} }]));
    sdk.listRooms = vi.fn(() => paged([]));
    inProject("developer", <MailboxesPage params={{ project: "p1" }} />);
    expect(await screen.findByText("in@x.io")).toBeTruthy();
    expect(screen.getByRole("button", { name: "Edit in@x.io" })).toBeTruthy();
    expect(screen.getByRole("button", { name: "Create mailbox" })).toBeTruthy();
  });

  it("shows admins the billing page with balance, checkout and usage", async () => {
    sdk.getBalance = vi.fn(async () => ({ balance: 12.5, currency: "usd", auto_recharge_enabled: false, auto_recharge_paused: false }));
    sdk.getSubscription = vi.fn(async () => ({ status: "none", currency: "usd", cancel_at_period_end: false, provider: "local" }));
    sdk.getRecentTransactions = vi.fn(async () => []);
    sdk.getUsage = vi.fn(async () => [{ start: "2026-01-01T00:00:00Z", end: "2026-01-02T00:00:00Z", usage_type: "llm", unit: "tokens", quantity: 3 }]);
    sdk.getCreditsCheckoutUrl = vi.fn(async () => "http://localhost:3000/billing/checkout/abc");
    const assign = vi.fn();
    vi.spyOn(window.location, "assign").mockImplementation(assign);
    inProject("admin", <BillingPage params={{ project: "p1" }} />);
    expect(await screen.findByRole("figure", { name: "Usage per day in tokens, by usage type" })).toBeTruthy();
    expect(sdk.getUsage.mock.calls[0][1]).toMatchObject({ interval: "day", report: "usage" });
    await screen.findByText(/12\.50/);
    fireEvent.click(screen.getByRole("button", { name: "Buy credits" }));
    await waitFor(() => expect(assign).toHaveBeenCalledWith("http://localhost:3000/billing/checkout/abc"));
    expect(sdk.getCreditsCheckoutUrl.mock.calls[0]).toEqual([
      "p1",
      "http://localhost:3000/console/projects/p1/billing?checkout=success",
      "http://localhost:3000/console/projects/p1/billing?checkout=cancel",
      10,
    ]);
    expect(screen.getByRole("button", { name: "Subscribe" })).toBeTruthy();
  });
});
