// @vitest-environment happy-dom
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { MeshagentError, type ApiScope, type Meshagent, type Room, type RoomGrant, type ServiceSpec } from "@meshagent-oss/sdk";
import { abilities } from "../src/project";
import { describeScope, hasMore, isCustomized, readPaging, SCOPE_PRESETS, scopeFrom, sectionsOf } from "../src/rooms-lib";
import { editableService, formatValues, parseValues, summarizeStatus, toYaml } from "../src/services-lib";
import { blankSecret, secretRequest } from "../src/secrets-lib";
import { RoomsView } from "../src/pages/rooms";
import { RoomGrantsView } from "../src/pages/room-grants";
import { restartInRoom, ServiceEditor } from "../src/pages/service";
import { SecretEditor } from "../src/pages/secrets";

afterEach(cleanup);
beforeEach(() => history.replaceState(null, "", "/console/projects/p1/rooms"));

const admin = abilities({ role: "admin", canCreateRooms: false });
const member = abilities({ role: "member", canCreateRooms: false });
const room = (name: string): Room => ({ id: `id-${name}`, name, metadata: {}, annotations: {}, created_at: "2025-01-01T00:00:00Z" });
/** A PagedList stand-in: what the pages call (`.page()`, or awaiting it). */
const paged = <T,>(items: T[], total = items.length) => ({
  page: async () => ({ items, total }),
  then: (f: (v: T[]) => unknown) => Promise.resolve(items).then(f),
});
const asClient = <T,>(o: object) => o as unknown as T;

describe("rooms: paging and filter in the URL", () => {
  it("reads offset and filter from the query, refusing bad offsets", () => {
    expect(readPaging(new URLSearchParams("offset=100&filter=ab"))).toEqual({ offset: 100, filter: "ab" });
    expect(readPaging(new URLSearchParams("offset=-5"))).toEqual({ offset: 0, filter: "" });
    expect(readPaging(new URLSearchParams("offset=abc"))).toEqual({ offset: 0, filter: "" });
    expect(hasMore(0, 50, 10_000)).toBe(true);
    expect(hasMore(9950, 50, 10_000)).toBe(false);
  });

  it("asks the server for one page, debounces the filter into the URL and pages from there", async () => {
    history.replaceState(null, "", "/console/projects/p1/rooms?offset=50&filter=ab");
    const listRooms = vi.fn((_p: string, q: { offset?: number }) => paged([room(`r${q.offset ?? 0}`)], 10_000));
    render(<RoomsView client={asClient({ listRooms })} projectId="p1" can={admin} />);
    await screen.findByText("r50");
    expect(listRooms).toHaveBeenCalledTimes(1);
    expect(listRooms.mock.calls[0].slice(0, 2)).toEqual(["p1", { limit: 50, offset: 50, filter: "ab" }]);
    expect(screen.getByRole("link", { name: "r50" }).getAttribute("href")).toBe("/console/projects/p1/rooms/r50");
    expect(screen.getByRole("link", { name: "Grants" }).getAttribute("href")).toBe("/console/projects/p1/rooms/r50/grants");

    const box = screen.getByLabelText("Filter by name");
    for (const v of ["abc", "abcd", "abcde"]) fireEvent.change(box, { target: { value: v } });
    await waitFor(() => expect(new URLSearchParams(location.search).get("filter")).toBe("abcde"));
    // A new filter starts at the first page; the keystrokes in between never reached the server.
    expect(new URLSearchParams(location.search).get("offset")).toBeNull();
    await screen.findByText("r0");
    expect(listRooms.mock.calls.map((c) => c[1])).toEqual([
      { limit: 50, offset: 50, filter: "ab" },
      { limit: 50, offset: 0, filter: "abcde" },
    ]);

    fireEvent.click(screen.getByRole("button", { name: "Next" }));
    await screen.findByText("r50");
    expect(location.search).toBe("?filter=abcde&offset=50");
  });

  it("tells no rooms yet from no match, and shows create only to those who may", async () => {
    const listRooms = vi.fn(() => paged<Room>([], 0));
    render(<RoomsView client={asClient({ listRooms })} projectId="p1" can={member} />);
    await screen.findByText("No rooms yet.");
    expect(screen.queryByRole("button", { name: "Create room" })).toBeNull();
    cleanup();

    history.replaceState(null, "", "/console/projects/p1/rooms?filter=zz");
    render(<RoomsView client={asClient({ listRooms })} projectId="p1" can={admin} />);
    await screen.findByText("No room matches “zz”.");
    expect(screen.getByRole("button", { name: "Create room" })).toBeTruthy();
  });

  it("creates a room with the typed name", async () => {
    const createRoom = vi.fn(async (_p: string, name: string) => room(name));
    render(<RoomsView client={asClient({ listRooms: () => paged<Room>([], 0), createRoom })} projectId="p1" can={admin} />);
    fireEvent.change(screen.getByLabelText("Room name"), { target: { value: " lobby " } });
    fireEvent.click(screen.getByRole("button", { name: "Create room" }));
    await screen.findByText("Created lobby");
    expect(createRoom).toHaveBeenCalledWith("p1", "lobby");
  });
});

