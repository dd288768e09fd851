import { useMemo, useState } from "react";
import { api } from "../api";
import { Chart } from "../chart";
import { usePoll } from "../hooks";
import { elapsed, excerpt, metricCharts, participantsText } from "../ops-lib";
import type { PageProps } from "../pages";
import { RoleGate } from "../project";
import { Link } from "../router";
import { AsyncView, ConfirmButton, Empty, Page, Pager, Select, Table, When } from "../ui";
import { formatDuration, layoutWaterfall, waterfallTicks, type Waterfall as WaterfallData } from "../waterfall-lib";

interface SessionDetail {
  id: string;
  room_id: string | null;
  room_name: string;
  created_at: string;
  ended_at: string | null;
  is_active: boolean;
  participants: Record<string, number>;
  participant_seconds?: number;
  end_reason?: string | null;
  participant_list?: { id: string; name: string; role: string; joined_at: string; left_at: string | null }[];
}

interface SessionEvent {
  type: string;
  data: unknown;
  created_at: string;
}

const EVENTS_PAGE = 50;
const MAX_INDENT = 12;

export default function SessionPage({ params }: PageProps) {
  return (
    <RoleGate need="developer" title="Session" what="sessions">
      {({ project }) => <SessionView projectId={project.id} sessionId={params.session} />}
    </RoleGate>
  );
}

function SessionView({ projectId, sessionId }: { projectId: string; sessionId: string }) {
  const slow = { minMs: 5000, maxMs: 60_000 };
  const session = usePoll(async (signal) => (await api().getSession(projectId, sessionId, { signal })) as unknown as SessionDetail, [projectId, sessionId], {
    minMs: 3000,
    maxMs: 60_000,
  });
  const events = usePoll((signal) => api().listSessionEvents(projectId, sessionId, { signal }), [projectId, sessionId], slow);
  const spans = usePoll((signal) => api().listSessionSpans(projectId, sessionId, { signal }), [projectId, sessionId], slow);
  const metrics = usePoll((signal) => api().listSessionMetrics(projectId, sessionId, { signal }), [projectId, sessionId], slow);
  const s = session.data;

  return (
    <Page title={s ? `Session of ${s.room_name}` : "Session"} actions={<Link to={`/projects/${encodeURIComponent(projectId)}/sessions`}>All sessions</Link>}>
      <AsyncView state={session}>{(s) => <Summary projectId={projectId} session={s} onEnded={session.reload} />}</AsyncView>

      <h2>Spans</h2>
      <AsyncView
        state={spans}
        empty={(l) => (l.length ? null : <Empty title="No spans.">Participants send spans with OpenTelemetry (POST /v1/traces) while the session runs.</Empty>)}
      >
        {(l) => <SpanWaterfall spans={l} />}
      </AsyncView>

      <h2>Metrics</h2>
      <AsyncView
        state={metrics}
        empty={(l) =>
          l.length ? null : <Empty title="No metrics.">The server records participants and messages; agents add theirs through POST /v1/metrics.</Empty>
        }
      >
        {(l) => <Metrics points={l} />}
      </AsyncView>

      <h2>Events</h2>
      <AsyncView state={events} empty={(l) => (l.length ? null : <Empty title="No events yet." />)}>
        {(l) => <Events events={l} />}
      </AsyncView>
    </Page>
  );
}

function Summary({ projectId, session: s, onEnded }: { projectId: string; session: SessionDetail; onEnded: () => void }) {
  return (
    <>
      <div className="card">
        <dl className="props">
          <dt>Room</dt>
          <dd>
            <Link to={`/projects/${encodeURIComponent(projectId)}/rooms/${encodeURIComponent(s.room_name)}`}>{s.room_name}</Link>
          </dd>
          <dt>State</dt>
          <dd>
            <span className={`badge ${s.is_active ? "ok" : ""}`}>{s.is_active ? "Live" : "Ended"}</span>
            {s.end_reason ? ` · ${s.end_reason}` : ""}
          </dd>
          <dt>Started</dt>
          <dd>
            <When at={s.created_at} />
          </dd>
          <dt>Ended</dt>
          <dd>{s.ended_at ? <When at={s.ended_at} /> : "still running"}</dd>
          <dt>Duration</dt>
          <dd>{elapsed(s.created_at, s.ended_at)}</dd>
          <dt>Participants</dt>
          <dd>{participantsText(s.participants)}</dd>
          {typeof s.participant_seconds === "number" ? (
            <>
              <dt>Participant time</dt>
              <dd>{formatDuration(s.participant_seconds * 1000)}</dd>
            </>
          ) : null}
          <dt>Session ID</dt>
          <dd>
            <code>{s.id}</code>
          </dd>
        </dl>
        {s.is_active ? (
          <ConfirmButton
            label="End session"
            confirm="End this session? Everyone in it is disconnected."
            onConfirm={async () => {
              await api().terminate(projectId, s.id);
              onEnded();
            }}
          />
        ) : null}
      </div>
      {s.participant_list?.length ? (
        <>
          <h2>Participants</h2>
          <Table
            caption="Participants"
            rows={s.participant_list}
            rowKey={(p) => `${p.id}-${p.joined_at}`}
            columns={[
              { label: "Name", render: (p) => p.name || p.id },
              { label: "Role", render: (p) => p.role },
              { label: "Joined", render: (p) => <When at={p.joined_at} /> },
              { label: "Left", render: (p) => (p.left_at ? <When at={p.left_at} /> : "still here") },
            ]}
          />
        </>
      ) : null}
    </>
  );
}

