import { useState } from "react";
import type { Meshagent, ServiceSpec, ServiceStatus } from "@meshagent-oss/sdk";
import { api, errorText } from "../api";
import { usePoll } from "../hooks";
import type { PageProps } from "../pages";
import { useProject } from "../project";
import { useUrlText } from "../rooms-lib";
import { Link, navigate } from "../router";
import { NEW_SERVICE_YAML, serviceKind, stateTone, summarizeStatus } from "../services-lib";
import { AsyncView, Button, Empty, Field, Page, Table } from "../ui";
import { ServiceEditor, servicePath, StateBadge } from "./service";

type ServicesClient = Pick<Meshagent, "listServices" | "getServiceStatus" | "listRoomServices" | "getRoomServiceStatus">;

/** A service with its status: every room it ran in (project service) or the one room (a room's own); or why not. */
interface Row {
  spec: ServiceSpec;
  rooms?: ServiceStatus[];
  error?: unknown;
}

export default function ServicesPage({ params }: PageProps) {
  const { can } = useProject();
  const [creating, setCreating] = useState(false);
  const projectId = params.project;
  if (!can.developer)
    return (
      <Page title="Services">
        <Empty title="Services are for admins and developers.">Ask a project admin for the developer role to see and change services.</Empty>
      </Page>
    );
  const client = api();
  return (
    <Page title="Services" actions={creating ? null : <Button onClick={() => setCreating(true)}>New service</Button>}>
      {creating ? (
        <section className="card" id="new-service" aria-labelledby="new-service-title">
          <h2 id="new-service-title">New service</h2>
          <ServiceEditor
            client={client}
            projectId={projectId}
            initialYaml={NEW_SERVICE_YAML}
            onSaved={(spec, room) => navigate(servicePath(projectId, spec.id, room))}
          />
          <Button kind="secondary" onClick={() => setCreating(false)}>
            Cancel
          </Button>
        </section>
      ) : null}
      <ProjectServices client={client} projectId={projectId} onNew={() => setCreating(true)} />
      <RoomServices client={client} projectId={projectId} />
    </Page>
  );
}

/** Each service's status, fetched side by side; a failed status shows as such instead of failing the list. */
async function withStatus(specs: ServiceSpec[], status: (id: string) => Promise<ServiceStatus[]>): Promise<Row[]> {
  return Promise.all(
    specs.map((spec) =>
      status(spec.id).then(
        (rooms) => ({ spec, rooms }),
        (error: unknown) => ({ spec, error }),
      ),
    ),
  );
}

export function ProjectServices({ client, projectId, onNew }: { client: ServicesClient; projectId: string; onNew: () => void }) {
  const rows = usePoll(
    async (signal) =>
      withStatus(await client.listServices(projectId, { signal }), async (id) => (await client.getServiceStatus(projectId, id, { signal })).rooms),
    [projectId],
    { minMs: 3000, maxMs: 30_000 },
  );
  return (
    <section aria-labelledby="project-services">
      <h2 id="project-services">Project services</h2>
      <p className="muted">They run in every room of the project while the room has a session.</p>
      <AsyncView
        state={rows}
        empty={(r) =>
          r.length ? null : (
            <Empty title="No services yet.">
              <p>A service is a container, an external endpoint or agents that join the project's rooms.</p>
              <Button onClick={onNew}>New service</Button>
            </Empty>
          )
        }
      >
        {(r) => <ServiceTable caption="Project services" rows={r} projectId={projectId} room={null} />}
      </AsyncView>
    </section>
  );
}

/** The services of one room (their own, besides the project's), the room's name kept in the URL query. */
export function RoomServices({ client, projectId }: { client: ServicesClient; projectId: string }) {
  const { value: room, text, setText } = useUrlText("room");
  const rows = usePoll(
    async (signal) =>
      room
        ? withStatus(await client.listRoomServices(projectId, room, { signal }), async (id) => [
            await client.getRoomServiceStatus(projectId, room, id, { signal }),
          ])
        : [],
    [projectId, room],
    { minMs: 3000, maxMs: 30_000 },
  );
  return (
    <section aria-labelledby="room-services">
      <h2 id="room-services">Services of one room</h2>
      <p className="muted">A room can have services of its own, which run only there. Create one with “New service” and a room name.</p>
      <div className="row">
        <Field label="Room name" value={text} onChange={(e) => setText(e.target.value)} autoComplete="off" />
      </div>
      {room ? (
        <AsyncView state={rows} empty={(r) => (r.length ? null : <Empty title={`${room} has no services of its own.`}>Project services run there too.</Empty>)}>
          {(r) => <ServiceTable caption={`Services of ${room}`} rows={r} projectId={projectId} room={room} />}
        </AsyncView>
      ) : null}
    </section>
  );
}

function ServiceTable({ caption, rows, projectId, room }: { caption: string; rows: Row[]; projectId: string; room: string | null }) {
  return (
    <Table
      caption={caption}
      rows={rows}
      rowKey={(r) => r.spec.id}
      columns={[
        { label: "Name", render: (r) => <Link to={servicePath(projectId, r.spec.id, room)}>{r.spec.metadata.name}</Link> },
        { label: "Runs", render: (r) => serviceKind(r.spec) },
        { label: "Status", render: (r) => <StatusCell row={r} one={room !== null} /> },
        { label: "Description", render: (r) => r.spec.metadata.description ?? "—" },
      ]}
    />
  );
}

function StatusCell({ row, one }: { row: Row; one: boolean }) {
  if (row.error) return <span className="badge bad">status unknown: {errorText(row.error)}</span>;
  const rooms = row.rooms ?? [];
  if (one && rooms[0]) return <StateBadge state={rooms[0].state} />;
  const worst = rooms.find((r) => stateTone(r.state) === "bad") ?? rooms.find((r) => stateTone(r.state) === "ok");
  return <span className={`badge ${worst ? stateTone(worst.state) : ""}`}>{summarizeStatus(rooms)}</span>;
}
