import { useId, useState } from "react";
import { RoomConnection, type Meshagent, type ServiceSpec, type ServiceStatus, type ServiceTemplateSpec } from "@meshagent-oss/sdk";
import { api, errorText } from "../api";
import { useAsync, useDebounced, usePoll } from "../hooks";
import type { PageProps } from "../pages";
import { useProject } from "../project";
import { Link, navigate, useLocation } from "../router";
import { editableService, formatValues, parseValues, serviceKind, stateTone, VALIDATE_DELAY_MS } from "../services-lib";
import { AsyncView, ConfirmButton, Empty, Field, Form, Page, Table, TextArea, When } from "../ui";

/** What the service editor needs of the SDK. */
export type EditorClient = Pick<
  Meshagent,
  "renderTemplate" | "createServiceFromTemplate" | "createRoomServiceFromTemplate" | "updateServiceFromTemplate" | "updateRoomServiceFromTemplate"
>;

/** The path of a service's page (a room's own service carries its room in the query). */
export function servicePath(projectId: string, id: string, room?: string | null) {
  return `/projects/${encodeURIComponent(projectId)}/services/${encodeURIComponent(id)}${room ? `?room=${encodeURIComponent(room)}` : ""}`;
}

export default function ServicePage({ params }: PageProps) {
  const { can } = useProject();
  const { query } = useLocation();
  const room = query.get("room") || null;
  const projectId = params.project;
  const id = params.service;
  const spec = useAsync(
    async (signal) => {
      if (!can.developer) return null;
      return room ? api().getRoomService(projectId, room, id, { signal }) : api().getService(projectId, id, { signal });
    },
    [projectId, room, id, can.developer],
  );
  const back = `/projects/${encodeURIComponent(projectId)}/services${room ? `?room=${encodeURIComponent(room)}` : ""}`;
  return (
    <Page title={spec.data?.metadata.name ?? "Service"}>
      <p>
        <Link to={back}>All services</Link>
      </p>
      {!can.developer ? (
        <Empty title="Services are for admins and developers.">Ask a project admin for the developer role to see and change services.</Empty>
      ) : (
        <AsyncView state={spec}>
          {(s) => (s ? <ServiceView spec={s} projectId={projectId} room={room} onSaved={spec.reload} onDeleted={() => navigate(back)} /> : null)}
        </AsyncView>
      )}
    </Page>
  );
}

function ServiceView({
  spec,
  projectId,
  room,
  onSaved,
  onDeleted,
}: {
  spec: ServiceSpec;
  projectId: string;
  room: string | null;
  onSaved: () => void;
  onDeleted: () => void;
}) {
  const client = api();
  const start = editableService(spec);
  return (
    <>
      <dl className="grid">
        <div>
          <dt className="muted">Id</dt>
          <dd>
            <code>{spec.id}</code>
          </dd>
        </div>
        <div>
          <dt className="muted">Where</dt>
          <dd>{room ? `Room ${room} only` : "The project: every room"}</dd>
        </div>
        <div>
          <dt className="muted">Runs</dt>
          <dd>{serviceKind(spec)}</dd>
        </div>
      </dl>
      {spec.metadata.description ? <p>{spec.metadata.description}</p> : null}

      <h2>Status</h2>
      <StatusView client={client} projectId={projectId} room={room} serviceId={spec.id} />
      <p className="muted">
        Restart stops the service's container in that room and starts it again (the room's <code>services.restart</code>, through a short connection to the
        room). Saving the service restarts it in every room where it runs.
      </p>

      <h2>Definition</h2>
      {"error" in start ? (
        <>
          <p role="note">{start.error}</p>
          <pre aria-label="The service as JSON">{JSON.stringify(spec, null, 2)}</pre>
        </>
      ) : (
        <>
          {start.fromTemplate ? null : (
            <p className="muted">
              This service was stored as a ServiceSpec; here it is as the equivalent ServiceTemplate. Saving stores it from this template.
            </p>
          )}
          <ServiceEditor
            key={spec.id}
            client={client}
            projectId={projectId}
            room={room}
            serviceId={spec.id}
            initialYaml={start.yaml}
            initialValues={start.values}
            onSaved={onSaved}
          />
        </>
      )}

      <h2>Delete</h2>
      <p className="muted">Deleting stops the service in every room where it runs.</p>
      <ConfirmButton
        label="Delete service"
        confirm={`Delete ${spec.metadata.name}?`}
        onConfirm={async () => {
          await (room ? client.deleteRoomService(projectId, room, spec.id) : client.deleteService(projectId, spec.id));
          onDeleted();
        }}
      />
    </>
  );
}

