// @vitest-environment happy-dom
import type { ReactNode } from "react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { MeshagentError, offsetPage, PagedList, type OAuthClient, type Project } from "@meshagent-oss/sdk";
import {
  clientAuth,
  clientBody,
  clientFormErrors,
  clientToForm,
  emptyClientForm,
  inviteBody,
  lockedReason,
  parseSettings,
  parseUris,
  redirectUriError,
  roleFlags,
  toMember,
  tokenOptions,
} from "../src/admin-lib";
import { MeContext, ProjectContext, type ProjectInfo, type Role } from "../src/project";
import MembersPage, { InviteForm, MembersView } from "../src/pages/members";
import ApiKeysPage, { ApiKeysView } from "../src/pages/api-keys";
import SettingsPage, { SettingsView } from "../src/pages/settings";
import OAuthClientsPage, { OAuthClientsView } from "../src/pages/oauth-clients";
import { TokensView } from "../src/pages/tokens";
import { ProjectsView } from "../src/pages/projects";

afterEach(cleanup);

const PROJECT: Project = {
  id: "11111111-1111-4111-8111-111111111111",
  name: "Demo",
  owner_user_id: "owner-1",
  project_key: "k",
  created_at: "2024-05-01T10:00:00.000Z",
  enabled: true,
  settings: { a: 1 },
};
const ME = { id: "me-1", email: "me@example.com" };

function inProject(role: Role, children: ReactNode) {
  const info: ProjectInfo = { project: PROJECT, role, canCreateRooms: false };
  return (
    <MeContext.Provider value={ME}>
      <ProjectContext.Provider value={info}>{children}</ProjectContext.Provider>
    </MeContext.Provider>
  );
}

const paged = <T,>(items: T[]) => new PagedList<T>(async (o) => offsetPage(items.slice(o), o, 50, items.length), 0);

describe("admin logic", () => {
  it("maps the invite form to addUserToProject's options", () => {
    expect(inviteBody({ email: " a@b.io ", role: "developer", canCreateRooms: true, canUseLlmProxy: false })).toEqual({
      email: "a@b.io",
      is_admin: false,
      is_developer: true,
      can_create_rooms: true,
      can_use_llm_proxy: false,
    });
    expect(inviteBody({ email: "a@b.io", role: "admin", canCreateRooms: false, canUseLlmProxy: false })).toMatchObject({
      is_admin: true,
      is_developer: true,
      can_create_rooms: true,
    });
    expect(() => inviteBody({ email: "nope", role: "member", canCreateRooms: false, canUseLlmProxy: false })).toThrow(/email/);
    expect(roleFlags("member")).toEqual({ is_admin: false, is_developer: false });
  });

  it("reads members and says which cannot be changed", () => {
    const m = toMember({ user_id: "u1", email: "x@y.z", first_name: "Ada", last_name: "L", is_admin: false, is_developer: true, invited: true });
    expect(m).toMatchObject({ id: "u1", name: "Ada L", role: "developer", invited: true, owner: false });
    expect(toMember({ id: "o", is_owner: true }).role).toBe("admin");
    expect(lockedReason({ id: "o", owner: true }, "me")).toMatch(/owner/);
    expect(lockedReason({ id: "me", owner: false }, "me")).toMatch(/your own role/);
    expect(lockedReason({ id: "u1", owner: false }, "me")).toBeNull();
  });

  it("accepts only a JSON object as the settings", () => {
    expect(parseSettings('{"storage_quota_bytes": 1000, "x": [1]}')).toEqual({ ok: true, value: { storage_quota_bytes: 1000, x: [1] } });
    expect(parseSettings("[1]")).toMatchObject({ ok: false });
    expect(parseSettings("null")).toMatchObject({ ok: false });
    expect(parseSettings("{")).toMatchObject({ ok: false, error: expect.stringMatching(/Not valid JSON/) });
    expect(parseSettings('{"storage_quota_bytes": -1}')).toMatchObject({ ok: false, error: expect.stringMatching(/storage_quota_bytes/) });
  });

  it("builds OAuth client bodies as the server wants them", () => {
    const f = {
      ...emptyClientForm(),
      name: " App ",
      redirectUris: "https://a.example/cb\nhttps://a.example/cb, http://localhost:3000/cb",
      scope: "profile  room/*",
    };
    expect(clientBody(f)).toEqual({
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      redirect_uris: ["https://a.example/cb", "http://localhost:3000/cb"],
      scope: "profile room/*",
      metadata: { client_name: "App", token_endpoint_auth_method: "client_secret_basic" },
    });
    const device = clientBody(
      { ...emptyClientForm(), auth: "none", grants: ["urn:ietf:params:oauth:grant-type:device_code"] },
      { other: "kept", client_name: "old" },
    );
    expect(device).toMatchObject({ response_types: [], redirect_uris: [], metadata: { other: "kept", token_endpoint_auth_method: "none" } });
    expect(device.metadata.client_name).toBeUndefined();
    expect(clientFormErrors({ ...emptyClientForm(), grants: [] }).grants).toBeTruthy();
    expect(clientFormErrors(emptyClientForm()).redirectUris).toMatch(/at least one redirect URI/);
    expect(redirectUriError("http://example.com/cb")).toMatch(/https/);
    expect(redirectUriError("https://a.example/cb#x")).toMatch(/fragment/);
    expect(redirectUriError("http://[::1]:8000/cb")).toBeNull();
    expect(parseUris(" a  b,a ")).toEqual(["a", "b"]);
    const c = { metadata: { token_endpoint_auth_method: "none" } } as unknown as OAuthClient;
    expect(clientAuth(c)).toBe("none");
    expect(clientAuth({ metadata: {} })).toBe("client_secret_basic");
  });

  it("maps a token expiry to expires_in", () => {
    expect(tokenOptions("7d")).toEqual({ expires_in: 7 * 86400 });
    expect(tokenOptions("never")).toEqual({});
  });
});

