import { useState } from "react";
import type { ApiKey, Meshagent } from "@meshagent-oss/sdk";
import type { PageProps } from "../pages";
import { api } from "../api";
import { useAsync } from "../hooks";
import { useMe, useProject } from "../project";
import { Link } from "../router";
import { AsyncView, ConfirmButton, Empty, Field, Form, Page, ShownOnce, Table, When, type Column } from "../ui";
import { keyNameError } from "../admin-lib";

type Sdk = Pick<Meshagent, "listApiKeys" | "createApiKey" | "deleteApiKey">;

/** The project's API keys: programs acting for the project (admins). */
export default function ApiKeysPage({ params }: PageProps) {
  const { can, role } = useProject();
  const me = useMe();
  return (
    <Page title="API keys">
      {can.admin ? (
        <ApiKeysView sdk={api()} projectId={params.project} meId={me?.id} />
      ) : (
        <Empty title="Only the project's admins can see and manage its API keys.">
          Your role in this project is {role}. For your own scripts, create a personal token on the <Link to="/account/tokens">Tokens</Link> page.
        </Empty>
      )}
    </Page>
  );
}

export function ApiKeysView({ sdk, projectId, meId }: { sdk: Sdk; projectId: string; meId: string | undefined }) {
  const keys = useAsync((signal) => sdk.listApiKeys(projectId, { signal }), [projectId]);
  const [created, setCreated] = useState<{ name: string; value: string } | null>(null);
  const columns: Column<ApiKey>[] = [
    { label: "Name", render: (k) => k.name },
    { label: "Description", render: (k) => k.description || <span className="muted">—</span> },
    { label: "Created", render: (k) => <When at={k.created_at} /> },
    { label: "Created by", render: (k) => (k.created_by ? meId && k.created_by === meId ? "You" : <code>{k.created_by}</code> : "—") },
    {
      label: "Actions",
      render: (k) => (
        <ConfirmButton
          label="Revoke"
          confirm={`Revoke ${k.name}? Programs using it stop working at once.`}
          onConfirm={async () => {
            await sdk.deleteApiKey(projectId, k.id);
            keys.reload();
          }}
        />
      ),
    },
  ];
  return (
    <>
      <p>
        An API key lets a program act for the whole project (create rooms, connect agents, call the API) without a person signing in. Send it as{" "}
        <code>Authorization: Bearer &lt;key&gt;</code>. Its value is shown once, when it is created.
      </p>
      <h2>Keys</h2>
      <AsyncView
        state={keys}
        empty={(list) => (list.length === 0 ? <Empty title="No API keys yet.">Create one below for a program or service that uses this project.</Empty> : null)}
      >
        {(list) => <Table caption="API keys of the project" columns={columns} rows={list} rowKey={(k) => k.id} />}
      </AsyncView>
      <h2>Create a key</h2>
      <CreateKeyForm
        sdk={sdk}
        projectId={projectId}
        onCreated={(k) => {
          setCreated(k);
          keys.reload();
        }}
      />
      {created ? <ShownOnce label="API key" value={created.value} onDone={() => setCreated(null)} /> : null}
    </>
  );
}

function CreateKeyForm({
  sdk,
  projectId,
  onCreated,
}: {
  sdk: Pick<Sdk, "createApiKey">;
  projectId: string;
  onCreated: (k: { name: string; value: string }) => void;
}) {
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [tried, setTried] = useState(false);
  return (
    <Form
      submit="Create key"
      onSubmit={async () => {
        setTried(true);
        const e = keyNameError(name);
        if (e) throw new Error(e);
        const k = await sdk.createApiKey(projectId, name.trim(), description.trim());
        setName("");
        setDescription("");
        setTried(false);
        onCreated({ name: k.name, value: k.value });
        return `Created ${k.name}`;
      }}
    >
      <Field label="Name" value={name} maxLength={200} error={tried ? keyNameError(name) : null} onChange={(e) => setName(e.target.value)} />
      <Field label="Description" value={description} hint="Optional: where it is used, who to ask." onChange={(e) => setDescription(e.target.value)} />
    </Form>
  );
}
