import { useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import { RoomConnection, RoomError, type RoomDocument, type RoomLog, type RoomParticipant, type RoomTool, type RoomToolkit } from "@meshagent-oss/sdk";
import { api, errorText } from "../api";
import { useAsync, usePoll } from "../hooks";
import type { PageProps } from "../pages";
import { useProject } from "../project";
import { Link } from "../router";
import { AsyncView, Button, ConfirmButton, Empty, Field, Loading, Page, Select, Table, TextArea, When } from "../ui";
import {
  appendCapped,
  breadcrumbs,
  connectedParticipants,
  docTree,
  documentCandidates,
  formatBytes,
  isThread,
  joinPath,
  logLine,
  MAX_PREVIEW_BYTES,
  presenceRows,
  previewKind,
  schemaExtensions,
  schemaRootTag,
  sortEntries,
  threadMessages,
  type DocNode,
  type LogLine,
  type StorageEntry,
  type XmlLike,
} from "../room-lib";
import { buildArguments, fieldHint, initialValues, optionText, resultText, toolForm, WHOLE_FIELD, type FieldValue, type ToolField } from "../tool-form-lib";

/** What the sections use of a room connection (a RoomConnection; tests pass a fake). */
export type Room = Pick<
  RoomConnection,
  | "participantId"
  | "sessionId"
  | "name"
  | "role"
  | "attributes"
  | "invoke"
  | "invokeJson"
  | "listToolkits"
  | "enableMessaging"
  | "offPresence"
  | "upload"
  | "streamLogs"
  | "openDocument"
  | "on"
>;

/** A room error's text with its code (RoomError), else the usual API error text. */
export function roomErrorText(e: unknown): string {
  if (e instanceof RoomError) return e.code !== undefined ? `${e.message} (code ${e.code})` : e.message;
  return errorText(e);
}

function RoomErrorBox({ error, title }: { error: unknown; title: string }) {
  if (!error) return null;
  return (
    <div className="error" role="alert">
      <strong>{title}</strong>
      <p>{roomErrorText(error)}</p>
    </div>
  );
}

type Conn = { state: "connecting" } | { state: "open"; room: RoomConnection } | { state: "failed"; error: unknown } | { state: "lost"; error: unknown };

/** A connection to the room for as long as the page is shown: api().connectRoom, then the room's WebSocket. */
function useRoomConnection(projectId: string, roomName: string) {
  const [conn, setConn] = useState<Conn>({ state: "connecting" });
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    let dead = false;
    let room: RoomConnection | null = null;
    setConn({ state: "connecting" });
    (async () => {
      const info = await api().connectRoom(projectId, roomName);
      const r = await RoomConnection.connect({ url: info.room_url, token: info.jwt });
      if (dead) return r.close();
      room = r;
      r.onClose((reason) => {
        if (!dead) setConn({ state: "lost", error: reason ?? new RoomError("the connection was closed") });
      });
      setConn({ state: "open", room: r });
    })().catch((error: unknown) => {
      if (!dead) setConn({ state: "failed", error });
    });
    return () => {
      dead = true;
      room?.close();
    };
  }, [projectId, roomName, attempt]);
  return { conn, retry: () => setAttempt((n) => n + 1) };
}

const SECTIONS = [
  { id: "participants", label: "Participants" },
  { id: "files", label: "Files" },
  { id: "queues", label: "Queues" },
  { id: "toolkits", label: "Toolkits" },
  { id: "documents", label: "Documents" },
  { id: "logs", label: "Developer logs" },
];

