import { describe, expect, it } from "vitest";
import { ApiError } from "../core/errors.js";
import {
  ContainerSpecSchema,
  MAX_SPEC_ITEMS,
  MAX_SPEC_STRING,
  parseServiceSpec,
  parseServiceTemplateSpec,
  serviceSecretRefs,
  templateToServiceSpec,
  type ServiceSpec,
  type ServiceTemplateSpec,
} from "./spec.js";
import { check } from "../core/strict.js";

/** The ApiError a call throws (fails the test when it does not throw one). */
function refusal(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error("expected a 400");
}

const base = { version: "v1", kind: "Service", metadata: { name: "w" } };

/** Every model of §7.4 in one spec. */
const full = {
  version: "v1",
  kind: "Service",
  id: "svc1",
  metadata: { name: "w", description: "d", repo: "r", icon: "i", annotations: { "meshagent.service.id": "x" } },
  agents: [
    {
      name: "a",
      description: "agent",
      annotations: { k: "v" },
      channels: {
        email: [{ address: "a@b.c", private: false, annotations: { k: "v" } }],
        messaging: [{ protocol: "meshagent.agent-message.v1", prompts: [{ name: "p", description: "d", prompt: "hi", annotations: {} }] }],
        queue: [{ queue: "q", threading_mode: "default-new", message_schema: { type: "object", default: null } }],
        toolkit: [{ name: "t" }],
      },
      email: { address: "a@b.c", public: true },
      heartbeat: {
        queue: "q",
        thread_id: "t",
        prompt: [
          { type: "text", text: "hello" },
          { type: "file", url: "https://x/y" },
        ],
        minutes: 5,
      },
    },
  ],
  ports: [
    {
      num: 8080,
      type: "http",
      endpoints: [
        { path: "/agent", meshagent: { identity: "bot", api: { llm: null, queues: { send: null, list: true } } }, annotations: {} },
        {
          path: "/mcp",
          mcp: {
            label: "l",
            description: "d",
            allowed_tools: [{ tool_names: ["a"], read_only: true }],
            headers: { A: "b" },
            require_approval: "never",
            oauth: { client_id: "c", client_secret: "s", authorization_endpoint: "a", token_endpoint: "t", no_pkce: true, scopes: ["x"] },
            openai_connector_id: "o",
          },
        },
      ],
      liveness: "/health",
      published: true,
      public: false,
      annotations: { a: "b" },
    },
    { num: "*", type: "tcp" },
  ],
  files: [{ path: "/f", text: "content" }],
  container: {
    image: "img:1",
    command: "run",
    working_dir: "/app",
    environment: [
      { name: "A", value: "1" },
      { name: "T", token: { identity: "me", api: { agents: {} }, role: "agent" } },
      { name: "S", secret: { identity: "me", id: "sec_env" } },
    ],
    secrets: ["sec_a", "sec_b"],
    pull_secret: "sec_pull",
    storage: {
      room: [{ path: "/data", subpath: "x", read_only: false }],
      project: [{ path: "/project", read_only: true }],
      images: [{ image: "tools:1", path: "/tools", subpath: "bin", read_only: true }],
      files: [{ path: "/etc/x", text: "y", read_only: true }],
      empty_dirs: [{ path: "/tmp/x", read_only: false }],
      configs: [{ path: "/var/run/meshagent" }, {}],
    },
    on_demand: true,
    writable_root_fs: false,
    private: true,
  },
  external: { url: "https://example.com" },
};

