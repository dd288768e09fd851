import { Type } from "@sinclair/typebox";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { errors, Nullable, Ok, ProjectParams, QueryInt, Uuid } from "../core/http.js";
import { MAX_QUEUE_NAME } from "../queues/service.js";
import { MAX_ADDRESS } from "./service.js";

const Annotations = Type.Record(Type.String(), Type.String());

const Mailbox = Type.Object(
  {
    address: Type.String(),
    room: Type.String({ description: "room name" }),
    room_id: Type.String(),
    queue: Type.String(),
    public: Type.Boolean(),
    annotations: Annotations,
  },
  { $id: "Mailbox" },
);

const Wrapped = Type.Object({ mailbox: Type.Ref("Mailbox") });
const Page = Type.Object({ mailboxes: Type.Array(Type.Ref("Mailbox")), total: Type.Integer() });

const AddressParams = Type.Object({ project_id: Uuid, address: Type.String({ minLength: 1, maxLength: MAX_ADDRESS + 66 }) });
const RoomParams = Type.Object({ project_id: Uuid, room_name: Type.String({ minLength: 1 }) });
const ListQuery = Type.Object({ count: QueryInt(), offset: QueryInt(), filter: Type.Optional(Type.String()) });

const Fields = {
  room: Type.String({ minLength: 1, description: "name of an existing room of the project" }),
  queue: Type.String({ minLength: 1, maxLength: MAX_QUEUE_NAME, description: "room queue that receives the mail" }),
  public: Nullable(Type.Boolean({ description: "true: anyone may send; false (default): only project members' addresses" })),
  annotations: Nullable(Annotations),
};

/** Wire-contract §6.5. Every mailbox call needs the developer role (admins and the project's API keys included). */
export async function mailboxRoutes(app: AreaApp, ctx: AppContext) {
  const { mailboxes } = ctx;
  const P = "/accounts/projects/:project_id";

  app.post(
    `${P}/mailboxes`,
    {
      config: { access: "developer" },
      schema: {
        summary: "create_mailbox",
        description: "The address is unique across the server (case-insensitive): 409 when it is taken. The room must exist.",
        params: ProjectParams,
        body: Type.Object({ address: Type.String({ minLength: 1, maxLength: MAX_ADDRESS }), ...Fields }),
        response: { 201: Wrapped, ...errors(400, 409) },
      },
    },
    async (req, reply) => {
      const mailbox = await mailboxes.create(req.params.project_id, req.body);
      reply.code(201);
      return { mailbox };
    },
  );

  app.put(
    `${P}/mailboxes/:address`,
    {
      config: { access: "developer" },
      schema: {
        summary: "update_mailbox",
        description: "Sets room and queue; `public` and `annotations` keep their values when absent or null.",
        params: AddressParams,
        body: Type.Object(Fields),
        response: { 200: Wrapped, ...errors(400) },
      },
    },
    async (req) => ({ mailbox: await mailboxes.update(req.params.project_id, req.params.address, req.body) }),
  );

  app.get(
    `${P}/mailboxes/:address`,
    { config: { access: "developer" }, schema: { summary: "get_mailbox", params: AddressParams, response: { 200: Wrapped, ...errors(400) } } },
    async (req) => ({ mailbox: await mailboxes.get(req.params.project_id, req.params.address) }),
  );

  app.delete(
    `${P}/mailboxes/:address`,
    { config: { access: "developer" }, schema: { summary: "delete_mailbox", params: AddressParams, response: { 200: Ok, ...errors(400) } } },
    async (req) => {
      await mailboxes.delete(req.params.project_id, req.params.address);
      return { ok: true };
    },
  );

  app.get(
    `${P}/mailboxes`,
    {
      config: { access: "developer" },
      schema: {
        summary: "list_mailboxes",
        description: "Ordered by address. `filter` matches address, room name or queue (case-insensitive substring). `count` defaults to 100, at most 1000.",
        params: ProjectParams,
        querystring: ListQuery,
        response: { 200: Page, ...errors(400) },
      },
    },
    async (req) => mailboxes.list(req.params.project_id, req.query),
  );

  app.get(
    `${P}/rooms/:room_name/mailboxes`,
    {
      config: { access: "developer" },
      schema: {
        summary: "list_room_mailboxes",
        description: "The mailboxes of one room (404 when the room does not exist); same paging as list_mailboxes.",
        params: RoomParams,
        querystring: ListQuery,
        response: { 200: Page, ...errors(400) },
      },
    },
    async (req) => mailboxes.list(req.params.project_id, { ...req.query, roomName: req.params.room_name }),
  );
}

export const mailboxSchemas = [Mailbox];