describe("room grants: the permissions form and the ApiScope", () => {
  it("maps checked sections to an ApiScope, keeping a section's restrictions when editing", () => {
    const stored = { storage: { paths: [{ path: "docs/", read_only: true }] }, database: {}, llm: null } as ApiScope;
    expect(sectionsOf(stored)).toEqual(["dataset", "storage"]);
    expect(isCustomized(stored, "storage")).toBe(true);
    expect(scopeFrom(["storage", "messaging", "dataset"], stored)).toEqual({
      messaging: {},
      dataset: {},
      storage: { paths: [{ path: "docs/", read_only: true }] },
    });
    expect(scopeFrom([])).toEqual({});
    expect(describeScope(scopeFrom(SCOPE_PRESETS.find((p) => p.id === "full")!.sections))).toBe("Everything");
    expect(describeScope({})).toBe("Nothing");
    expect(describeScope(stored)).toBe("Datasets, Storage (restricted)");
  });

  it("adds a grant by email with the default user scope plus what was ticked", async () => {
    const createRoomGrantByEmail = vi.fn(async () => ({}) as RoomGrant);
    const client = asClient<Meshagent>({
      listRoomGrantsByRoom: () => paged<RoomGrant>([]),
      listUniqueUsersWithGrants: () => paged([]),
      createRoomGrantByEmail,
    });
    render(<RoomGrantsView client={client} projectId="p1" room="lobby" can={admin} />);
    fireEvent.change(screen.getByLabelText("User email"), { target: { value: "ann@example.com" } });
    fireEvent.click(screen.getByLabelText("Admin"));
    fireEvent.click(screen.getByLabelText("Containers"));
    fireEvent.click(screen.getByRole("button", { name: "Add grant" }));
    await screen.findByText("Granted ann@example.com access to lobby");
    const scope = createRoomGrantByEmail.mock.calls[0] as unknown[];
    expect(scope.slice(0, 3)).toEqual(["p1", "lobby", "ann@example.com"]);
    expect(Object.keys(scope[3] as object)).toEqual([
      "livekit",
      "queues",
      "messaging",
      "dataset",
      "memory",
      "sync",
      "storage",
      "developer",
      "agents",
      "admin",
      "secrets",
      "services",
    ]);
  });

  it("edits a grant keeping what the form does not show, and hides changes from members (the API lets admins and developers change grants)", async () => {
    const grant: RoomGrant = { room: room("lobby"), user_id: "u1", permissions: { storage: { paths: [{ path: "a/" }] }, messaging: {} } };
    const updateRoomGrant = vi.fn(async () => grant);
    const client = asClient<Meshagent>({
      listRoomGrantsByRoom: () => paged([grant]),
      listUniqueUsersWithGrants: () => paged([{ user_id: "u1", email: "ann@example.com", count: 1 }]),
      updateRoomGrant,
    });
    render(<RoomGrantsView client={client} projectId="p1" room="lobby" can={admin} />);
    await screen.findByText("ann@example.com");
    fireEvent.click(screen.getByRole("button", { name: "Edit" }));
    const editor = within(screen.getByRole("region", { name: "Permissions of ann@example.com" }));
    expect(editor.getByText("room files; its restrictions are kept")).toBeTruthy();
    fireEvent.click(editor.getByLabelText("Messaging"));
    fireEvent.click(editor.getByLabelText("Services"));
    fireEvent.click(editor.getByRole("button", { name: "Save permissions" }));
    await waitFor(() => expect(updateRoomGrant).toHaveBeenCalled());
    expect(updateRoomGrant.mock.calls[0]).toEqual(["p1", "id-lobby", "u1", { storage: { paths: [{ path: "a/" }] }, services: {} }]);
    cleanup();

    render(<RoomGrantsView client={client} projectId="p1" room="lobby" can={abilities({ role: "member", canCreateRooms: true })} />);
    await screen.findByText("ann@example.com");
    expect(screen.queryByRole("button", { name: "Edit" })).toBeNull();
    expect(screen.queryByRole("button", { name: "Add grant" })).toBeNull();
  });
});

