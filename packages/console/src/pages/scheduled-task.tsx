import { useState } from "react";
import type { ScheduledTask, ScheduledTaskRun } from "@meshagent-oss/sdk";
import { api } from "../api";
import { useAsync, usePoll } from "../hooks";
import { MISFIRE_POLICIES, taskFormOf, taskRequest, taskTarget, type TaskForm } from "../ops-lib";
import type { PageProps } from "../pages";
import { RoleGate } from "../project";
import { Link, navigate } from "../router";
import { AsyncView, Button, ConfirmButton, Empty, ErrorBox, Form, Page, Pager, Table, When } from "../ui";
import { TaskFields } from "./scheduled-tasks";

const RUNS = 20;

export default function ScheduledTaskPage({ params }: PageProps) {
  return (
    <RoleGate need="developer" title="Scheduled task" what="scheduled tasks">
      {({ project }) => <TaskView projectId={project.id} taskId={params.task} />}
    </RoleGate>
  );
}

function TaskView({ projectId, taskId }: { projectId: string; taskId: string }) {
  const task = useAsync((signal) => api().getScheduledTask(projectId, taskId, { signal }), [projectId, taskId]);
  const list = `/projects/${encodeURIComponent(projectId)}/scheduled-tasks`;
  const t = task.data;
  return (
    <Page
      title={t ? `Scheduled task ${t.spec.metadata.name ?? t.id}` : "Scheduled task"}
      actions={
        <>
          {t ? <PauseButton projectId={projectId} task={t} onDone={task.reload} /> : null}
          <Link to={list}>All scheduled tasks</Link>
        </>
      }
    >
      <AsyncView state={task}>
        {(t) => (
          <>
            <Details task={t} />
            <h2>Next runs</h2>
            <NextRuns projectId={projectId} task={t} />
            <h2>Edit</h2>
            <div className="card">
              <EditTask key={t.updated_at} projectId={projectId} task={t} onSaved={task.reload} />
            </div>
          </>
        )}
      </AsyncView>
      <h2>Run history</h2>
      <Runs projectId={projectId} taskId={taskId} />
      {t ? (
        <>
          <h2>Delete</h2>
          <ConfirmButton
            label="Delete task"
            confirm="Delete this task and its run history?"
            onConfirm={async () => {
              await api().deleteScheduledTask(projectId, taskId);
              navigate(list);
            }}
          />
        </>
      ) : null}
    </Page>
  );
}

