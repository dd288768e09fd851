import { Type } from "@sinclair/typebox";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { errors, Nullable, Ok, ProjectParams, Uuid } from "../core/http.js";

const SecretInfo = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    type: Type.String(),
    delegated_to: Type.Optional(Type.String({ description: "room secrets: the identity it was delegated to (absent when none)" })),
    for_identity: Type.Optional(Type.String({ description: "room secrets: the participant identity it belongs to (absent when none)" })),
  },
  { $id: "ManagedSecretInfo", description: "A secret without its value" },
);
const Secret = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    type: Type.String(),
    delegated_to: Type.Optional(Type.String()),
    for_identity: Type.Optional(Type.String()),
    data_base64: Type.String({ description: "the value, base64-encoded" }),
  },
  { $id: "ManagedSecret" },
);
const List = Type.Object({ secrets: Type.Array(Type.Ref("ManagedSecretInfo")) });
const Created = Type.Object({ id: Type.String() });

const Value = {
  data_base64: Nullable(Type.String({ description: "the value, base64-encoded (at most 256 KiB decoded)" })),
  data: Nullable(Type.Object({}, { additionalProperties: true, description: "legacy (≤0.34) form: the value as a JSON object, stored as its JSON text" })),
};
const ProjectBody = Type.Object({
  name: Type.String({ description: "a display name" }),
  type: Type.String({ description: 'e.g. "keys" or "docker" (the typed helpers), or any label' }),
  ...Value,
});
const RoomIdentity = {
  delegated_to: Nullable(Type.String({ description: "the identity this secret was delegated to" })),
  for_identity: Nullable(Type.String({ description: "the participant identity the secret belongs to" })),
};
const RoomCreateBody = Type.Object({
  secret_id: Nullable(Type.String({ description: "the id to use (default: a new UUID); unique with for_identity and delegated_to" })),
  name: Nullable(Type.String({ description: "default: the id" })),
  type: Nullable(Type.String({ description: 'default: "opaque"' })),
  ...RoomIdentity,
  ...Value,
});
const RoomUpdateBody = Type.Object({ name: Nullable(Type.String()), type: Nullable(Type.String()), ...RoomIdentity, ...Value });
const Selector = Type.Object({
  delegated_to: Type.Optional(Type.String({ maxLength: 256 })),
  for_identity: Type.Optional(Type.String({ maxLength: 256 })),
});

const SecretParams = Type.Object({ project_id: Uuid, secret_id: Type.String({ minLength: 1, maxLength: 256 }) });
const RoomParams = Type.Object({ project_id: Uuid, room_name: Type.String({ minLength: 1 }) });
const RoomSecretParams = Type.Object({ project_id: Uuid, room_name: Type.String({ minLength: 1 }), secret_id: Type.String({ minLength: 1, maxLength: 256 }) });

const blank = (s: string | undefined) => (s === "" ? undefined : s);