describe("services: YAML through the server", () => {
  it("checks the YAML once typing pauses and shows the server's message", async () => {
    const renderTemplate = vi.fn(async (yaml: string) => {
      if (yaml.includes("bogus"))
        throw new MeshagentError({ status: 400, code: "bad_request", message: "template.bogus is not a known field", request: "POST /templates/render" });
      return { version: "v1", kind: "ServiceTemplate", metadata: { name: "svc" } } as never;
    });
    render(<ServiceEditor client={asClient({ renderTemplate })} projectId="p1" initialYaml="version: v1" onSaved={() => {}} />);
    await waitFor(() => expect(screen.getByTestId("template-check").textContent).toBe("Valid: the service “svc”."));
    expect(renderTemplate).toHaveBeenCalledTimes(1);

    const box = screen.getByLabelText("Service template (YAML)");
    for (const v of ["version: v1\nb", "version: v1\nbog", "version: v1\nbogus: 1"]) fireEvent.change(box, { target: { value: v } });
    const check = screen.getByTestId("template-check");
    expect(check.getAttribute("aria-live")).toBe("polite");
    await waitFor(() => expect(check.textContent).toContain("template.bogus is not a known field (bad_request, HTTP 400"));
    expect(renderTemplate).toHaveBeenCalledTimes(2);
    expect(renderTemplate.mock.calls[1][0]).toBe("version: v1\nbogus: 1");
    expect(box.getAttribute("aria-invalid")).toBe("true");
  });

  it("refuses badly written values before asking the server, and saves through the template route", async () => {
    const renderTemplate = vi.fn(async () => ({ metadata: { name: "svc" } }) as never);
    const createServiceFromTemplate = vi.fn(async () => ({ id: "s1" }) as ServiceSpec);
    const onSaved = vi.fn();
    render(<ServiceEditor client={asClient({ renderTemplate, createServiceFromTemplate })} projectId="p1" initialYaml="x: 1" onSaved={onSaved} />);
    fireEvent.change(screen.getByLabelText("Template values"), { target: { value: "image" } });
    await waitFor(() => expect(screen.getByTestId("template-check").textContent).toBe("Values, line 1: write name=value"));
    fireEvent.change(screen.getByLabelText("Template values"), { target: { value: 'image=nginx\n# note\nmsg="a\\nb"' } });
    fireEvent.click(screen.getByRole("button", { name: "Create service" }));
    await waitFor(() => expect(onSaved).toHaveBeenCalledWith({ id: "s1" }, null));
    expect(createServiceFromTemplate).toHaveBeenCalledWith("p1", "x: 1", { image: "nginx", msg: "a\nb" });
  });

  it("values round-trip through name=value lines", () => {
    const values = { a: "1", b: "two words", c: "line\nbreak", d: " padded" };
    expect(parseValues(formatValues(values))).toEqual({ values });
    expect(parseValues("=x")).toEqual({ error: "Values, line 1: write name=value" });
  });

  it("writes a stored spec as ServiceTemplate YAML, or says why it cannot", () => {
    const spec = {
      version: "v1",
      kind: "Service",
      id: "s1",
      metadata: { name: "echo", annotations: { "a.b/c": "d", yes: "1" } },
      ports: [{ num: 8080, endpoints: [] }],
      files: [{ path: "/p", text: "line 1\nline 2\n" }],
      container: { image: "img:{{tag}}", environment: [{ name: "A", value: "x: y" }] },
    } as unknown as ServiceSpec;
    const e = editableService(spec);
    expect(e).toEqual({ fromTemplate: false, values: {}, yaml: expect.any(String) });
    expect((e as { yaml: string }).yaml).toBe(
      [
        "{% raw %}",
        'version: "v1"',
        'kind: "ServiceTemplate"',
        "metadata:",
        '  name: "echo"',
        "  annotations:",
        '    a.b/c: "d"',
        '    "yes": "1"',
        "ports:",
        "  - num: 8080",
        "    endpoints: []",
        "files:",
        '  - path: "/p"',
        "    text: |",
        "      line 1",
        "      line 2",
        "container:",
        '  image: "img:{{tag}}"',
        "  environment:",
        '    - name: "A"',
        '      value: "x: y"',
        "{% endraw %}",
        "",
      ].join("\n"),
    );
    const fromTemplate = {
      ...spec,
      metadata: { name: "t", annotations: { "meshagent.service.template.yaml": "kind: ServiceTemplate", "meshagent.service.template.values": '{"a":"b"}' } },
    };
    expect(editableService(fromTemplate as ServiceSpec)).toEqual({ yaml: "kind: ServiceTemplate", values: { a: "b" }, fromTemplate: true });
    const withSecrets = { ...spec, container: { image: "x", secrets: ["s"] } } as unknown as ServiceSpec;
    expect(editableService(withSecrets)).toEqual({ error: expect.stringContaining("container.secrets cannot be written as a ServiceTemplate") });
    expect(toYaml({ a: "\u2028", b: "x\r\ny", c: [["n"]] })).toBe('a: "\\u2028"\nb: "x\\r\\ny"\nc:\n  - - "n"\n');
    // Literal blocks keep trailing newlines exactly (strip, clip, keep).
    expect(toYaml({ a: "x\ny", b: "x\n", c: "x\n\n" })).toBe("a: |-\n  x\n  y\nb: |\n  x\nc: |+\n  x\n\n");
  });

  it("summarizes where a service runs", () => {
    expect(summarizeStatus([])).toBe("Not running in any room");
    expect(summarizeStatus([{ state: "running" }, { state: "running" }, { state: "no_runtime" }])).toBe("Running in 2 rooms, no runtime in 1 room");
  });
});

