import { useState } from "react";
import type { Meshagent } from "@meshagent-oss/sdk";
import type { PageProps } from "../pages";
import { api } from "../api";
import { useAsync, useDebounced } from "../hooks";
import { useMe, useProject } from "../project";
import { BASE } from "../router";
import { AsyncView, ConfirmButton, Empty, ErrorBox, Field, Form, Page, Pager, Select, Table, When, type Column } from "../ui";
import { emailError, inviteBody, lockedReason, ROLE_HINTS, ROLE_LABELS, roleFlags, toMember, type Member, type MemberRole } from "../admin-lib";

type Sdk = Pick<Meshagent, "getUsersInProject" | "addUserToProject" | "updateProjectUser" | "removeUserFromProject">;

const LIMIT = 50;
const ROLES: MemberRole[] = ["admin", "developer", "member"];

/** The project's members: invite by email, change roles, remove (admins); anyone else may leave. */
export default function MembersPage({ params }: PageProps) {
  const { can, role, project } = useProject();
  const me = useMe();
  return (
    <Page title="Members">
      {can.admin ? (
        <MembersView sdk={api()} projectId={params.project} meId={me?.id} />
      ) : (
        <>
          <Empty title="Only the project's admins can see and manage its members.">
            Your role in this project is {role}. Ask one of its admins to invite someone or to change a role.
          </Empty>
          {me && project.owner_user_id !== me.id ? (
            <>
              <h2>Leave this project</h2>
              <p>You lose access to its rooms at once; an admin can invite you again.</p>
              <ConfirmButton
                label="Leave project"
                confirm={`Leave ${project.name}?`}
                onConfirm={async () => {
                  await api().removeUserFromProject(params.project, me.id);
                  location.assign(`${BASE}/`);
                }}
              />
            </>
          ) : null}
        </>
      )}
    </Page>
  );
}

export function MembersView({ sdk, projectId, meId }: { sdk: Sdk; projectId: string; meId: string | undefined }) {
  const [offset, setOffset] = useState(0);
  const [search, setSearch] = useState("");
  const filter = useDebounced(search.trim(), 300);
  const list = useAsync(
    async (signal) => {
      const page = await sdk.getUsersInProject(projectId, { count: LIMIT, offset, ...(filter ? { filter } : {}) }, { signal }).page();
      return { members: page.items.map(toMember), total: page.total, more: page.next !== undefined };
    },
    [projectId, offset, filter],
  );

  const columns: Column<Member>[] = [
    { label: "Member", render: (m) => <MemberName m={m} meId={meId} /> },
    { label: "Role", render: (m) => <RoleCell sdk={sdk} projectId={projectId} m={m} meId={meId} onChanged={list.reload} /> },
    { label: "May also", render: (m) => <FlagsCell sdk={sdk} projectId={projectId} m={m} onChanged={list.reload} /> },
    { label: "Added", render: (m) => <When at={m.addedAt} /> },
    {
      label: "Actions",
      render: (m) =>
        lockedReason(m, meId) ? (
          <span className="muted">—</span>
        ) : (
          <ConfirmButton
            label="Remove"
            confirm={`Remove ${m.email || m.id} from the project?`}
            onConfirm={async () => {
              await sdk.removeUserFromProject(projectId, m.id);
              list.reload();
            }}
          />
        ),
    },
  ];

  return (
    <>
      <h2>People in this project</h2>
      <Field
        label="Search members"
        type="search"
        value={search}
        hint="By email or name."
        onChange={(e) => {
          setSearch(e.target.value);
          setOffset(0);
        }}
      />
      <AsyncView
        state={list}
        empty={(d) =>
          d.members.length === 0 ? (
            <Empty title={filter ? `No member matches “${filter}”.` : "No members on this page."}>
              {filter ? "Try another search, or invite them below." : "Invite someone below."}
            </Empty>
          ) : null
        }
      >
        {(d) => (
          <>
            {d.total !== undefined ? (
              <p className="muted" aria-live="polite">
                {d.total === 1 ? "1 member" : `${d.total} members`}
              </p>
            ) : null}
            <Table caption="Members of the project" columns={columns} rows={d.members} rowKey={(m) => m.id} />
            {offset > 0 || d.more ? <Pager offset={offset} limit={LIMIT} count={d.members.length} more={d.more} onChange={setOffset} /> : null}
          </>
        )}
      </AsyncView>
      <h2>Invite someone</h2>
      <InviteForm sdk={sdk} projectId={projectId} onInvited={list.reload} />
    </>
  );
}

