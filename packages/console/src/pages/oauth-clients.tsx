import { useEffect, useRef, useState } from "react";
import type { Meshagent, OAuthClient } from "@meshagent-oss/sdk";
import type { PageProps } from "../pages";
import { api } from "../api";
import { useAsync } from "../hooks";
import { useProject } from "../project";
import { AsyncView, Button, ConfirmButton, Empty, Field, Form, Page, Pager, Select, ShownOnce, Table, TextArea, type Column } from "../ui";
import {
  API_SCOPES,
  CLIENT_AUTH_LABELS,
  clientBody,
  clientFormErrors,
  clientName,
  clientToForm,
  emptyClientForm,
  GRANT_TYPES,
  isPublic,
  type ClientAuth,
  type ClientForm,
} from "../admin-lib";

type Sdk = Pick<Meshagent, "listOAuthClients" | "getOAuthClient" | "createOAuthClient" | "updateOAuthClient" | "deleteOAuthClient">;

const LIMIT = 50;
const GRANT_SHORT: Record<string, string> = {
  authorization_code: "Authorization code",
  refresh_token: "Refresh token",
  "urn:ietf:params:oauth:grant-type:device_code": "Device code",
};

/** The project's OAuth clients: applications people sign in to with their MeshAgent account (admins). */
export default function OAuthClientsPage({ params }: PageProps) {
  const { can, role } = useProject();
  return (
    <Page title="OAuth clients">
      {can.admin ? (
        <OAuthClientsView sdk={api()} projectId={params.project} />
      ) : (
        <Empty title="Only the project's admins can see and manage its OAuth clients.">
          Your role in this project is {role}. Ask one of its admins to register an application.
        </Empty>
      )}
    </Page>
  );
}

export function OAuthClientsView({ sdk, projectId }: { sdk: Sdk; projectId: string }) {
  const [offset, setOffset] = useState(0);
  const [editing, setEditing] = useState<string | null>(null);
  const [secret, setSecret] = useState<{ clientId: string; secret: string } | null>(null);
  const [createdPublic, setCreatedPublic] = useState<string | null>(null);
  const list = useAsync(
    async (signal) => {
      const page = await sdk.listOAuthClients(projectId, { count: LIMIT, offset }, { signal }).page();
      return { clients: page.items, more: page.next !== undefined };
    },
    [projectId, offset],
  );

  const columns: Column<OAuthClient>[] = [
    {
      label: "Client",
      render: (c) => (
        <>
          <span>{clientName(c)}</span>
          <br />
          <code className="muted">{c.client_id}</code>
        </>
      ),
    },
    {
      label: "Type",
      render: (c) => (
        <span className="row">
          <span className="badge">{isPublic(c) ? "Public" : "Confidential"}</span>
          {c.official ? <span className="badge">Official (no consent page)</span> : null}
        </span>
      ),
    },
    { label: "Grant types", render: (c) => c.grant_types.map((g) => GRANT_SHORT[g] ?? g).join(", ") || "—" },
    {
      label: "Redirect URIs",
      render: (c) =>
        c.redirect_uris.length ? (
          <ul className="uri-list">
            {c.redirect_uris.map((u) => (
              <li key={u}>
                <code>{u}</code>
              </li>
            ))}
          </ul>
        ) : (
          "—"
        ),
    },
    { label: "Scope", render: (c) => <code>{c.scope}</code> },
    {
      label: "Actions",
      render: (c) => (
        <span className="row">
          <Button kind="secondary" aria-label={`Edit ${clientName(c)}`} onClick={() => setEditing(c.client_id)}>
            Edit
          </Button>
          <ConfirmButton
            label="Delete"
            confirm={`Delete ${clientName(c)}? Its sign-ins stop working.`}
            onConfirm={async () => {
              await sdk.deleteOAuthClient(projectId, c.client_id);
              if (editing === c.client_id) setEditing(null);
              list.reload();
            }}
          />
        </span>
      ),
    },
  ];

  return (
    <>
      <p>
        An OAuth client is an application that people sign in to with their MeshAgent account (OAuth 2.0 with PKCE, or the device flow), and that then calls the
        API for them within the scopes it was allowed. A confidential client (a server) holds a secret, shown once when the client is created; a public one (a
        browser or native app) has none.
      </p>
      <h2>Clients</h2>
      <AsyncView
        state={list}
        empty={(d) =>
          d.clients.length === 0 && offset === 0 ? (
            <Empty title="No OAuth clients yet.">Create one below to let an application sign people in with their MeshAgent account.</Empty>
          ) : null
        }
      >
        {(d) => (
          <>
            <Table caption="OAuth clients of the project" columns={columns} rows={d.clients} rowKey={(c) => c.client_id} />
            {offset > 0 || d.more ? <Pager offset={offset} limit={LIMIT} count={d.clients.length} more={d.more} onChange={setOffset} /> : null}
          </>
        )}
      </AsyncView>
      {editing ? (
        <EditClient
          key={editing}
          sdk={sdk}
          projectId={projectId}
          clientId={editing}
          onClose={() => setEditing(null)}
          onSaved={() => {
            setEditing(null);
            list.reload();
          }}
        />
      ) : null}
      <h2>Create a client</h2>
      <ClientEditor
        submit="Create client"
        initial={emptyClientForm()}
        onSubmit={async (f) => {
          const c = await sdk.createOAuthClient(projectId, clientBody(f));
          list.reload();
          if (isPublic(c)) {
            setSecret(null);
            setCreatedPublic(c.client_id);
          } else {
            setCreatedPublic(null);
            setSecret({ clientId: c.client_id, secret: c.client_secret });
          }
          return `Created ${clientName(c)}`;
        }}
      />
      {createdPublic ? (
        <div className="card" role="status">
          <p>
            Client ID: <code>{createdPublic}</code>. A public client has no secret: it proves itself with PKCE.
          </p>
          <Button kind="secondary" onClick={() => setCreatedPublic(null)}>
            Done
          </Button>
        </div>
      ) : null}
      {secret ? (
        <>
          <p>
            Client ID: <code>{secret.clientId}</code>
          </p>
          <ShownOnce label="Client secret" value={secret.secret} onDone={() => setSecret(null)} />
        </>
      ) : null}
    </>
  );
}

