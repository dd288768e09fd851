import { useState } from "react";
import type { Webhook } from "@meshagent-oss/sdk";
import { api } from "../api";
import { useAsync, type Async } from "../hooks";
import { ALL_EVENTS, emptyWebhookForm, groupEvents, webhookCreateBody, type WebhookForm } from "../ops-lib";
import type { PageProps } from "../pages";
import { RoleGate } from "../project";
import { Link } from "../router";
import { AsyncView, ConfirmButton, Empty, ErrorBox, Field, Form, Loading, Page, Select, ShownOnce, Table, TextArea, When } from "../ui";

export type EventCatalog = { event: string; description: string }[];

/** The events a webhook subscribes to: every event, or some of the catalog's, grouped by area. */
export function EventPicker({ form, set, catalog }: { form: WebhookForm; set: (p: Partial<WebhookForm>) => void; catalog: Async<EventCatalog> }) {
  const toggle = (ev: string, on: boolean) => set({ events: on ? [...form.events, ev] : form.events.filter((e) => e !== ev) });
  return (
    <fieldset className="event-picker">
      <legend>Events</legend>
      <Field
        type="checkbox"
        label="All events (*)"
        hint="Every event of the project, including ones added later."
        checked={form.all}
        onChange={(e) => set({ all: e.target.checked })}
      />
      {form.all ? null : catalog.data ? (
        <div className="event-groups">
          {groupEvents(catalog.data).map((g) => (
            <fieldset key={g.group} className="event-group">
              <legend>{g.group}</legend>
              {g.events.map((e) => (
                <Field
                  key={e.event}
                  type="checkbox"
                  label={e.event}
                  hint={e.description}
                  checked={form.events.includes(e.event)}
                  onChange={(x) => toggle(e.event, x.target.checked)}
                />
              ))}
            </fieldset>
          ))}
        </div>
      ) : catalog.error ? (
        <ErrorBox error={catalog.error} title="The event list could not be loaded" />
      ) : (
        <Loading label="Loading the events…" />
      )}
    </fieldset>
  );
}

/** The fields a webhook has (the create form adds its signing secret). */
export function WebhookFields({ form, set, catalog }: { form: WebhookForm; set: (p: Partial<WebhookForm>) => void; catalog: Async<EventCatalog> }) {
  return (
    <>
      <Field
        label="URL"
        type="url"
        required
        inputMode="url"
        placeholder="https://example.com/hooks/meshagent"
        value={form.url}
        onChange={(e) => set({ url: e.target.value })}
        hint="Where the deliveries are POSTed."
      />
      <Field label="Name" value={form.name} onChange={(e) => set({ name: e.target.value })} hint="Defaults to the URL's host." maxLength={200} />
      <Field label="Description" value={form.description} onChange={(e) => set({ description: e.target.value })} maxLength={2000} />
      <EventPicker form={form} set={set} catalog={catalog} />
      <Select
        label="Action"
        value={form.action}
        onChange={(e) => set({ action: e.target.value })}
        hint='"Call" makes room events start a call to the URL (an agent joins the room).'
      >
        <option value="">Deliver the event</option>
        <option value="call">Call</option>
      </Select>
      <TextArea
        label="Extra payload (JSON object, optional)"
        className="code"
        rows={4}
        value={form.payload}
        onChange={(e) => set({ payload: e.target.value })}
        hint="Keys merged into every delivery body."
      />
      <Field type="checkbox" label="Enabled" checked={form.enabled} onChange={(e) => set({ enabled: e.target.checked })} />
    </>
  );
}

export const useEventCatalog = () => useAsync((signal) => api().listWebhookEvents({ signal }), []);

export default function WebhooksPage(_: PageProps) {
  return (
    <RoleGate need="admin" title="Webhooks" what="webhooks">
      {({ project }) => <Webhooks projectId={project.id} />}
    </RoleGate>
  );
}

function Webhooks({ projectId }: { projectId: string }) {
  const list = useAsync((signal) => api().listWebhooks(projectId, { signal }), [projectId]);
  const catalog = useEventCatalog();
  const [form, setForm] = useState<WebhookForm>(emptyWebhookForm);
  const [secret, setSecret] = useState<{ name: string; value: string } | null>(null);
  const set = (p: Partial<WebhookForm>) => setForm((f) => ({ ...f, ...p }));
  const base = `/projects/${encodeURIComponent(projectId)}/webhooks`;

  return (
    <Page title="Webhooks">
      <p className="muted">Webhooks POST the project's events (rooms, storage, services…) to a URL of yours, signed with the webhook's secret.</p>
      {secret ? <ShownOnce label={`Signing secret of ${secret.name}`} value={secret.value} onDone={() => setSecret(null)} /> : null}
      <h2>Your webhooks</h2>
      <AsyncView state={list} empty={(ws) => (ws.length ? null : <Empty title="No webhooks yet.">Create one below to get event deliveries.</Empty>)}>
        {(ws) => (
          <Table<Webhook>
            caption="Webhooks"
            rows={ws}
            rowKey={(w) => w.id}
            columns={[
              { label: "Name", render: (w) => <Link to={`${base}/${encodeURIComponent(w.id)}`}>{w.name}</Link> },
              { label: "URL", render: (w) => <code className="ops-wrap">{w.url}</code> },
              { label: "Events", render: (w) => (w.events.includes(ALL_EVENTS) ? "All events" : w.events.join(", ")) },
              {
                label: "State",
                render: (w) => (
                  <span className={`badge ${w.state === "active" ? "ok" : "bad"}`} title={w.disabled_reason ?? undefined}>
                    {w.state === "active" ? "Active" : `Disabled${w.disabled_reason ? `: ${w.disabled_reason}` : ""}`}
                  </span>
                ),
              },
              { label: "Created", render: (w) => <When at={w.created_at} /> },
              {
                label: "Actions",
                render: (w) => (
                  <ConfirmButton
                    label="Delete"
                    confirm={`Delete the webhook ${w.name} and its deliveries?`}
                    onConfirm={async () => {
                      await api().deleteWebhook(projectId, w.id);
                      list.reload();
                    }}
                  />
                ),
              },
            ]}
          />
        )}
      </AsyncView>

      <h2>Create a webhook</h2>
      <div className="card">
        <Form
          className="ops-form"
          submit="Create webhook"
          onSubmit={async () => {
            const body = webhookCreateBody(form);
            const w = await api().createWebhook(projectId, body);
            if (w.secret) setSecret({ name: w.name, value: w.secret });
            setForm(emptyWebhookForm());
            list.reload();
            return `Created the webhook ${w.name}.`;
          }}
        >
          <WebhookFields form={form} set={set} catalog={catalog} />
          <Field
            label="Signing secret (optional)"
            type="password"
            autoComplete="new-password"
            value={form.secret}
            onChange={(e) => set({ secret: e.target.value })}
            hint="At least 8 characters. Leave it empty and the server generates one, shown once after you create the webhook."
          />
        </Form>
      </div>
    </Page>
  );
}
