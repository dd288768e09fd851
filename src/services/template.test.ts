import { describe, expect, it } from "vitest";
import { ApiError } from "../core/errors.js";
import {
  ANNOTATION_TEMPLATE_VALUES,
  ANNOTATION_TEMPLATE_YAML,
  MAX_TEMPLATE_BYTES,
  pythonJsonDumps,
  renderServiceFromTemplate,
  renderTemplate,
} from "./template.js";

const H = "version: v1\nkind: ServiceTemplate\nmetadata:\n  name: {{ name }}\n";
const PW = "hunter2-s3cret";

interface Case {
  name: string;
  yaml: string;
  values?: Record<string, unknown>;
  /** Matched (toMatchObject) against the rendered ServiceTemplateSpec. */
  want?: Record<string, unknown>;
  /** A fragment of the 400's message. */
  error?: string;
  /** Strings the 400's message must not contain. */
  hidden?: string[];
}

const cases: Case[] = [
  { name: "plain render", yaml: "version: v1\nkind: ServiceTemplate\nmetadata:\n  name: plain\n", want: { metadata: { name: "plain" } } },
  {
    name: "{{ var }} in several places",
    yaml:
      H +
      "  description: the {{ name }} service\n  annotations:\n    owner: {{ owner }}\ncontainer:\n  image: {{ image }}:{{ tag }}\nports:\n- num: {{ port }}\n",
    values: { name: "web", owner: "ops", image: "nginx", tag: "1.27", port: "8080" },
    want: {
      metadata: { name: "web", description: "the web service", annotations: { owner: "ops" } },
      container: { image: "nginx:1.27" },
      ports: [{ num: 8080 }],
    },
  },
  {
    name: "bad YAML names its line and column",
    yaml: H + "ports:\n  - num: [1, 2\n",
    values: { name: "w" },
    error: "template: invalid YAML at line 6, column 15:",
  },
  { name: "bad YAML: a nested mapping", yaml: H + "container: image: x\n", values: { name: "w" }, error: "template: invalid YAML at line 5, column 12:" },
  {
    name: "template syntax error names its line",
    yaml: H + "\n  description: {{ name | }}\n",
    values: { name: "w" },
    error: "template: invalid template syntax at line 6, column",
  },
  { name: "unclosed block", yaml: H + "{% if name %}\n  description: x\n", values: { name: "w" }, error: "template: invalid template syntax at line 6" },
  {
    name: "runtime error names its line",
    yaml: H + "\n  description: {{ nope() }}\n",
    values: { name: "w" },
    error: "template: rendering failed at line 6: Unable to call `nope`",
  },
  {
    name: "missing required variable",
    yaml: H + "variables:\n- name: name\n- name: image\ncontainer:\n  image: {{ image }}\n",
    values: { name: "w" },
    error: 'variable "image" is required',
  },
  {
    name: "missing required variable that breaks the YAML",
    yaml: H + "variables:\n- name: name\n- name: port\nports:\n- num: {{ port }}: x\n",
    values: { name: "w" },
    error: 'variable "port" is required',
  },
  {
    name: "optional variable absent",
    yaml: H + "variables:\n- name: name\n- name: tag\n  optional: true\ncontainer:\n  image: app:{{ tag | default('latest') }}\n",
    values: { name: "w" },
    want: { container: { image: "app:latest" }, variables: [{ name: "name" }, { name: "tag", optional: true }] },
  },
  {
    name: "enum violation",
    yaml: H + "variables:\n- name: size\n  enum: [small, large]\n",
    values: { name: "w", size: "huge" },
    error: 'variable "size" must be one of "small", "large", not "huge"',
  },
  {
    name: "obscure value absent from an enum error",
    yaml: H + "variables:\n- name: pw\n  obscure: true\n  enum: [a, b]\n",
    values: { name: "w", pw: PW },
    error: 'variable "pw" must be one of "a", "b"',
    hidden: [PW],
  },
  {
    name: "obscure value absent from a YAML error",
    yaml: H + "variables:\n- name: pw\n  obscure: true\ncontainer:\n  image: !{{ pw }} x\n",
    values: { name: "w", pw: PW },
    error: "could not determine a constructor for the tag '!***'",
    hidden: [PW],
  },
  {
    name: "obscure value absent from a validation error",
    yaml: H + "variables:\n- name: pw\n  obscure: true\ncontainer:\n  image: x\n  {{ pw }}: 1\n",
    values: { name: "w", pw: PW },
    error: "template.container.*** is not a known field",
    hidden: [PW],
  },
  {
    name: "unparsable YAML: every value of 3+ characters is hidden",
    yaml: "a: *{{ tok }}\nb: {{ short }}\n",
    values: { tok: "abc123", short: "xy" },
    error: "found undefined alias '***'",
    hidden: ["abc123"],
  },
  {
    name: "!template tags are rendered again (strings coerced like pydantic)",
    yaml: H + "container:\n  image: !template \"app:{{ '{{' }} tag {{ '}}' }}\"\n  private: !template '{{ private }}'\nports:\n- num: !template '{{ port }}'\n",
    values: { name: "w", tag: "v2", private: "false", port: "9000" },
    want: { container: { image: "app:v2", private: false }, ports: [{ num: 9000 }] },
  },
  {
    name: "!template tag variants (the Python multi-constructor's prefix) and block scalars",
    yaml: H + "  description: !template:desc |\n    hi {{ '{{' }} name {{ '}}' }}\n    bye\nfiles:\n- path: /x\n  text: !templatex 'a{{ name }}'\n",
    values: { name: "w" },
    want: { metadata: { description: "hi w\nbye" }, files: [{ path: "/x", text: "aw" }] },
  },
  {
    name: "!template on a mapping",
    yaml: H + "container: !template {image: x}\n",
    values: { name: "w" },
    error: "expected a scalar node for the tag '!template', but found a mapping",
  },
  {
    name: "other tags are refused",
    yaml: H + "container:\n  image: !!python/object:os.system x\n",
    values: { name: "w" },
    error: "could not determine a constructor for the tag",
  },
  {
    name: 'legacy "!template " string prefix',
    yaml: H + "container:\n  image: \"!template registry/{{ '{{' }} image {{ '}}' }}\"\n",
    values: { name: "w", image: "app" },
    want: { container: { image: "registry/app" } },
  },
  {
    name: "invalid spec: unknown key",
    yaml: H + "  labels: {}\n",
    values: { name: "w" },
    error: "template.metadata.labels is not a known field (known: name, description, repo, icon, annotations)",
  },
  {
    name: "invalid spec: port 8078",
    yaml: H + "ports:\n- num: {{ port }}\n",
    values: { name: "w", port: "8078" },
    error: "template.ports[0].num must not be 8078",
  },
  { name: "invalid spec: wrong kind", yaml: H.replace("ServiceTemplate", "Service"), values: { name: "w" }, error: 'template.kind must be "ServiceTemplate"' },
  { name: "invalid spec: not a mapping", yaml: "- {{ name }}\n", values: { name: "w" }, error: "template must be an object, not an array" },
  { name: "two documents", yaml: H + "---\n" + H, values: { name: "w" }, error: "template: invalid YAML at line 5, column 1: expected a single document" },
  { name: "values must be strings", yaml: H, values: { name: "w", port: 8080 }, error: "values.port must be a string, not a number" },
  {
    name: "values null count as absent",
    yaml: H + "  description: {{ d | default('none') }}\n",
    values: { name: "w", d: null },
    want: { metadata: { description: "none" } },
  },
  {
    name: "a value for an undeclared variable is fine",
    yaml: H + "variables:\n- name: name\n",
    values: { name: "w", extra: "x" },
    want: { metadata: { name: "w" } },
  },
  {
    name: "{% for %} loop",
    yaml: H + "agents:\n{% for a in agents.split(',') %}- name: {{ a | trim }}\n  description: agent {{ loop.index }}\n{% endfor %}",
    values: { name: "w", agents: "chat, mail" },
    want: {
      agents: [
        { name: "chat", description: "agent 1" },
        { name: "mail", description: "agent 2" },
      ],
    },
  },
  {
    name: "Jinja filters: default, upper, replace, tojson, indent",
    yaml:
      H +
      "  description: {{ missing | default(\"x\") | upper }}-{{ name | upper }}\n  repo: {{ name | replace('w', 'v') | tojson }}\nfiles:\n- path: /f\n  text: |\n    {{ body | indent(4) }}\n",
    values: { name: "w", body: "a\n\nb" },
    want: { metadata: { description: "X-W", repo: "v" }, files: [{ path: "/f", text: "a\n\nb" }] },
  },
  {
    name: "{% if %} and whitespace control",
    yaml: H + "{%- if ext %}\nexternal:\n  url: {{ ext }}\n{%- endif %}\n",
    values: { name: "w", ext: "https://x" },
    want: { external: { url: "https://x" } },
  },
  {
    name: "YAML 1.1 scalars as PyYAML reads them",
    yaml: H + "  annotations:\n    a: y\n    b: '1'\ncontainer:\n  image: i\n  on_demand: yes\n",
    values: { name: "w" },
    want: { metadata: { annotations: { a: "y", b: "1" } }, container: { on_demand: true } },
  },
  {
    name: "the sandbox refuses prototype access",
    yaml: H + "  description: {{ range.constructor('return process')() }}\n",
    values: { name: "w" },
    error: 'the attribute "constructor" is not allowed',
  },
  {
    name: "the sandbox refuses dynamic prototype access",
    yaml: H + "  description: {{ range['constr' ~ 'uctor'] }}x\n",
    values: { name: "w" },
    want: { metadata: { description: "x" } },
  },
  { name: "the sandbox has no loader", yaml: "{% include 'x.yaml' %}", error: "{% include %} is not supported" },
  {
    name: "rendered output is bounded",
    yaml: "{% for i in range(10000) %}{% for j in range(10) %}" + "x".repeat(100) + "{% endfor %}{% endfor %}",
    error: "the rendered template exceeds 1 MiB",
  },
  {
    name: "loops are bounded",
    yaml: "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
    error: "loops run more than 100000 times",
  },
  { name: "recursion is bounded", yaml: "{% macro f(n) %}{{ f(n) }}{{ f(n) }}{% endmacro %}{{ f(1) }}", error: "template: rendering" },
  { name: "oversize template", yaml: "#".repeat(MAX_TEMPLATE_BYTES + 1), error: "template must be at most 256 KiB" },
];