describe("role gating", () => {
  it.each([
    ["Members", () => <MembersPage params={{ project: PROJECT.id }} />, /admins can see and manage its members/],
    ["API keys", () => <ApiKeysPage params={{ project: PROJECT.id }} />, /admins can see and manage its API keys/],
    ["Settings", () => <SettingsPage params={{ project: PROJECT.id }} />, /admins can see and change its settings/],
    ["OAuth clients", () => <OAuthClientsPage params={{ project: PROJECT.id }} />, /admins can see and manage its OAuth clients/],
  ])("%s explains itself to a developer, without calling the API", (_name, page, text) => {
    render(inProject("developer", page()));
    expect(screen.getByText(text)).toBeTruthy();
    expect(screen.getByText(/Your role in this project is developer/)).toBeTruthy();
    expect(screen.queryByRole("button", { name: /Invite|Create key|Create client|Save settings/ })).toBeNull();
  });

  it("a non-admin member may leave the project", () => {
    render(inProject("member", <MembersPage params={{ project: PROJECT.id }} />));
    expect(screen.getByRole("button", { name: "Leave project" })).toBeTruthy();
  });
});

describe("members", () => {
  it("the invite form (Email, Invite) sends the email and the flags", async () => {
    const addUserToProject = vi.fn(async () => ({ ok: true, user_id: "u9" }));
    const onInvited = vi.fn();
    render(<InviteForm sdk={{ addUserToProject }} projectId="p1" onInvited={onInvited} />);
    const form = screen.getByRole("button", { name: "Invite" }).closest("form")!;
    fireEvent.change(within(form).getByLabelText("Email"), { target: { value: "new@example.com" } });
    fireEvent.change(within(form).getByLabelText("Role"), { target: { value: "developer" } });
    fireEvent.click(within(form).getByLabelText("May create rooms"));
    fireEvent.click(within(form).getByRole("button", { name: "Invite" }));
    await waitFor(() => expect(onInvited).toHaveBeenCalled());
    expect(addUserToProject).toHaveBeenCalledWith("p1", null, {
      email: "new@example.com",
      is_admin: false,
      is_developer: true,
      can_create_rooms: true,
      can_use_llm_proxy: false,
    });
    expect(screen.getByRole("status").textContent).toMatch(/invitation/);
    expect((within(form).getByLabelText("Email") as HTMLInputElement).value).toBe("");
  });

  it("shows the server's refusal of an invitation", async () => {
    const addUserToProject = vi.fn(async () => {
      throw new MeshagentError({ status: 409, code: "conflict", message: "the user is already a member of this project", request: "POST" });
    });
    render(<InviteForm sdk={{ addUserToProject }} projectId="p1" onInvited={() => {}} />);
    fireEvent.change(screen.getByLabelText("Email"), { target: { value: "a@b.io" } });
    fireEvent.click(screen.getByRole("button", { name: "Invite" }));
    await waitFor(() => expect(screen.getByRole("alert").textContent).toContain("already a member"));
  });

  it("marks you and the owner, and changes another member's role", async () => {
    const users = [
      { user_id: "owner-1", email: "owner@example.com", is_owner: true, is_admin: true },
      { user_id: ME.id, email: ME.email, is_admin: true },
      { user_id: "u2", email: "dev@example.com", is_developer: true },
    ];
    const sdk = {
      getUsersInProject: vi.fn(() => paged(users)),
      addUserToProject: vi.fn(),
      updateProjectUser: vi.fn(async () => {}),
      removeUserFromProject: vi.fn(async () => {}),
    };
    render(inProject("admin", <MembersView sdk={sdk} projectId="p1" meId={ME.id} />));
    await screen.findByText("dev@example.com");
    expect(screen.getByText("You")).toBeTruthy();
    expect(screen.getByText("Owner")).toBeTruthy();
    // Only the third member's role and membership can be changed here.
    expect(screen.queryByLabelText(`Role of ${ME.email}`)).toBeNull();
    expect(screen.queryByLabelText("Role of owner@example.com")).toBeNull();
    expect(screen.getAllByRole("button", { name: "Remove" })).toHaveLength(1);
    fireEvent.change(screen.getByLabelText("Role of dev@example.com"), { target: { value: "admin" } });
    await waitFor(() => expect(sdk.updateProjectUser).toHaveBeenCalledWith("p1", "u2", { is_admin: true, is_developer: true }));
    fireEvent.click(screen.getByRole("button", { name: "Remove" }));
    fireEvent.click(screen.getByRole("button", { name: "Yes, remove" }));
    await waitFor(() => expect(sdk.removeUserFromProject).toHaveBeenCalledWith("p1", "u2"));
  });
});

