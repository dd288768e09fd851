import { useId, useMemo, useState } from "react";
import type { ScheduledTask } from "@meshagent-oss/sdk";
import { api } from "../api";
import { useAsync, useDebounced } from "../hooks";
import { emptyTaskForm, MISFIRE_POLICIES, previewSchedule, taskRequest, taskTarget, type TaskForm } from "../ops-lib";
import type { PageProps } from "../pages";
import { RoleGate } from "../project";
import { Link, setQuery, useLocation } from "../router";
import { AsyncView, ConfirmButton, Empty, Field, Form, Page, Pager, Select, Table, TextArea, When } from "../ui";
import { RoomField } from "./mailboxes";

const LIMIT = 50;

const zones = (): string[] => {
  try {
    return (Intl as unknown as { supportedValuesOf?: (k: string) => string[] }).supportedValuesOf?.("timeZone") ?? [];
  } catch {
    return [];
  }
};

const browserZone = () => {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch {
    return "UTC";
  }
};

/** The next runs of the schedule being typed, computed in the browser as you type (debounced). */
export function SchedulePreview({ schedule, timezone, once }: { schedule: string; timezone: string; once: boolean }) {
  const s = useDebounced(schedule, 400);
  const tz = useDebounced(timezone.trim() || "UTC", 400);
  const result = useMemo(() => (s.trim() ? previewSchedule(s, tz, Date.now(), 5, once) : null), [s, tz, once]);
  return (
    <div className="schedule-preview" aria-live="polite">
      <p className="hint">Next runs (estimated in your browser; the server checks the schedule when you save):</p>
      {!result ? (
        <p className="muted">Type a schedule to see when it runs.</p>
      ) : "error" in result ? (
        <p className="field-error">{result.error}</p>
      ) : (
        <ol className="runs">
          {result.times.map((t) => (
            <li key={t}>
              <When at={t} /> <span className="muted">({new Date(t).toISOString().replace(".000Z", "Z")})</span>
            </li>
          ))}
        </ol>
      )}
    </div>
  );
}

/** The fields of a scheduled task (create and edit). */
export function TaskFields({ projectId, form, set }: { projectId: string; form: TaskForm; set: (p: Partial<TaskForm>) => void }) {
  const id = useId();
  const allZones = useMemo(zones, []);
  return (
    <>
      <RoomField projectId={projectId} required value={form.room} onChange={(e) => set({ room: e.target.value })} hint="The room the task runs for." />
      <Field label="Name (optional)" value={form.name} onChange={(e) => set({ name: e.target.value })} hint="Unique within the room." maxLength={256} />
      <Field
        label="Schedule"
        required
        value={form.schedule}
        onChange={(e) => set({ schedule: e.target.value })}
        placeholder="0 9 * * 1-5"
        hint='A 5-field cron expression (minute hour day-of-month month day-of-week, e.g. "0 9 * * 1-5"), a nickname ("@daily") or an interval ("30 minutes").'
      />
      <Field
        label="Time zone"
        value={form.timezone}
        onChange={(e) => set({ timezone: e.target.value })}
        list={`${id}-zones`}
        autoComplete="off"
        hint={`The zone cron expressions are read in (IANA name). Yours: ${browserZone()}.`}
      />
      <datalist id={`${id}-zones`}>
        {allZones.map((z) => (
          <option key={z} value={z} />
        ))}
      </datalist>
      <SchedulePreview schedule={form.schedule} timezone={form.timezone} once={form.once} />
      <Select label="Target" value={form.target} onChange={(e) => set({ target: e.target.value as TaskForm["target"] })}>
        <option value="queue">Send a message to a room queue</option>
        <option value="container">Run a container</option>
      </Select>
      {form.target === "queue" ? (
        <>
          <Field label="Queue" required value={form.queue} onChange={(e) => set({ queue: e.target.value })} />
          <TextArea
            label="Payload (JSON object)"
            className="code"
            rows={4}
            value={form.payload}
            onChange={(e) => set({ payload: e.target.value })}
            hint="The message put on the queue; empty for {}."
          />
          <Field
            label="Storage write path (optional)"
            value={form.storagePath}
            onChange={(e) => set({ storagePath: e.target.value })}
            hint="A folder of the room's storage where each run also writes its message."
          />
        </>
      ) : (
        <>
          <Field label="Image" required value={form.image} onChange={(e) => set({ image: e.target.value })} placeholder="alpine:3.20" />
          <Field label="Command (optional)" value={form.command} onChange={(e) => set({ command: e.target.value })} />
        </>
      )}
      <Field type="checkbox" label="Active" checked={form.active} onChange={(e) => set({ active: e.target.checked })} hint="Off: paused." />
      <Field
        type="checkbox"
        label="Run once"
        checked={form.once}
        onChange={(e) => set({ once: e.target.checked })}
        hint="Runs at the next due time, then never again."
      />
      <Select
        label="Missed runs"
        value={form.misfirePolicy}
        onChange={(e) => set({ misfirePolicy: e.target.value })}
        hint="What happens to runs missed while the server was down."
      >
        {MISFIRE_POLICIES.map((p) => (
          <option key={p.value} value={p.value}>
            {p.label}
          </option>
        ))}
      </Select>
      {form.misfirePolicy === "catch_up" ? (
        <Field
          label="Catch-up limit"
          type="number"
          min={1}
          max={1000}
          value={form.catchUpMax}
          onChange={(e) => set({ catchUpMax: e.target.value })}
          hint="At most this many missed runs fire."
        />
      ) : null}
    </>
  );
}

