import { createRequire } from "node:module";
import nunjucks from "nunjucks";
import { isMap, isScalar, LineCounter, parseAllDocuments, visit, type Document } from "yaml";
import { ApiError, badRequest, quote } from "../core/errors.js";
import { arr, check, typeName } from "../core/strict.js";
import {
  MAX_SPEC_STRING,
  MAX_SPEC_TEXT,
  parseServiceSpec,
  parseServiceTemplateSpec,
  ServiceTemplateVariableSchema,
  SPEC_LIMITS,
  templateToServiceSpec,
  type ServiceSpec,
  type ServiceTemplateSpec,
  type ServiceTemplateVariable,
} from "./spec.js";

/**
 * Service templates (wire-contract §7.4, `ServiceTemplateSpec.from_yaml(yaml, values)` of meshagent-api 0.39.9):
 *  1. the whole YAML text is rendered as a Jinja2 template with `values` (nunjucks, sandboxed below);
 *  2. the result is loaded as YAML 1.1 (PyYAML's SafeLoader); a scalar tagged `!template…` is rendered again with the
 *     same values, and so is a string value with the legacy prefix "!template ";
 *  3. it is validated as a ServiceTemplateSpec, after the declared variables are checked against `values`;
 *  4. `metadata.annotations` gets the template text and `json.dumps(values)`;
 *  5. (`renderServiceFromTemplate`) `to_service_spec()`.
 * A value of an `obscure` variable never appears in an error message. Nothing here does I/O.
 */

export const ANNOTATION_TEMPLATE_YAML = "meshagent.service.template.yaml";
export const ANNOTATION_TEMPLATE_VALUES = "meshagent.service.template.values";

export const MAX_TEMPLATE_BYTES = 256 * 1024;
export const MAX_RENDERED = 1024 * 1024;
export const MAX_VALUES = 1000;
export const MAX_VALUE_LENGTH = MAX_SPEC_STRING;
/** The longest array a template may build (range(), split(), filters). */
export const MAX_TEMPLATE_ARRAY = 10_000;
/** The most loop iterations of one render (all loops together). */
export const MAX_LOOP_ITEMS = 100_000;
/** The work budget of one render: operations, plus the sizes of the values they touch. */
export const MAX_STEPS = 2_000_000;
/** The widest center()/indent(). */
const MAX_WIDTH = 1000;
/** How deep the YAML may nest. */
const MAX_YAML_DEPTH = 64;

// ---------------------------------------------------------------------------------------------------------------
// nunjucks internals (undocumented, nunjucks 3.2): the parser, the compiler and the runtime the compiled code calls.

interface NjNode {
  typename: string;
  lineno: number;
  colno: number;
  value?: unknown;
  [k: string]: unknown;
}
interface NjCompiler {
  buffer: string;
  compile(node: unknown, frame?: unknown): void;
  getCode(): string;
  _emit(code: string): void;
  _emitLine(code: string): void;
  _compileAggregate(node: unknown, frame: unknown, start?: string, end?: string): void;
  assertType(node: unknown, ...types: unknown[]): void;
  [k: string]: unknown;
}
interface NjRuntime {
  SafeString: new (s: string) => object;
  $read<T>(v: T): T;
  callWrap(fn: unknown, name: string, context: unknown, args: unknown[]): unknown;
  fromIterator(a: unknown): unknown;
  inOperator(key: unknown, val: unknown): boolean;
  [k: string]: unknown;
}
interface NjEnvironment {
  opts: Record<string, unknown>;
  filters: Record<string, (...args: unknown[]) => unknown>;
  tests: Record<string, (...args: unknown[]) => unknown>;
  globals: Record<string, unknown>;
  addFilter(name: string, f: (...args: never[]) => unknown): void;
  addTest(name: string, f: (...args: never[]) => unknown): void;
  addGlobal(name: string, v: unknown): void;
  getFilter(name: string): unknown;
  getTest(name: string): unknown;
}
interface NjTemplate {
  render(ctx: object): string;
}
interface Nj {
  Environment: new (loaders: null, opts: object) => NjEnvironment;
  Template: new (src: { type: "code"; obj: Record<string, unknown> }, env: NjEnvironment, path: string) => NjTemplate;
  parser: { parse(src: string, extensions: unknown[], opts: object): NjNode };
  transformer: { transform(ast: NjNode, asyncFilters: string[]): NjNode };
  compiler: { Compiler: (new (name: string, throwOnUndefined: boolean) => NjCompiler) & { prototype: Record<string, (...a: unknown[]) => void> } };
  runtime: NjRuntime;
  nodes: Record<string, new (...a: unknown[]) => object>;
}
const nj = nunjucks as unknown as Nj;
// nunjucks's index does not re-export the transformer (the compiler's pass between parsing and compiling).
const { transform } = createRequire(import.meta.url)("nunjucks/src/transformer.js") as Nj["transformer"];

/** A limit of the sandbox was reached (not a template error: it is reported as it is). */
class LimitError extends Error {}