/** Wire-contract §5. Secrets are a developer's business (admins and the project's API keys included). */
export async function secretRoutes(app: AreaApp, ctx: AppContext) {
  const { secrets } = ctx;
  const P = "/accounts/projects/:project_id";
  const access = { access: "developer" } as const;

  app.post(
    `${P}/secrets`,
    {
      config: access,
      schema: {
        summary: "create_project_secret",
        description:
          "Seals the value (AES-256-GCM under the master key) and answers its new id. `data_base64` (0.39.9) or the legacy `data` object. " +
          "The typed helpers create_secret/createSecret send a JSON payload in `data_base64` with type docker or keys.",
        params: ProjectParams,
        body: ProjectBody,
        response: { 201: Created, ...errors(400) },
      },
    },
    async (req, reply) => {
      reply.code(201);
      return secrets.createProject(req.params.project_id, req.body);
    },
  );

  app.get(
    `${P}/secrets`,
    {
      config: access,
      schema: { summary: "list_project_secrets", description: "Without values.", params: ProjectParams, response: { 200: List, ...errors(400) } },
    },
    async (req) => secrets.listProject(req.params.project_id),
  );

  app.get(
    `${P}/secrets/:secret_id`,
    { config: access, schema: { summary: "get_project_secret", params: SecretParams, response: { 200: Secret, ...errors(400) } } },
    async (req) => secrets.getProject(req.params.project_id, req.params.secret_id),
  );

  app.put(
    `${P}/secrets/:secret_id`,
    {
      config: access,
      schema: {
        summary: "update_project_secret",
        description: "Replaces name, type and value.",
        params: SecretParams,
        body: ProjectBody,
        response: { 200: Ok, ...errors(400) },
      },
    },
    async (req) => {
      await secrets.updateProject(req.params.project_id, req.params.secret_id, req.body);
      return { ok: true };
    },
  );

  app.delete(
    `${P}/secrets/:secret_id`,
    {
      config: access,
      schema: {
        summary: "delete_project_secret",
        description: "409 while a service still names the secret (container.secrets, pull_secret or an environment secret).",
        params: SecretParams,
        response: { 200: Ok, ...errors(400, 409) },
      },
    },
    async (req) => {
      await secrets.deleteProject(req.params.project_id, req.params.secret_id);
      return { ok: true };
    },
  );

  app.post(
    `${P}/rooms/:room_name/secrets`,
    {
      config: access,
      schema: {
        summary: "create_room_secret",
        description: "A secret of one room (404 when the room does not exist); (secret_id, for_identity, delegated_to) is unique in the room: 409 otherwise.",
        params: RoomParams,
        body: RoomCreateBody,
        response: { 201: Created, ...errors(400, 409) },
      },
    },
    async (req, reply) => {
      reply.code(201);
      return secrets.createRoom(req.params.project_id, req.params.room_name, req.body);
    },
  );

  app.get(
    `${P}/rooms/:room_name/secrets`,
    {
      config: access,
      schema: {
        summary: "list_room_secrets",
        description: "Without values; `for_identity` narrows to one participant identity's secrets.",
        params: RoomParams,
        querystring: Type.Object({ for_identity: Type.Optional(Type.String({ maxLength: 256 })) }),
        response: { 200: List, ...errors(400) },
      },
    },
    async (req) => secrets.listRoom(req.params.project_id, req.params.room_name, blank(req.query.for_identity)),
  );

  app.get(
    `${P}/rooms/:room_name/secrets/:secret_id`,
    {
      config: access,
      schema: {
        summary: "get_room_secret",
        description: "The secret (id, for_identity, delegated_to) names.",
        params: RoomSecretParams,
        querystring: Selector,
        response: { 200: Secret, ...errors(400) },
      },
    },
    async (req) => secrets.getRoom(req.params.project_id, req.params.room_name, req.params.secret_id, req.query),
  );

  app.put(
    `${P}/rooms/:room_name/secrets/:secret_id`,
    {
      config: access,
      schema: {
        summary: "update_room_secret",
        description: "Replaces the value of the secret (id, for_identity, delegated_to) names; name and type keep their values when absent.",
        params: RoomSecretParams,
        body: RoomUpdateBody,
        response: { 200: Ok, ...errors(400) },
      },
    },
    async (req) => {
      await secrets.updateRoom(req.params.project_id, req.params.room_name, req.params.secret_id, req.body);
      return { ok: true };
    },
  );

  app.delete(
    `${P}/rooms/:room_name/secrets/:secret_id`,
    {
      config: access,
      schema: {
        summary: "delete_room_secret",
        description: "409 while a room service still names it (and no project secret of the same id stands in).",
        params: RoomSecretParams,
        querystring: Selector,
        response: { 200: Ok, ...errors(400, 409) },
      },
    },
    async (req) => {
      await secrets.deleteRoom(req.params.project_id, req.params.room_name, req.params.secret_id, req.query);
      return { ok: true };
    },
  );
}

export const secretSchemas = [SecretInfo, Secret];
