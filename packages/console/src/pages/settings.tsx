import { useState } from "react";
import type { Meshagent, Project } from "@meshagent-oss/sdk";
import type { PageProps } from "../pages";
import { api } from "../api";
import { useAsync, useDebounced } from "../hooks";
import { useMe, useProject } from "../project";
import { AsyncView, Button, Empty, Form, Page, TextArea, When } from "../ui";
import { formatJson, KNOWN_SETTINGS, parseSettings } from "../admin-lib";

type Sdk = Pick<Meshagent, "getProject" | "updateProjectSettings">;

/** The project's facts and its settings document (admins). */
export default function SettingsPage({ params }: PageProps) {
  const { can, role } = useProject();
  return (
    <Page title="Settings">
      {can.admin ? (
        <SettingsView sdk={api()} projectId={params.project} />
      ) : (
        <Empty title="Only the project's admins can see and change its settings.">
          Your role in this project is {role}. Ask one of its admins if a setting needs to change.
        </Empty>
      )}
    </Page>
  );
}

export function SettingsView({ sdk, projectId }: { sdk: Sdk; projectId: string }) {
  const project = useAsync((signal) => sdk.getProject(projectId, { signal }), [projectId]);
  return (
    <AsyncView state={project}>
      {(p) => (
        <>
          <ProjectFacts project={p} />
          <h2>Settings document</h2>
          <SettingsEditor key={p.id} sdk={sdk} project={p} />
        </>
      )}
    </AsyncView>
  );
}

function ProjectFacts({ project: p }: { project: Project }) {
  const me = useMe();
  return (
    <div className="card">
      <h2 className="card-title">{p.name}</h2>
      <dl className="kv">
        <dt>ID</dt>
        <dd>
          <code>{p.id}</code>
        </dd>
        <dt>Project key</dt>
        <dd>
          <code>{p.project_key}</code>
        </dd>
        <dt>Created</dt>
        <dd>
          <When at={p.created_at} />
        </dd>
        <dt>Status</dt>
        <dd>{p.enabled ? <span className="badge ok">Enabled</span> : <span className="badge bad">Disabled by the server's administrator</span>}</dd>
        <dt>Owner</dt>
        <dd>{p.owner_user_id ? me && p.owner_user_id === me.id ? "You" : <code>{p.owner_user_id}</code> : "—"}</dd>
      </dl>
    </div>
  );
}

function SettingsEditor({ sdk, project }: { sdk: Sdk; project: Project }) {
  const [text, setText] = useState(() => formatJson(project.settings ?? {}));
  const [saved, setSaved] = useState(() => formatJson(project.settings ?? {}));
  const checked = parseSettings(useDebounced(text, 300));
  const dirty = text !== saved;
  return (
    <Form
      submit="Save settings"
      onSubmit={async () => {
        const parsed = parseSettings(text);
        if (!parsed.ok) throw new Error(parsed.error);
        const stored = await sdk.updateProjectSettings(project.id, parsed.value);
        const t = formatJson(stored);
        setText(t);
        setSaved(t);
        return "Saved";
      }}
    >
      <TextArea
        label="Settings (JSON)"
        className="code"
        value={text}
        rows={14}
        error={checked.ok ? null : checked.error}
        hint={
          <>
            A JSON object; saving replaces the whole document. The server reads{" "}
            {KNOWN_SETTINGS.map((k, i) => (
              <span key={k.key}>
                {i ? ", " : ""}
                <code>{k.key}</code> ({k.about})
              </span>
            ))}
            ; other keys are kept for your own use.
          </>
        }
        onChange={(e) => setText(e.target.value)}
      />
      <div className="row">
        <Button
          kind="secondary"
          disabled={!parseSettings(text).ok}
          onClick={() => {
            const p = parseSettings(text);
            if (p.ok) setText(formatJson(p.value));
          }}
        >
          Format
        </Button>
        <Button kind="secondary" disabled={!dirty} onClick={() => setText(saved)}>
          Discard changes
        </Button>
        {dirty ? <span className="muted">Unsaved changes</span> : null}
      </div>
    </Form>
  );
}
