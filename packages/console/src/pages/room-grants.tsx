import { useEffect, useId, useRef, useState } from "react";
import type { ApiScope, Meshagent, RoomGrant } from "@meshagent-oss/sdk";
import { api } from "../api";
import { useAsync } from "../hooks";
import type { PageProps } from "../pages";
import { useProject, type Abilities } from "../project";
import { describeScope, hasMore, isCustomized, PAGE_SIZE, readPaging, SCOPE_PRESETS, SCOPE_SECTIONS, scopeFrom, sectionsOf } from "../rooms-lib";
import { Link, setQuery, useLocation } from "../router";
import { AsyncView, Button, ConfirmButton, Empty, Field, Form, Page, Pager, Table, type Column } from "../ui";

type GrantsClient = Pick<Meshagent, "listRoomGrantsByRoom" | "listUniqueUsersWithGrants" | "createRoomGrantByEmail" | "updateRoomGrant" | "deleteRoomGrant">;

export default function RoomGrantsPage({ params }: PageProps) {
  const { can } = useProject();
  return (
    <Page title={`Grants of ${params.room}`}>
      <p>
        <Link to={`/projects/${encodeURIComponent(params.project)}/rooms`}>All rooms</Link> ·{" "}
        <Link to={`/projects/${encodeURIComponent(params.project)}/rooms/${encodeURIComponent(params.room)}`}>Open {params.room}</Link>
      </p>
      {can.developer ? (
        <RoomGrantsView client={api()} projectId={params.project} room={params.room} can={can} />
      ) : (
        <Empty title="Room grants are for admins and developers.">
          A grant says what a project member may do in a room. Ask a project admin to change yours.
        </Empty>
      )}
    </Page>
  );
}

/** A room's grants (who may do what in it), a page at a time; admins and developers add, edit and remove them. */
export function RoomGrantsView({ client, projectId, room, can }: { client: GrantsClient; projectId: string; room: string; can: Abilities }) {
  const { query } = useLocation();
  const { offset } = readPaging(query);
  const grants = useAsync((signal) => client.listRoomGrantsByRoom(projectId, room, { limit: PAGE_SIZE, offset }, { signal }).page(), [projectId, room, offset]);
  // Grants carry user ids; the people behind them (best effort: ids are shown when this fails).
  const people = useAsync(
    async (signal) => new Map((await client.listUniqueUsersWithGrants(projectId, { limit: 1000 }, { signal })).map((u) => [u.user_id, u.email])),
    [projectId],
  );
  const who = (id: string) => people.data?.get(id) ?? id;
  const [editing, setEditing] = useState<RoomGrant | null>(null);

  const columns: Column<RoomGrant>[] = [
    { label: "User", render: (g) => who(g.user_id) },
    { label: "Permissions", render: (g) => describeScope(g.permissions) },
  ];
  if (can.developer)
    columns.push({
      label: "Actions",
      render: (g) => (
        <div className="actions">
          <Button kind="secondary" onClick={() => setEditing(g)}>
            Edit
          </Button>
          <ConfirmButton
            label="Remove"
            confirm={`Remove ${who(g.user_id)}'s grant?`}
            onConfirm={() => client.deleteRoomGrant(projectId, g.room.id, g.user_id).then(grants.reload)}
          />
        </div>
      ),
    });

  return (
    <>
      {can.developer ? (
        <section className="card" aria-labelledby="add-grant">
          <h2 id="add-grant">Add a grant</h2>
          <AddGrant
            client={client}
            projectId={projectId}
            room={room}
            onAdded={() => {
              grants.reload();
              people.reload();
            }}
          />
        </section>
      ) : (
        <p className="muted">Only project admins and developers change grants.</p>
      )}
      {editing ? (
        <EditGrant
          key={editing.user_id}
          client={client}
          projectId={projectId}
          grant={editing}
          who={who(editing.user_id)}
          onDone={(saved) => {
            setEditing(null);
            if (saved) grants.reload();
          }}
        />
      ) : null}
      <h2>Grants</h2>
      <AsyncView
        state={grants}
        empty={(p) =>
          p.items.length ? null : offset > 0 ? (
            <Empty title="No grants on this page.">
              <Button kind="secondary" onClick={() => setQuery({ offset: null })}>
                Back to the first page
              </Button>
            </Empty>
          ) : (
            <Empty title="No one holds a grant on this room yet.">
              {can.developer ? "Add one above by email: the person can then join the room." : "Admins and developers reach every room without a grant."}
            </Empty>
          )
        }
      >
        {(p) => (
          <>
            <Table caption={`Grants of ${room}`} rows={p.items} rowKey={(g) => g.user_id} columns={columns} />
            <Pager
              offset={offset}
              limit={PAGE_SIZE}
              count={p.items.length}
              more={hasMore(offset, p.items.length, p.total)}
              onChange={(o) => setQuery({ offset: o || null })}
            />
          </>
        )}
      </AsyncView>
    </>
  );
}

