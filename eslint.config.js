// ESLint flat config. typescript-eslint's recommended rules (syntactic only, no type information, so it stays fast),
// two local architecture rules, and eslint-config-prettier last so that formatting is left to Prettier.
import path from "node:path";
import { fileURLToPath } from "node:url";
import js from "@eslint/js";
import prettier from "eslint-config-prettier";
import { defineConfig, globalIgnores } from "eslint/config";
import tseslint from "typescript-eslint";

const SRC = path.join(path.dirname(fileURLToPath(import.meta.url)), "src");
/** The bottom layers under src/; every other folder directly under src/ is a domain. */
const LAYERS = new Set(["core", "store"]);

/** The path of `file` under src/ as segments, or null when it is outside src/. */
function underSrc(file) {
  const rel = path.relative(SRC, file);
  return rel === "" || rel.startsWith("..") || path.isAbsolute(rel) ? null : rel.split(path.sep);
}

/**
 * A rule that calls `check(context, sourceNode, from, to)` for each relative import (static, dynamic, re-export,
 * `import("…")` type, `import x = require("…")`) in a file inside a folder under src/: `from` is that folder's name and
 * `to` the imported path's segments under src/ (only for paths inside a folder under src/, e.g. ["users", "repo.js"]).
 */
function importRule(description, messages, check) {
  return {
    meta: { type: "problem", docs: { description }, schema: [], messages },
    create(context) {
      const parts = underSrc(context.filename);
      if (!parts || parts.length < 2) return {};
      const from = parts[0];
      const dir = path.dirname(context.filename);
      const visit = (source) => {
        if (source?.type !== "Literal" || typeof source.value !== "string" || !source.value.startsWith(".")) return;
        const to = underSrc(path.resolve(dir, source.value));
        if (to && to.length >= 2) check(context, source, from, to);
      };
      const bySource = (node) => visit(node.source);
      return {
        ImportDeclaration: bySource,
        ExportNamedDeclaration: bySource,
        ExportAllDeclaration: bySource,
        ImportExpression: bySource,
        TSImportType: bySource,
        TSExternalModuleReference: (node) => visit(node.expression),
      };
    },
  };
}

const local = {
  meta: { name: "local" },
  rules: {
    // A domain reaches another domain's tables through that domain's service, never through its repo.
    "no-foreign-repo": importRule(
      "A domain folder under src/ must not import another domain's repo.ts",
      { foreign: "src/{{from}} must not import another domain's repo (src/{{to}}/repo.ts): use that domain's service" },
      (context, node, from, [to, ...rest]) => {
        if (LAYERS.has(from) || to === from || rest.length !== 1 || !/^repo(\.[cm]?[jt]s)?$/.test(rest[0])) return;
        context.report({ node, messageId: "foreign", data: { from, to } });
      },
    ),
    // src/core and src/store are the bottom layers: they must not depend on the domains built on them.
    layering: importRule(
      "src/core and src/store must not import from domain folders",
      { upward: "src/{{from}} is a bottom layer and must not import from the domain folder src/{{to}}" },
      (context, node, from, [to]) => {
        if (!LAYERS.has(from) || LAYERS.has(to)) return;
        context.report({ node, messageId: "upward", data: { from, to } });
      },
    ),
  },
};

/** `_`-prefixed names are deliberately unused: placeholder arguments, skipped destructured values, ignored errors. */
const UNUSED = {
  args: "after-used",
  argsIgnorePattern: "^_",
  varsIgnorePattern: "^_",
  caughtErrorsIgnorePattern: "^_",
  destructuredArrayIgnorePattern: "^_",
  ignoreRestSiblings: true,
};

export default defineConfig(
  globalIgnores(["node_modules/", "data/", "**/dist/", "coverage/", "packages/*/.consumer-*/", ".examples-*/"]),
  js.configs.recommended,
  {
    // The few plain JavaScript files (this config, bin/) run on Node.
    files: ["**/*.{js,mjs,cjs}"],
    languageOptions: { globals: { console: "readonly", process: "readonly", URL: "readonly" } },
  },
  {
    files: ["**/*.{ts,tsx}"],
    extends: [tseslint.configs.recommended],
  },
  {
    files: ["src/**"],
    plugins: { local },
    rules: {
      "local/no-foreign-repo": "error",
      "local/layering": "error",
    },
  },
  {
    files: ["**/*.{js,mjs,cjs}"],
    rules: { "no-unused-vars": ["error", UNUSED] },
  },
  {
    files: ["**/*.{ts,tsx}"],
    rules: { "@typescript-eslint/no-unused-vars": ["error", UNUSED] },
  },
  {
    // Tests and benchmarks read untyped client responses and reach into internals; `any` is the house style there.
    files: ["test/**/*.ts", "bench/**/*.ts", "src/**/*.test.ts", "packages/*/test/**/*.{ts,tsx}"],
    rules: {
      "@typescript-eslint/no-explicit-any": "off",
    },
  },
  {
    // Kysely's documented convention: a migration is frozen in time and takes Kysely<any>, not the app's current schema.
    files: ["src/store/migrations/**/*.ts"],
    rules: {
      "@typescript-eslint/no-explicit-any": "off",
    },
  },
  prettier,
);