function EditClient({
  sdk,
  projectId,
  clientId,
  onClose,
  onSaved,
}: {
  sdk: Sdk;
  projectId: string;
  clientId: string;
  onClose: () => void;
  onSaved: () => void;
}) {
  const client = useAsync((signal) => sdk.getOAuthClient(projectId, clientId, { signal }), [projectId, clientId]);
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), []);
  return (
    <section className="card" aria-labelledby="edit-client-title">
      <h2 id="edit-client-title" tabIndex={-1} ref={heading}>
        Edit {client.data ? clientName(client.data) : "client"}
      </h2>
      <AsyncView state={client}>
        {(c) => (
          <>
            <p className="muted">
              Client ID <code>{c.client_id}</code>. The ID and the secret stay as they are.
            </p>
            <ClientEditor
              submit="Save changes"
              initial={clientToForm(c)}
              editingPublic={isPublic(c)}
              onSubmit={async (f) => {
                await sdk.updateOAuthClient(projectId, c.client_id, clientBody(f, c.metadata));
                onSaved();
              }}
            />
          </>
        )}
      </AsyncView>
      <Button kind="secondary" onClick={onClose}>
        Cancel editing
      </Button>
    </section>
  );
}

/**
 * The client's fields. On edit (`editingPublic` set), a public client stays public and a confidential one
 * confidential: the secret exists from creation on and is never shown again, so the kind cannot change.
 */
export function ClientEditor({
  submit,
  initial,
  editingPublic,
  onSubmit,
}: {
  submit: string;
  initial: ClientForm;
  editingPublic?: boolean;
  onSubmit: (f: ClientForm) => Promise<string | void>;
}) {
  const [f, setF] = useState<ClientForm>(initial);
  const [tried, setTried] = useState(false);
  const errors = tried ? clientFormErrors(f) : {};
  const set = (patch: Partial<ClientForm>) => setF((x) => ({ ...x, ...patch }));
  const editing = editingPublic !== undefined;
  const auths: ClientAuth[] = !editing
    ? ["client_secret_basic", "client_secret_post", "none"]
    : editingPublic
      ? ["none"]
      : ["client_secret_basic", "client_secret_post"];
  return (
    <Form
      submit={submit}
      onSubmit={async () => {
        setTried(true);
        const msg = await onSubmit(f);
        setTried(false);
        if (!editing) setF(emptyClientForm());
        return msg;
      }}
    >
      <Field
        label="Name"
        value={f.name}
        maxLength={200}
        error={errors.name}
        hint="Shown to people on the consent page."
        onChange={(e) => set({ name: e.target.value })}
      />
      <Select
        label="Type"
        value={f.auth}
        disabled={auths.length === 1}
        hint={
          editing
            ? "A client's type is chosen when it is created."
            : "Confidential: a server that keeps the secret. Public: a browser or native app, which cannot keep one."
        }
        onChange={(e) => set({ auth: e.target.value as ClientAuth })}
      >
        {auths.map((a) => (
          <option key={a} value={a}>
            {CLIENT_AUTH_LABELS[a]}
          </option>
        ))}
      </Select>
      <fieldset className="checks" aria-describedby={errors.grants ? "grant-error" : undefined}>
        <legend>Grant types</legend>
        {GRANT_TYPES.map((g) => (
          <Field
            key={g.id}
            label={g.label}
            type="checkbox"
            checked={f.grants.includes(g.id)}
            onChange={(e) => set({ grants: e.target.checked ? [...f.grants, g.id] : f.grants.filter((x) => x !== g.id) })}
          />
        ))}
        {errors.grants ? (
          <small id="grant-error" className="field-error">
            {errors.grants}
          </small>
        ) : null}
      </fieldset>
      <TextArea
        label="Redirect URIs"
        className="short"
        value={f.redirectUris}
        error={errors.redirectUris}
        hint="One per line: where people come back after signing in. https, or http on localhost, 127.0.0.1 or [::1]; no #fragment."
        onChange={(e) => set({ redirectUris: e.target.value })}
      />
      <Field
        label="Scope"
        value={f.scope}
        error={errors.scope}
        hint={
          <>
            Space-separated scopes the application may ask for: {API_SCOPES.join(", ")}; <code>project/&lt;id&gt;</code> or <code>room/&lt;name&gt;</code>{" "}
            narrow the wildcards.
          </>
        }
        onChange={(e) => set({ scope: e.target.value })}
      />
    </Form>
  );
}