function AddGrant({ client, projectId, room, onAdded }: { client: GrantsClient; projectId: string; room: string; onAdded: () => void }) {
  const [email, setEmail] = useState("");
  const [checked, setChecked] = useState<string[]>(SCOPE_PRESETS[0].sections);
  return (
    <Form
      submit="Add grant"
      onSubmit={async () => {
        await client.createRoomGrantByEmail(projectId, room, email.trim(), scopeFrom(checked));
        setEmail("");
        onAdded();
        return `Granted ${email.trim()} access to ${room}`;
      }}
    >
      <Field
        label="User email"
        type="email"
        required
        autoComplete="off"
        value={email}
        onChange={(e) => setEmail(e.target.value)}
        hint="Someone without an account yet is invited: the grant applies once they sign up."
      />
      <PermissionsEditor checked={checked} onChange={setChecked} />
    </Form>
  );
}

function EditGrant({
  client,
  projectId,
  grant,
  who,
  onDone,
}: {
  client: GrantsClient;
  projectId: string;
  grant: RoomGrant;
  who: string;
  onDone: (saved: boolean) => void;
}) {
  const [checked, setChecked] = useState<string[]>(() => sectionsOf(grant.permissions));
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), []);
  return (
    <section className="card" aria-labelledby="edit-grant">
      <h2 id="edit-grant" tabIndex={-1} ref={heading}>
        Permissions of {who}
      </h2>
      <Form
        submit="Save permissions"
        onSubmit={async () => {
          await client.updateRoomGrant(projectId, grant.room.id, grant.user_id, scopeFrom(checked, grant.permissions));
          onDone(true);
        }}
      >
        <PermissionsEditor checked={checked} onChange={setChecked} base={grant.permissions} />
        <div>
          <Button kind="secondary" onClick={() => onDone(false)}>
            Cancel
          </Button>
        </div>
      </Form>
    </section>
  );
}

/** The ApiScope as one checkbox per API section (a checked section is access to it), with the SDK's presets. */
export function PermissionsEditor({
  checked,
  onChange,
  base,
  legend = "Permissions",
}: {
  checked: string[];
  onChange: (sections: string[]) => void;
  base?: ApiScope;
  legend?: string;
}) {
  const on = new Set(checked);
  const toggle = (key: string, value: boolean) => onChange(SCOPE_SECTIONS.map((s) => s.key).filter((k) => (k === key ? value : on.has(k))));
  return (
    <fieldset className="rooms-perms">
      <legend>{legend}</legend>
      <div className="row" role="group" aria-label="Presets">
        {SCOPE_PRESETS.map((p) => (
          <Button key={p.id} kind="secondary" onClick={() => onChange(p.sections)}>
            {p.label}
          </Button>
        ))}
      </div>
      <div className="rooms-perms-grid">
        {SCOPE_SECTIONS.map((s) => (
          <Check
            key={s.key}
            label={s.label}
            checked={on.has(s.key)}
            onChange={(v) => toggle(s.key, v)}
            hint={isCustomized(base, s.key) ? `${s.hint}; its restrictions are kept` : s.hint}
          />
        ))}
      </div>
    </fieldset>
  );
}

function Check({ label, hint, checked, onChange }: { label: string; hint: string; checked: boolean; onChange: (v: boolean) => void }) {
  const id = useId();
  return (
    <div className="rooms-check">
      <input id={id} type="checkbox" checked={checked} onChange={(e) => onChange(e.target.checked)} aria-describedby={`${id}-hint`} />
      <label htmlFor={id}>{label}</label>
      <small id={`${id}-hint`} className="hint">
        {hint}
      </small>
    </div>
  );
}
