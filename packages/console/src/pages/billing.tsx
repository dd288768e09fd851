import { useMemo, useState } from "react";
import type { Balance, Subscription, Transaction } from "@meshagent-oss/sdk";
import { api } from "../api";
import { Chart } from "../chart";
import { useAsync } from "../hooks";
import { formatMoney, formatNumber, rechargeArgs, usageCharts, usageTotals, usageWindow, type RechargeForm } from "../ops-lib";
import type { PageProps } from "../pages";
import { RoleGate } from "../project";
import { BASE, setQuery, useLocation } from "../router";
import { AsyncView, ConfirmButton, Empty, Field, Form, Page, Select, Table, When } from "../ui";

const RANGES = [7, 30, 90];
const INTERVALS = ["hour", "day", "week", "month"];
const STEP: Record<string, number> = { hour: 3600, day: 86_400, week: 604_800, month: 2_592_000 };
/** Subscription statuses in which the plan is in force (Stripe's names). */
const LIVE = new Set(["active", "trialing", "past_due"]);

export default function BillingPage(_: PageProps) {
  return (
    <RoleGate need="admin" title="Billing" what="billing">
      {({ project }) => <Billing projectId={project.id} />}
    </RoleGate>
  );
}

/** Where a checkout comes back to: this page, saying how it went. */
const returnUrl = (projectId: string, result: "success" | "cancel") =>
  `${location.origin}${BASE}/projects/${encodeURIComponent(projectId)}/billing?checkout=${result}`;

function Billing({ projectId }: { projectId: string }) {
  const { query } = useLocation();
  const balance = useAsync((signal) => api().getBalance(projectId, { signal }), [projectId]);
  const subscription = useAsync((signal) => api().getSubscription(projectId, { signal }), [projectId]);
  const transactions = useAsync((signal) => api().getRecentTransactions(projectId, { limit: 50 }, { signal }), [projectId]);
  const checkout = query.get("checkout");

  return (
    <Page title="Billing">
      {checkout === "success" ? (
        <p className="ok" role="status">
          The purchase went through. It may take a moment to show in the balance.
        </p>
      ) : checkout === "cancel" ? (
        <p className="muted" role="status">
          The checkout was cancelled; nothing was charged.
        </p>
      ) : null}

      <div className="grid">
        <section className="card" aria-labelledby="balance-h">
          <h2 id="balance-h">Balance</h2>
          <AsyncView state={balance}>{(b) => <BalanceView balance={b} />}</AsyncView>
          <BuyCredits projectId={projectId} />
        </section>
        <section className="card" aria-labelledby="subscription-h">
          <h2 id="subscription-h">Subscription</h2>
          <AsyncView state={subscription}>{(s) => <SubscriptionView projectId={projectId} sub={s} onChange={subscription.reload} />}</AsyncView>
        </section>
      </div>

      <h2>Auto-recharge</h2>
      <div className="card">
        <AsyncView state={balance}>
          {(b) => (
            <AutoRecharge
              key={`${b.auto_recharge_enabled}-${b.auto_recharge_amount}-${b.auto_recharge_threshold}-${b.monthly_budget}`}
              projectId={projectId}
              balance={b}
              onSaved={balance.reload}
            />
          )}
        </AsyncView>
      </div>

      <h2>Usage</h2>
      <Usage projectId={projectId} />

      <h2>Recent transactions</h2>
      <AsyncView
        state={transactions}
        empty={(l) => (l.length ? null : <Empty title="No transactions yet.">Buy credits above; usage is charged against them.</Empty>)}
      >
        {(l) => (
          <Table<Transaction>
            caption="Recent transactions, newest first"
            rows={l}
            rowKey={(t) => t.id}
            columns={[
              { label: "Date", render: (t) => <When at={t.created_at} /> },
              { label: "Description", render: (t) => t.description || "—" },
              { label: "Kind", render: (t) => t.kind },
              {
                label: "Amount",
                className: "num",
                render: (t) => `${t.amount > 0 ? "+" : ""}${formatMoney(t.amount, balance.data?.currency ?? "usd")}`,
              },
            ]}
          />
        )}
      </AsyncView>
    </Page>
  );
}

