import { useEffect, useRef, useState } from "react";
import type { Webhook, WebhookDelivery } from "@meshagent-oss/sdk";
import { api } from "../api";
import { useAsync, usePoll } from "../hooks";
import { deliveryRow, webhookFormOf, webhookUpdateBody, type DeliveryRow, type WebhookForm } from "../ops-lib";
import type { PageProps } from "../pages";
import { RoleGate } from "../project";
import { Link, setQuery, useLocation } from "../router";
import { AsyncView, Button, ConfirmButton, Empty, ErrorBox, Form, Page, Pager, Select, ShownOnce, Table, When } from "../ui";
import { useEventCatalog, WebhookFields } from "./webhooks";

const LIMIT = 20;
const STATUSES = ["pending", "delivered", "failed", "held"] as const;
type Status = (typeof STATUSES)[number];

/** This page's path with some query parameters changed (null removes one). */
function here(patch: Record<string, string | null>): string {
  const q = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) q.delete(k);
    else q.set(k, v);
  }
  const s = q.toString();
  return location.pathname + (s ? `?${s}` : "");
}

/** A Standard Webhooks secret ("whsec_" + 32 random bytes, base64), as the server generates them. */
function newSecret(): string {
  const b = new Uint8Array(32);
  crypto.getRandomValues(b);
  return "whsec_" + btoa(String.fromCharCode(...b));
}

export default function WebhookPage({ params }: PageProps) {
  return (
    <RoleGate need="admin" title="Webhook" what="webhooks">
      {({ project }) => <WebhookView projectId={project.id} webhookId={params.webhook} />}
    </RoleGate>
  );
}