type StatusClient = Pick<Meshagent, "getServiceStatus" | "getRoomServiceStatus" | "connectRoom">;

/** A service's state in which it runs in a room's live session (and so can be restarted there). */
const RUNNING = new Set(["pending", "pulling", "starting", "running", "restarting", "failed"]);

/**
 * Restarts a service in one room. The REST API has no restart: the room's `services` toolkit does it, so this joins
 * the room for the call (connectRoom, then RoomConnection), calls `services.restart`, and leaves.
 */
export async function restartInRoom(
  client: Pick<Meshagent, "connectRoom">,
  projectId: string,
  roomName: string,
  serviceId: string,
  connect = RoomConnection.connect,
) {
  const info = await client.connectRoom(projectId, roomName);
  const room = await connect({ url: info.room_url, token: info.jwt });
  try {
    await room.invoke("services", "restart", { service_id: serviceId });
  } finally {
    room.close();
  }
}

/** Where the service runs, polled with backoff: every room for a project service, the one room for a room's own. */
export function StatusView({ client, projectId, room, serviceId }: { client: StatusClient; projectId: string; room: string | null; serviceId: string }) {
  const status = usePoll(
    async (signal) =>
      room
        ? [await client.getRoomServiceStatus(projectId, room, serviceId, { signal })]
        : (await client.getServiceStatus(projectId, serviceId, { signal })).rooms,
    [projectId, room, serviceId],
    { minMs: 2000, maxMs: 30_000 },
  );
  return (
    <AsyncView
      state={status}
      empty={(rows) => (rows.length ? null : <Empty title="Not running in any room.">It starts when a room it belongs to has a session.</Empty>)}
    >
      {(rows) => (
        <Table
          caption="Status per room"
          rows={rows}
          rowKey={(r) => `${r.room_name}/${r.session_id ?? ""}`}
          columns={[
            {
              label: "Room",
              render: (r) => <Link to={`/projects/${encodeURIComponent(projectId)}/rooms/${encodeURIComponent(r.room_name)}`}>{r.room_name}</Link>,
            },
            { label: "State", render: (r) => <StateBadge state={r.state} /> },
            { label: "Restarts", className: "num", render: (r) => r.restart_count },
            { label: "Started", render: (r) => <When at={secs(r.started_at)} /> },
            { label: "Last exit", render: (r) => <LastExit s={r} /> },
            { label: "Last error", render: (r) => r.last_error ?? "—" },
            {
              label: "Actions",
              render: (r) =>
                r.session_id && RUNNING.has(r.state) ? (
                  <ConfirmButton
                    kind="secondary"
                    label="Restart"
                    confirm={`Restart it in ${r.room_name}?`}
                    onConfirm={() => restartInRoom(client, projectId, r.room_name, serviceId).then(status.reload)}
                  />
                ) : (
                  "—"
                ),
            },
          ]}
        />
      )}
    </AsyncView>
  );
}

const secs = (s: number | undefined) => (s === undefined ? undefined : s * 1000);

export function StateBadge({ state }: { state: string }) {
  return <span className={`badge ${stateTone(state)}`}>{state.replace("_", " ")}</span>;
}

function LastExit({ s }: { s: ServiceStatus }) {
  if (s.last_exit_code === undefined) return <span>—</span>;
  return (
    <span>
      code {s.last_exit_code}
      {s.last_exit_at ? (
        <>
          {" "}
          at <When at={secs(s.last_exit_at)} />
        </>
      ) : null}
    </span>
  );
}

// ── The YAML editor, checked by the server as you type ─────────────────────────────────────────────────────────

type Check = { kind: "empty" } | { kind: "values"; message: string } | { kind: "ok"; spec: ServiceTemplateSpec };

/**
 * The server's verdict on the YAML and values, VALIDATE_DELAY_MS after the last change: POST /templates/render
 * renders and strictly validates the template (nothing is stored). Older answers are dropped.
 */
