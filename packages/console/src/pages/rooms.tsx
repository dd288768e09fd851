import { useState } from "react";
import type { Meshagent, Room } from "@meshagent-oss/sdk";
import { api } from "../api";
import { useAsync } from "../hooks";
import type { PageProps } from "../pages";
import { useProject, type Abilities } from "../project";
import { hasMore, PAGE_SIZE, useUrlPaging } from "../rooms-lib";
import { Link } from "../router";
import { AsyncView, Button, ConfirmButton, Empty, Field, Form, Page, Pager, Table, When, type Column } from "../ui";

type RoomsClient = Pick<Meshagent, "listRooms" | "createRoom" | "updateRoom" | "deleteRoom">;

export default function RoomsPage({ params }: PageProps) {
  const { can } = useProject();
  return (
    <Page title="Rooms">
      <RoomsView client={api()} projectId={params.project} can={can} />
    </Page>
  );
}

/** The project's rooms: one server page at a time (PAGE_SIZE), filtered by name on the server. */
export function RoomsView({ client, projectId, can }: { client: RoomsClient; projectId: string; can: Abilities }) {
  const { offset, filter, text, setText, setOffset } = useUrlPaging();
  const rooms = useAsync(
    (signal) => client.listRooms(projectId, { limit: PAGE_SIZE, offset, ...(filter ? { filter } : {}) }, { signal }).page(),
    [projectId, offset, filter],
  );
  const base = `/projects/${encodeURIComponent(projectId)}/rooms`;

  return (
    <>
      {can.createRooms ? (
        <section className="card" aria-labelledby="new-room">
          <h2 id="new-room">New room</h2>
          <CreateRoom client={client} projectId={projectId} onCreated={rooms.reload} />
        </section>
      ) : null}

      <h2 id="room-list">All rooms</h2>
      <div className="row">
        <Field label="Filter by name" type="search" value={text} onChange={(e) => setText(e.target.value)} autoComplete="off" />
      </div>
      <AsyncView
        state={rooms}
        empty={(p) =>
          p.items.length > 0 ? null : filter ? (
            <Empty title={`No room matches “${filter}”.`}>
              <p>Try another part of the name.</p>
              <Button kind="secondary" onClick={() => setText("")}>
                Clear the filter
              </Button>
            </Empty>
          ) : offset > 0 ? (
            <Empty title="No rooms on this page.">
              <Button kind="secondary" onClick={() => setOffset(0)}>
                Back to the first page
              </Button>
            </Empty>
          ) : (
            <Empty title="No rooms yet.">
              {can.createRooms ? "Create one above: agents and people meet in rooms." : "Rooms you are granted access to will show here."}
            </Empty>
          )
        }
      >
        {(p) => (
          <>
            <p className="muted" aria-live="polite">
              {p.total === undefined ? `${p.items.length} rooms` : `${p.total} ${p.total === 1 ? "room" : "rooms"}${filter ? ` matching “${filter}”` : ""}`}
            </p>
            <Table caption="Rooms" rows={p.items} rowKey={(r) => r.id} columns={roomColumns(client, projectId, base, can, rooms.reload)} />
            <Pager offset={offset} limit={PAGE_SIZE} count={p.items.length} more={hasMore(offset, p.items.length, p.total)} onChange={setOffset} />
          </>
        )}
      </AsyncView>
    </>
  );
}

function roomColumns(client: RoomsClient, projectId: string, base: string, can: Abilities, reload: () => void): Column<Room>[] {
  const cols: Column<Room>[] = [
    { label: "Name", render: (r) => <Link to={`${base}/${encodeURIComponent(r.name)}`}>{r.name}</Link> },
    { label: "Created", render: (r) => <When at={r.created_at} /> },
  ];
  if (can.developer)
    cols.push({
      label: "Actions",
      render: (r) => <RoomActions client={client} projectId={projectId} room={r} grantsTo={`${base}/${encodeURIComponent(r.name)}/grants`} onChange={reload} />,
    });
  return cols;
}

function CreateRoom({ client, projectId, onCreated }: { client: RoomsClient; projectId: string; onCreated: () => void }) {
  const [name, setName] = useState("");
  return (
    <Form
      className="inline"
      submit="Create room"
      onSubmit={async () => {
        const room = await client.createRoom(projectId, name.trim());
        setName("");
        onCreated();
        return `Created ${room.name}`;
      }}
    >
      <Field
        label="Room name"
        required
        value={name}
        onChange={(e) => setName(e.target.value)}
        hint="1–63 characters: a–z, 0–9 and “-”, starting and ending with a letter or digit."
        autoComplete="off"
      />
    </Form>
  );
}

function RoomActions({
  client,
  projectId,
  room,
  grantsTo,
  onChange,
}: {
  client: RoomsClient;
  projectId: string;
  room: Room;
  grantsTo: string;
  onChange: () => void;
}) {
  const [renaming, setRenaming] = useState(false);
  const [name, setName] = useState(room.name);
  if (renaming)
    return (
      <Form
        className="inline"
        submit="Save name"
        onSubmit={async () => {
          await client.updateRoom(projectId, room.id, name.trim());
          setRenaming(false);
          onChange();
        }}
      >
        <Field label={`New name for ${room.name}`} required value={name} onChange={(e) => setName(e.target.value)} autoFocus autoComplete="off" />
        <Button kind="secondary" onClick={() => setRenaming(false)}>
          Cancel
        </Button>
      </Form>
    );
  return (
    <div className="actions">
      <Link to={grantsTo}>Grants</Link>
      <Button
        kind="secondary"
        onClick={() => {
          setName(room.name);
          setRenaming(true);
        }}
      >
        Rename
      </Button>
      <ConfirmButton
        label="Delete"
        confirm={`Delete ${room.name} and everything in it?`}
        onConfirm={() => client.deleteRoom(projectId, room.id).then(onChange)}
      />
    </div>
  );
}