function PauseButton({ projectId, task, onDone }: { projectId: string; task: ScheduledTask; onDone: () => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  return (
    <>
      <Button
        kind="secondary"
        busy={busy}
        onClick={async () => {
          setBusy(true);
          setError(null);
          try {
            await api().updateScheduledTask(projectId, task.id, { ...task.spec, active: !task.active });
            onDone();
          } catch (e) {
            setError(e);
          } finally {
            setBusy(false);
          }
        }}
      >
        {task.active ? "Pause" : "Resume"}
      </Button>
      <ErrorBox error={error} title={task.active ? "Not paused" : "Not resumed"} />
    </>
  );
}

function Details({ task: t }: { task: ScheduledTask }) {
  return (
    <div className="card">
      <dl className="props">
        <dt>ID</dt>
        <dd>
          <code>{t.id}</code>
        </dd>
        <dt>Room</dt>
        <dd>{t.room_name}</dd>
        <dt>State</dt>
        <dd>
          <span className={`badge ${t.active ? "ok" : ""}`}>{t.active ? "Active" : "Paused"}</span>
          {t.once ? " · runs once" : ""}
        </dd>
        <dt>Schedule</dt>
        <dd>
          <code>{t.schedule}</code> in {t.timezone}
        </dd>
        <dt>Target</dt>
        <dd>{taskTarget(t)}</dd>
        {t.queue_name ? (
          <>
            <dt>Payload</dt>
            <dd>
              <code className="ops-wrap">{JSON.stringify(t.payload)}</code>
            </dd>
          </>
        ) : null}
        {t.storage_write_path ? (
          <>
            <dt>Storage write path</dt>
            <dd>
              <code>{t.storage_write_path}</code>
            </dd>
          </>
        ) : null}
        <dt>Missed runs</dt>
        <dd>
          {MISFIRE_POLICIES.find((p) => p.value === t.misfire_policy)?.label ?? t.misfire_policy}
          {t.misfire_policy === "catch_up" ? ` (at most ${t.catch_up_max})` : ""}
        </dd>
        <dt>Next run</dt>
        <dd>
          <When at={t.next_run_at} />
        </dd>
        <dt>Last run</dt>
        <dd>
          {t.last_start_time ? (
            <>
              <When at={t.last_start_time} /> {t.last_status ? `· ${t.last_status}` : ""} {t.last_return_message ? `· ${t.last_return_message}` : ""}
            </>
          ) : (
            "never"
          )}
        </dd>
        <dt>Created</dt>
        <dd>
          <When at={t.created_at} />
        </dd>
        <dt>Updated</dt>
        <dd>
          <When at={t.updated_at} />
        </dd>
      </dl>
    </div>
  );
}

function NextRuns({ projectId, task }: { projectId: string; task: ScheduledTask }) {
  const preview = useAsync((signal) => api().previewScheduledTask(projectId, task.id, 10, { signal }), [projectId, task.id, task.updated_at]);
  return (
    <AsyncView
      state={preview}
      empty={(p) =>
        p.next_runs.length ? null : <Empty title="No runs ahead.">{p.once ? "This one-time task has run." : "The schedule never comes due again."}</Empty>
      }
    >
      {(p) => (
        <>
          {!p.active ? <p className="muted">Paused: these are the times it would run if resumed now.</p> : null}
          <ol className="runs">
            {p.next_runs.map((r) => (
              <li key={r}>
                <When at={r} /> <span className="muted">({r})</span>
              </li>
            ))}
          </ol>
        </>
      )}
    </AsyncView>
  );
}

function EditTask({ projectId, task, onSaved }: { projectId: string; task: ScheduledTask; onSaved: () => void }) {
  const [form, setForm] = useState<TaskForm>(() => taskFormOf(task));
  return (
    <Form
      className="ops-form"
      submit="Save changes"
      onSubmit={async () => {
        const r = taskRequest(form, task.spec);
        await api().updateScheduledTask(projectId, task.id, r.spec, { ...r.options, ...(r.room !== task.room_name ? { room_name: r.room } : {}) });
        onSaved();
        return "Saved.";
      }}
    >
      <TaskFields projectId={projectId} form={form} set={(p) => setForm((f) => ({ ...f, ...p }))} />
    </Form>
  );
}

function Runs({ projectId, taskId }: { projectId: string; taskId: string }) {
  const [offset, setOffset] = useState(0);
  const runs = usePoll((signal) => api().listScheduledTaskRuns(projectId, taskId, { limit: RUNS, offset }, { signal }).page(), [projectId, taskId, offset], {
    minMs: 2000,
    maxMs: 30_000,
  });
  return (
    <AsyncView state={runs} empty={(p) => (p.items.length ? null : <Empty title="No runs yet.">Runs appear here when the task comes due.</Empty>)}>
      {(p) => (
        <>
          <Table<ScheduledTaskRun>
            caption="Runs, newest first"
            rows={p.items}
            rowKey={(r) => r.id}
            columns={[
              { label: "Run", className: "num", render: (r) => `#${r.id}` },
              { label: "Due", render: (r) => <When at={r.scheduled_time} /> },
              {
                label: "Status",
                render: (r) => <span className={`badge ${r.status === "failed" ? "bad" : r.status === "submitted" ? "ok" : ""}`}>{r.status}</span>,
              },
              { label: "Target", render: (r) => r.target },
              { label: "Attempts", className: "num", render: (r) => r.attempt_count },
              { label: "Started", render: (r) => <When at={r.started_at} /> },
              { label: "Completed", render: (r) => <When at={r.completed_at} /> },
              {
                label: "Result",
                render: (r) => (
                  <>
                    {r.error ? <span className="ops-wrap">{r.error}</span> : r.exit_code !== null ? `exit code ${r.exit_code}` : "—"}
                    {r.logs ? (
                      <details>
                        <summary>Logs</summary>
                        <pre className="log">{r.logs}</pre>
                      </details>
                    ) : null}
                  </>
                ),
              },
            ]}
          />
          <Pager offset={offset} limit={RUNS} count={p.items.length} more={p.next !== undefined} onChange={setOffset} />
        </>
      )}
    </AsyncView>
  );
}
