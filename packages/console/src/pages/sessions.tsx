import { useState } from "react";
import type { RoomSession } from "@meshagent-oss/sdk";
import { api } from "../api";
import { useDebounced, usePoll } from "../hooks";
import { elapsed, participantsText } from "../ops-lib";
import type { PageProps } from "../pages";
import { RoleGate } from "../project";
import { Link, setQuery, useLocation } from "../router";
import { AsyncView, ConfirmButton, Empty, Field, Page, Select, Table, When, type Column } from "../ui";

export default function SessionsPage(_: PageProps) {
  return (
    <RoleGate need="developer" title="Sessions" what="sessions">
      {({ project }) => <Sessions projectId={project.id} />}
    </RoleGate>
  );
}

function columns(projectId: string, extra: Column<RoomSession>[] = []): Column<RoomSession>[] {
  const base = `/projects/${encodeURIComponent(projectId)}/sessions`;
  return [
    {
      label: "Session",
      render: (s) => (
        <Link to={`${base}/${encodeURIComponent(s.id)}`} aria-label={`Session of ${s.room_name} started ${new Date(s.created_at).toLocaleString()}`}>
          {s.room_name}
        </Link>
      ),
    },
    { label: "Started", render: (s) => <When at={s.created_at} /> },
    { label: "Duration", render: (s) => elapsed(s.created_at, s.ended_at) },
    { label: "Participants", render: (s) => participantsText(s.participants) },
    { label: "State", render: (s) => <span className={`badge ${s.is_active ? "ok" : ""}`}>{s.is_active ? "Live" : "Ended"}</span> },
    ...extra,
  ];
}

function Sessions({ projectId }: { projectId: string }) {
  const { query } = useLocation();
  const limit = [25, 50, 100, 250].includes(Number(query.get("limit"))) ? Number(query.get("limit")) : 25;
  const [roomText, setRoomText] = useState(query.get("room") ?? "");
  const room = useDebounced(roomText.trim(), 400);
  const active = usePoll((signal) => api().listActiveSessions(projectId, { signal }), [projectId], { minMs: 2000, maxMs: 30_000 });
  const recent = usePoll((signal) => api().listRecentSessions(projectId, { limit, ...(room ? { room_id: room } : {}) }, { signal }), [projectId, limit, room], {
    minMs: 3000,
    maxMs: 60_000,
  });

  return (
    <Page title="Sessions">
      <p className="muted">A session is one run of a room: from the first participant joining until the room empties. These lists refresh by themselves.</p>
      <h2>Live now</h2>
      <AsyncView state={active} empty={(l) => (l.length ? null : <Empty title="No live sessions.">A session starts when someone joins a room.</Empty>)}>
        {(l) => (
          <Table<RoomSession>
            caption="Live sessions"
            rows={l}
            rowKey={(s) => s.id}
            columns={columns(projectId, [
              {
                label: "Actions",
                render: (s) => (
                  <ConfirmButton
                    label="End session"
                    confirm={`End the session of ${s.room_name}? Everyone in it is disconnected.`}
                    onConfirm={async () => {
                      await api().terminate(projectId, s.id);
                      active.reload();
                      recent.reload();
                    }}
                  />
                ),
              },
            ])}
          />
        )}
      </AsyncView>

      <h2>Recent sessions</h2>
      <div className="row">
        <Field
          label="Room"
          type="search"
          value={roomText}
          placeholder="room name or id"
          onChange={(e) => {
            setRoomText(e.target.value);
            setQuery({ room: e.target.value || null });
          }}
        />
        <Select label="Show" value={String(limit)} onChange={(e) => setQuery({ limit: e.target.value === "25" ? null : e.target.value })}>
          {[25, 50, 100, 250].map((n) => (
            <option key={n} value={n}>
              {n} latest
            </option>
          ))}
        </Select>
      </div>
      <AsyncView
        state={recent}
        empty={(l) =>
          l.length ? null : <Empty title={room ? `No sessions of "${room}".` : "No sessions yet."}>Sessions appear here once a room has been used.</Empty>
        }
      >
        {(l) => <Table<RoomSession> caption="Recent sessions, newest first" rows={l} rowKey={(s) => s.id} columns={columns(projectId)} />}
      </AsyncView>
    </Page>
  );
}