function MemberName({ m, meId }: { m: Member; meId: string | undefined }) {
  return (
    <div className="member">
      <span>{m.name || m.email}</span>
      {m.name ? <span className="muted"> {m.email}</span> : null}
      <span className="row member-badges">
        {meId && m.id === meId ? <span className="badge">You</span> : null}
        {m.owner ? <span className="badge">Owner</span> : null}
        {m.invited ? (
          <span className="badge" title="They were invited by email and have not set up their account yet">
            Invited, not signed up yet
          </span>
        ) : null}
      </span>
    </div>
  );
}

/** A change to a member that runs at once, with its error beside it. */
function useChange(onChanged: () => void) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const run = async (f: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await f();
      onChanged();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run };
}

function RoleCell({ sdk, projectId, m, meId, onChanged }: { sdk: Sdk; projectId: string; m: Member; meId: string | undefined; onChanged: () => void }) {
  const c = useChange(onChanged);
  const locked = lockedReason(m, meId);
  if (locked) return <span title={locked}>{ROLE_LABELS[m.role]}</span>;
  return (
    <div className="field">
      <select
        aria-label={`Role of ${m.email || m.id}`}
        value={m.role}
        disabled={c.busy}
        aria-busy={c.busy || undefined}
        onChange={(e) => void c.run(() => sdk.updateProjectUser(projectId, m.id, roleFlags(e.target.value as MemberRole)))}
      >
        {ROLES.map((r) => (
          <option key={r} value={r}>
            {ROLE_LABELS[r]}
          </option>
        ))}
      </select>
      <ErrorBox error={c.error} title="Role not changed" />
    </div>
  );
}

function FlagsCell({ sdk, projectId, m, onChanged }: { sdk: Sdk; projectId: string; m: Member; onChanged: () => void }) {
  const c = useChange(onChanged);
  const who = m.email || m.id;
  if (m.role === "admin") return <span className="muted">Everything (admin)</span>;
  return (
    <div className="cell-checks">
      <Field
        label="Create rooms"
        aria-label={`${who} may create rooms`}
        type="checkbox"
        checked={m.canCreateRooms}
        disabled={c.busy}
        onChange={(e) => void c.run(() => sdk.updateProjectUser(projectId, m.id, { can_create_rooms: e.target.checked }))}
      />
      <Field
        label="Use the LLM proxy"
        aria-label={`${who} may use the LLM proxy`}
        type="checkbox"
        checked={m.canUseLlmProxy}
        disabled={c.busy}
        onChange={(e) => void c.run(() => sdk.updateProjectUser(projectId, m.id, { can_use_llm_proxy: e.target.checked }))}
      />
      <ErrorBox error={c.error} title="Not changed" />
    </div>
  );
}

export function InviteForm({ sdk, projectId, onInvited }: { sdk: Pick<Sdk, "addUserToProject">; projectId: string; onInvited: () => void }) {
  const [email, setEmail] = useState("");
  const [role, setRole] = useState<MemberRole>("member");
  const [canCreateRooms, setCanCreateRooms] = useState(false);
  const [canUseLlmProxy, setCanUseLlmProxy] = useState(false);
  const [tried, setTried] = useState(false);
  const admin = role === "admin";
  return (
    <Form
      submit="Invite"
      onSubmit={async () => {
        setTried(true);
        const body = inviteBody({ email, role, canCreateRooms, canUseLlmProxy });
        await sdk.addUserToProject(projectId, null, body);
        setEmail("");
        setTried(false);
        onInvited();
        return `Added ${body.email} as ${ROLE_LABELS[role].toLowerCase()}. Someone without an account yet gets an email invitation to set one up.`;
      }}
    >
      <Field label="Email" type="email" autoComplete="off" value={email} error={tried ? emailError(email) : null} onChange={(e) => setEmail(e.target.value)} />
      <Select label="Role" value={role} hint={ROLE_HINTS[role]} onChange={(e) => setRole(e.target.value as MemberRole)}>
        {ROLES.map((r) => (
          <option key={r} value={r}>
            {ROLE_LABELS[r]}
          </option>
        ))}
      </Select>
      <Field
        label="May create rooms"
        type="checkbox"
        checked={admin || canCreateRooms}
        disabled={admin}
        onChange={(e) => setCanCreateRooms(e.target.checked)}
      />
      <Field
        label="May use the LLM proxy"
        type="checkbox"
        checked={admin || canUseLlmProxy}
        disabled={admin}
        onChange={(e) => setCanUseLlmProxy(e.target.checked)}
      />
    </Form>
  );
}