export default function ScheduledTasksPage(_: PageProps) {
  return (
    <RoleGate need="developer" title="Scheduled tasks" what="scheduled tasks">
      {({ project }) => <ScheduledTasks projectId={project.id} />}
    </RoleGate>
  );
}

function ScheduledTasks({ projectId }: { projectId: string }) {
  const { query } = useLocation();
  const offset = Math.max(0, Number(query.get("offset")) || 0);
  const [filterText, setFilterText] = useState(query.get("q") ?? "");
  const filter = useDebounced(filterText.trim(), 300);
  const list = useAsync(
    (signal) =>
      api()
        .listScheduledTasks(projectId, { limit: LIMIT, offset, ...(filter ? { filter } : {}) }, { signal })
        .page(),
    [projectId, offset, filter],
  );
  const [form, setForm] = useState<TaskForm>(emptyTaskForm);
  const [created, setCreated] = useState<ScheduledTask | null>(null);
  const base = `/projects/${encodeURIComponent(projectId)}/scheduled-tasks`;

  return (
    <Page title="Scheduled tasks">
      <p className="muted">A scheduled task puts a message on a room queue, or runs a container, on a cron schedule or an interval.</p>
      {created ? (
        <p className="ok" role="status">
          Created <Link to={`${base}/${encodeURIComponent(created.id)}`}>{created.spec.metadata.name ?? created.id}</Link>
          {created.next_run_at ? (
            <>
              ; it runs next at <When at={created.next_run_at} />
            </>
          ) : null}
          .
        </p>
      ) : null}
      <div className="row">
        <Field
          label="Filter"
          type="search"
          value={filterText}
          placeholder="id, name, queue, schedule or room"
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
            <Empty title={`No task matches "${filter}".`}>Try another filter.</Empty>
          ) : (
            <Empty title="No scheduled tasks yet.">Create one below to run something on a schedule.</Empty>
          )
        }
      >
        {(p) => (
          <>
            <Table<ScheduledTask>
              caption="Scheduled tasks"
              rows={p.items}
              rowKey={(t) => t.id}
              columns={[
                { label: "Task", render: (t) => <Link to={`${base}/${encodeURIComponent(t.id)}`}>{t.spec.metadata.name ?? t.id}</Link> },
                { label: "Room", render: (t) => t.room_name },
                {
                  label: "Schedule",
                  render: (t) => (
                    <>
                      <code>{t.schedule}</code>
                      {t.timezone && t.timezone !== "UTC" ? <span className="muted"> ({t.timezone})</span> : null}
                      {t.once ? <span className="muted"> once</span> : null}
                    </>
                  ),
                },
                { label: "Target", render: (t) => taskTarget(t) },
                { label: "State", render: (t) => <span className={`badge ${t.active ? "ok" : ""}`}>{t.active ? "Active" : "Paused"}</span> },
                { label: "Next run", render: (t) => <When at={t.next_run_at} /> },
                {
                  label: "Last run",
                  render: (t) =>
                    t.last_start_time ? (
                      <>
                        <When at={t.last_start_time} />{" "}
                        {t.last_status ? <span className={`badge ${t.last_status === "failed" ? "bad" : "ok"}`}>{t.last_status}</span> : null}
                      </>
                    ) : (
                      "never"
                    ),
                },
                {
                  label: "Actions",
                  render: (t) => (
                    <ConfirmButton
                      label="Delete"
                      confirm={`Delete the task ${t.spec.metadata.name ?? t.id} and its run history?`}
                      onConfirm={async () => {
                        await api().deleteScheduledTask(projectId, t.id);
                        list.reload();
                      }}
                    />
                  ),
                },
              ]}
            />
            <Pager offset={offset} limit={LIMIT} count={p.items.length} more={p.next !== undefined} onChange={(o) => setQuery({ offset: o || null })} />
          </>
        )}
      </AsyncView>

      <h2>Create a scheduled task</h2>
      <div className="card">
        <Form
          className="ops-form"
          submit="Create scheduled task"
          onSubmit={async () => {
            const r = taskRequest(form);
            const res = await api().createScheduledTask(projectId, r.room, r.spec, r.options);
            setCreated(res.task);
            setForm(emptyTaskForm());
            list.reload();
            return `Created ${res.task.spec.metadata.name ?? res.task_id}; it is listed above.`;
          }}
        >
          <TaskFields projectId={projectId} form={form} set={(p) => setForm((f) => ({ ...f, ...p }))} />
        </Form>
      </div>
    </Page>
  );
}