describe("secrets shown once", () => {
  it("an API key's value is shown once, then gone", async () => {
    const keys = [{ id: "k1", name: "ci", description: "", created_at: "2024-05-01T10:00:00.000Z" }];
    const sdk = {
      listApiKeys: vi.fn(async () => keys),
      createApiKey: vi.fn(async (_p: string, name: string, description?: string) => ({
        id: "k2",
        name,
        description: description ?? "",
        created_at: "2024-05-02T10:00:00.000Z",
        value: "ma-secret-value",
      })),
      deleteApiKey: vi.fn(async () => {}),
    };
    render(inProject("admin", <ApiKeysView sdk={sdk} projectId="p1" meId={ME.id} />));
    await screen.findByText("ci");
    fireEvent.change(screen.getByLabelText("Name"), { target: { value: " deploy " } });
    fireEvent.click(screen.getByRole("button", { name: "Create key" }));
    await screen.findByText("ma-secret-value");
    expect(sdk.createApiKey).toHaveBeenCalledWith("p1", "deploy", "");
    expect(screen.getByRole("dialog").textContent).toContain("API key");
    fireEvent.click(screen.getByRole("button", { name: "Done" }));
    expect(screen.queryByText("ma-secret-value")).toBeNull();
    fireEvent.click(screen.getByRole("button", { name: "Revoke" }));
    fireEvent.click(screen.getByRole("button", { name: "Yes, revoke" }));
    await waitFor(() => expect(sdk.deleteApiKey).toHaveBeenCalledWith("p1", "k1"));
  });

  it("a new API key needs a name", async () => {
    const sdk = { listApiKeys: vi.fn(async () => []), createApiKey: vi.fn(), deleteApiKey: vi.fn() };
    render(inProject("admin", <ApiKeysView sdk={sdk} projectId="p1" meId={ME.id} />));
    await screen.findByText(/No API keys yet/);
    fireEvent.click(screen.getByRole("button", { name: "Create key" }));
    await waitFor(() => expect(screen.getByRole("alert").textContent).toMatch(/name/));
    expect(sdk.createApiKey).not.toHaveBeenCalled();
  });

  it("a personal token is shown once, labelled Token, with the chosen expiry", async () => {
    const sdk = {
      listUserTokens: vi.fn(async () => [{ id: "oauth:g1", kind: "oauth", name: "MeshAgent Console", created_at: "2024-05-01T10:00:00.000Z", current: true }]),
      createUserToken: vi.fn(async (name: string) => ({ id: "t1", kind: "pat", name, created_at: "2024-05-01T10:00:00.000Z", token: "mpat_abc" })),
      revokeUserToken: vi.fn(async () => {}),
    };
    render(<TokensView sdk={sdk} />);
    await screen.findByText("This session");
    fireEvent.change(screen.getByLabelText("Name"), { target: { value: "laptop" } });
    fireEvent.change(screen.getByLabelText("Expires after"), { target: { value: "90d" } });
    fireEvent.click(screen.getByRole("button", { name: "Create token" }));
    await screen.findByText("mpat_abc");
    expect(sdk.createUserToken).toHaveBeenCalledWith("laptop", { expires_in: 90 * 86400 });
    expect(screen.getByRole("dialog").textContent).toContain("Token");
    fireEvent.click(screen.getByRole("button", { name: "Done" }));
    expect(screen.queryByText("mpat_abc")).toBeNull();
    fireEvent.click(screen.getByRole("button", { name: "Revoke" }));
    expect(screen.getByText(/You will be signed out/)).toBeTruthy();
  });

  it("a confidential OAuth client's secret is shown once; a public client shows none", async () => {
    const made = (auth: string): OAuthClient => ({
      client_id: `cid-${auth}`,
      client_secret: `secret-${auth}`,
      grant_types: ["urn:ietf:params:oauth:grant-type:device_code"],
      response_types: [],
      redirect_uris: [],
      scope: "profile",
      metadata: { token_endpoint_auth_method: auth },
      official: false,
      project_id: "p1",
    });
    let next = "client_secret_basic";
    const sdk = {
      listOAuthClients: vi.fn(() => paged<OAuthClient>([])),
      getOAuthClient: vi.fn(),
      createOAuthClient: vi.fn(async () => made(next)),
      updateOAuthClient: vi.fn(),
      deleteOAuthClient: vi.fn(),
    };
    render(inProject("admin", <OAuthClientsView sdk={sdk} projectId="p1" />));
    await screen.findByText(/No OAuth clients yet/);
    fireEvent.click(screen.getByLabelText(/^Authorization code/));
    fireEvent.click(screen.getByLabelText(/^Refresh token/));
    fireEvent.click(screen.getByLabelText(/^Device code/));
    fireEvent.change(screen.getByLabelText("Name"), { target: { value: "TV app" } });
    fireEvent.click(screen.getByRole("button", { name: "Create client" }));
    await screen.findByText("secret-client_secret_basic");
    expect(sdk.createOAuthClient).toHaveBeenCalledWith("p1", {
      grant_types: ["urn:ietf:params:oauth:grant-type:device_code"],
      response_types: [],
      redirect_uris: [],
      scope: "profile project/* room/*",
      metadata: { client_name: "TV app", token_endpoint_auth_method: "client_secret_basic" },
    });
    fireEvent.click(screen.getByRole("button", { name: "Done" }));
    expect(screen.queryByText("secret-client_secret_basic")).toBeNull();

    next = "none";
    fireEvent.click(screen.getByLabelText(/^Authorization code/));
    fireEvent.click(screen.getByLabelText(/^Refresh token/));
    fireEvent.click(screen.getByLabelText(/^Device code/));
    fireEvent.change(screen.getByLabelText("Type"), { target: { value: "none" } });
    fireEvent.click(screen.getByRole("button", { name: "Create client" }));
    await screen.findByText("cid-none");
    expect(screen.queryByText("secret-none")).toBeNull();
    expect(screen.queryByRole("dialog")).toBeNull();
  });

  it("an OAuth client's form refuses a plain-http redirect before sending", async () => {
    const sdk = {
      listOAuthClients: vi.fn(() => paged<OAuthClient>([])),
      getOAuthClient: vi.fn(),
      createOAuthClient: vi.fn(),
      updateOAuthClient: vi.fn(),
      deleteOAuthClient: vi.fn(),
    };
    render(inProject("admin", <OAuthClientsView sdk={sdk} projectId="p1" />));
    await screen.findByText(/No OAuth clients yet/);
    fireEvent.change(screen.getByLabelText("Redirect URIs"), { target: { value: "http://app.example/cb" } });
    fireEvent.click(screen.getByRole("button", { name: "Create client" }));
    await waitFor(() => expect(screen.getByRole("alert").textContent).toMatch(/must be https/));
    expect(sdk.createOAuthClient).not.toHaveBeenCalled();
  });

  it("editing a client keeps its kind and its other metadata", async () => {
    const c: OAuthClient = {
      client_id: "cid",
      client_secret: "",
      grant_types: ["authorization_code"],
      response_types: ["code"],
      redirect_uris: ["https://a.example/cb"],
      scope: "profile",
      metadata: { client_name: "Web", token_endpoint_auth_method: "none", team: "x" },
      official: false,
      project_id: "p1",
    };
    expect(clientToForm(c)).toMatchObject({ name: "Web", auth: "none", redirectUris: "https://a.example/cb" });
    const sdk = {
      listOAuthClients: vi.fn(() => paged([c])),
      getOAuthClient: vi.fn(async () => c),
      createOAuthClient: vi.fn(),
      updateOAuthClient: vi.fn(async () => {}),
      deleteOAuthClient: vi.fn(),
    };
    render(inProject("admin", <OAuthClientsView sdk={sdk} projectId="p1" />));
    fireEvent.click(await screen.findByRole("button", { name: "Edit Web" }));
    const edit = (await screen.findByRole("heading", { name: "Edit Web" })).closest("section")!;
    await within(edit).findByRole("button", { name: "Save changes" });
    expect((within(edit).getByLabelText("Type") as HTMLSelectElement).disabled).toBe(true);
    fireEvent.change(within(edit).getByLabelText("Scope"), { target: { value: "profile room/*" } });
    fireEvent.click(within(edit).getByRole("button", { name: "Save changes" }));
    await waitFor(() =>
      expect(sdk.updateOAuthClient).toHaveBeenCalledWith("p1", "cid", {
        grant_types: ["authorization_code"],
        response_types: ["code"],
        redirect_uris: ["https://a.example/cb"],
        scope: "profile room/*",
        metadata: { client_name: "Web", token_endpoint_auth_method: "none", team: "x" },
      }),
    );
  });
});

