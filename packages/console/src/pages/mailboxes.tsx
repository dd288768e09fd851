import { useEffect, useId, useRef, useState, type InputHTMLAttributes } from "react";
import type { Mailbox } from "@meshagent-oss/sdk";
import { api } from "../api";
import { useAsync, useDebounced } from "../hooks";
import { formatAnnotations, mailboxBody, type MailboxForm } from "../ops-lib";
import type { PageProps } from "../pages";
import { RoleGate } from "../project";
import { Link, setQuery, useLocation } from "../router";
import { AsyncView, Button, ConfirmButton, Empty, Field, Form, Page, Pager, Table, TextArea } from "../ui";

const LIMIT = 50;

/** A room name input that suggests the project's rooms as you type (a datalist; any name may still be typed). */
export function RoomField({
  projectId,
  label = "Room",
  hint,
  ...input
}: { projectId: string; label?: string; hint?: string } & InputHTMLAttributes<HTMLInputElement>) {
  const id = useId();
  const typed = useDebounced(String(input.value ?? ""), 300);
  const rooms = useAsync(async (signal) => await api().listRooms(projectId, { filter: typed || undefined, limit: 20 }, { signal }), [projectId, typed]);
  return (
    <>
      <Field label={label} hint={hint} list={`${id}-rooms`} autoComplete="off" {...input} />
      <datalist id={`${id}-rooms`}>
        {(rooms.data ?? []).map((r) => (
          <option key={r.id} value={r.name} />
        ))}
      </datalist>
    </>
  );
}

const emptyForm = (): MailboxForm => ({ address: "", room: "", queue: "", public: false, annotations: "" });

function MailboxFields({
  projectId,
  form,
  set,
  withAddress,
}: {
  projectId: string;
  form: MailboxForm;
  set: (p: Partial<MailboxForm>) => void;
  withAddress: boolean;
}) {
  return (
    <>
      {withAddress ? (
        <Field
          label="Address"
          type="email"
          required
          placeholder="support@example.com"
          value={form.address}
          onChange={(e) => set({ address: e.target.value })}
          hint="Unique on this server."
        />
      ) : null}
      <RoomField projectId={projectId} required value={form.room} onChange={(e) => set({ room: e.target.value })} hint="The room that receives the mail." />
      <Field label="Queue" required value={form.queue} onChange={(e) => set({ queue: e.target.value })} hint="The room queue each message is put on." />
      <Field
        type="checkbox"
        label="Anyone may send (public)"
        checked={form.public}
        onChange={(e) => set({ public: e.target.checked })}
        hint="Off: only the addresses of project members."
      />
      <TextArea
        label="Annotations (optional)"
        className="code"
        rows={3}
        value={form.annotations}
        onChange={(e) => set({ annotations: e.target.value })}
        hint="One key=value per line."
      />
    </>
  );
}

export default function MailboxesPage(_: PageProps) {
  return (
    <RoleGate need="developer" title="Mailboxes" what="mailboxes">
      {({ project }) => <Mailboxes projectId={project.id} />}
    </RoleGate>
  );
}