/** The spans as a waterfall: one row each, nested under its parent, its bar placed on the session's span range. */
export function SpanWaterfall({ spans }: { spans: Record<string, unknown>[] }) {
  const w: WaterfallData = useMemo(() => layoutWaterfall(spans), [spans]);
  const ticks = waterfallTicks(w.totalMs);
  return (
    <div className="table-wrap" role="region" aria-label="Span waterfall" tabIndex={0}>
      <table className="waterfall">
        <caption className="sr-only">
          {w.rows.length} spans nested by parent, over {formatDuration(w.totalMs)} from <When at={w.startMs} />; each row gives its start (from the first span)
          and its duration.
        </caption>
        <thead>
          <tr>
            <th scope="col">Span</th>
            <th scope="col" className="num">
              Start
            </th>
            <th scope="col" className="num">
              Duration
            </th>
            <th scope="col" className="wf-timeline">
              <span className="sr-only">Timeline</span>
              <div className="wf-ticks" aria-hidden="true">
                {ticks.map((t) => (
                  <span key={t.pct} className="wf-tick" style={{ left: `${t.pct}%` }}>
                    {t.label}
                  </span>
                ))}
              </div>
            </th>
          </tr>
        </thead>
        <tbody>
          {w.rows.map((r) => (
            <tr key={`${r.id}-${r.startMs}`}>
              <th scope="row" className="wf-name" style={{ paddingLeft: `${0.65 + Math.min(r.depth, MAX_INDENT) * 0.9}rem` }}>
                {r.depth ? <span className="sr-only">Level {r.depth + 1}: </span> : null}
                {r.name}
                {r.error ? <span className="badge bad">error</span> : null}
                {typeof r.span.participant_name === "string" && r.span.participant_name ? <span className="muted"> · {r.span.participant_name}</span> : null}
                <SpanAttributes span={r.span} />
              </th>
              <td className="num">+{formatDuration(r.offsetMs)}</td>
              <td className="num">{formatDuration(r.durationMs)}</td>
              <td className="wf-timeline">
                <div className="track" aria-hidden="true">
                  <div className={`bar${r.error ? " bad" : ""}`} style={{ left: `${r.leftPct}%`, width: `${r.widthPct}%` }} />
                </div>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function SpanAttributes({ span }: { span: Record<string, unknown> }) {
  const attrs = span.span_attributes as Record<string, unknown> | undefined;
  const status = typeof span.status_message === "string" && span.status_message ? span.status_message : null;
  if (!status && (!attrs || !Object.keys(attrs).length)) return null;
  return (
    <details className="wf-attrs">
      <summary>Details</summary>
      {status ? <p>Status: {status}</p> : null}
      {attrs && Object.keys(attrs).length ? <pre>{JSON.stringify(attrs, null, 2)}</pre> : null}
    </details>
  );
}

function Metrics({ points }: { points: Record<string, unknown>[] }) {
  const charts = useMemo(() => metricCharts(points), [points]);
  if (!charts.length) return <Empty title="No chartable metrics." />;
  return (
    <div className="grid chart-grid">
      {charts.map((c) => (
        <Chart key={c.name} title={`${c.name}${c.unit ? ` (${c.unit})` : ""}${c.kind ? `, ${c.kind}` : ""}`} data={c} unit={c.unit || undefined} />
      ))}
    </div>
  );
}

function Events({ events }: { events: SessionEvent[] }) {
  const [type, setType] = useState("");
  const [offset, setOffset] = useState(0);
  const types = useMemo(() => [...new Set(events.map((e) => e.type))].sort(), [events]);
  const shown = type ? events.filter((e) => e.type === type) : events;
  const page = shown.slice(offset, offset + EVENTS_PAGE);
  return (
    <>
      <div className="row">
        <Select
          label="Type"
          value={type}
          onChange={(e) => {
            setType(e.target.value);
            setOffset(0);
          }}
        >
          <option value="">All ({events.length})</option>
          {types.map((t) => (
            <option key={t} value={t}>
              {t}
            </option>
          ))}
        </Select>
      </div>
      <Table<SessionEvent & { i: number }>
        caption="Session events, in order"
        rows={page.map((e, i) => ({ ...e, i: offset + i }))}
        rowKey={(e) => String(e.i)}
        columns={[
          { label: "Time", render: (e) => <When at={e.created_at} /> },
          { label: "Type", render: (e) => <code>{e.type}</code> },
          {
            label: "Details",
            render: (e) => {
              const text = e.data === null || e.data === undefined ? "" : typeof e.data === "string" ? e.data : JSON.stringify(e.data);
              if (text.length <= 120) return <code className="ops-wrap event-data">{text || "—"}</code>;
              return (
                <details>
                  <summary>
                    <code className="ops-wrap event-data">{excerpt(text, 100)}</code>
                  </summary>
                  <pre>{JSON.stringify(e.data, null, 2)}</pre>
                </details>
              );
            },
          },
        ]}
      />
      <Pager offset={offset} limit={EVENTS_PAGE} count={page.length} more={offset + EVENTS_PAGE < shown.length} onChange={setOffset} />
    </>
  );
}
