import { useEffect, useRef, useState } from "react";
import type { ManagedSecretInfo, Meshagent } from "@meshagent-oss/sdk";
import { api } from "../api";
import { useAsync } from "../hooks";
import type { PageProps } from "../pages";
import { useProject } from "../project";
import { blankSecret, KIND_LABELS, kindOf, secretRequest, typeLabel, type SecretForm, type SecretKind } from "../secrets-lib";
import { AsyncView, Button, ConfirmButton, Empty, Field, Form, Page, Select, Table } from "../ui";

/**
 * The SDK's secrets methods used here: listProjectSecrets (names, types and ids only, never values); the typed
 * createSecret/updateSecret for keys and docker; createProjectSecret/updateProjectSecret for other types. Not
 * listSecrets: it fetches and decodes every value, which this page must never show.
 */
export type SecretsClient = Pick<
  Meshagent,
  "listProjectSecrets" | "createSecret" | "updateSecret" | "createProjectSecret" | "updateProjectSecret" | "deleteProjectSecret"
>;

export default function SecretsPage({ params }: PageProps) {
  const { can } = useProject();
  return (
    <Page title="Secrets">
      {can.developer ? (
        <SecretsView client={api()} projectId={params.project} />
      ) : (
        <Empty title="Secrets are managed by project admins and developers.">Ask an admin or a developer to add the secret your service needs.</Empty>
      )}
    </Page>
  );
}

export function SecretsView({ client, projectId }: { client: SecretsClient; projectId: string }) {
  const secrets = useAsync((signal) => client.listProjectSecrets(projectId, { signal }), [projectId]);
  const [editing, setEditing] = useState<ManagedSecretInfo | null>(null);
  return (
    <>
      <p className="muted">
        Values are sealed on the server and never shown again after they are saved. Services name secrets by id: key/value secrets in container.secrets, image
        pull credentials in container.pull_secret.
      </p>
      <section className="card" aria-labelledby="new-secret">
        <h2 id="new-secret">New secret</h2>
        <SecretEditor client={client} projectId={projectId} onSaved={secrets.reload} />
      </section>
      {editing ? (
        <ReplaceSecret
          key={editing.id}
          client={client}
          projectId={projectId}
          secret={editing}
          onDone={(saved) => {
            setEditing(null);
            if (saved) secrets.reload();
          }}
        />
      ) : null}
      <h2>Project secrets</h2>
      <AsyncView
        state={secrets}
        empty={(s) => (s.length ? null : <Empty title="No secrets yet.">Create one above, then name its id in a service's container.</Empty>)}
      >
        {(s) => (
          <Table
            caption="Project secrets"
            rows={s}
            rowKey={(x) => x.id}
            columns={[
              { label: "Name", render: (x) => x.name },
              { label: "Type", render: (x) => typeLabel(x.type) },
              { label: "Id", render: (x) => <code>{x.id}</code> },
              {
                label: "Actions",
                render: (x) => (
                  <div className="actions">
                    <Button kind="secondary" onClick={() => setEditing(x)}>
                      Replace value
                    </Button>
                    <ConfirmButton
                      label="Delete"
                      confirm={`Delete the secret ${x.name}?`}
                      onConfirm={() =>
                        client.deleteProjectSecret(projectId, x.id).then(() => {
                          if (editing?.id === x.id) setEditing(null);
                          secrets.reload();
                        })
                      }
                    />
                  </div>
                ),
              },
            ]}
          />
        )}
      </AsyncView>
    </>
  );
}

function ReplaceSecret({
  client,
  projectId,
  secret,
  onDone,
}: {
  client: SecretsClient;
  projectId: string;
  secret: ManagedSecretInfo;
  onDone: (saved: boolean) => void;
}) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), []);
  return (
    <section className="card" aria-labelledby="replace-secret">
      <h2 id="replace-secret" tabIndex={-1} ref={heading}>
        Replace the value of {secret.name}
      </h2>
      <p className="muted">The current value is not shown: enter the whole new value. Name and type can change too.</p>
      <SecretEditor client={client} projectId={projectId} secret={secret} onSaved={() => onDone(true)} />
      <Button kind="secondary" onClick={() => onDone(false)}>
        Cancel
      </Button>
    </section>
  );
}