describe("parseServiceSpec", () => {
  it("returns exactly what was sent (key order too), for every model of §7.4", () => {
    const got = parseServiceSpec(structuredClone(full));
    expect(JSON.stringify(got)).toBe(JSON.stringify(full));
  });

  it("drops nulls (the Python update body) and fills in no defaults", () => {
    const update = {
      version: "v1",
      kind: "Service",
      id: "svc1",
      metadata: { name: "w", description: null, repo: null, icon: null, annotations: null },
      agents: null,
      ports: [{ num: 8080, type: null, endpoints: [{ path: "/a", meshagent: null, mcp: null, annotations: null }], liveness: null }],
      files: null,
      container: { image: "i", command: null, environment: [{ name: "A", value: "b", token: null, secret: null }], private: null },
      external: null,
    };
    expect(parseServiceSpec(update)).toEqual({
      version: "v1",
      kind: "Service",
      id: "svc1",
      metadata: { name: "w" },
      ports: [{ num: 8080, endpoints: [{ path: "/a" }] }],
      container: { image: "i", environment: [{ name: "A", value: "b" }] },
    });
  });

  it("accepts ports: [] and the * port, an id, an empty external", () => {
    expect(parseServiceSpec({ ...base, ports: [] })).toEqual({ ...base, ports: [] });
    expect(parseServiceSpec({ ...base, ports: [{ num: "*" }, {}] }).ports).toEqual([{ num: "*" }, {}]);
    expect(parseServiceSpec({ ...base, id: "x", external: {} })).toEqual({ ...base, id: "x", external: {} });
  });

  it("refuses the reserved port 8078 with a clear message", () => {
    const e = refusal(() => parseServiceSpec({ ...base, ports: [{ num: 8080 }, { num: 8078 }] }));
    expect(e.status).toBe(400);
    expect(e.message).toBe("service.ports[1].num must not be 8078: service port 8078 is reserved for MeshAgent room infrastructure; reserved ports: 8078");
  });

  it.each([
    ["top level", { ...base, created_at: 1 }, /^service\.created_at is not a known field \(known: version, kind, id, metadata, agents, ports/],
    ["metadata", { ...base, metadata: { name: "w", tags: [] } }, /^service\.metadata\.tags is not a known field/],
    ["container", { ...base, container: { image: "i", foo: 1 } }, /^service\.container\.foo is not a known field \(known: image, command/],
    [
      "env token",
      { ...base, container: { image: "i", environment: [{ name: "A", token: { identity: "x", x: 1 } }] } },
      /^service\.container\.environment\[0\]\.token\.x is not a known field/,
    ],
    [
      "mount",
      { ...base, container: { image: "i", storage: { room: [{ path: "/a", mode: "rw" }] } } },
      /^service\.container\.storage\.room\[0\]\.mode is not a known field/,
    ],
    [
      "mcp oauth",
      { ...base, ports: [{ endpoints: [{ path: "/", mcp: { label: "l", oauth: { pkce: false } } }] }] },
      /^service\.ports\[0\]\.endpoints\[0\]\.mcp\.oauth\.pkce is not a known field/,
    ],
    [
      "prompt template",
      { ...base, agents: [{ name: "a", channels: { messaging: [{ prompts: [{ name: "p", prompt: "x", y: 1 }] }] } }] },
      /^service\.agents\[0\]\.channels\.messaging\[0\]\.prompts\[0\]\.y is not a known field/,
    ],
    [
      "agent content",
      { ...base, agents: [{ name: "a", heartbeat: { queue: "q", minutes: 1, prompt: [{ type: "file", url: "u", text: "t" }] } }] },
      /^service\.agents\[0\]\.heartbeat\.prompt\[0\]\.text is not a known field \(known: type, url\)/,
    ],
  ])("refuses an unknown key in %s, naming its path", (_name, body, re) => {
    const e = refusal(() => parseServiceSpec(body));
    expect(e.status).toBe(400);
    expect(e.message).toMatch(re);
  });

  it.each([
    ["version", { ...base, version: "v2" }, 'service.version must be "v1"'],
    ["kind", { ...base, kind: "ServiceTemplate" }, 'service.kind must be "Service"'],
    ["no metadata", { version: "v1", kind: "Service" }, "service.metadata is required"],
    ["no name", { ...base, metadata: {} }, "service.metadata.name is required"],
    ["not an object", [], "service must be an object, not an array"],
    ["name type", { ...base, metadata: { name: 3 } }, "service.metadata.name must be a string, not a number"],
    ["annotation type", { ...base, metadata: { name: "w", annotations: { a: 1 } } }, "service.metadata.annotations.a must be a string, not a number"],
    ["port 0", { ...base, ports: [{ num: 0 }] }, 'service.ports[0].num must be "*" or an integer ≥ 1'],
    ["port string", { ...base, ports: [{ num: "8080" }] }, 'service.ports[0].num must be "*" or an integer ≥ 1'],
    ["port type", { ...base, ports: [{ type: "udp" }] }, 'service.ports[0].type must be "http" or "tcp"'],
    [
      "role",
      { ...base, container: { image: "i", environment: [{ name: "A", token: { identity: "x", role: "admin" } }] } },
      'must be "user" or "agent" or "tool"',
    ],
    [
      "secret without id",
      { ...base, container: { image: "i", environment: [{ name: "A", secret: { identity: "x" } }] } },
      "service.container.environment[0].secret.id is required",
    ],
    ["no image", { ...base, container: {} }, "service.container.image is required"],
    ["blank email", { ...base, agents: [{ name: "a", email: { address: " " } }] }, "service.agents[0].email.address must not be empty"],
    ["heartbeat prompt", { ...base, agents: [{ name: "a", heartbeat: { queue: "q", minutes: 1 } }] }, "service.agents[0].heartbeat.prompt is required"],
    [
      "heartbeat empty prompt",
      { ...base, agents: [{ name: "a", heartbeat: { queue: "q", minutes: 1, prompt: [] } }] },
      "service.agents[0].heartbeat.prompt must not be empty",
    ],
    [
      "heartbeat minutes",
      { ...base, agents: [{ name: "a", heartbeat: { queue: "q", minutes: 0, prompt: [{ type: "text", text: "x" }] } }] },
      "service.agents[0].heartbeat.minutes must be an integer ≥ 1",
    ],
    [
      "content type",
      { ...base, agents: [{ name: "a", heartbeat: { queue: "q", minutes: 1, prompt: [{ text: "x" }] } }] },
      "service.agents[0].heartbeat.prompt[0].type is required",
    ],
    [
      "api scope",
      { ...base, ports: [{ endpoints: [{ path: "/", meshagent: { identity: "b", api: "all" } }] }] },
      "service.ports[0].endpoints[0].meshagent.api must be an object, not a string",
    ],
    ["too long", { ...base, metadata: { name: "x".repeat(MAX_SPEC_STRING + 1) } }, `service.metadata.name must be at most ${MAX_SPEC_STRING} characters`],
    [
      "too many",
      { ...base, files: Array.from({ length: MAX_SPEC_ITEMS + 1 }, () => ({ path: "p", text: "t" })) },
      `service.files must have at most ${MAX_SPEC_ITEMS} items`,
    ],
    [
      "proto key",
      { ...base, metadata: { name: "w", annotations: JSON.parse('{"__proto__": "x"}') } },
      'service.metadata.annotations must not have the key "__proto__"',
    ],
    [
      "deep api",
      {
        ...base,
        ports: [{ endpoints: [{ path: "/", meshagent: { identity: "b", api: JSON.parse("[".repeat(40).replace(/^\[/, '{"a":') + "]".repeat(39) + "}") } }] }],
      },
      "is nested more than 32 levels deep",
    ],
  ])("refuses %s", (_name, body, msg) => {
    const e = refusal(() => parseServiceSpec(body));
    expect(e.status).toBe(400);
    expect(e.message).toContain(msg);
  });

  it("takes its root name for messages", () => {
    expect(refusal(() => parseServiceSpec({ ...base, x: 1 }, "body")).message).toMatch(/^body\.x is not a known field/);
  });

  it("keeps an ApiScope as sent (any JSON object) and copies it", () => {
    const api = { queues: { send: null, receive: ["q"], list: true }, llm: null, custom: { deep: [1, "a", { b: false }] } };
    const input = { ...base, ports: [{ endpoints: [{ path: "/", meshagent: { identity: "b", api } }] }] };
    const got = parseServiceSpec(input);
    expect(got.ports![0].endpoints![0].meshagent!.api).toEqual(api);
    expect(got.ports![0].endpoints![0].meshagent!.api).not.toBe(api);
  });
});

describe("serviceSecretRefs", () => {
  it("lists container.secrets, pull_secret and environment secrets with their paths", () => {
    expect(serviceSecretRefs(parseServiceSpec(structuredClone(full)))).toEqual([
      { id: "sec_a", path: "container.secrets[0]" },
      { id: "sec_b", path: "container.secrets[1]" },
      { id: "sec_pull", path: "container.pull_secret" },
      { id: "sec_env", path: "container.environment[2].secret.id" },
    ]);
  });

  it("is empty without a container", () => {
    expect(serviceSecretRefs(parseServiceSpec(base))).toEqual([]);
    expect(serviceSecretRefs(parseServiceSpec({ ...base, container: { image: "i" } }))).toEqual([]);
  });
});

describe("parseServiceTemplateSpec", () => {
  const tbase = { version: "v1", kind: "ServiceTemplate", metadata: { name: "t" } };

  it("is strict and names its root", () => {
    expect(refusal(() => parseServiceTemplateSpec({ ...tbase, id: "x" })).message).toMatch(/^template\.id is not a known field/);
    expect(refusal(() => parseServiceTemplateSpec({ ...tbase, container: { secrets: ["a"] } })).message).toMatch(
      /^template\.container\.secrets is not a known field \(known: environment, image, command, working_dir, storage, on_demand, writable_root_fs, private\)/,
    );
    expect(refusal(() => parseServiceTemplateSpec({ ...tbase, container: { pull_secret: "a" } })).message).toMatch(/pull_secret is not a known field/);
    expect(refusal(() => parseServiceTemplateSpec({ ...tbase, kind: "Service" })).message).toBe('template.kind must be "ServiceTemplate"');
    expect(refusal(() => parseServiceTemplateSpec({ ...tbase, external: {} })).message).toBe("template.external.url is required");
    expect(refusal(() => parseServiceTemplateSpec({ ...tbase, variables: [{ name: "v", type: "int" }] })).message).toBe(
      'template.variables[0].type must be "email" or "route"',
    );
  });

  it("takes an image-less container; lax mode coerces like pydantic", () => {
    expect(parseServiceTemplateSpec({ ...tbase, container: { command: "x" } })).toEqual({ ...tbase, container: { command: "x" } });
    const lax = parseServiceTemplateSpec({ ...tbase, ports: [{ num: "8080", published: "yes" }], container: { private: "False" } }, "template", { lax: true });
    expect(lax.ports).toEqual([{ num: 8080, published: true }]);
    expect(lax.container).toEqual({ private: false });
    expect(refusal(() => parseServiceTemplateSpec({ ...tbase, ports: [{ num: "8078" }] }, "template", { lax: true })).message).toContain("8078 is reserved");
    expect(refusal(() => parseServiceTemplateSpec({ ...tbase, ports: [{ num: "8080" }] })).message).toContain("must be");
  });
});

describe("templateToServiceSpec (to_service_spec)", () => {
  const t: ServiceTemplateSpec = {
    version: "v1",
    kind: "ServiceTemplate",
    metadata: { name: "t", description: "d" },
    variables: [{ name: "v" }],
    agents: [{ name: "a", channels: { toolkit: [{ name: "k" }] } }],
    ports: [{ num: 8080 }],
    files: [{ path: "/f", text: "x" }],
    container: { image: "img", command: "c", environment: [{ name: "A", secret: { identity: "me", id: "s" } }], storage: { room: [{ path: "/d" }] } },
    external: { url: "https://x" },
  };

  it("maps every part across, the container with private (default true) and an environment list", () => {
    const s: ServiceSpec = templateToServiceSpec(t);
    expect(s).toEqual({
      version: "v1",
      kind: "Service",
      metadata: { name: "t", description: "d", annotations: {} },
      agents: [{ name: "a", channels: { toolkit: [{ name: "k" }] } }],
      ports: [{ num: 8080 }],
      files: [{ path: "/f", text: "x" }],
      container: {
        image: "img",
        command: "c",
        environment: [{ name: "A", secret: { identity: "me", id: "s" } }],
        storage: { room: [{ path: "/d" }] },
        private: true,
      },
      external: { url: "https://x" },
    });
    expect(Object.keys(s)).toEqual(["version", "kind", "metadata", "agents", "ports", "files", "container", "external"]);
    expect(parseServiceSpec(s)).toEqual(s);
  });

  it("keeps container.private false, and gives an empty environment", () => {
    const s = templateToServiceSpec({ ...t, container: { image: "i", private: false } });
    expect(s.container).toEqual({ image: "i", environment: [], private: false });
  });

  it("leaves out what the template does not have", () => {
    expect(templateToServiceSpec({ version: "v1", kind: "ServiceTemplate", metadata: { name: "t" } })).toEqual({
      version: "v1",
      kind: "Service",
      metadata: { name: "t", annotations: {} },
    });
  });

  it("needs an image when there is a container", () => {
    expect(refusal(() => templateToServiceSpec({ ...t, container: { command: "x" } })).message).toContain("template.container.image is required");
  });
});

describe("ContainerSpecSchema", () => {
  it("is the Python ContainerSpec (an empty image passes; the scheduler adds its own non-empty rule)", () => {
    expect(check(ContainerSpecSchema, { image: "" }, "c")).toEqual({ image: "" });
    expect(() => check(ContainerSpecSchema, { image: "i", x: 1 }, "spec.container")).toThrow("spec.container.x is not a known field");
  });
});