describe("renderTemplate: the table", () => {
  it("has the cases the brief asks for", () => expect(cases.length).toBeGreaterThanOrEqual(24));

  it.each(cases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const run = () => renderTemplate(c.yaml, (c.values ?? {}) as Record<string, string>);
    if (c.want) {
      expect(run()).toMatchObject(c.want);
      return;
    }
    let err: unknown;
    try {
      run();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApiError);
    const e = err as ApiError;
    expect(e.status).toBe(400);
    expect(e.message).toContain(c.error);
    for (const h of c.hidden ?? []) expect(e.message).not.toContain(h);
  });
});

describe("renderTemplate: annotations", () => {
  it("adds the template text and json.dumps(values) (Python's separators and \\uXXXX escapes)", () => {
    const yaml = H + "  annotations:\n    keep: me\n";
    const values = { name: "w", é: 'ü😀\n"\\ \u007f/', z: "" };
    const t = renderTemplate(yaml, values);
    expect(t.metadata.annotations).toEqual({
      keep: "me",
      [ANNOTATION_TEMPLATE_YAML]: yaml,
      [ANNOTATION_TEMPLATE_VALUES]: '{"name": "w", "\\u00e9": "\\u00fc\\ud83d\\ude00\\n\\"\\\\ \\u007f/", "z": ""}',
    });
  });

  it("writes {} for no values and replaces template-provided copies", () => {
    const t = renderTemplate(H.replace("{{ name }}", "w") + `  annotations:\n    ${ANNOTATION_TEMPLATE_VALUES}: old\n`, {});
    expect(t.metadata.annotations).toEqual({ [ANNOTATION_TEMPLATE_VALUES]: "{}", [ANNOTATION_TEMPLATE_YAML]: expect.any(String) });
    expect(pythonJsonDumps({ a: "b", c: "d" })).toBe('{"a": "b", "c": "d"}');
  });
});