function BalanceView({ balance: b }: { balance: Balance }) {
  return (
    <>
      <p className="balance">{formatMoney(b.balance, b.currency)}</p>
      <p className="muted">
        Auto-recharge is {b.auto_recharge_enabled ? (b.auto_recharge_paused ? "paused" : "on") : "off"}
        {b.auto_recharge_enabled && b.auto_recharge_amount
          ? `: ${formatMoney(b.auto_recharge_amount, b.currency)} when below ${formatMoney(b.auto_recharge_threshold ?? 0, b.currency)}`
          : ""}
        .
        {b.last_recharge ? (
          <>
            {" "}
            Last recharge: <When at={b.last_recharge} />.
          </>
        ) : null}
      </p>
      {b.auto_recharge_paused ? (
        <p className="error" role="status">
          Auto-recharge is paused after a failed charge{b.auto_recharge_error ? `: ${b.auto_recharge_error}` : ""}. Save the auto-recharge settings with it
          turned on to resume.
        </p>
      ) : null}
    </>
  );
}

function BuyCredits({ projectId }: { projectId: string }) {
  const [quantity, setQuantity] = useState("10");
  return (
    <Form
      className="inline"
      submit="Buy credits"
      onSubmit={async () => {
        const n = Number(quantity);
        if (!Number.isFinite(n) || n < 1) throw new Error("Buy at least 1 credit");
        const url = await api().getCreditsCheckoutUrl(projectId, returnUrl(projectId, "success"), returnUrl(projectId, "cancel"), n);
        location.assign(url);
        return "Opening the checkout…";
      }}
    >
      <Field
        label="Credits"
        type="number"
        min={1}
        step="any"
        value={quantity}
        onChange={(e) => setQuantity(e.target.value)}
        hint="One credit is one unit of the currency."
      />
    </Form>
  );
}

function SubscriptionView({ projectId, sub: s, onChange }: { projectId: string; sub: Subscription; onChange: () => void }) {
  const live = LIVE.has(s.status);
  return (
    <>
      <dl className="props">
        <dt>Plan</dt>
        <dd>{s.plan_name ?? s.plan ?? "none"}</dd>
        <dt>Status</dt>
        <dd>
          <span className={`badge ${live ? "ok" : s.status === "past_due" || s.status === "unpaid" ? "bad" : ""}`}>{s.status}</span>
          {s.cancel_at_period_end ? " · ends at the end of the period" : ""}
        </dd>
        {s.monthly_price !== null && s.monthly_price !== undefined ? (
          <>
            <dt>Price</dt>
            <dd>{formatMoney(s.monthly_price, s.currency)} per month</dd>
          </>
        ) : null}
        {s.current_period_end ? (
          <>
            <dt>Current period</dt>
            <dd>
              <When at={s.current_period_start} /> – <When at={s.current_period_end} />
            </dd>
          </>
        ) : null}
        {s.provider ? (
          <>
            <dt>Payments</dt>
            <dd>{s.provider === "local" ? "This server (no payment network)" : s.provider}</dd>
          </>
        ) : null}
      </dl>
      <div className="form-actions">
        {!live || s.cancel_at_period_end ? (
          <Form
            submit={live ? "Renew subscription" : "Subscribe"}
            onSubmit={async () => {
              const url = await api().getCheckoutUrl(projectId, returnUrl(projectId, "success"), returnUrl(projectId, "cancel"));
              location.assign(url);
              return "Opening the checkout…";
            }}
          >
            {null}
          </Form>
        ) : null}
        {live && !s.cancel_at_period_end ? (
          <ConfirmButton
            label="Cancel subscription"
            confirm="Cancel at the end of the current period?"
            onConfirm={async () => {
              await api().cancelSubscription(projectId, { at_period_end: true });
              onChange();
            }}
          />
        ) : null}
        {live && s.provider !== "stripe" ? (
          <ConfirmButton
            label="End now"
            confirm="End the subscription now, before the period ends?"
            onConfirm={async () => {
              await api().cancelSubscription(projectId, { at_period_end: false });
              onChange();
            }}
          />
        ) : null}
      </div>
    </>
  );
}