/** Names a template may not use: they reach the prototype chain (e.g. constructor → Function). */
const BLOCKED = new Set([...Object.getOwnPropertyNames(Object.prototype), "prototype", "__proto__", "constructor"]);
const UNSUPPORTED: Record<string, string> = {
  Include: "{% include %}",
  Import: "{% import %}",
  FromImport: "{% from … import %}",
  Extends: "{% extends %}",
  AsyncEach: "{% asyncEach %}",
  AsyncAll: "{% asyncAll %}",
  IfAsync: "{% ifAsync %}",
  CallExtension: "extension tags",
  CallExtensionAsync: "extension tags",
  FilterAsync: "async filters",
};
const STRING_METHODS = new Set([
  "startsWith",
  "endsWith",
  "includes",
  "indexOf",
  "lastIndexOf",
  "toLowerCase",
  "toUpperCase",
  "trim",
  "trimStart",
  "trimEnd",
  "slice",
  "substring",
  "charAt",
  "split",
  "at",
]);
const ARRAY_METHODS = new Set(["includes", "indexOf", "lastIndexOf", "slice", "at"]);
const hasOwn = (o: object, k: PropertyKey) => Object.prototype.hasOwnProperty.call(o, k);
const isPlain = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v) && [Object.prototype, null].includes(Object.getPrototypeOf(v));

/** One render's budget (shared by the whole text and its `!template` values). */
class Budget {
  steps = 0;
  loopItems = 0;
  tagOutput = 0;

  /** The cost of touching a value: 1, plus its size (strings in 64-character units). */
  static cost(v: unknown): number {
    if (typeof v === "string") return 1 + (v.length >> 6);
    if (v instanceof nj.runtime.SafeString) return 1 + (String(v).length >> 6);
    if (Array.isArray(v)) return 1 + v.length;
    if (typeof v === "object" && v !== null) return 1 + Object.keys(v).length;
    return 1;
  }

  spend(n: number) {
    this.steps += n;
    if (this.steps > MAX_STEPS) throw new LimitError("template: rendering takes too much work (loops or filters over large values)");
  }

  /** A value a template computed: strings at most MAX_RENDERED, arrays at most MAX_TEMPLATE_ARRAY, deep size bounded. */
  value<T>(v: T): T {
    this.spend(Budget.cost(v));
    if (typeof v === "string" || v instanceof nj.runtime.SafeString) {
      if (String(v).length > MAX_RENDERED) throw new LimitError(`template: a value exceeds ${MAX_RENDERED} characters`);
    } else if (typeof v === "object" && v !== null) {
      let size = 0;
      const seen = new Set<object>();
      const stack: unknown[] = [v];
      while (stack.length) {
        const x = stack.pop();
        if (typeof x === "string") size += x.length;
        else if (typeof x === "object" && x !== null && !seen.has(x)) {
          seen.add(x);
          const items = Array.isArray(x) ? x : Object.values(x);
          if (items.length > MAX_TEMPLATE_ARRAY) throw new LimitError(`template: a list exceeds ${MAX_TEMPLATE_ARRAY} items`);
          size += items.length;
          this.spend(items.length);
          stack.push(...items);
        }
        if (size > MAX_RENDERED) throw new LimitError(`template: a value exceeds ${MAX_RENDERED} characters`);
      }
    }
    return v;
  }
}

/** The runtime the compiled templates of one render call: nunjucks's, with the member lookups and calls guarded. */
function sandboxRuntime(budget: Budget): NjRuntime {
  const base = nj.runtime;
  const rt = Object.create(base) as NjRuntime;
  const method = (target: object | string, name: string) => {
    const fn = (target as Record<string, unknown>)[name] as (...a: unknown[]) => unknown;
    return (...args: unknown[]) => {
      budget.spend(Budget.cost(target) + args.reduce<number>((n, a) => n + Budget.cost(a), 0));
      return budget.value(fn.apply(target, args));
    };
  };
  rt.memberLookup = (obj: unknown, key: unknown) => {
    budget.spend(1);
    if (obj === null || obj === undefined) return undefined;
    const k = typeof key === "number" ? key : String(key);
    if (typeof k === "string" && BLOCKED.has(k)) return undefined;
    const target = obj instanceof base.SafeString ? String(obj) : obj;
    if (typeof target === "string" || Array.isArray(target)) {
      if (k === "length") return target.length;
      if (typeof k === "number" || /^\d+$/.test(k)) return rt.$read((target as ArrayLike<unknown>)[Number(k)]);
      if ((typeof target === "string" ? STRING_METHODS : ARRAY_METHODS).has(k)) return method(target, k);
      return undefined;
    }
    // Plain objects: dict literals, `loop`, cycler(): their own properties only.
    if (typeof target === "object" && hasOwn(target as object, k)) {
      const v = (target as Record<string | number, unknown>)[k];
      return typeof v === "function" ? method(target as object, String(k)) : rt.$read(v);
    }
    return undefined;
  };
  rt.callWrap = (fn, name, context, args) => {
    budget.spend(1 + args.reduce<number>((n, a) => n + Budget.cost(a), 0));
    return budget.value(base.callWrap(fn, name, context, args));
  };
  rt.fromIterator = (a: unknown) => {
    const items = base.fromIterator(a); // an array for iterables such as a SafeString
    const n = typeof items === "string" || Array.isArray(items) ? items.length : typeof items === "object" && items !== null ? Object.keys(items).length : 0;
    budget.loopItems += n;
    if (budget.loopItems > MAX_LOOP_ITEMS) throw new LimitError(`template: loops run more than ${MAX_LOOP_ITEMS} times`);
    budget.spend(1 + n);
    return items;
  };
  rt.inOperator = (key: unknown, val: unknown) => {
    budget.spend(Budget.cost(val));
    return base.inOperator(key, val);
  };
  rt.$filter = (f: (...a: unknown[]) => unknown, context: unknown, args: unknown[]) => {
    budget.spend(args.reduce<number>((n, a) => n + Budget.cost(a), 1));
    return budget.value(f.apply(context, args));
  };
  rt.$value = (v: unknown) => budget.value(v);
  /** A variable or member read: charged by its size, so comparisons and arithmetic on big values count. */
  rt.$read = <T>(v: T): T => {
    budget.spend(Budget.cost(v));
    return v;
  };
  rt.$output = (buf: string) => {
    budget.spend(1);
    if (buf.length > MAX_RENDERED) throw new LimitError(`template: the rendered template exceeds ${MAX_RENDERED / 1024 / 1024} MiB`);
  };
  return rt;
}