describe("secrets: typed values, never shown again", () => {
  it("builds the SDK's typed secrets and refuses incomplete ones", () => {
    const f = {
      ...blankSecret("keys", "env"),
      keys: [
        { name: "A", value: "1" },
        { name: "", value: "" },
      ],
    };
    expect(secretRequest(f)).toEqual({ typed: { name: "env", type: "keys", data: { A: "1" } } });
    expect(() =>
      secretRequest({
        ...f,
        keys: [
          { name: "A", value: "1" },
          { name: "A", value: "2" },
        ],
      }),
    ).toThrow("The key A is there twice.");
    expect(secretRequest({ ...blankSecret("docker", "pull"), server: "ghcr.io", username: "me", password: "pw" })).toEqual({
      typed: { name: "pull", type: "docker", server: "ghcr.io", username: "me", password: "pw" },
    });
    expect(() => secretRequest(blankSecret("docker", "pull"))).toThrow("registry server");
    const raw = secretRequest({ ...blankSecret("other", "tok", "token"), value: "abc" });
    expect("raw" in raw && new TextDecoder().decode(raw.raw.data)).toBe("abc");
    expect(() => secretRequest({ ...blankSecret("other", "tok", "keys"), value: "abc" })).toThrow("choose");
  });

  it("clears the typed value once saved", async () => {
    const createSecret = vi.fn(async () => "id1");
    const onSaved = vi.fn();
    render(<SecretEditor client={asClient({ createSecret })} projectId="p1" onSaved={onSaved} />);
    fireEvent.change(screen.getByLabelText("Secret name"), { target: { value: "env" } });
    fireEvent.change(screen.getByLabelText("Key 1 name"), { target: { value: "TOKEN" } });
    const value = screen.getByLabelText("Key 1 value") as HTMLInputElement;
    expect(value.type).toBe("password");
    fireEvent.change(value, { target: { value: "s3cret" } });
    fireEvent.click(screen.getByRole("button", { name: "Create secret" }));
    await screen.findByText("Saved env. Its value will not be shown again.");
    expect(createSecret).toHaveBeenCalledWith("p1", { name: "env", type: "keys", data: { TOKEN: "s3cret" } });
    expect((screen.getByLabelText("Key 1 value") as HTMLInputElement).value).toBe("");
    expect(document.body.textContent).not.toContain("s3cret");
    expect(onSaved).toHaveBeenCalled();
  });
});

describe("services: restart in a room", () => {
  it("joins the room, calls services.restart with the service id, and leaves, even when the restart fails", async () => {
    const calls: unknown[][] = [];
    let closed = 0;
    const client = { connectRoom: async (p: string, r: string) => ({ room_url: `ws://x/rooms/${r}`, jwt: `jwt-${p}` }) } as unknown as Pick<
      Meshagent,
      "connectRoom"
    >;
    const connect = (async (o: { url: string; token: string }) => ({
      invoke: async (...a: unknown[]) => {
        calls.push([o.url, o.token, ...a]);
        if (calls.length > 1) throw new Error('no service "svc" runs in this room');
      },
      close: () => void closed++,
    })) as never;
    await restartInRoom(client, "p1", "lobby", "svc", connect);
    expect(calls[0]).toEqual(["ws://x/rooms/lobby", "jwt-p1", "services", "restart", { service_id: "svc" }]);
    await expect(restartInRoom(client, "p1", "lobby", "svc", connect)).rejects.toThrow(/no service "svc" runs/);
    expect(closed).toBe(2);
  });
});