function AutoRecharge({ projectId, balance: b, onSaved }: { projectId: string; balance: Balance; onSaved: () => void }) {
  const [f, setF] = useState<RechargeForm>({
    enabled: b.auto_recharge_enabled,
    amount: String(b.auto_recharge_amount ?? ""),
    threshold: String(b.auto_recharge_threshold ?? ""),
    budget: b.monthly_budget === null || b.monthly_budget === undefined ? "" : String(b.monthly_budget),
  });
  const set = (p: Partial<RechargeForm>) => setF((x) => ({ ...x, ...p }));
  const cur = b.currency.toUpperCase();
  return (
    <Form
      submit="Save auto-recharge"
      onSubmit={async () => {
        const a = rechargeArgs(f);
        await api().setAutoRecharge(projectId, a.enabled, a.amount, a.threshold, { monthly_budget: a.monthly_budget });
        onSaved();
        return "Saved.";
      }}
    >
      <p className="muted">
        When the balance falls below the threshold, the saved payment method is charged the amount. Buying credits once saves a payment method.
        {b.auto_recharged_this_month ? ` Recharged this month: ${formatMoney(b.auto_recharged_this_month, b.currency)}.` : ""}
      </p>
      <Field type="checkbox" label="Recharge automatically" checked={f.enabled} onChange={(e) => set({ enabled: e.target.checked })} />
      <Field label={`Amount (${cur})`} type="number" min={0} step="any" value={f.amount} onChange={(e) => set({ amount: e.target.value })} />
      <Field label={`Threshold (${cur})`} type="number" min={0} step="any" value={f.threshold} onChange={(e) => set({ threshold: e.target.value })} />
      <Field
        label={`Monthly budget (${cur}, optional)`}
        type="number"
        min={0}
        step="any"
        value={f.budget}
        onChange={(e) => set({ budget: e.target.value })}
        hint="The most auto-recharge may charge in a month; empty for no limit."
      />
    </Form>
  );
}

function Usage({ projectId }: { projectId: string }) {
  const { query } = useLocation();
  const days = RANGES.includes(Number(query.get("days"))) ? Number(query.get("days")) : 30;
  const interval = INTERVALS.includes(query.get("interval") ?? "") ? query.get("interval")! : "day";
  const measure = query.get("measure") === "cost" ? "amount" : "quantity";
  const usage = useAsync(
    (signal) => api().getUsage(projectId, { ...usageWindow(days), interval, report: measure === "amount" ? "cost" : "usage" }, { signal }),
    [projectId, days, interval, measure],
  );
  const charts = useMemo(() => (usage.data ? usageCharts(usage.data, measure) : []), [usage.data, measure]);
  const totals = useMemo(() => (usage.data ? usageTotals(usage.data, measure) : []), [usage.data, measure]);
  return (
    <>
      <div className="row">
        <Select label="Range" value={String(days)} onChange={(e) => setQuery({ days: e.target.value === "30" ? null : e.target.value })}>
          {RANGES.map((d) => (
            <option key={d} value={d}>
              Last {d} days
            </option>
          ))}
        </Select>
        <Select label="Per" value={interval} onChange={(e) => setQuery({ interval: e.target.value === "day" ? null : e.target.value })}>
          {INTERVALS.map((i) => (
            <option key={i} value={i}>
              {i}
            </option>
          ))}
        </Select>
        <Select label="Show" value={measure === "amount" ? "cost" : "usage"} onChange={(e) => setQuery({ measure: e.target.value === "cost" ? "cost" : null })}>
          <option value="usage">Quantity used</option>
          <option value="cost">Cost charged</option>
        </Select>
      </div>
      <AsyncView
        state={usage}
        empty={(l) => (l.length ? null : <Empty title="No usage in this range.">Usage is recorded as rooms, agents and services run.</Empty>)}
      >
        {() => (
          <>
            <div className="grid chart-grid">
              {charts.map((c) => (
                <Chart
                  key={c.unit}
                  title={measure === "amount" ? `Cost per ${interval} (${c.unit}), by usage type` : `Usage per ${interval} in ${c.unit}, by usage type`}
                  data={c}
                  unit={c.unit}
                  step={STEP[interval]}
                />
              ))}
            </div>
            <Table
              caption="Totals by usage type"
              rows={totals}
              rowKey={(t) => `${t.type}-${t.unit}`}
              columns={[
                { label: "Usage type", render: (t) => t.type },
                { label: "Total", className: "num", render: (t) => (measure === "amount" ? formatMoney(t.total, t.unit) : formatNumber(t.total)) },
                { label: measure === "amount" ? "Currency" : "Unit", render: (t) => t.unit },
              ]}
            />
          </>
        )}
      </AsyncView>
    </>
  );
}
