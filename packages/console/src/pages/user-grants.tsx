import { useState } from "react";
import type { Meshagent, RoomGrant } from "@meshagent-oss/sdk";
import { api } from "../api";
import { useAsync } from "../hooks";
import type { PageProps } from "../pages";
import { useProject } from "../project";
import { describeScope, hasMore, PAGE_SIZE, useUrlPaging } from "../rooms-lib";
import { Link } from "../router";
import { AsyncView, Button, Empty, ErrorBox, Field, Loading, Page, Pager, Table } from "../ui";

type UserGrantsClient = Pick<Meshagent, "listUniqueUsersWithGrants" | "listRoomGrantsByUser">;
type GrantUser = Awaited<ReturnType<Meshagent["listUniqueUsersWithGrants"]>>[number];

/** How many of one user's grants a "Show rooms" loads at a time. */
const USER_PAGE = 100;

export default function UserGrantsPage({ params }: PageProps) {
  const { can } = useProject();
  return (
    <Page title="Room grants">
      {can.developer ? (
        <UserGrantsView client={api()} projectId={params.project} />
      ) : (
        <Empty title="Room grants are managed by project admins and developers.">
          Each room lists its own grants: open a room from <Link to={`/projects/${encodeURIComponent(params.project)}/rooms`}>Rooms</Link>.
        </Empty>
      )}
    </Page>
  );
}

/** Everyone who holds a room grant in the project, a page at a time, each with the rooms they may use. */
export function UserGrantsView({ client, projectId }: { client: UserGrantsClient; projectId: string }) {
  const { offset, filter, text, setText, setOffset } = useUrlPaging();
  const users = useAsync(
    (signal) =>
      client.listUniqueUsersWithGrants(projectId, { limit: PAGE_SIZE, offset, ...(filter.trim() ? { filter: filter.trim() } : {}) }, { signal }).page(),
    [projectId, offset, filter],
  );
  return (
    <>
      <p className="muted">Who may join which room, and with what permissions. Add or change grants on each room's grants page.</p>
      <div className="row">
        <Field label="Filter by email or name" type="search" value={text} onChange={(e) => setText(e.target.value)} autoComplete="off" />
      </div>
      <AsyncView
        state={users}
        empty={(p) =>
          p.items.length ? null : filter ? (
            <Empty title={`No one with a grant matches “${filter}”.`}>
              <Button kind="secondary" onClick={() => setText("")}>
                Clear the filter
              </Button>
            </Empty>
          ) : offset > 0 ? (
            <Empty title="No one on this page.">
              <Button kind="secondary" onClick={() => setOffset(0)}>
                Back to the first page
              </Button>
            </Empty>
          ) : (
            <Empty title="No one holds a room grant yet.">
              Open a room from <Link to={`/projects/${encodeURIComponent(projectId)}/rooms`}>Rooms</Link> and add a grant on its grants page.
            </Empty>
          )
        }
      >
        {(p) => (
          <>
            <Table
              caption="People with room grants"
              rows={p.items}
              rowKey={(u) => u.user_id}
              columns={[
                { label: "User", render: (u) => <UserName user={u} /> },
                { label: "Rooms", className: "num", render: (u) => u.count },
                { label: "Grants", render: (u) => <UserRooms client={client} projectId={projectId} user={u} /> },
              ]}
            />
            <Pager offset={offset} limit={PAGE_SIZE} count={p.items.length} more={hasMore(offset, p.items.length, p.total)} onChange={setOffset} />
          </>
        )}
      </AsyncView>
    </>
  );
}

function UserName({ user }: { user: GrantUser }) {
  const name = [user.first_name, user.last_name].filter(Boolean).join(" ");
  return (
    <>
      {user.email}
      {name ? <div className="muted">{name}</div> : null}
    </>
  );
}

/** One user's grants, loaded when asked for (so the page costs one request however many users it lists). */
function UserRooms({ client, projectId, user }: { client: UserGrantsClient; projectId: string; user: GrantUser }) {
  const [open, setOpen] = useState(false);
  const id = `grants-${user.user_id}`;
  return (
    <>
      <Button kind="secondary" aria-expanded={open} aria-controls={open ? id : undefined} onClick={() => setOpen(!open)}>
        {open ? "Hide rooms" : "Show rooms"}
      </Button>
      {open ? (
        <div id={id}>
          <GrantList client={client} projectId={projectId} userId={user.user_id} />
        </div>
      ) : null}
    </>
  );
}

function GrantList({ client, projectId, userId }: { client: UserGrantsClient; projectId: string; userId: string }) {
  const [pages, setPages] = useState(1);
  const grants = useAsync(
    (signal) => client.listRoomGrantsByUser(projectId, userId, { limit: USER_PAGE * pages, offset: 0 }, { signal }).page(),
    [projectId, userId, pages],
  );
  if (grants.data === undefined) return grants.error ? <ErrorBox error={grants.error} /> : <Loading />;
  const { items, total } = grants.data;
  const base = `/projects/${encodeURIComponent(projectId)}/rooms`;
  return (
    <>
      <ErrorBox error={grants.error} title="Could not load more" />
      <ul>
        {items.map((g: RoomGrant) => (
          <li key={g.room.id}>
            <Link to={`${base}/${encodeURIComponent(g.room.name)}/grants`}>{g.room.name}</Link>: <span className="muted">{describeScope(g.permissions)}</span>
          </li>
        ))}
      </ul>
      {hasMore(0, items.length, total, USER_PAGE * pages) ? (
        <Button kind="secondary" busy={grants.loading} onClick={() => setPages(pages + 1)}>
          Show more rooms
        </Button>
      ) : null}
    </>
  );
}
