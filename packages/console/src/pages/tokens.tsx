import { useState } from "react";
import type { Meshagent, UserToken } from "@meshagent-oss/sdk";
import type { PageProps } from "../pages";
import { api } from "../api";
import { useAsync } from "../hooks";
import { AsyncView, ConfirmButton, Empty, Field, Form, Page, Select, ShownOnce, Table, When, type Column } from "../ui";
import { DEFAULT_EXPIRY, keyNameError, TOKEN_EXPIRIES, TOKEN_KIND_LABELS, tokenOptions } from "../admin-lib";

type Sdk = Pick<Meshagent, "listUserTokens" | "createUserToken" | "revokeUserToken">;

/** The signed-in user's own tokens: personal access tokens and the applications they allowed. */
export default function TokensPage(_: PageProps) {
  return (
    <Page title="Your tokens">
      <TokensView sdk={api()} />
    </Page>
  );
}

export function TokensView({ sdk }: { sdk: Sdk }) {
  const tokens = useAsync((signal) => sdk.listUserTokens({ signal }), []);
  const [created, setCreated] = useState<string | null>(null);
  const columns: Column<UserToken>[] = [
    {
      label: "Name",
      render: (t) => (
        <>
          {t.name} {t.current ? <span className="badge">This session</span> : null}
        </>
      ),
    },
    { label: "Kind", render: (t) => TOKEN_KIND_LABELS[t.kind] ?? t.kind },
    { label: "Scope", render: (t) => (t.scope ? <code>{t.scope}</code> : <span className="muted">Everything you may do</span>) },
    { label: "Created", render: (t) => <When at={t.created_at} /> },
    { label: "Expires", render: (t) => (t.expires_at ? <When at={t.expires_at} /> : "Never") },
    {
      label: "Actions",
      render: (t) => (
        <ConfirmButton
          label="Revoke"
          confirm={
            t.current
              ? "Revoke the token of this session? You will be signed out."
              : t.kind === "oauth"
                ? `Revoke ${t.name}? The application loses access until you allow it again.`
                : `Revoke ${t.name}? Whatever uses it stops working at once.`
          }
          onConfirm={async () => {
            await sdk.revokeUserToken(t.id);
            // Revoking this session's token: the next call answers 401, and the console signs in again.
            tokens.reload();
          }}
        />
      ),
    },
  ];
  return (
    <>
      <p>
        A personal access token acts as you, with your roles in every project, for scripts and the command line. Send it as{" "}
        <code>Authorization: Bearer &lt;token&gt;</code>. Applications you allowed to sign in as you are listed here too.
      </p>
      <h2>Tokens you hold</h2>
      <AsyncView
        state={tokens}
        empty={(list) => (list.length === 0 ? <Empty title="You hold no tokens.">Create a personal access token below for a script or the CLI.</Empty> : null)}
      >
        {(list) => <Table caption="Your tokens" columns={columns} rows={list} rowKey={(t) => t.id} />}
      </AsyncView>
      <h2>Create a personal access token</h2>
      <CreateTokenForm
        sdk={sdk}
        onCreated={(v) => {
          setCreated(v);
          tokens.reload();
        }}
      />
      {created ? <ShownOnce label="Token" value={created} onDone={() => setCreated(null)} /> : null}
    </>
  );
}

function CreateTokenForm({ sdk, onCreated }: { sdk: Pick<Sdk, "createUserToken">; onCreated: (value: string) => void }) {
  const [name, setName] = useState("");
  const [expiry, setExpiry] = useState(DEFAULT_EXPIRY);
  const [tried, setTried] = useState(false);
  return (
    <Form
      submit="Create token"
      onSubmit={async () => {
        setTried(true);
        const e = keyNameError(name);
        if (e) throw new Error(e);
        const t = await sdk.createUserToken(name.trim(), tokenOptions(expiry));
        setName("");
        setTried(false);
        onCreated(t.token);
        return `Created ${t.name}`;
      }}
    >
      <Field label="Name" value={name} maxLength={200} error={tried ? keyNameError(name) : null} onChange={(e) => setName(e.target.value)} />
      <Select label="Expires after" value={expiry} onChange={(e) => setExpiry(e.target.value)}>
        {TOKEN_EXPIRIES.map((x) => (
          <option key={x.id} value={x.id}>
            {x.label}
          </option>
        ))}
      </Select>
    </Form>
  );
}
