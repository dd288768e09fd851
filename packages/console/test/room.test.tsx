// @vitest-environment happy-dom
import { afterEach, describe, expect, it, vi } from "vitest";
import { act, cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import * as Y from "yjs";
import { RoomError, type Content, type RoomLog, type RoomParticipant, type RoomToolkit } from "@meshagent-oss/sdk";
import { buildArguments, fieldKind, initialValues, resultText, toolForm, WHOLE_FIELD } from "../src/tool-form-lib";
import {
  appendCapped,
  breadcrumbs,
  connectedParticipants,
  docTree,
  documentCandidates,
  formatBytes,
  joinPath,
  logLine,
  MAX_LOG_LINES,
  presenceRows,
  previewKind,
  schemaExtensions,
  schemaRootTag,
  sortEntries,
  threadMessages,
  type XmlLike,
} from "../src/room-lib";
import { roomErrorText, RoomWorkspace, ToolCall, type Room } from "../src/pages/room";

afterEach(cleanup);

const addSchema = { type: "object", required: ["a", "b"], additionalProperties: false, properties: { a: { type: "number" }, b: { type: "number" } } };

describe("tool form mapping (tool-form-lib)", () => {
  it("maps property schemas to field kinds; anything else is JSON", () => {
    expect(fieldKind({ type: "string" })).toBe("string");
    expect(fieldKind({ type: ["number", "null"] })).toBe("number");
    expect(fieldKind({ type: "integer" })).toBe("integer");
    expect(fieldKind({ type: "boolean" })).toBe("boolean");
    expect(fieldKind({ type: "string", enum: ["a", "b"] })).toBe("enum");
    expect(fieldKind({ type: "object", properties: {} })).toBe("json");
    expect(fieldKind({ type: "array", items: { type: "string" } })).toBe("json");
    expect(fieldKind({ anyOf: [{ type: "string" }, { type: "number" }] })).toBe("json");
    expect(fieldKind({ type: ["string", "number"] })).toBe("json");
    expect(fieldKind(true)).toBe("json");
  });

  it("makes one field per property, labelled by its name, with required, description, default and options", () => {
    const form = toolForm({
      type: "object",
      required: ["city"],
      properties: {
        city: { type: "string", description: "where" },
        days: { type: "integer", default: 3 },
        unit: { type: "string", enum: ["c", "f"] },
        verbose: { type: "boolean", default: true },
        extra: { type: "object" },
      },
    });
    expect(form.whole).toBe(false);
    expect(form.fields.map((f) => [f.name, f.kind, f.required])).toEqual([
      ["city", "string", true],
      ["days", "integer", false],
      ["unit", "enum", false],
      ["verbose", "boolean", false],
      ["extra", "json", false],
    ]);
    expect(form.fields[0].description).toBe("where");
    expect(form.fields[2].options).toEqual(["c", "f"]);
    expect(initialValues(form)).toEqual({ city: "", days: "3", unit: "", verbose: true, extra: "" });
  });

  it("builds the arguments: numbers parsed, empty optional fields left out, errors by field", () => {
    const form = toolForm(addSchema);
    expect(buildArguments(form, { a: "2", b: " 40 " })).toEqual({ args: { a: 2, b: 40 }, errors: {} });
    expect(buildArguments(form, { a: "", b: "x" })).toEqual({ args: null, errors: { a: "a is required", b: "b must be a number" } });
    const mixed = toolForm({
      type: "object",
      properties: { n: { type: "integer" }, s: { type: "string" }, e: { enum: [1, "two"] }, flag: { type: "boolean" }, j: { type: "array" } },
    });
    expect(buildArguments(mixed, { n: "", s: "", e: "", flag: false, j: "" })).toEqual({ args: { flag: false }, errors: {} });
    expect(buildArguments(mixed, { n: "4", s: "hi", e: "1", flag: true, j: "[1,2]" })).toEqual({
      args: { n: 4, s: "hi", e: 1, flag: true, j: [1, 2] },
      errors: {},
    });
    expect(buildArguments(mixed, { n: "1.5", e: "3", j: "[" }).errors).toEqual({
      n: "n must be a whole number",
      e: "e must be one of 1, two",
      j: expect.stringMatching(/^j is not valid JSON/),
    });
  });

  it("a schema without properties is one JSON object (or nothing when it takes nothing)", () => {
    const free = toolForm({ type: "object", additionalProperties: true });
    expect(free).toEqual({ fields: [], whole: true });
    expect(initialValues(free)).toEqual({ [WHOLE_FIELD]: "{}" });
    expect(buildArguments(free, { [WHOLE_FIELD]: '{"x": [1]}' })).toEqual({ args: { x: [1] }, errors: {} });
    expect(buildArguments(free, { [WHOLE_FIELD]: "[1]" }).errors[WHOLE_FIELD]).toMatch(/JSON object/);
    expect(toolForm(undefined)).toEqual({ fields: [], whole: false });
    expect(toolForm({ type: "object", additionalProperties: false })).toEqual({ fields: [], whole: false });
  });

  it("shows results as JSON, text, or a description", () => {
    expect(resultText({ type: "json", json: { sum: 5 } })).toEqual({ kind: "json", text: '{\n  "sum": 5\n}' });
    expect(resultText({ type: "text", text: "hi" })).toEqual({ kind: "text", text: "hi" });
    expect(resultText({ type: "empty" }).kind).toBe("empty");
    expect(resultText({ type: "file", name: "a.png", mime_type: "image/png", data: new Uint8Array(3) }).text).toBe("A file: a.png (image/png, 3 bytes)");
  });
});

describe("room helpers (room-lib)", () => {
  it("paths, breadcrumbs, sorting, previews, sizes", () => {
    expect(joinPath("", "a.txt")).toBe("a.txt");
    expect(joinPath("docs/", "a.txt")).toBe("docs/a.txt");
    expect(breadcrumbs("a/b")).toEqual([
      { label: "Room files", path: "" },
      { label: "a", path: "a" },
      { label: "b", path: "a/b" },
    ]);
    const sorted = sortEntries([
      { name: "b.txt", is_folder: false, size: 1 },
      { name: "z", is_folder: true, size: null },
      { name: "a.txt", is_folder: false, size: 1 },
    ]);
    expect(sorted.map((e) => e.name)).toEqual(["z", "a.txt", "b.txt"]);
    expect([previewKind("x.PNG"), previewKind("notes.md"), previewKind("a.bin"), previewKind("Dockerfile")]).toEqual(["image", "text", null, "text"]);
    expect([formatBytes(0), formatBytes(1536), formatBytes(20 * 1024 * 1024), formatBytes(null)]).toEqual(["0 B", "1.5 KB", "20 MB", "—"]);
  });

  it("lists you first, then the others by name, with their roles", () => {
    const others: RoomParticipant[] = [
      { id: "p2", role: "agent", attributes: { name: "zed" } },
      { id: "p3", role: "user", attributes: {} },
      { id: "me", role: "user", attributes: { name: "dup" } },
    ];
    const connected = connectedParticipants({
      participant_list: [
        { id: "p2", name: "zed", role: "agent", joined_at: "x", left_at: null },
        { id: "p4", name: "svc", role: "agent", joined_at: "x", left_at: null },
        { id: "p5", name: "gone", role: "user", joined_at: "x", left_at: "y" },
      ],
    });
    expect(connected.map((p) => p.id)).toEqual(["p2", "p4"]);
    expect(presenceRows({ id: "me", name: "alice@example.com", role: "user" }, others, connected)).toEqual([
      { id: "me", name: "alice@example.com", role: "user", you: true, live: true },
      { id: "p3", name: "p3", role: "user", you: false, live: true },
      { id: "p4", name: "svc", role: "agent", you: false, live: false },
      { id: "p2", name: "zed", role: "agent", you: false, live: true },
    ]);
    expect(connectedParticipants(null)).toEqual([]);
  });

  it("keeps the newest 500 log lines, newest last", () => {
    let lines = [] as ReturnType<typeof logLine>[];
    for (let i = 1; i <= 620; i++) lines = appendCapped(lines, [logLine(i, { type: "t", data: { message: `m${i}` } })]);
    expect(lines).toHaveLength(MAX_LOG_LINES);
    expect([lines[0].text, lines.at(-1)!.text]).toEqual(["m121", "m620"]);
    const log: RoomLog = { type: "build", data: { step: 1 }, participantName: "agent", createdAt: "2026-01-01T00:00:00Z" };
    expect(logLine(1, log)).toEqual({ seq: 1, at: "2026-01-01T00:00:00Z", who: "agent", type: "build", text: '{"step":1}' });
  });

  it("turns a Yjs document into a tree, and a thread into its messages", () => {
    const doc = new Y.Doc();
    const root = doc.get("xml", Y.XmlElement);
    root.setAttribute("name", "support");
    const messages = new Y.XmlElement("messages");
    messages.setAttribute("$id", "m");
    root.push([messages]);
    const m1 = new Y.XmlElement("message");
    messages.push([m1]);
    m1.setAttribute("$id", "1");
    m1.setAttribute("author_name", "alice");
    m1.setAttribute("text", "hello");
    m1.setAttribute("created_at", "2026-01-02T03:04:05Z");
    const file = new Y.XmlElement("file");
    m1.push([file]);
    file.setAttribute("path", "up/a.png");
    const m2 = new Y.XmlElement("message");
    messages.push([m2]);
    m2.setAttribute("$id", "2");
    const text = new Y.XmlElement("text");
    m2.push([text]);
    text.push([new Y.XmlText("typed text")]);

    const tree = docTree(root as unknown as XmlLike, schemaRootTag({ $root_tag_ref: "#/$defs/thread" }));
    expect(tree.tag).toBe("thread");
    expect(tree.attributes).toEqual({ name: "support" });
    expect(tree.children.map((c) => [c.key, c.tag])).toEqual([["m", "messages"]]);
    expect(tree.children[0].children.map((c) => c.tag)).toEqual(["message", "message"]);
    expect(tree.children[0].children[1].children[0].children[0]).toMatchObject({ tag: "#text", text: "typed text" });
    expect(threadMessages(tree)).toEqual([
      { key: "1:0", author: "alice", text: "hello", createdAt: "2026-01-02T03:04:05Z", attachments: ["up/a.png"] },
      { key: "2:1", author: "unknown", text: "typed text", createdAt: "", attachments: [] },
    ]);
    expect(schemaRootTag(null)).toBe("document");
  });

  it("finds documents by the extensions .schemas/ has schemas for, and .thread files", () => {
    const exts = schemaExtensions(["notes.json", "README.md", "Doc.json"]);
    expect([...exts].sort()).toEqual(["doc", "notes"]);
    expect(documentCandidates(["a/today.notes", "b.txt", "c.thread", ".schemas/notes.json", "x.DOC", "notes"], exts)).toEqual([
      "a/today.notes",
      "c.thread",
      "x.DOC",
    ]);
  });

  it("room errors show the server's code", () => {
    expect(roomErrorText(new RoomError("file not found: x", 3001))).toBe("file not found: x (code 3001)");
    expect(roomErrorText(new Error("plain"))).toBe("plain");
  });
});

const kit: RoomToolkit = {
  name: "e2e-tools",
  title: "E2E",
  participantId: "host-1",
  tools: [{ name: "add", title: "Add", description: "a+b", inputSchema: addSchema, inputTypes: ["json"], raw: {} }],
};

describe("a tool's form", () => {
  it("calls the tool with the typed arguments and shows the result", async () => {
    const invoke = vi.fn(async (_k: string, _t: string, args: Record<string, unknown>): Promise<Content> => ({
      type: "json",
      json: { sum: (args.a as number) + (args.b as number) },
    }));
    render(<ToolCall room={{ invoke } as unknown as Room} kit={kit} tool={kit.tools[0]} />);
    fireEvent.change(screen.getByLabelText("a"), { target: { value: "2" } });
    fireEvent.change(screen.getByLabelText("b"), { target: { value: "40" } });
    fireEvent.click(screen.getByRole("button", { name: "Call" }));
    await waitFor(() => expect(screen.getByRole("status").textContent).toContain("42"));
    expect(invoke).toHaveBeenCalledWith("e2e-tools", "add", { a: 2, b: 40 }, { participantId: "host-1" });
  });

  it("says which field is wrong without calling, and shows the server's error", async () => {
    const invoke = vi.fn(async (): Promise<Content> => {
      throw new RoomError("Error: it broke", 1008);
    });
    render(<ToolCall room={{ invoke } as unknown as Room} kit={kit} tool={kit.tools[0]} />);
    fireEvent.change(screen.getByLabelText("a"), { target: { value: "1" } });
    fireEvent.click(screen.getByRole("button", { name: "Call" }));
    expect(await screen.findByText("b is required")).toBeTruthy();
    expect(invoke).not.toHaveBeenCalled();
    fireEvent.change(screen.getByLabelText("b"), { target: { value: "1" } });
    fireEvent.click(screen.getByRole("button", { name: "Call" }));
    await waitFor(() => expect(screen.getByRole("alert").textContent).toContain("Error: it broke (code 1008)"));
  });
});

/** A fake connection: what the sections call, answered from memory. */
function fakeRoom() {
  let onLog: ((l: RoomLog) => void) | null = null;
  let onPresence: ((p: RoomParticipant[]) => void) | null = null;
  const invoke = vi.fn(async (toolkit: string, tool: string, args: Record<string, unknown> = {}): Promise<Content> => {
    if (toolkit === "storage" && tool === "list")
      return args.path === ".schemas"
        ? { type: "json", json: { files: [{ name: "notes.json", is_folder: false, size: 10 }] } }
        : args.path === ""
          ? {
              type: "json",
              json: {
                files: [
                  { name: "readme.txt", is_folder: false, size: 5, updated_at: null },
                  { name: "today.notes", is_folder: false, size: 9 },
                ],
              },
            }
          : { type: "json", json: { files: [] } };
    if (toolkit === "queues" && tool === "list") return { type: "json", json: { queues: [{ name: "jobs", size: 3 }] } };
    if (toolkit === "storage" && tool === "download_url") return { type: "json", json: { url: "http://x/room-storage/readme.txt" } };
    return { type: "empty" };
  });
  const room = {
    participantId: "me",
    sessionId: "",
    name: "alice@example.com",
    role: "user",
    attributes: {},
    invoke,
    invokeJson: async (toolkit: string, tool: string, args?: Record<string, unknown>) => ((await invoke(toolkit, tool, args)) as { json: unknown }).json,
    listToolkits: async () => [kit],
    enableMessaging: async (cb: (p: RoomParticipant[]) => void) => {
      onPresence = cb;
      return [];
    },
    offPresence: () => {},
    upload: vi.fn(async (_p: string, b: Uint8Array, o?: { onProgress?: (s: number, t: number) => void }) => o?.onProgress?.(b.length, b.length)),
    streamLogs: (cb: (l: RoomLog) => void) => {
      onLog = cb;
      return () => (onLog = null);
    },
    openDocument: vi.fn(),
    on: () => () => {},
  };
  return { room: room as unknown as Room, fake: room, log: (l: RoomLog) => onLog?.(l), join: (p: RoomParticipant[]) => onPresence?.(p) };
}

describe("the room workspace", () => {
  it("shows participants live, files, queues, toolkits and logs", async () => {
    const f = fakeRoom();
    render(<RoomWorkspace room={f.room} projectId="p1" developer={false} />);
    const participants = await screen.findByRole("region", { name: "Participants in the room" });
    expect(within(participants).getByText("alice@example.com")).toBeTruthy();
    act(() => f.join([{ id: "agent-1", role: "agent", attributes: { name: "helper" } }]));
    await waitFor(() => expect(within(participants).getByText("helper")).toBeTruthy());
    expect(within(participants).getByText("agent")).toBeTruthy();

    expect(await screen.findByText("readme.txt")).toBeTruthy();
    expect(screen.getByRole("button", { name: "Preview readme.txt" })).toBeTruthy();
    expect(await screen.findByText("jobs")).toBeTruthy();
    expect(await screen.findByRole("heading", { name: "e2e-tools" })).toBeTruthy();
    // documents: .notes has a schema in .schemas/
    expect(await screen.findByRole("button", { name: "today.notes" })).toBeTruthy();

    act(() => f.log({ type: "build", data: { message: "compiled" }, participantName: "helper" }));
    const log = screen.getByRole("log");
    expect(log.getAttribute("aria-live")).toBe("polite");
    await waitFor(() => expect(log.textContent).toContain("compiled"));

    // upload through the labelled file input
    const file = new File(["hello"], "hi.txt", { type: "text/plain" });
    fireEvent.change(screen.getByLabelText("Upload a file"), { target: { files: [file] } });
    await waitFor(() => expect(f.fake.upload).toHaveBeenCalled());
    expect(f.fake.upload.mock.calls[0][0]).toBe("hi.txt");
    expect(await screen.findByText(/Uploaded hi.txt/)).toBeTruthy();
  });
});