export default function RoomPage({ params }: PageProps) {
  const { can } = useProject();
  const { conn, retry } = useRoomConnection(params.project, params.room);
  const base = `/projects/${encodeURIComponent(params.project)}/rooms`;
  return (
    <Page
      title={`Room ${params.room}`}
      actions={
        <>
          <Link to={base}>All rooms</Link>
          {can.developer ? <Link to={`${base}/${encodeURIComponent(params.room)}/grants`}>Grants</Link> : null}
        </>
      }
    >
      {conn.state === "connecting" ? <Loading label="Connecting to the room…" /> : null}
      {conn.state === "failed" ? (
        <>
          <RoomErrorBox error={conn.error} title="Could not connect to the room" />
          <p className="muted">
            {can.developer
              ? "Check that the room exists and that the server is reachable, then try again."
              : "You need a grant on this room to open it: ask a project admin for one."}
          </p>
          <Button kind="secondary" onClick={retry}>
            Try again
          </Button>
        </>
      ) : null}
      {conn.state === "lost" ? (
        <>
          <RoomErrorBox error={conn.error} title="The connection to the room was lost" />
          <Button onClick={retry}>Reconnect</Button>
        </>
      ) : null}
      {conn.state === "open" ? <RoomWorkspace room={conn.room} projectId={params.project} developer={can.developer} /> : null}
    </Page>
  );
}

/** Every section of a connected room. */
export function RoomWorkspace({ room, projectId, developer }: { room: Room; projectId: string; developer: boolean }) {
  return (
    <>
      <p className="muted">
        Connected as <strong>{room.name || room.participantId}</strong> (role {room.role}, participant <code>{room.participantId}</code>).
      </p>
      <nav aria-label="Room sections">
        <ul className="room-nav">
          {SECTIONS.map((s) => (
            <li key={s.id}>
              <a href={`#${s.id}`}>{s.label}</a>
            </li>
          ))}
        </ul>
      </nav>
      <section aria-labelledby="participants">
        <h2 id="participants">Participants</h2>
        <Participants room={room} projectId={projectId} developer={developer} />
      </section>
      <section aria-labelledby="files">
        <h2 id="files">Files</h2>
        <Files room={room} />
      </section>
      <section aria-labelledby="queues">
        <h2 id="queues">Queues</h2>
        <Queues room={room} />
      </section>
      <section aria-labelledby="toolkits">
        <h2 id="toolkits">Toolkits</h2>
        <Toolkits room={room} />
      </section>
      <section aria-labelledby="documents">
        <h2 id="documents">Documents</h2>
        <Documents room={room} />
      </section>
      <section aria-labelledby="logs">
        <h2 id="logs">Developer logs</h2>
        <Logs room={room} />
      </section>
    </>
  );
}

// ------------------------------------------------------------------------------------------------------ participants

