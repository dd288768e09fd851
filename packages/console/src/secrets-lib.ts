import type { Secret } from "@meshagent-oss/sdk";

/**
 * Project secrets as the console writes them. The typed kinds are the SDK's (createSecret/updateSecret: a JSON
 * payload, type "keys" or "docker", as the official clients store them); any other type is an opaque value stored as
 * its UTF-8 bytes (createProjectSecret/updateProjectSecret).
 */
export type SecretKind = "keys" | "docker" | "other";

export interface SecretForm {
  name: string;
  kind: SecretKind;
  /** The type label of an "other" secret. */
  type: string;
  /** "keys": the key/value pairs (e.g. environment variables for container.secrets). */
  keys: { name: string; value: string }[];
  /** "docker": an image pull secret (container.pull_secret). */
  server: string;
  username: string;
  password: string;
  email: string;
  /** "other": the value. */
  value: string;
}

export const blankSecret = (kind: SecretKind = "keys", name = "", type = ""): SecretForm => ({
  name,
  kind,
  type,
  keys: [{ name: "", value: "" }],
  server: "",
  username: "",
  password: "",
  email: "",
  value: "",
});

export const KIND_LABELS: Record<SecretKind, string> = {
  keys: "Key/value pairs",
  docker: "Image pull credentials",
  other: "Other (one opaque value)",
};

/** The form kind of a stored type. */
export function kindOf(type: string): SecretKind {
  return type === "keys" || type === "docker" ? type : "other";
}

/** A stored type for people. */
export function typeLabel(type: string): string {
  const k = kindOf(type);
  return k === "other" ? type || "opaque" : `${KIND_LABELS[k]} (${type})`;
}

export type SecretRequest = { typed: Secret } | { raw: { name: string; type: string; data: Uint8Array } };

/** What the form asks to store; throws an Error that says what is missing. */
export function secretRequest(f: SecretForm): SecretRequest {
  const name = f.name.trim();
  if (!name) throw new Error("Give the secret a name.");
  if (f.kind === "keys") {
    const rows = f.keys.filter((k) => k.name.trim() || k.value);
    if (!rows.length) throw new Error("Add at least one key and its value.");
    const data: Record<string, string> = {};
    for (const [i, k] of rows.entries()) {
      const key = k.name.trim();
      if (!key) throw new Error(`Key ${i + 1} has a value but no name.`);
      if (key in data) throw new Error(`The key ${key} is there twice.`);
      data[key] = k.value;
    }
    return { typed: { name, type: "keys", data } };
  }
  if (f.kind === "docker") {
    if (!f.server.trim() || !f.username.trim() || !f.password) throw new Error("An image pull secret needs the registry server, a username and a password.");
    return {
      typed: {
        name,
        type: "docker",
        server: f.server.trim(),
        username: f.username.trim(),
        password: f.password,
        ...(f.email.trim() ? { email: f.email.trim() } : {}),
      },
    };
  }
  const type = f.type.trim();
  if (!type) throw new Error("Give the secret a type (any label, e.g. opaque or token).");
  if (kindOf(type) !== "other") throw new Error(`For the type ${type}, choose “${KIND_LABELS[kindOf(type)]}”.`);
  if (!f.value) throw new Error("Enter the secret's value.");
  return { raw: { name, type, data: new TextEncoder().encode(f.value) } };
}