describe("settings and projects", () => {
  it("saves the settings document as an object, and refuses what is not one", async () => {
    const sdk = {
      getProject: vi.fn(async () => PROJECT),
      updateProjectSettings: vi.fn(async (_id: string, s: Record<string, unknown>) => s),
    };
    render(inProject("admin", <SettingsView sdk={sdk} projectId={PROJECT.id} />));
    const box = (await screen.findByLabelText("Settings (JSON)")) as HTMLTextAreaElement;
    expect(JSON.parse(box.value)).toEqual({ a: 1 });
    expect(screen.getByText(PROJECT.id)).toBeTruthy();
    fireEvent.change(box, { target: { value: "[1, 2]" } });
    fireEvent.click(screen.getByRole("button", { name: "Save settings" }));
    await waitFor(() => expect(screen.getByRole("alert").textContent).toMatch(/JSON object/));
    expect(sdk.updateProjectSettings).not.toHaveBeenCalled();
    fireEvent.change(box, { target: { value: '{"storage_quota_bytes": 5}' } });
    fireEvent.click(screen.getByRole("button", { name: "Save settings" }));
    await screen.findByText("Saved");
    expect(sdk.updateProjectSettings).toHaveBeenCalledWith(PROJECT.id, { storage_quota_bytes: 5 });
  });

  it("lists projects, explains an empty list, and opens a new project", async () => {
    const sdk = { listProjects: vi.fn(async () => [] as Project[]), createProject: vi.fn(async (name: string) => ({ ...PROJECT, id: "new", name })) };
    const onCreated = vi.fn();
    render(
      <MeContext.Provider value={ME}>
        <ProjectsView sdk={sdk} onCreated={onCreated} />
      </MeContext.Provider>,
    );
    await screen.findByText(/not in any project yet/);
    fireEvent.click(screen.getByRole("button", { name: "Create project" }));
    await waitFor(() => expect(screen.getByRole("alert").textContent).toMatch(/name/));
    fireEvent.change(screen.getByLabelText("Project name"), { target: { value: "  Agents " } });
    fireEvent.click(screen.getByRole("button", { name: "Create project" }));
    await waitFor(() => expect(onCreated).toHaveBeenCalledWith(expect.objectContaining({ id: "new", name: "Agents" })));
    expect(sdk.createProject).toHaveBeenCalledWith("Agents");
    cleanup();
    sdk.listProjects.mockResolvedValue([PROJECT]);
    render(<ProjectsView sdk={sdk} onCreated={onCreated} />);
    const link = await screen.findByRole("link", { name: "Demo" });
    expect(link.getAttribute("href")).toBe(`/console/projects/${PROJECT.id}/rooms`);
  });
});