function WebhookView({ projectId, webhookId }: { projectId: string; webhookId: string }) {
  const hook = useAsync((signal) => api().getWebhook(projectId, webhookId, { signal }), [projectId, webhookId]);
  const { query } = useLocation();
  const offset = Math.max(0, Number(query.get("offset")) || 0);
  const status = (STATUSES as readonly string[]).includes(query.get("status") ?? "") ? (query.get("status") as Status) : undefined;
  const selected = query.get("delivery");
  const deliveries = usePoll(
    (signal) =>
      api()
        .listWebhookDeliveries(projectId, webhookId, { limit: LIMIT, offset, ...(status ? { status } : {}) }, { signal })
        .page(),
    [projectId, webhookId, offset, status],
    { minMs: 1000, maxMs: 15_000 },
  );
  const [testing, setTesting] = useState(false);
  const [testResult, setTestResult] = useState<{ ok: string } | { error: unknown } | null>(null);
  const [secret, setSecret] = useState<string | null>(null);
  const list = `/projects/${encodeURIComponent(projectId)}/webhooks`;

  const sendTest = async () => {
    setTesting(true);
    setTestResult(null);
    try {
      const d = await api().testWebhook(projectId, webhookId);
      setTestResult({ ok: `Test delivery queued (${d.status}). It appears in the deliveries below.` });
      if (offset || status) setQuery({ offset: null, status: null });
      deliveries.reload();
    } catch (error) {
      setTestResult({ error });
    } finally {
      setTesting(false);
    }
  };

  return (
    <Page
      title={hook.data ? `Webhook ${hook.data.name}` : "Webhook"}
      actions={
        <>
          <Button onClick={sendTest} busy={testing}>
            Send test
          </Button>
          <Link to={list}>All webhooks</Link>
        </>
      }
    >
      {testResult && "ok" in testResult ? (
        <p className="ok" role="status">
          {testResult.ok}
        </p>
      ) : testResult ? (
        <ErrorBox error={testResult.error} title="The test was not sent" />
      ) : null}
      {secret ? <ShownOnce label="New signing secret" value={secret} onDone={() => setSecret(null)} /> : null}

      <AsyncView state={hook}>
        {(w) => (
          <>
            {w.state === "disabled" ? (
              <p className="error" role="status">
                Disabled{w.disabled_reason ? `: ${w.disabled_reason}` : ""}. Deliveries are held; tick Enabled and save to resume them.
              </p>
            ) : null}
            <h2>Settings</h2>
            <div className="card">
              <SettingsForm key={w.updated_at} projectId={projectId} webhook={w} onSaved={hook.reload} />
            </div>
            <h2>Signing secret</h2>
            <div className="card">
              <p className="muted">
                Every delivery is signed with the webhook's secret (Meshagent-Signature and Standard Webhooks headers). A new secret takes effect at once; it is
                shown once.
              </p>
              <ConfirmButton
                kind="secondary"
                label="Rotate secret"
                confirm="Replace the signing secret? Receivers must use the new one."
                onConfirm={async () => {
                  const s = newSecret();
                  await api().updateWebhook(projectId, webhookId, { secret: s });
                  setSecret(s);
                  hook.reload();
                }}
              />
            </div>
          </>
        )}
      </AsyncView>

      <h2 id="deliveries">Deliveries</h2>
      <div className="row">
        <Select label="Status" value={status ?? ""} onChange={(e) => setQuery({ status: e.target.value || null, offset: null })}>
          <option value="">All</option>
          {STATUSES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </Select>
      </div>
      <AsyncView
        state={deliveries}
        empty={(p) =>
          p.items.length ? null : (
            <Empty title={status ? `No ${status} deliveries.` : "No deliveries yet."}>Use Send test to POST a webhook.test event to the URL now.</Empty>
          )
        }
      >
        {(p) => (
          <>
            <Table<DeliveryRow>
              caption="Deliveries, newest first"
              rows={p.items.map(deliveryRow)}
              rowKey={(r) => r.id}
              columns={[
                { label: "Event", render: (r) => <code>{r.event}</code> },
                { label: "Status", render: (r) => <span className={`badge ${r.tone}`}>{r.status}</span> },
                { label: "HTTP status", className: "num", render: (r) => r.httpStatus },
                { label: "Attempts", className: "num", render: (r) => r.attempts },
                { label: "Time", render: (r) => <When at={r.time} /> },
                { label: "Response", render: (r) => (r.response ? <code className="ops-wrap">{r.response}</code> : <span className="muted">—</span>) },
                {
                  label: "Actions",
                  render: (r) => (
                    <span className="actions">
                      <Link to={here({ delivery: r.id })} aria-label={`Details of delivery ${r.id}`}>
                        Details
                      </Link>
                      <ReplayButton projectId={projectId} webhookId={webhookId} deliveryId={r.id} onDone={deliveries.reload} />
                    </span>
                  ),
                },
              ]}
            />
            <Pager offset={offset} limit={LIMIT} count={p.items.length} more={p.next !== undefined} onChange={(o) => setQuery({ offset: o || null })} />
          </>
        )}
      </AsyncView>
      {selected ? <DeliveryDetail projectId={projectId} webhookId={webhookId} deliveryId={selected} onReplayed={deliveries.reload} /> : null}
    </Page>
  );
}

function SettingsForm({ projectId, webhook, onSaved }: { projectId: string; webhook: Webhook; onSaved: () => void }) {
  const [form, setForm] = useState<WebhookForm>(() => webhookFormOf(webhook));
  const catalog = useEventCatalog();
  return (
    <Form
      className="ops-form"
      submit="Save changes"
      onSubmit={async () => {
        await api().updateWebhook(projectId, webhook.id, webhookUpdateBody(form));
        onSaved();
        return "Saved.";
      }}
    >
      <WebhookFields form={form} set={(p) => setForm((f) => ({ ...f, ...p }))} catalog={catalog} />
    </Form>
  );
}

function ReplayButton({ projectId, webhookId, deliveryId, onDone }: { projectId: string; webhookId: string; deliveryId: string; onDone: () => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  return (
    <>
      <Button
        kind="secondary"
        busy={busy}
        aria-label={`Replay delivery ${deliveryId}`}
        onClick={async () => {
          setBusy(true);
          setError(null);
          try {
            await api().replayWebhookDelivery(projectId, webhookId, deliveryId);
            onDone();
          } catch (e) {
            setError(e);
          } finally {
            setBusy(false);
          }
        }}
      >
        Replay
      </Button>
      <ErrorBox error={error} title="Replay failed" />
    </>
  );
}

function DeliveryDetail({
  projectId,
  webhookId,
  deliveryId,
  onReplayed,
}: {
  projectId: string;
  webhookId: string;
  deliveryId: string;
  onReplayed: () => void;
}) {
  const heading = useRef<HTMLHeadingElement>(null);
  // Opening a delivery's details moves the focus (and the view) to them.
  useEffect(() => heading.current?.focus(), [deliveryId]);
  const d = usePoll((signal) => api().getWebhookDelivery(projectId, webhookId, deliveryId, { signal }), [projectId, webhookId, deliveryId], {
    minMs: 2000,
    maxMs: 30_000,
  });
  return (
    <section className="card" aria-labelledby="delivery-title">
      <h2 id="delivery-title" tabIndex={-1} ref={heading}>
        Delivery {deliveryId}
      </h2>
      <AsyncView state={d}>
        {(x: WebhookDelivery) => (
          <>
            <dl className="props">
              <dt>Event</dt>
              <dd>
                <code>{x.event}</code> (event {x.event_id})
              </dd>
              <dt>Status</dt>
              <dd>
                <span className={`badge ${deliveryRow(x).tone}`}>{x.status}</span>
              </dd>
              <dt>Attempts</dt>
              <dd>{x.attempts}</dd>
              <dt>Queued</dt>
              <dd>
                <When at={x.created_at} />
              </dd>
              <dt>Delivered</dt>
              <dd>
                <When at={x.delivered_at} />
              </dd>
              <dt>Next attempt</dt>
              <dd>
                <When at={x.next_attempt_at} />
              </dd>
              {x.last_error ? (
                <>
                  <dt>Last error</dt>
                  <dd className="ops-wrap">{x.last_error}</dd>
                </>
              ) : null}
            </dl>
            <div className="form-actions">
              <ReplayButton
                projectId={projectId}
                webhookId={webhookId}
                deliveryId={x.id}
                onDone={() => {
                  d.reload();
                  onReplayed();
                }}
              />
              <Link to={here({ delivery: null })}>Close</Link>
            </div>
            <h3>Attempts</h3>
            {x.history.length ? (
              <Table
                caption={`Attempts of delivery ${x.id}`}
                rows={[...x.history].sort((a, b) => b.attempt - a.attempt)}
                rowKey={(h) => String(h.attempt)}
                columns={[
                  { label: "Attempt", className: "num", render: (h) => h.attempt },
                  { label: "Started", render: (h) => <When at={h.started_at} /> },
                  { label: "HTTP status", className: "num", render: (h) => h.status_code ?? "—" },
                  { label: "Latency", className: "num", render: (h) => `${h.latency_ms} ms` },
                  { label: "Error", render: (h) => h.error ?? "—" },
                  { label: "Response", render: (h) => (h.response_excerpt ? <pre className="excerpt">{h.response_excerpt}</pre> : "—") },
                ]}
              />
            ) : (
              <p className="muted">Not attempted yet.</p>
            )}
            <h3>Body sent</h3>
            <pre>{JSON.stringify(x.payload, null, 2)}</pre>
          </>
        )}
      </AsyncView>
    </section>
  );
}