function Mailboxes({ projectId }: { projectId: string }) {
  const { query } = useLocation();
  const offset = Math.max(0, Number(query.get("offset")) || 0);
  const [filterText, setFilterText] = useState(query.get("q") ?? "");
  const filter = useDebounced(filterText.trim(), 300);
  const list = useAsync(
    (signal) =>
      api()
        .listMailboxes(projectId, { count: LIMIT, offset, ...(filter ? { filter } : {}) }, { signal })
        .page(),
    [projectId, offset, filter],
  );
  const [form, setForm] = useState<MailboxForm>(emptyForm);
  const [editing, setEditing] = useState<Mailbox | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const rooms = `/projects/${encodeURIComponent(projectId)}/rooms`;

  return (
    <Page title="Mailboxes">
      <p className="muted">A mailbox turns email sent to its address into messages on a room queue, where an agent can read them.</p>
      {notice ? (
        <p className="ok" role="status">
          {notice}
        </p>
      ) : null}
      <div className="row">
        <Field
          label="Filter"
          type="search"
          value={filterText}
          placeholder="address, room or queue"
          onChange={(e) => {
            setFilterText(e.target.value);
            setQuery({ q: e.target.value || null, offset: null });
          }}
        />
      </div>
      <AsyncView
        state={list}
        empty={(p) =>
          p.items.length ? null : filter ? (
            <Empty title={`No mailbox matches "${filter}".`}>Try another filter.</Empty>
          ) : (
            <Empty title="No mailboxes yet.">Create one below to route email into a room queue.</Empty>
          )
        }
      >
        {(p) => (
          <>
            <Table<Mailbox>
              caption="Mailboxes"
              rows={p.items}
              rowKey={(m) => m.address}
              columns={[
                { label: "Address", render: (m) => <code>{m.address}</code> },
                { label: "Room", render: (m) => <Link to={`${rooms}/${encodeURIComponent(m.room)}`}>{m.room}</Link> },
                { label: "Queue", render: (m) => <code>{m.queue}</code> },
                { label: "Who may send", render: (m) => (m.public ? "Anyone" : "Project members") },
                {
                  label: "Annotations",
                  render: (m) =>
                    Object.keys(m.annotations ?? {}).length ? <code className="ops-wrap">{formatAnnotations(m.annotations).replace(/\n/g, ", ")}</code> : "—",
                },
                {
                  label: "Actions",
                  render: (m) => (
                    <span className="actions">
                      <Button
                        kind="secondary"
                        aria-label={`Edit ${m.address}`}
                        onClick={() => {
                          setNotice(null);
                          setEditing(m);
                        }}
                      >
                        Edit
                      </Button>
                      <ConfirmButton
                        label="Delete"
                        confirm={`Delete the mailbox ${m.address}?`}
                        onConfirm={async () => {
                          await api().deleteMailbox(projectId, m.address);
                          if (editing?.address === m.address) setEditing(null);
                          list.reload();
                        }}
                      />
                    </span>
                  ),
                },
              ]}
            />
            <Pager offset={offset} limit={LIMIT} count={p.items.length} more={p.next !== undefined} onChange={(o) => setQuery({ offset: o || null })} />
          </>
        )}
      </AsyncView>

      {editing ? (
        <section className="card" aria-labelledby="edit-mailbox">
          <EditMailbox
            key={editing.address}
            projectId={projectId}
            mailbox={editing}
            onSaved={(m) => {
              setEditing(null);
              setNotice(`Saved ${m.address}.`);
              list.reload();
            }}
          />
          <Button kind="secondary" onClick={() => setEditing(null)}>
            Cancel
          </Button>
        </section>
      ) : null}

      <h2>Create a mailbox</h2>
      <div className="card">
        <Form
          className="ops-form"
          submit="Create mailbox"
          onSubmit={async () => {
            const b = mailboxBody(form);
            const m = await api().createMailbox(projectId, b.address, b.room, b.queue, b.options);
            setForm(emptyForm());
            list.reload();
            return `Created ${m.address}.`;
          }}
        >
          <MailboxFields projectId={projectId} form={form} set={(p) => setForm((f) => ({ ...f, ...p }))} withAddress />
        </Form>
      </div>
    </Page>
  );
}

function EditMailbox({ projectId, mailbox, onSaved }: { projectId: string; mailbox: Mailbox; onSaved: (m: Mailbox) => void }) {
  const [form, setForm] = useState<MailboxForm>({
    address: mailbox.address,
    room: mailbox.room,
    queue: mailbox.queue,
    public: mailbox.public,
    annotations: formatAnnotations(mailbox.annotations),
  });
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), []);
  return (
    <>
      <h2 id="edit-mailbox" tabIndex={-1} ref={heading}>
        Edit {mailbox.address}
      </h2>
      <Form
        className="ops-form"
        submit="Save mailbox"
        onSubmit={async () => {
          const b = mailboxBody(form);
          onSaved(await api().updateMailbox(projectId, mailbox.address, b.room, b.queue, b.options));
        }}
      >
        <MailboxFields projectId={projectId} form={form} set={(p) => setForm((f) => ({ ...f, ...p }))} withAddress={false} />
      </Form>
    </>
  );
}