describe("renderServiceFromTemplate (to_service_spec)", () => {
  it("maps the rendered template into a ServiceSpec, container.private included", () => {
    const yaml =
      H +
      "variables:\n- name: name\ncontainer:\n  image: app\n  private: {{ private }}\n  environment:\n  - name: A\n    value: '{{ a }}'\nports:\n- num: 8080\n";
    const s = renderServiceFromTemplate(yaml, { name: "svc", private: "false", a: "1" });
    expect(s).toEqual({
      version: "v1",
      kind: "Service",
      metadata: {
        name: "svc",
        annotations: { [ANNOTATION_TEMPLATE_YAML]: yaml, [ANNOTATION_TEMPLATE_VALUES]: '{"name": "svc", "private": "false", "a": "1"}' },
      },
      ports: [{ num: 8080 }],
      container: { image: "app", environment: [{ name: "A", value: "1" }], private: false },
    });
    expect(renderServiceFromTemplate(H + "container:\n  image: app\n", { name: "x" }).container).toEqual({ image: "app", environment: [], private: true });
  });

  it("needs a container image", () => {
    expect(() => renderServiceFromTemplate(H + "container:\n  command: run\n", { name: "x" })).toThrow("template.container.image is required");
  });
});

describe("renderTemplate: inputs", () => {
  it("refuses values that are not an object of strings", () => {
    expect(() => renderTemplate(H, [] as never)).toThrow("values must be an object of strings, not an array");
    expect(() => renderTemplate(H, JSON.parse('{"__proto__": "x"}'))).toThrow('values must not have the key "__proto__"');
    expect(() => renderTemplate(3 as never, {})).toThrow("template must be a string");
  });

  it("never echoes an obscure value given for a variable with an enum, even in other errors", () => {
    const yaml = H + "variables:\n- name: token\n  obscure: true\ncontainer:\n  image: x\n  command: {{ token }}\n  {{ token }}: 1\n";
    try {
      renderTemplate(yaml, { name: "w", token: "tok" });
      throw new Error("expected a 400");
    } catch (e) {
      expect((e as ApiError).message).toBe(
        "template.container.*** is not a known field (known: environment, image, command, working_dir, storage, on_demand, writable_root_fs, private)",
      );
    }
  });
});