export function useTemplateCheck(client: Pick<Meshagent, "renderTemplate">, yaml: string, valuesText: string) {
  const now = JSON.stringify([yaml, valuesText]);
  const settled = useDebounced(now, VALIDATE_DELAY_MS);
  const result = useAsync<Check>(
    async (signal) => {
      const [y, v] = JSON.parse(settled) as [string, string];
      if (!y.trim()) return { kind: "empty" };
      const values = parseValues(v);
      if ("error" in values) return { kind: "values", message: values.error };
      return { kind: "ok", spec: await client.renderTemplate(y, values.values, { signal }) };
    },
    [settled],
  );
  const checking = settled !== now || result.loading;
  let message = "";
  let bad = false;
  if (result.error) {
    message = errorText(result.error);
    bad = true;
  } else if (result.data?.kind === "values") {
    message = result.data.message;
    bad = true;
  } else if (result.data?.kind === "empty") {
    message = "Write the service's template above.";
    bad = true;
  } else if (result.data?.kind === "ok") message = describeRendered(result.data.spec);
  return { checking, message, bad };
}

function describeRendered(t: ServiceTemplateSpec): string {
  const vars = (t as { variables?: { name: string; optional?: boolean }[] }).variables ?? [];
  const v = vars.length ? `; variables: ${vars.map((x) => (x.optional ? `${x.name} (optional)` : x.name)).join(", ")}` : "";
  return `Valid: the service “${t.metadata.name}”${v}.`;
}

/**
 * A service as ServiceTemplate YAML with its template values, checked by the server as you type; saved through the
 * template routes (create, or update of `serviceId`), in the project or in `room`.
 */
export function ServiceEditor({
  client,
  projectId,
  room,
  serviceId,
  initialYaml,
  initialValues = {},
  onSaved,
}: {
  client: EditorClient;
  projectId: string;
  room?: string | null;
  serviceId?: string;
  initialYaml: string;
  initialValues?: Record<string, string>;
  onSaved: (spec: ServiceSpec, room: string | null) => void;
}) {
  const [yaml, setYaml] = useState(initialYaml);
  const [valuesText, setValuesText] = useState(() => formatValues(initialValues));
  const [target, setTarget] = useState(room ?? "");
  const check = useTemplateCheck(client, yaml, valuesText);
  const id = useId();
  return (
    <Form
      className="svc-editor"
      submit={serviceId ? "Save service" : "Create service"}
      onSubmit={async () => {
        const parsed = parseValues(valuesText);
        if ("error" in parsed) throw new Error(parsed.error);
        const values = parsed.values;
        const where = (serviceId ? room : target.trim()) || null;
        const saved = serviceId
          ? where
            ? await client.updateRoomServiceFromTemplate(projectId, where, serviceId, yaml, values)
            : await client.updateServiceFromTemplate(projectId, serviceId, yaml, values)
          : where
            ? await client.createRoomServiceFromTemplate(projectId, where, yaml, values)
            : await client.createServiceFromTemplate(projectId, yaml, values);
        onSaved(saved, where);
        return serviceId ? "Saved" : undefined;
      }}
    >
      <p id={`${id}-about`} className="muted">
        A ServiceTemplate in YAML (version v1, kind ServiceTemplate): metadata, agents, ports, files, container, external and variables. Jinja placeholders such
        as {"{{ name }}"} take the template values below.
      </p>
      <TextArea
        label="Service template (YAML)"
        className="code"
        value={yaml}
        onChange={(e) => setYaml(e.target.value)}
        aria-invalid={check.bad && !check.checking ? true : undefined}
        aria-describedby={`${id}-about ${id}-check`}
      />
      <div className="svc-check-wrap">
        <p id={`${id}-check`} className={`svc-check ${check.bad ? "bad" : "ok"}`} aria-live="polite" data-testid="template-check">
          {check.message}
        </p>
        {check.checking ? (
          <p className="muted" aria-hidden="true">
            Checking…
          </p>
        ) : null}
      </div>
      <TextArea
        label="Template values"
        hint="One name=value per line, for the template's variables (a value with a newline as a JSON string)."
        value={valuesText}
        onChange={(e) => setValuesText(e.target.value)}
        style={{ minHeight: "4.5rem" }}
        rows={3}
      />
      {serviceId ? null : (
        <Field
          label="Room (optional)"
          value={target}
          onChange={(e) => setTarget(e.target.value)}
          autoComplete="off"
          hint="Empty: a project service, in every room. A room name: a service of that room only."
        />
      )}
    </Form>
  );
}