function Participants({ room, projectId, developer }: { room: Room; projectId: string; developer: boolean }) {
  const [others, setOthers] = useState<RoomParticipant[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  // Developers also see the session's record: participants that never turned presence on (agents, services).
  const session = usePoll(
    async (signal) => (developer && room.sessionId && projectId ? connectedParticipants(await api().getSession(projectId, room.sessionId, { signal })) : []),
    [room, projectId, developer],
    { minMs: 2000, maxMs: 30_000 },
  );
  const { reload } = session;
  useEffect(() => {
    let dead = false;
    const onPresence = (list: RoomParticipant[]) => {
      if (dead) return;
      setOthers([...list]);
      reload();
    };
    room.enableMessaging(onPresence).then(
      (list) => !dead && setOthers([...list]),
      (e: unknown) => !dead && setError(e),
    );
    return () => {
      dead = true;
      room.offPresence(onPresence);
    };
  }, [room, reload]);
  if (!others && !error) return <Loading label="Loading participants…" />;
  const rows = presenceRows({ id: room.participantId, name: room.name, role: room.role, attributes: room.attributes }, others ?? [], session.data ?? []);
  return (
    <>
      <RoomErrorBox error={error} title="Presence is not available" />
      {session.error ? <RoomErrorBox error={session.error} title="Could not load the session's participants" /> : null}
      <p className="muted" aria-live="polite">
        {rows.length === 1 ? "Only you are here. Agents and people that join the room show up at once." : `${rows.length} participants in the room.`}
        {developer ? "" : " Participants that have not turned presence on are not listed."}
      </p>
      <Table
        caption="Participants in the room"
        rows={rows}
        rowKey={(r) => r.id}
        columns={[
          {
            label: "Name",
            render: (r) => (
              <>
                {r.name} {r.you ? <span className="badge ok">you</span> : null}
              </>
            ),
          },
          { label: "Role", render: (r) => <span className="badge">{r.role}</span> },
          { label: "Presence", render: (r) => (r.live ? "live" : "connected (presence off)") },
          { label: "Participant id", render: (r) => <code>{r.id}</code> },
        ]}
      />
    </>
  );
}

// ------------------------------------------------------------------------------------------------------------ files

interface Preview {
  path: string;
  name: string;
  kind: "image" | "text";
  url?: string;
  text?: string;
  truncated?: boolean;
  error?: unknown;
}

async function downloadUrl(room: Room, path: string): Promise<string> {
  const r = await room.invokeJson<{ url?: unknown }>("storage", "download_url", { path });
  if (!r || typeof r.url !== "string") throw new Error("the server did not return a download URL");
  return r.url;
}

function Files({ room }: { room: Room }) {
  const [dir, setDir] = useState("");
  const list = useAsync(async () => sortEntries((await room.invokeJson<{ files: StorageEntry[] }>("storage", "list", { path: dir })).files), [room, dir]);
  const { reload } = list;
  useEffect(() => {
    const offs = ["storage.file.updated", "storage.file.deleted", "storage.file.moved"].map((t) => room.on(t, () => reload()));
    return () => offs.forEach((off) => off());
  }, [room, reload]);
  const [preview, setPreview] = useState<Preview | null>(null);
  const [actionError, setActionError] = useState<unknown>(null);

  const download = async (e: StorageEntry) => {
    setActionError(null);
    try {
      const url = await downloadUrl(room, joinPath(dir, e.name));
      const a = document.createElement("a");
      a.href = url;
      a.download = e.name;
      a.rel = "noopener";
      document.body.appendChild(a);
      a.click();
      a.remove();
    } catch (err) {
      setActionError(err);
    }
  };

  const show = async (e: StorageEntry) => {
    const path = joinPath(dir, e.name);
    const kind = previewKind(e.name);
    if (!kind) return;
    const p: Preview = { path, name: e.name, kind };
    setPreview(p);
    try {
      const url = await downloadUrl(room, path);
      if (kind === "image") return setPreview({ ...p, url });
      const res = await fetch(url, { headers: { range: `bytes=0-${MAX_PREVIEW_BYTES - 1}` } });
      if (!res.ok) throw new Error(`the download answered HTTP ${res.status}`);
      const bytes = new Uint8Array(await res.arrayBuffer());
      const cut = bytes.length > MAX_PREVIEW_BYTES ? bytes.subarray(0, MAX_PREVIEW_BYTES) : bytes;
      const truncated = bytes.length > MAX_PREVIEW_BYTES || (e.size ?? 0) > cut.length;
      setPreview({ ...p, url, text: new TextDecoder().decode(cut), truncated });
    } catch (err) {
      setPreview({ ...p, error: err });
    }
  };

  const remove = async (e: StorageEntry) => {
    await room.invoke("storage", "delete", { path: joinPath(dir, e.name), recursive: e.is_folder });
    if (preview?.path === joinPath(dir, e.name)) setPreview(null);
    reload();
  };

  const crumbs = breadcrumbs(dir);
  return (
    <>
      <Upload room={room} dir={dir} onUploaded={reload} />
      <nav aria-label="Folder" className="crumbs">
        <ol>
          {crumbs.map((c, i) => (
            <li key={c.path}>
              {i === crumbs.length - 1 ? (
                <span aria-current="location">{c.label}</span>
              ) : (
                <button type="button" className="linkish" onClick={() => setDir(c.path)}>
                  {c.label}
                </button>
              )}
            </li>
          ))}
        </ol>
        <Button kind="secondary" onClick={reload}>
          Refresh
        </Button>
      </nav>
      <RoomErrorBox error={actionError} title="The download failed" />
      <AsyncView
        state={{ ...list, error: list.error ? new Error(roomErrorText(list.error)) : undefined }}
        empty={(files) =>
          files.length ? null : (
            <Empty title={dir ? "This folder is empty." : "No files in this room yet."}>Upload one above, or let an agent write some.</Empty>
          )
        }
      >
        {(files) => (
          <Table
            caption={`Files in ${dir || "the room's root"}`}
            rows={files}
            rowKey={(f) => f.name}
            columns={[
              {
                label: "Name",
                render: (f) =>
                  f.is_folder ? (
                    <button type="button" className="linkish" onClick={() => setDir(joinPath(dir, f.name))} aria-label={`Open folder ${f.name}`}>
                      {f.name}/
                    </button>
                  ) : (
                    f.name
                  ),
              },
              { label: "Size", className: "num", render: (f) => (f.is_folder ? "folder" : formatBytes(f.size)) },
              { label: "Updated", render: (f) => <When at={f.updated_at ?? null} /> },
              {
                label: "Actions",
                render: (f) => (
                  <span className="row">
                    {f.is_folder ? null : (
                      <Button kind="secondary" onClick={() => void download(f)} aria-label={`Download ${f.name}`}>
                        Download
                      </Button>
                    )}
                    {!f.is_folder && previewKind(f.name) ? (
                      <Button kind="secondary" onClick={() => void show(f)} aria-label={`Preview ${f.name}`}>
                        Preview
                      </Button>
                    ) : null}
                    <ConfirmButton label="Delete" confirm={`Delete ${f.name}${f.is_folder ? " and everything in it" : ""}?`} onConfirm={() => remove(f)} />
                  </span>
                ),
              },
            ]}
          />
        )}
      </AsyncView>
      {preview ? <FilePreview preview={preview} onClose={() => setPreview(null)} /> : null}
    </>
  );
}

function FilePreview({ preview, onClose }: { preview: Preview; onClose: () => void }) {
  return (
    <section className="card preview" aria-labelledby="preview-title">
      <div className="row">
        <h3 id="preview-title">Preview: {preview.path}</h3>
        <Button kind="secondary" onClick={onClose}>
          Close the preview
        </Button>
      </div>
      {preview.error ? <RoomErrorBox error={preview.error} title="Could not load the preview" /> : null}
      {!preview.error && preview.kind === "image" && preview.url ? <img src={preview.url} alt={preview.name} /> : null}
      {!preview.error && preview.kind === "text" && preview.text !== undefined ? (
        <>
          <pre>{preview.text}</pre>
          {preview.truncated ? <p className="muted">Only the first {formatBytes(MAX_PREVIEW_BYTES)} are shown; download the file for all of it.</p> : null}
        </>
      ) : null}
      {!preview.error && !preview.url ? <Loading label="Loading the preview…" /> : null}
    </section>
  );
}

function Upload({ room, dir, onUploaded }: { room: Room; dir: string; onUploaded: () => void }) {
  const [overwrite, setOverwrite] = useState(false);
  const [progress, setProgress] = useState<{ name: string; sent: number; total: number } | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const onFile = async (input: HTMLInputElement) => {
    const file = input.files?.[0];
    if (!file) return;
    const path = joinPath(dir, file.name);
    setError(null);
    setDone(null);
    setProgress({ name: file.name, sent: 0, total: file.size });
    try {
      const bytes = new Uint8Array(await file.arrayBuffer());
      await room.upload(path, bytes, {
        overwrite,
        mimeType: file.type || undefined,
        onProgress: (sent, total) => setProgress({ name: file.name, sent, total }),
      });
      setDone(`Uploaded ${path} (${formatBytes(file.size)}).`);
      onUploaded();
    } catch (e) {
      setError(e);
    } finally {
      setProgress(null);
      input.value = "";
    }
  };
  return (
    <div className="card">
      <div className="row upload-row">
        <Field
          label="Upload a file"
          type="file"
          disabled={!!progress}
          onChange={(e) => void onFile(e.currentTarget)}
          hint={`Into ${dir || "the room's root"}.`}
        />
        <Field label="Replace a file with the same name" type="checkbox" checked={overwrite} onChange={(e) => setOverwrite(e.currentTarget.checked)} />
      </div>
      {progress ? (
        <p>
          <label>
            Uploading {progress.name}: {formatBytes(progress.sent)} of {formatBytes(progress.total)}{" "}
            <progress max={progress.total || 1} value={progress.sent} />
          </label>
        </p>
      ) : null}
      {done ? (
        <p className="ok" role="status">
          {done}
        </p>
      ) : null}
      <RoomErrorBox error={error} title="The upload failed" />
    </div>
  );
}

// ----------------------------------------------------------------------------------------------------------- queues

function Queues({ room }: { room: Room }) {
  const queues = usePoll(
    async () => {
      const r = await room.invokeJson<{ queues: { name: string; size: number }[] }>("queues", "list");
      return [...(r?.queues ?? [])].sort((a, b) => a.name.localeCompare(b.name));
    },
    [room],
    { minMs: 2000, maxMs: 30_000 },
  );
  return (
    <AsyncView
      state={{ ...queues, error: queues.error ? new Error(roomErrorText(queues.error)) : undefined }}
      empty={(q) => (q.length ? null : <Empty title="No queues yet.">A queue appears when a participant or a service sends its first message to it.</Empty>)}
    >
      {(q) => (
        <Table
          caption="Queues and their depth"
          rows={q}
          rowKey={(x) => x.name}
          columns={[
            { label: "Queue", render: (x) => <code>{x.name}</code> },
            { label: "Messages waiting", className: "num", render: (x) => x.size },
          ]}
        />
      )}
    </AsyncView>
  );
}

// --------------------------------------------------------------------------------------------------------- toolkits

function Toolkits({ room }: { room: Room }) {
  const kits = usePoll(() => room.listToolkits(), [room], { minMs: 3000, maxMs: 30_000 });
  return (
    <AsyncView
      state={{ ...kits, error: kits.error ? new Error(roomErrorText(kits.error)) : undefined }}
      empty={(k) =>
        k.length ? null : (
          <Empty title="No toolkits are hosted in this room.">
            An agent or service that joins the room and registers a toolkit shows up here, with a form for each tool.
          </Empty>
        )
      }
    >
      {(k) => (
        <>
          {k.map((kit) => (
            <ToolkitCard key={kit.name} room={room} kit={kit} />
          ))}
        </>
      )}
    </AsyncView>
  );
}

function ToolkitCard({ room, kit }: { room: Room; kit: RoomToolkit }) {
  const id = `toolkit-${kit.name}`;
  return (
    <section className="card" aria-labelledby={id}>
      <h3 id={id}>{kit.name}</h3>
      {kit.title && kit.title !== kit.name ? <p>{kit.title}</p> : null}
      {kit.description ? <p>{kit.description}</p> : null}
      <p className="muted">
        {kit.public === false ? "Private toolkit. " : ""}
        {kit.participantId ? (
          <>
            Hosted by participant <code>{kit.participantId}</code>.
          </>
        ) : null}
      </p>
      {kit.tools.length === 0 ? <p>This toolkit has no tools.</p> : kit.tools.map((t) => <ToolCall key={t.name} room={room} kit={kit} tool={t} />)}
    </section>
  );
}

/** One tool: a form from its input schema, a Call button, and the answer (or the server's error). */
export function ToolCall({ room, kit, tool }: { room: Pick<Room, "invoke">; kit: RoomToolkit; tool: RoomTool }) {
  const schemaKey = JSON.stringify(tool.inputSchema ?? null);
  const form = useMemo(() => toolForm(tool.inputSchema), [schemaKey]);
  const [values, setValues] = useState<Record<string, FieldValue>>(() => initialValues(form));
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<{ ok: true; kind: string; text: string } | { ok: false; error: unknown } | null>(null);
  useEffect(() => setValues(initialValues(form)), [form]);
  const set = (name: string, v: FieldValue) => setValues((s) => ({ ...s, [name]: v }));
  const id = `tool-${kit.name}-${tool.name}`;
  const onlyJson = !tool.inputTypes || tool.inputTypes.length === 0 || tool.inputTypes.includes("json");

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const built = buildArguments(form, values);
    setErrors(built.errors);
    if (!built.args) return;
    setBusy(true);
    setResult(null);
    try {
      const c = await room.invoke(kit.name, tool.name, built.args, kit.participantId ? { participantId: kit.participantId } : {});
      setResult({ ok: true, ...resultText(c) });
    } catch (err) {
      setResult({ ok: false, error: err });
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="form tool" aria-labelledby={id} onSubmit={(e) => void submit(e)} noValidate>
      <h4 id={id}>{tool.name}</h4>
      {tool.title && tool.title !== tool.name ? <p className="muted">{tool.title}</p> : null}
      {tool.description ? <p>{tool.description}</p> : null}
      {!onlyJson ? <p className="muted">This tool takes {tool.inputTypes!.join(", ")} input; the console sends JSON arguments.</p> : null}
      {form.whole ? (
        <TextArea
          label={WHOLE_FIELD}
          hint="The arguments, as a JSON object."
          value={String(values[WHOLE_FIELD] ?? "")}
          error={errors[WHOLE_FIELD]}
          onChange={(e) => set(WHOLE_FIELD, e.currentTarget.value)}
          rows={4}
        />
      ) : null}
      {form.fields.map((f) => (
        <ToolFieldInput key={f.name} field={f} value={values[f.name] ?? ""} error={errors[f.name]} onChange={(v) => set(f.name, v)} />
      ))}
      {!form.whole && form.fields.length === 0 ? <p className="muted">This tool takes no arguments.</p> : null}
      <div className="form-actions">
        <button type="submit" className="btn btn-primary" disabled={busy} aria-busy={busy || undefined}>
          Call
        </button>
      </div>
      <div role="status" aria-live="polite" className="tool-result">
        {busy ? <Loading label={`Calling ${tool.name}…`} /> : null}
        {result?.ok ? (
          <>
            <p className="muted">Result ({result.kind}):</p>
            <pre>{result.text}</pre>
          </>
        ) : null}
      </div>
      {result && !result.ok ? <RoomErrorBox error={result.error} title={`${tool.name} failed`} /> : null}
    </form>
  );
}

function ToolFieldInput({ field: f, value, error, onChange }: { field: ToolField; value: FieldValue; error?: string; onChange: (v: FieldValue) => void }) {
  const hint = fieldHint(f);
  switch (f.kind) {
    case "boolean":
      return <Field label={f.name} type="checkbox" hint={hint} checked={value === true} onChange={(e) => onChange(e.currentTarget.checked)} />;
    case "number":
    case "integer":
      return (
        <Field
          label={f.name}
          type="number"
          step={f.kind === "integer" ? 1 : "any"}
          inputMode={f.kind === "integer" ? "numeric" : "decimal"}
          hint={hint}
          error={error}
          value={String(value)}
          onChange={(e) => onChange(e.currentTarget.value)}
        />
      );
    case "enum":
      return (
        <Select label={f.name} hint={hint} value={String(value)} onChange={(e) => onChange(e.currentTarget.value)}>
          {f.required ? null : <option value="">(not set)</option>}
          {(f.options ?? []).map((o) => (
            <option key={optionText(o)} value={optionText(o)}>
              {optionText(o)}
            </option>
          ))}
        </Select>
      );
    case "json":
      return <TextArea label={f.name} hint={hint} error={error} rows={3} value={String(value)} onChange={(e) => onChange(e.currentTarget.value)} />;
    default:
      return f.multiline ? (
        <TextArea label={f.name} hint={hint} error={error} rows={3} value={String(value)} onChange={(e) => onChange(e.currentTarget.value)} />
      ) : (
        <Field label={f.name} hint={hint} error={error} value={String(value)} onChange={(e) => onChange(e.currentTarget.value)} />
      );
  }
}

// -------------------------------------------------------------------------------------------------------- documents

/** Folders the document search looks into at most, and how deep. */
const MAX_FOLDERS = 50;
const MAX_DEPTH = 4;

/** The room's sync documents: files with a `.schemas/<ext>.json` schema for their extension, and `.thread` files. */
async function findDocuments(room: Room): Promise<{ paths: string[]; partial: boolean }> {
  const list = async (path: string) => (await room.invokeJson<{ files: StorageEntry[] }>("storage", "list", { path })).files;
  const schemas = await list(".schemas").catch(() => [] as StorageEntry[]);
  const exts = schemaExtensions(schemas.filter((f) => !f.is_folder).map((f) => f.name));
  const files: string[] = [];
  const queue: { path: string; depth: number }[] = [{ path: "", depth: 0 }];
  let folders = 0;
  let partial = false;
  while (queue.length) {
    const { path, depth } = queue.shift()!;
    if (++folders > MAX_FOLDERS) {
      partial = true;
      break;
    }
    for (const e of await list(path)) {
      const p = joinPath(path, e.name);
      if (!e.is_folder) files.push(p);
      else if (p !== ".schemas") {
        if (depth + 1 <= MAX_DEPTH) queue.push({ path: p, depth: depth + 1 });
        else partial = true;
      }
    }
  }
  return { paths: documentCandidates(files, exts).sort(), partial };
}

function Documents({ room }: { room: Room }) {
  const found = useAsync(() => findDocuments(room), [room]);
  const [open, setOpen] = useState<string | null>(null);
  const [typed, setTyped] = useState("");
  return (
    <>
      <p className="muted">Sync documents open read-only here: the tree follows the document live as others edit it.</p>
      <AsyncView
        state={{ ...found, error: found.error ? new Error(roomErrorText(found.error)) : undefined }}
        empty={(d) =>
          d.paths.length ? null : (
            <Empty title="No sync documents found.">
              Documents are room files whose extension has a schema in <code>.schemas/</code> (and <code>.thread</code> files). Open one by its path below.
            </Empty>
          )
        }
      >
        {(d) => (
          <>
            <ul className="doc-list">
              {d.paths.map((p) => (
                <li key={p}>
                  <Button kind={open === p ? "primary" : "secondary"} aria-pressed={open === p} onClick={() => setOpen(open === p ? null : p)}>
                    {p}
                  </Button>
                </li>
              ))}
            </ul>
            {d.partial ? <p className="muted">The room has many folders: only the first {MAX_FOLDERS} were searched.</p> : null}
          </>
        )}
      </AsyncView>
      <form
        className="form inline"
        onSubmit={(e) => {
          e.preventDefault();
          if (typed.trim()) setOpen(typed.trim());
        }}
      >
        <Field label="Document path" value={typed} onChange={(e) => setTyped(e.currentTarget.value)} placeholder="threads/support.thread" />
        <Button type="submit" kind="secondary">
          Open
        </Button>
        <Button kind="secondary" onClick={found.reload}>
          Search again
        </Button>
      </form>
      {open ? <DocumentView key={open} room={room} path={open} onClose={() => setOpen(null)} /> : null}
    </>
  );
}

function DocumentView({ room, path, onClose }: { room: Room; path: string; onClose: () => void }) {
  const [tree, setTree] = useState<DocNode | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [view, setView] = useState<"tree" | "chat">(isThread(path) ? "chat" : "tree");
  useEffect(() => {
    let dead = false;
    let handle: RoomDocument | null = null;
    (async () => {
      // Yjs only here: the rest of the console never loads it.
      const Y = await import("yjs");
      const doc = new Y.Doc();
      const root = doc.get("xml", Y.XmlElement);
      let rootTag = "document";
      const render = () => {
        if (!dead) setTree(docTree(root as unknown as XmlLike, rootTag));
      };
      const h = await room.openDocument(
        path,
        (u) => {
          Y.applyUpdate(doc, u);
          render();
        },
        (e) => !dead && setError(e),
      );
      if (dead) return void h.close();
      handle = h;
      rootTag = schemaRootTag(h.schema);
      Y.applyUpdate(doc, h.state);
      render();
    })().catch((e: unknown) => !dead && setError(e));
    return () => {
      dead = true;
      void handle?.close();
    };
  }, [room, path]);
  const messages = useMemo(() => (tree ? threadMessages(tree) : []), [tree]);
  const chat = view === "chat" && (isThread(path) || messages.length > 0);
  return (
    <section className="card" aria-labelledby="doc-title">
      <div className="row">
        <h3 id="doc-title">{path}</h3>
        {isThread(path) || messages.length ? (
          <>
            <Button kind={chat ? "primary" : "secondary"} aria-pressed={chat} onClick={() => setView("chat")}>
              Chat view
            </Button>
            <Button kind={!chat ? "primary" : "secondary"} aria-pressed={!chat} onClick={() => setView("tree")}>
              Tree view
            </Button>
          </>
        ) : null}
        <Button kind="secondary" onClick={onClose}>
          Close the document
        </Button>
      </div>
      <RoomErrorBox error={error} title="Could not open the document" />
      {!tree && !error ? <Loading label="Opening the document…" /> : null}
      {tree && chat ? <ChatView messages={messages} /> : null}
      {tree && !chat ? (
        <div className="tree" aria-label={`Structure of ${path}`} role="region">
          <ul>
            <TreeItem node={tree} />
          </ul>
        </div>
      ) : null}
    </section>
  );
}

function TreeItem({ node }: { node: DocNode }) {
  if (node.text !== undefined) return <li className="tree-text">“{node.text}”</li>;
  const attrs = Object.entries(node.attributes).filter(([k]) => k !== "$id");
  return (
    <li>
      <code>&lt;{node.tag}&gt;</code>
      {attrs.map(([k, v]) => (
        <span key={k} className="tree-attr">
          {" "}
          <span className="muted">{k}=</span>
          {typeof v === "string" ? `“${v}”` : JSON.stringify(v)}
        </span>
      ))}
      {node.children.length ? (
        <ul>
          {node.children.map((c) => (
            <TreeItem key={c.key} node={c} />
          ))}
        </ul>
      ) : null}
    </li>
  );
}

function ChatView({ messages }: { messages: ReturnType<typeof threadMessages> }) {
  if (!messages.length) return <Empty title="No messages in this thread yet." />;
  return (
    <ol className="chat" aria-label="Messages">
      {messages.map((m) => (
        <li key={m.key}>
          <p className="chat-head">
            <strong>{m.author}</strong> {m.createdAt ? <When at={m.createdAt} /> : null}
          </p>
          <p className="chat-text">{m.text}</p>
          {m.attachments.length ? (
            <ul className="muted">
              {m.attachments.map((a) => (
                <li key={a}>Attachment: {a}</li>
              ))}
            </ul>
          ) : null}
        </li>
      ))}
    </ol>
  );
}

// ------------------------------------------------------------------------------------------------------------- logs

function Logs({ room }: { room: Room }) {
  const [lines, setLines] = useState<LogLine[]>([]);
  const [error, setError] = useState<unknown>(null);
  const box = useRef<HTMLDivElement>(null);
  const follow = useRef(true);
  useEffect(() => {
    let seq = 0;
    setError(null);
    const stop = room.streamLogs(
      (log: RoomLog) => setLines((l) => appendCapped(l, [logLine(++seq, log)])),
      (e) => setError(e),
    );
    return stop;
  }, [room]);
  useEffect(() => {
    const el = box.current;
    if (el && follow.current) el.scrollTop = el.scrollHeight;
  }, [lines]);
  return (
    <>
      <RoomErrorBox error={error} title="The developer log stream stopped" />
      <div
        className="log"
        role="log"
        aria-live="polite"
        aria-label="Developer log"
        tabIndex={0}
        ref={box}
        onScroll={(e) => {
          const el = e.currentTarget;
          follow.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
        }}
      >
        {lines.length === 0 ? (
          <p className="muted">No log lines yet. Records participants write with developer.log appear here as they happen (the last 500 are kept).</p>
        ) : (
          lines.map((l) => (
            <div key={l.seq} className="log-line">
              {l.at ? <span className="muted">{new Date(l.at).toLocaleTimeString()} </span> : null}
              {l.who ? <span>[{l.who}] </span> : null}
              <strong>{l.type}</strong> {l.text}
            </div>
          ))
        )}
      </div>
      <div className="form-actions">
        <Button kind="secondary" onClick={() => setLines([])} disabled={!lines.length}>
          Clear the log
        </Button>
        <span className="muted">{lines.length === 1 ? "1 line" : `${lines.length} lines`}</span>
      </div>
    </>
  );
}
