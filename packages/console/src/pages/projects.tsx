import { useState } from "react";
import type { Meshagent, Project } from "@meshagent-oss/sdk";
import type { PageProps } from "../pages";
import { api } from "../api";
import { useAsync } from "../hooks";
import { useMe } from "../project";
import { BASE, Link } from "../router";
import { AsyncView, Empty, Field, Form, Page, When } from "../ui";
import { projectHome, projectNameError } from "../admin-lib";

type Sdk = Pick<Meshagent, "listProjects" | "createProject">;

/** The signed-in user's projects, and a form to create one. */
export default function ProjectsPage(_: PageProps) {
  return (
    <Page title="Projects">
      <ProjectsView
        sdk={api()}
        // The shell caches the project list (the switcher, the project's role): a full load shows the new project in it.
        onCreated={(p) => location.assign(BASE + projectHome(p.id))}
      />
    </Page>
  );
}

export function ProjectsView({ sdk, onCreated }: { sdk: Sdk; onCreated: (p: Project) => void }) {
  const me = useMe();
  const projects = useAsync((signal) => sdk.listProjects({ signal }), []);
  return (
    <>
      <h2>Your projects</h2>
      <AsyncView
        state={projects}
        empty={(list) =>
          list.length === 0 ? (
            <Empty title="You are not in any project yet.">
              A project holds rooms, the services agents run in them, API keys, secrets and members, with its own usage and billing. Create one below, or ask an
              admin of an existing project to invite you.
            </Empty>
          ) : null
        }
      >
        {(list) => (
          <ul className="grid project-cards" aria-label="Projects">
            {list.map((p) => (
              <li key={p.id} className="card">
                <h3>
                  <Link to={projectHome(p.id)}>{p.name}</Link>
                </h3>
                <p className="muted">
                  <code>{p.id}</code>
                </p>
                <p>
                  Created <When at={p.created_at} />
                </p>
                <p className="row">
                  {p.enabled ? <span className="badge ok">Enabled</span> : <span className="badge bad">Disabled</span>}
                  {me && p.owner_user_id === me.id ? <span className="badge">You own it</span> : null}
                </p>
              </li>
            ))}
          </ul>
        )}
      </AsyncView>
      <h2>Create a project</h2>
      <CreateProjectForm sdk={sdk} onCreated={onCreated} />
    </>
  );
}

function CreateProjectForm({ sdk, onCreated }: { sdk: Sdk; onCreated: (p: Project) => void }) {
  const [name, setName] = useState("");
  const [tried, setTried] = useState(false);
  const err = tried ? projectNameError(name) : null;
  return (
    <Form
      submit="Create project"
      onSubmit={async () => {
        setTried(true);
        const e = projectNameError(name);
        if (e) throw new Error(e);
        const p = await sdk.createProject(name.trim());
        onCreated(p);
        return `Created ${p.name}; opening it…`;
      }}
    >
      <Field
        label="Project name"
        value={name}
        maxLength={200}
        error={err}
        hint="You become its owner and first admin; you can invite others from its Members page."
        onChange={(e) => setName(e.target.value)}
      />
    </Form>
  );
}
