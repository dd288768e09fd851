import { Suspense, useEffect, useState, type ReactNode } from "react";
import type { Project } from "@meshagent-oss/sdk";
import { api } from "./api";
import { beginSignIn, finishSignIn, signOut, storedToken } from "./auth";
import { useAsync } from "./hooks";
import { routes } from "./pages";
import { abilities, MeContext, ProjectContext, type Me, type ProjectInfo, type Role } from "./project";
import { Link, match, navigate, useLocation } from "./router";
import { Button, ErrorBox, Loading } from "./ui";

/** The console: signs in (OAuth code + PKCE), then the shell around the page the path names. */
export function App() {
  const { path } = useLocation();
  if (path === "/callback") return <Callback />;
  if (!storedToken()) return <SignIn />;
  return <Shell path={path} />;
}

function SignIn() {
  useEffect(() => {
    void beginSignIn(location.pathname + location.search);
  }, []);
  return (
    <main className="center">
      <Loading label="Signing in…" />
    </main>
  );
}

function Callback() {
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    finishSignIn(location.search).then((to) => navigate(to, true), setError);
  }, []);
  return (
    <main className="center">
      {error ? (
        <>
          <h1>Sign-in failed</h1>
          <ErrorBox error={error} title="The sign-in did not complete" />
          <Button onClick={() => void beginSignIn("/console/")}>Sign in again</Button>
        </>
      ) : (
        <Loading label="Finishing sign-in…" />
      )}
    </main>
  );
}

async function loadMe(signal: AbortSignal): Promise<Me> {
  const u = await api().getUserProfile("me", { signal });
  const name = [u.first_name, u.last_name].filter(Boolean).join(" ");
  return { id: u.id, email: u.email, ...(name ? { name } : {}) };
}

function Shell({ path }: { path: string }) {
  const me = useAsync(loadMe, []);
  const projects = useAsync((signal) => api().listProjects({ signal }), []);
  const projectId = match("/projects/:project", path.split("/").slice(0, 3).join("/"))?.project ?? null;
  const role = useAsync(async (signal) => (projectId ? api().getProjectRole(projectId, { signal }) : null), [projectId]);
  const [menuOpen, setMenuOpen] = useState(false);
  useEffect(() => setMenuOpen(false), [path]);

  const route = routes.map((r) => ({ r, params: match(r.pattern, path) })).find((x) => x.params);
  const project: Project | undefined = projects.data?.find((p) => p.id === projectId);
  const info: ProjectInfo | null =
    project && role.data ? { project, role: (role.data.role ?? "none") as Role, canCreateRooms: !!role.data.can_create_rooms } : null;
  const can = abilities(info);

  let content: ReactNode;
  if (!route) content = <NotFound />;
  else if (projectId && !info) {
    if (projects.error || role.error) content = <ErrorBox error={projects.error ?? role.error} title="This project could not be opened" />;
    else if (projects.data && !project)
      content = (
        <section className="page">
          <h1>Project not found</h1>
          <p>
            It does not exist or you are not a member. <Link to="/">See your projects</Link>.
          </p>
        </section>
      );
    else content = <Loading />;
  } else content = <route.r.page params={route.params!} />;

  return (
    <MeContext.Provider value={me.data ?? null}>
      <ProjectContext.Provider value={info}>
        <a className="skip" href="#main">
          Skip to content
        </a>
        <header className="topbar">
          <Link to="/" className="brand">
            MeshAgent Console
          </Link>
          {projects.data && projects.data.length > 0 ? (
            <label className="switcher">
              <span className="sr-only">Project</span>
              <select value={projectId ?? ""} onChange={(e) => e.target.value && navigate(`/projects/${e.target.value}/rooms`)}>
                <option value="">All projects</option>
                {projects.data.map((p) => (
                  <option key={p.id} value={p.id}>
                    {p.name}
                  </option>
                ))}
              </select>
            </label>
          ) : null}
          <nav className="user" aria-label="Account">
            <span className="who" title={me.data?.email}>
              {me.data?.email ?? ""}
            </span>
            <Link to="/account/tokens">Tokens</Link>
            <Button
              kind="secondary"
              onClick={async () => {
                await signOut();
                // The account page ends the browser's sign-in session too (its Sign out button).
                location.assign("/accounts");
              }}
            >
              Sign out
            </Button>
          </nav>
        </header>
        <div className="layout">
          {projectId && info ? (
            <nav className={menuOpen ? "sidenav open" : "sidenav"} aria-label="Project">
              <button
                type="button"
                className="menu-toggle btn btn-secondary"
                aria-expanded={menuOpen}
                aria-controls="project-menu"
                onClick={() => setMenuOpen((o) => !o)}
              >
                {info.project.name}: menu
              </button>
              <ul id="project-menu">
                {routes
                  .filter((r) => r.nav && (!r.nav.needs || can[r.nav.needs]))
                  .map((r) => {
                    const to = r.pattern.replace(":project", projectId);
                    const active = path === to || path.startsWith(`${to}/`);
                    return (
                      <li key={r.pattern}>
                        <Link to={to} aria-current={active ? "page" : undefined}>
                          {r.nav!.label}
                        </Link>
                      </li>
                    );
                  })}
              </ul>
            </nav>
          ) : null}
          <main id="main" tabIndex={-1}>
            <Suspense fallback={<Loading />}>{content}</Suspense>
          </main>
        </div>
      </ProjectContext.Provider>
    </MeContext.Provider>
  );
}

function NotFound() {
  return (
    <section className="page">
      <h1>Page not found</h1>
      <p>
        There is no console page here. <Link to="/">Go to your projects</Link>.
      </p>
    </section>
  );
}