/** The compiler with the sandbox's hooks: output size checks, filters and concatenations through the budget. */
function sandboxCompiler(): NjCompiler {
  const base = nj.compiler.Compiler.prototype;
  const c = new nj.compiler.Compiler("template", false);
  c.compileOutput = function (this: NjCompiler, node: unknown, frame: unknown) {
    base.compileOutput.call(this, node, frame);
    this._emitLine(`runtime.$output(${this.buffer});`);
  };
  c.compileFilter = function (this: NjCompiler, node: NjNode, frame: unknown) {
    const name = node.name as NjNode;
    this.assertType(name, nj.nodes.Symbol);
    this._emit(`runtime.$filter(env.getFilter(${JSON.stringify(name.value)}), context, [`);
    this._compileAggregate(node.args, frame);
    this._emit("])");
  };
  c.compileSymbol = function (this: NjCompiler, node: unknown, frame: unknown) {
    this._emit("runtime.$read(");
    base.compileSymbol.call(this, node, frame);
    this._emit(")");
  };
  for (const op of ["compileAdd", "compileConcat"]) {
    c[op] = function (this: NjCompiler, node: unknown, frame: unknown) {
      this._emit("runtime.$value(");
      base[op].call(this, node, frame);
      this._emit(")");
    };
  }
  return c;
}

/** Refuse what the sandbox does not allow, before compiling: prototype names, regex literals, loaders, async tags. */
function staticCheck(ast: NjNode) {
  const fail = (n: NjNode, what: string): never => {
    throw Object.assign(new Error(what), { lineno: n.lineno + 1, colno: n.colno + 1 });
  };
  const stack: unknown[] = [ast];
  const seen = new Set<unknown>();
  while (stack.length) {
    const n = stack.pop() as NjNode;
    if (typeof n !== "object" || n === null || seen.has(n)) continue;
    seen.add(n);
    if (Array.isArray(n)) {
      stack.push(...n);
      continue;
    }
    if (typeof n.typename !== "string") continue;
    if (UNSUPPORTED[n.typename]) fail(n, `${UNSUPPORTED[n.typename]} is not supported`);
    if (n.typename === "Symbol" && BLOCKED.has(String(n.value))) fail(n, `the name "${String(n.value)}" is not allowed`);
    if (n.typename === "Literal" && n.value instanceof RegExp) fail(n, "regular expression literals are not supported");
    if (n.typename === "LookupVal" || n.typename === "Pair") {
      const key = (n.typename === "LookupVal" ? n.val : n.key) as NjNode | null;
      if (key && (key.typename === "Literal" || key.typename === "Symbol") && BLOCKED.has(String(key.value)))
        fail(key, `the attribute "${String(key.value)}" is not allowed`);
    }
    for (const [k, v] of Object.entries(n)) if (k !== "lineno" && k !== "colno" && typeof v === "object" && v !== null) stack.push(v);
  }
}

// -- filters that could take far more time or memory than their arguments: bounded versions (Jinja2 semantics) --

type Kw = Record<string, unknown> & { __keywords?: boolean };
const kwargs = (args: unknown[]): Kw => {
  const last = args[args.length - 1];
  if (isPlain(last) && (last as Kw).__keywords) {
    args.pop();
    return last as Kw;
  }
  return {};
};
const asText = (v: unknown) => (v === null || v === undefined || v === false ? "" : String(v));
const limitText = (n: number) => {
  if (n > MAX_RENDERED) throw new LimitError(`template: a value exceeds ${MAX_RENDERED} characters`);
};
const width = (w: unknown, dflt: number) => {
  const n = w === undefined || w === null ? dflt : Number(w);
  if (!Number.isFinite(n) || n > MAX_WIDTH) throw new Error(`width must be a number up to ${MAX_WIDTH}`);
  return Math.max(0, Math.floor(n));
};
/** The line boundaries of Python's str.splitlines. */
// eslint-disable-next-line no-control-regex
const PY_SPLITLINES = /\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/;