/** A secret's name, kind and value (values in password inputs, cleared once saved); creates, or replaces `secret`. */
export function SecretEditor({
  client,
  projectId,
  secret,
  onSaved,
}: {
  client: SecretsClient;
  projectId: string;
  secret?: ManagedSecretInfo;
  onSaved: () => void;
}) {
  const initial = () => (secret ? blankSecret(kindOf(secret.type), secret.name, kindOf(secret.type) === "other" ? secret.type : "") : blankSecret());
  const [f, setF] = useState<SecretForm>(initial);
  const set = (patch: Partial<SecretForm>) => setF((x) => ({ ...x, ...patch }));
  const setKey = (i: number, patch: Partial<SecretForm["keys"][number]>) =>
    setF((x) => ({ ...x, keys: x.keys.map((k, j) => (j === i ? { ...k, ...patch } : k)) }));
  return (
    <Form
      submit={secret ? "Replace value" : "Create secret"}
      onSubmit={async () => {
        const req = secretRequest(f);
        if (secret) {
          if ("typed" in req) await client.updateSecret(projectId, { ...req.typed, id: secret.id });
          else await client.updateProjectSecret(projectId, secret.id, req.raw.name, req.raw.type, req.raw.data);
        } else if ("typed" in req) await client.createSecret(projectId, req.typed);
        else await client.createProjectSecret(projectId, req.raw.name, req.raw.type, req.raw.data);
        const name = f.name.trim();
        // The value is gone from the page once the server has it.
        setF(blankSecret(f.kind));
        onSaved();
        return `Saved ${name}. Its value will not be shown again.`;
      }}
    >
      <Field label="Secret name" required value={f.name} onChange={(e) => set({ name: e.target.value })} autoComplete="off" />
      <Select label="Kind" value={f.kind} onChange={(e) => set({ kind: e.target.value as SecretKind })}>
        {(Object.keys(KIND_LABELS) as SecretKind[]).map((k) => (
          <option key={k} value={k}>
            {KIND_LABELS[k]}
          </option>
        ))}
      </Select>
      {f.kind === "keys" ? (
        <fieldset className="rooms-perms">
          <legend>Keys</legend>
          <div className="secret-keys">
            {f.keys.map((k, i) => (
              <div className="row" key={i}>
                <Field label={`Key ${i + 1} name`} value={k.name} onChange={(e) => setKey(i, { name: e.target.value })} autoComplete="off" />
                <Field
                  label={`Key ${i + 1} value`}
                  type="password"
                  autoComplete="new-password"
                  value={k.value}
                  onChange={(e) => setKey(i, { value: e.target.value })}
                />
                {f.keys.length > 1 ? (
                  <Button kind="secondary" aria-label={`Remove key ${i + 1}`} onClick={() => set({ keys: f.keys.filter((_, j) => j !== i) })}>
                    Remove
                  </Button>
                ) : null}
              </div>
            ))}
          </div>
          <Button kind="secondary" onClick={() => set({ keys: [...f.keys, { name: "", value: "" }] })}>
            Add a key
          </Button>
        </fieldset>
      ) : f.kind === "docker" ? (
        <>
          <Field label="Registry server" value={f.server} onChange={(e) => set({ server: e.target.value })} placeholder="ghcr.io" autoComplete="off" />
          <Field label="Registry username" value={f.username} onChange={(e) => set({ username: e.target.value })} autoComplete="off" />
          <Field label="Registry password" type="password" autoComplete="new-password" value={f.password} onChange={(e) => set({ password: e.target.value })} />
          <Field label="Email (optional)" type="email" value={f.email} onChange={(e) => set({ email: e.target.value })} autoComplete="off" />
        </>
      ) : (
        <>
          <Field label="Type" value={f.type} onChange={(e) => set({ type: e.target.value })} hint="Any label, e.g. opaque or token." autoComplete="off" />
          <Field label="Value" type="password" autoComplete="new-password" value={f.value} onChange={(e) => set({ value: e.target.value })} />
        </>
      )}
    </Form>
  );
}