const FILTERS: Record<string, (...args: never[]) => unknown> = {
  /** Jinja2 indent(s, width=4, first=False, blank=False): blank lines stay empty unless `blank`. */
  indent(...args: unknown[]) {
    const kw = kwargs(args);
    const [s, w, first, blank] = [asText(args[0]), kw.width ?? args[1], kw.first ?? args[2], kw.blank ?? args[3]];
    const pad = typeof w === "string" ? w : " ".repeat(width(w, 4));
    const lines = (s + "\n").split(PY_SPLITLINES);
    lines.pop();
    limitText(s.length + lines.length * pad.length);
    let rv = blank ? lines.join("\n" + pad) : [lines[0] ?? "", ...lines.slice(1).map((l) => (l ? pad + l : l))].join("\n");
    if (first) rv = pad + rv;
    return rv;
  },
  center(s: unknown, w: unknown) {
    const t = asText(s);
    const n = width(w, 80);
    if (t.length >= n) return t;
    // Python's str.center: the odd space goes left when both the margin and the width are odd.
    const marg = n - t.length;
    const left = Math.floor(marg / 2) + (marg & n & 1);
    return " ".repeat(left) + t + " ".repeat(marg - left);
  },
  join(list: unknown, sep: unknown, attr: unknown) {
    const items = Array.isArray(list) ? list : typeof list === "string" ? [...list] : list && typeof list === "object" ? Object.keys(list) : [];
    const parts = items.map((v) => asText(attr ? (isPlain(v) && hasOwn(v, String(attr)) ? v[String(attr)] : undefined) : v));
    const d = asText(sep);
    limitText(parts.reduce((n, p) => n + p.length, 0) + Math.max(0, parts.length - 1) * d.length);
    return parts.join(d);
  },
  replace(s: unknown, old: unknown, neu: unknown, count: unknown) {
    const t = typeof s === "number" ? String(s) : asText(s);
    const o = typeof old === "number" ? String(old) : typeof old === "string" ? old : null;
    if (o === null) return s;
    const n = asText(neu);
    const max = count === undefined || count === null ? Infinity : Number(count);
    const out: string[] = [];
    let size = 0;
    if (o === "") {
      // Python: "abc".replace("", ".") == ".a.b.c."
      const chars = [...t];
      for (let i = 0; i <= chars.length; i++) {
        if (i < max) {
          out.push(n);
          size += n.length;
        }
        if (i < chars.length) {
          out.push(chars[i]);
          size += chars[i].length;
        }
        limitText(size);
      }
      return out.join("");
    }
    let pos = 0;
    let done = 0;
    for (let i = t.indexOf(o); i >= 0 && done < max; i = t.indexOf(o, pos)) {
      out.push(t.slice(pos, i), n);
      size += i - pos + n.length;
      limitText(size);
      pos = i + o.length;
      done++;
    }
    out.push(t.slice(pos));
    return out.join("");
  },
  trim(s: unknown, chars: unknown) {
    const t = asText(s);
    if (typeof chars !== "string" || chars === "") return t.trim();
    let a = 0;
    let b = t.length;
    while (a < b && chars.includes(t[a])) a++;
    while (b > a && chars.includes(t[b - 1])) b--;
    return t.slice(a, b);
  },
  batch(list: unknown, size: unknown, fill: unknown) {
    const items = Array.isArray(list) ? list : [...asText(list)];
    const n = Number(size);
    if (!Number.isInteger(n) || n < 1 || n > MAX_TEMPLATE_ARRAY) throw new Error(`batch size must be an integer from 1 to ${MAX_TEMPLATE_ARRAY}`);
    const out: unknown[][] = [];
    for (let i = 0; i < items.length; i += n) out.push(items.slice(i, i + n));
    const last = out[out.length - 1];
    if (last && fill !== undefined && fill !== null) while (last.length < n) last.push(fill);
    return out;
  },
  slice(list: unknown, slices: unknown, fill: unknown) {
    const items = Array.isArray(list) ? list : [...asText(list)];
    const n = Number(slices);
    if (!Number.isInteger(n) || n < 1 || n > MAX_TEMPLATE_ARRAY) throw new Error(`slice count must be an integer from 1 to ${MAX_TEMPLATE_ARRAY}`);
    const per = Math.floor(items.length / n);
    const extra = items.length % n;
    const out: unknown[][] = [];
    let offset = 0;
    for (let i = 0; i < n; i++) {
      const start = offset + i * per;
      if (i < extra) offset++;
      const part = items.slice(start, offset + (i + 1) * per);
      if (fill !== undefined && fill !== null && i >= extra) part.push(fill);
      out.push(part);
    }
    return out;
  },
  /** Jinja2 tojson: `json.dumps(v, sort_keys=True)` with <, >, & and ' escaped as \uXXXX. */
  tojson(v: unknown, indent: unknown) {
    const n = typeof indent === "number" && Number.isInteger(indent) ? Math.min(Math.max(indent, 0), 16) : undefined;
    return pyJson(v, true, n).replace(/[<>&']/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  },
  count: (v: unknown) => (typeof v === "string" || Array.isArray(v) ? v.length : v && typeof v === "object" ? Object.keys(v).length : 0),
  items: (v: unknown) => (isPlain(v) ? Object.entries(v) : []),
  unique: (v: unknown) => (Array.isArray(v) ? [...new Set(v)] : typeof v === "string" ? [...new Set(v)] : []),
};
/** Regex-heavy or HTML-only filters that are quadratic on crafted input. */
const REMOVED_FILTERS = ["striptags", "urlize"];

function safeRange(start: unknown, stop?: unknown, step?: unknown): number[] {
  let [a, b, s] = stop === undefined ? [0, Number(start), 1] : [Number(start), Number(stop), step === undefined ? 1 : Number(step)];
  if (![a, b, s].every(Number.isFinite)) throw new Error("range() needs numbers");
  if (s === 0) throw new Error("range() step must not be zero");
  a = Math.trunc(a);
  b = Math.trunc(b);
  s = Math.trunc(s) || (s > 0 ? 1 : -1);
  const n = Math.max(0, Math.ceil((b - a) / s));
  if (n > MAX_TEMPLATE_ARRAY) throw new LimitError(`template: range() of more than ${MAX_TEMPLATE_ARRAY} items`);
  return Array.from({ length: n }, (_, i) => a + i * s);
}

/** The isolated environment: no loaders, no autoescaping (Jinja2's `Template()` defaults), guarded filters. */
const env: NjEnvironment = (() => {
  const e = new nj.Environment(null, { autoescape: false, dev: true, throwOnUndefined: false });
  for (const f of REMOVED_FILTERS) delete e.filters[f];
  for (const [name, f] of Object.entries(FILTERS)) e.addFilter(name, f);
  e.addTest("none", (v: unknown) => v === null);
  e.addGlobal("range", safeRange);
  e.addGlobal("dict", (...args: unknown[]) => {
    const kw = kwargs(args);
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(kw)) if (k !== "__keywords" && !BLOCKED.has(k)) out[k] = v;
    return out;
  });
  for (const [k, v] of [
    ["True", true],
    ["False", false],
    ["None", null],
  ] as const)
    e.addGlobal(k, v);
  e.getFilter = (name: string) => {
    if (!hasOwn(e.filters, name)) throw new Error(`filter not found: ${name}`);
    return e.filters[name];
  };
  e.getTest = (name: string) => {
    if (!hasOwn(e.tests, name)) throw new Error(`test not found: ${name}`);
    return e.tests[name];
  };
  return e;
})();

/** Where a template failed: `line`/`col` are 1-based in the text that was rendered. */
class RenderFailure extends Error {
  constructor(
    message: string,
    readonly kind: "syntax" | "render",
    readonly line?: number,
    readonly col?: number,
  ) {
    super(message);
  }
}

/**
 * Render `src` as a Jinja2 template (as `jinja2.Template(src).render(**values)`): newlines normalized and one trailing
 * newline dropped, as Jinja2's defaults do. Throws LimitError or RenderFailure.
 */
function renderJinja(src: string, values: Record<string, string>, budget: Budget): string {
  const text = src.replace(/\r\n?/g, "\n").replace(/\n$/, "");
  const lastLine = text.split("\n").length;
  let props: Record<string, unknown>;
  try {
    let ast = nj.parser.parse(text, [], env.opts);
    ast = transform(ast, []);
    staticCheck(ast);
    const c = sandboxCompiler();
    c.compile(ast);
    props = new Function(c.getCode())() as Record<string, unknown>;
  } catch (err) {
    if (err instanceof LimitError) throw err;
    if (err instanceof RangeError) throw new RenderFailure("the template is nested too deeply", "syntax");
    const e = err as { message?: string; lineno?: number; colno?: number };
    throw new RenderFailure(String(e.message ?? err), "syntax", e.lineno ?? lastLine, e.lineno ? e.colno : undefined);
  }
  const rt = sandboxRuntime(budget);
  const root = props.root as (e: unknown, c: unknown, f: unknown, r: unknown, cb: unknown) => void;
  props.root = (e: unknown, c: unknown, f: unknown, _r: unknown, cb: unknown) => root(e, c, f, rt, cb);
  const ctx: Record<string, string> = {};
  for (const [k, v] of Object.entries(values)) if (!BLOCKED.has(k)) ctx[k] = v;
  try {
    return new nj.Template({ type: "code", obj: props }, env, "template").render(ctx);
  } catch (err) {
    const e = err as { cause?: unknown; lineno?: number; colno?: number; message?: string };
    if (err instanceof LimitError) throw err;
    if (e.cause instanceof LimitError) throw e.cause;
    const cause = e.cause instanceof Error ? e.cause : null;
    const message = cause
      ? cause instanceof RangeError
        ? "the template recursed too deeply"
        : cause.message
      : String(e.message ?? err).replace(/^\(template\)[^\n]*\n\s*/, "");
    // Runtime errors carry the 0-based position of the last expression evaluated.
    throw new RenderFailure(message, "render", e.lineno !== undefined ? e.lineno + 1 : undefined);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Values, variables, redaction

/** `values` as given, checked: an object of strings (null dropped), bounded. */
function checkValues(values: unknown): Record<string, string> {
  if (!isPlain(values)) throw badRequest(`values must be an object of strings, not ${describe(values)}`);
  const entries = Object.entries(values);
  if (entries.length > MAX_VALUES) throw badRequest(`values must have at most ${MAX_VALUES} entries`);
  const out: Record<string, string> = {};
  for (const [k, v] of entries) {
    if (k === "__proto__") throw badRequest(`values must not have the key "__proto__"`);
    if (v === null || v === undefined) continue;
    if (typeof v !== "string") throw badRequest(`values.${k} must be a string, not ${describe(v)}`);
    if (v.length > MAX_VALUE_LENGTH) throw badRequest(`values.${k} must be at most ${MAX_VALUE_LENGTH} characters`);
    out[k] = v;
  }
  return out;
}

const describe = typeName;

interface VarInfo {
  name: string;
  obscure: boolean;
  optional: boolean;
}

/** The declared variables read leniently (before or without validation), or null when they cannot be read. */
function lenientVariables(doc: unknown): VarInfo[] | null {
  if (!isPlain(doc)) return null;
  const vs = doc.variables;
  if (vs === undefined || vs === null) return [];
  if (!Array.isArray(vs)) return null;
  const out: VarInfo[] = [];
  for (const v of vs) {
    if (!isPlain(v) || typeof v.name !== "string") return null;
    const no = (x: unknown) => x === undefined || x === null || x === false || (typeof x === "string" && /^(0|off|f|false|n|no)$/i.test(x));
    out.push({ name: v.name, obscure: !no(v.obscure), optional: !no(v.optional) });
  }
  return out;
}

/**
 * The declared variables of the template text itself, if its top-level `variables:` block (Jinja2 syntax blanked out)
 * parses as YAML: what is known of them when the rendered text is not valid YAML.
 */
function variablesOfSource(yamlText: string): VarInfo[] | null {
  const lines = yamlText.split(/\r\n?|\n/);
  const start = lines.findIndex((l) => /^variables\s*:/.test(l));
  if (start < 0) return null;
  let end = start + 1;
  while (end < lines.length && (/^[\s-]/.test(lines[end]) || lines[end] === "" || lines[end].startsWith("#"))) end++;
  const block = lines
    .slice(start, end)
    .join("\n")
    .replace(/\{#[\s\S]*?#\}/g, "")
    .replace(/\{%[\s\S]*?%\}/g, "")
    .replace(/\{\{[\s\S]*?\}\}/g, "x");
  try {
    const docs = parseAllDocuments(block, YAML_OPTIONS as never);
    if (!Array.isArray(docs) || docs.length !== 1 || docs[0].errors.length) return null;
    return lenientVariables(docs[0].toJS({ maxAliasCount: 100 }));
  } catch {
    return null;
  }
}

/** A function replacing every secret (and its JSON-escaped form) by `***`, longest first. */
function redactor(secrets: Iterable<string>): (s: string) => string {
  const forms = new Set<string>();
  for (const s of secrets) {
    if (!s) continue;
    forms.add(s);
    const j = JSON.stringify(s).slice(1, -1);
    if (j !== s) forms.add(j);
  }
  const list = [...forms].sort((a, b) => b.length - a.length);
  return (msg) => list.reduce((m, s) => m.split(s).join("***"), msg);
}

function secretsOf(vars: VarInfo[] | null, values: Record<string, string>, fallback: VarInfo[] | null = null): string[] {
  if (vars !== null) return vars.filter((v) => v.obscure && values[v.name]).map((v) => values[v.name]);
  // Variables unknown: every value of 3 characters or more, and the obscure ones of the template text.
  const all = Object.values(values).filter((v) => v.length >= 3);
  return [...all, ...secretsOf(fallback ?? [], values)];
}

/** Re-throw an error of a stage with every secret redacted from its message. */
function redacted(err: unknown, redact: (s: string) => string): unknown {
  if (err instanceof ApiError) return new ApiError(err.status, err.code, redact(err.message));
  if (err instanceof LimitError) return badRequest(redact(err.message));
  return err;
}

function requireVariables(vars: VarInfo[], values: Record<string, string>) {
  for (const v of vars) if (!v.optional && values[v.name] === undefined) throw badRequest(`variable "${v.name}" is required`);
}

// ---------------------------------------------------------------------------------------------------------------
// YAML

/** A Python string literal as `json.dumps` writes it (ensure_ascii): non-ASCII, DEL and controls as \uXXXX. */
function pyString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ch = s[i];
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\b") out += "\\b";
    else if (ch === "\f") out += "\\f";
    else if (c < 0x20 || c > 0x7e) out += "\\u" + c.toString(16).padStart(4, "0");
    else out += ch;
  }
  return out + '"';
}

/** Python's `json.dumps(v, sort_keys=…, indent=…)` with its default separators (", " and ": "). */
function pyJson(v: unknown, sortKeys = false, indent?: number, level = 0): string {
  if (v === null || v === undefined) return "null";
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "number") return Number.isNaN(v) ? "NaN" : !Number.isFinite(v) ? (v > 0 ? "Infinity" : "-Infinity") : String(v);
  if (typeof v === "string" || v instanceof nj.runtime.SafeString) return pyString(String(v));
  const items: string[] = [];
  let open = "[";
  let close = "]";
  if (Array.isArray(v)) for (const x of v) items.push(pyJson(x, sortKeys, indent, level + 1));
  else if (typeof v === "object") {
    [open, close] = ["{", "}"];
    const entries = Object.entries(v);
    if (sortKeys) entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    for (const [k, x] of entries) items.push(`${pyString(k)}: ${pyJson(x, sortKeys, indent, level + 1)}`);
  } else return pyString(String(v));
  if (items.length === 0) return open + close;
  if (indent === undefined) return open + items.join(", ") + close;
  const pad = (n: number) => "\n" + " ".repeat(indent * n);
  return open + pad(level + 1) + items.join("," + pad(level + 1)) + pad(level) + close;
}

/** `json.dumps(values)` of Python: `{"a": "b", "c": "d"}`, non-ASCII escaped as \uXXXX (ensure_ascii). */
export const pythonJsonDumps = (values: Record<string, string>): string => pyJson(values);

function yamlError(message: string, lc: LineCounter, offset?: number): ApiError {
  if (offset === undefined) return badRequest(`template: invalid YAML: ${message}`);
  const { line, col } = lc.linePos(offset);
  return badRequest(`template: invalid YAML at line ${line}, column ${col}: ${message}`);
}

/**
 * The YAML 1.1 scalars as PyYAML's resolver reads them: `y`/`n` stay strings, a float needs a dot (and a signed
 * exponent), a decimal integer has no leading zero. Everything else is yaml's YAML 1.1 schema.
 */
type YamlTag = { tag: string; format?: string; test?: RegExp; identify?: (v: unknown) => boolean };
function pyyamlTags(tags: unknown[]): unknown[] {
  return (tags as YamlTag[])
    .filter((t) => !(t.tag === "tag:yaml.org,2002:float" && t.format === "EXP"))
    .map((t) => {
      if (t.tag === "tag:yaml.org,2002:bool")
        return { ...t, test: t.identify?.(true) ? /^(?:yes|Yes|YES|true|True|TRUE|on|On|ON)$/ : /^(?:no|No|NO|false|False|FALSE|off|Off|OFF)$/ };
      if (t.tag === "tag:yaml.org,2002:int" && t.format === undefined) return { ...t, test: /^[-+]?(?:0|[1-9][0-9_]*)$/ };
      if (t.tag === "tag:yaml.org,2002:float" && t.format === undefined && !t.test?.source.includes("inf"))
        return { ...t, test: /^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?)$/ };
      return t;
    });
}
const YAML_OPTIONS = { version: "1.1", customTags: pyyamlTags, uniqueKeys: false, logLevel: "silent" } as const;

/** Parse the rendered YAML (one document, YAML 1.1 as PyYAML); tags other than `!template…` are refused. */
function parseYaml(rendered: string, lc: LineCounter): Document | undefined {
  const docs = parseAllDocuments(rendered, { ...YAML_OPTIONS, prettyErrors: false, lineCounter: lc } as never);
  const list = (Array.isArray(docs) ? docs : []) as Document[];
  for (const d of list) {
    const e = d.errors[0];
    if (e) throw yamlError(e.message, lc, e.pos[0]);
  }
  if (list.length > 1) throw yamlError("expected a single document in the stream, but found another document", lc, list[1].range?.[0]);
  const doc = list[0];
  if (!doc) return undefined;
  for (const w of doc.warnings) {
    if (w.code !== "TAG_RESOLVE_FAILED") continue;
    const tag = w.message.replace(/^Unresolved tag: /, "");
    if (!tag.startsWith("!template")) throw yamlError(`could not determine a constructor for the tag '${tag}'`, lc, w.pos[0]);
  }
  // yaml ends a block scalar that runs to the end of the text with a line break; PyYAML adds none when the text has none.
  const last = rendered.slice(rendered.lastIndexOf("\n") + 1);
  const eofBlock = !/[\n\r]$/.test(rendered) && last.trim() !== "";
  visit(doc, {
    Scalar(_k, node) {
      if (eofBlock && node.range?.[1] === rendered.length && /^BLOCK_/.test(String(node.type)) && typeof node.value === "string")
        node.value = node.value.replace(/\n$/, "");
    },
    Alias(_k, node) {
      if (!node.resolve(doc)) throw yamlError(`found undefined alias '${node.source}'`, lc, node.range?.[0]);
    },
    Node(_k, node, path) {
      if (path.length > MAX_YAML_DEPTH * 2) throw yamlError(`the document nests more than ${MAX_YAML_DEPTH} levels deep`, lc, node.range?.[0]);
      if (node.tag?.startsWith("!template") && !isScalar(node))
        throw yamlError(`expected a scalar node for the tag '${node.tag}', but found a ${isMap(node) ? "mapping" : "sequence"}`, lc, node.range?.[0]);
    },
  });
  return doc;
}

/** Render one `!template` scalar (or legacy "!template " string) with the values; `where` names it in errors. */
function renderValue(src: string, values: Record<string, string>, budget: Budget, where: string): string {
  let out: string;
  try {
    out = renderJinja(src, values, budget);
  } catch (err) {
    if (err instanceof RenderFailure)
      throw badRequest(
        `template: the ${where}: ${err.kind === "syntax" ? "invalid template syntax" : "rendering failed"}${err.line ? ` at line ${err.line} of the value` : ""}: ${err.message}`,
      );
    throw err;
  }
  budget.tagOutput += out.length;
  if (budget.tagOutput > MAX_RENDERED) throw new LimitError(`template: the rendered !template values exceed ${MAX_RENDERED / 1024 / 1024} MiB`);
  return out;
}

/** Legacy: a string value "!template …" is rendered (meshagent-api `format_yaml_value`); keys are left alone. */
function renderLegacy(v: unknown, values: Record<string, string>, budget: Budget, path: string, seen: Set<object>): unknown {
  if (typeof v === "string") return v.startsWith("!template ") ? renderValue(v.slice("!template ".length), values, budget, `"!template " value at ${path}`) : v;
  if (typeof v !== "object" || v === null || seen.has(v)) return v;
  seen.add(v);
  if (Array.isArray(v)) v.forEach((x, i) => (v[i] = renderLegacy(x, values, budget, `${path}[${i}]`, seen)));
  else if (isPlain(v)) for (const [k, x] of Object.entries(v)) v[k] = renderLegacy(x, values, budget, `${path}.${k}`, seen);
  return v;
}

// ---------------------------------------------------------------------------------------------------------------
// The API

/**
 * `ServiceTemplateSpec.from_yaml(yamlText, values)`: the rendered, validated ServiceTemplateSpec with the
 * `meshagent.service.template.yaml` / `.values` annotations (what POST /templates/render answers). 400 on any error.
 */
export function renderTemplate(yamlText: string, values: Record<string, string>): ServiceTemplateSpec {
  if (typeof yamlText !== "string") throw badRequest(`template must be a string (the ServiceTemplate YAML), not ${describe(yamlText)}`);
  if (yamlText.length > MAX_TEMPLATE_BYTES || Buffer.byteLength(yamlText, "utf8") > MAX_TEMPLATE_BYTES)
    throw badRequest(`template must be at most ${MAX_TEMPLATE_BYTES / 1024} KiB`);
  const vals = checkValues(values);
  const budget = new Budget();

  // Until the rendered YAML is read, the variables (and so the obscure ones) are only known from the source text.
  const fallback = variablesOfSource(yamlText);
  const early = redactor(secretsOf(null, vals, fallback));
  /** A failure before the variables are known; a missing required variable explains most, so it is named first. */
  const failEarly = (err: unknown, blameVariables = true): never => {
    if (blameVariables && fallback) requireVariables(fallback, vals);
    throw redacted(err, early);
  };

  // 1. The whole text through Jinja2.
  let rendered = "";
  try {
    rendered = renderJinja(yamlText, vals, budget);
  } catch (err) {
    if (!(err instanceof RenderFailure)) failEarly(err);
    const f = err as RenderFailure;
    const at = f.line ? ` at line ${f.line}${f.col ? `, column ${f.col}` : ""}` : "";
    const syntax = f.kind === "syntax";
    failEarly(badRequest(`template: ${syntax ? "invalid template syntax" : "rendering failed"}${at}: ${f.message}`), !syntax);
  }
  if (rendered.length > MAX_RENDERED) failEarly(new LimitError(`template: the rendered template exceeds ${MAX_RENDERED / 1024 / 1024} MiB`));

  // 2. YAML, with the !template tags rendered again, then the legacy "!template " strings.
  const lc = new LineCounter();
  let raw: unknown = null;
  let vars: VarInfo[] | null = null;
  let redact = early;
  try {
    const doc = parseYaml(rendered, lc);
    if (doc) {
      vars = lenientVariables(doc.toJS({ maxAliasCount: 100 }));
      redact = redactor(secretsOf(vars, vals, fallback));
      visit(doc, {
        Scalar(_k, node) {
          if (!node.tag?.startsWith("!template")) return;
          const { line, col } = lc.linePos(node.range?.[0] ?? 0);
          node.value = renderValue(String(node.value ?? ""), vals, budget, `${node.tag} value at line ${line}, column ${col}`);
          node.tag = undefined;
        },
      });
      raw = doc.toJS({ maxAliasCount: 100 });
    }
    raw = renderLegacy(raw, vals, budget, "template", new Set());
  } catch (e) {
    const err =
      e instanceof ApiError || e instanceof LimitError
        ? e
        : e instanceof RangeError
          ? yamlError("the document is nested too deeply", lc)
          : yamlError(e instanceof Error ? e.message : String(e), lc); // e.g. yaml's alias limit (a ReferenceError)
    if (vars === null) failEarly(err);
    throw redacted(err, redact);
  }

  // 3. The declared variables against the values, then the whole ServiceTemplateSpec.
  let spec: ServiceTemplateSpec;
  try {
    let declared: ServiceTemplateVariable[] = [];
    if (isPlain(raw) && raw.variables !== undefined && raw.variables !== null)
      declared = check(arr(ServiceTemplateVariableSchema), raw.variables, "template.variables", { ...SPEC_LIMITS, lax: true }) as ServiceTemplateVariable[];
    redact = redactor([...secretsOf(vars ?? [], vals), ...declared.filter((v) => v.obscure && vals[v.name]).map((v) => vals[v.name])]);
    for (const v of declared) {
      const given = vals[v.name];
      if (given === undefined) {
        if (!v.optional) throw badRequest(`variable "${v.name}" is required`);
        continue;
      }
      if (v.enum && !v.enum.includes(given)) {
        const allowed = v.enum.map((x) => JSON.stringify(x)).join(", ");
        throw badRequest(`variable "${v.name}" must be one of ${allowed}${v.obscure ? "" : `, not ${quote(given)}`}`);
      }
    }
    spec = parseServiceTemplateSpec(raw, "template", { lax: true });
  } catch (err) {
    throw redacted(err, vars === null ? early : redact);
  }

  // 4. The template annotations.
  const json = pythonJsonDumps(vals);
  if (json.length > MAX_SPEC_TEXT) throw badRequest(`values must be at most ${MAX_SPEC_TEXT / 1024 / 1024} MiB as JSON`);
  const annotations = { ...(spec.metadata.annotations ?? {}) };
  annotations[ANNOTATION_TEMPLATE_YAML] = yamlText;
  annotations[ANNOTATION_TEMPLATE_VALUES] = json;
  spec.metadata = { ...spec.metadata, annotations };
  return spec;
}

/** Step 5: the ServiceSpec a template renders to (`from_yaml(...).to_service_spec()`), without an id. */
export function renderServiceFromTemplate(yamlText: string, values: Record<string, string>): ServiceSpec {
  return parseServiceSpec(templateToServiceSpec(renderTemplate(yamlText, values)));
}
