import { Type } from "@sinclair/typebox";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { actorId } from "../auth/principal.js";
import { errors, Ok, sendJsonText, Uuid } from "../core/http.js";

// The ServiceSpec is validated by the strict models of spec.ts (every error names its path), so the schemas here
// document the shape and let every key through; responses are the stored spec as sent.
const Open = { additionalProperties: true } as const;
const ServiceSpec = Type.Object(
  {
    version: Type.Literal("v1"),
    kind: Type.Literal("Service"),
    id: Type.String(),
    metadata: Type.Object(
      { name: Type.String(), description: Type.Optional(Type.String()), annotations: Type.Optional(Type.Record(Type.String(), Type.String())) },
      Open,
    ),
    agents: Type.Optional(Type.Array(Type.Object({}, Open))),
    ports: Type.Optional(Type.Array(Type.Object({}, Open))),
    files: Type.Optional(Type.Array(Type.Object({}, Open))),
    container: Type.Optional(Type.Object({}, Open)),
    external: Type.Optional(Type.Object({}, Open)),
  },
  { ...Open, $id: "ServiceSpec", description: "wire-contract §7.4 (strict: unknown keys are refused at any depth)" },
);
const ServiceTemplateSpec = Type.Object(
  { version: Type.Literal("v1"), kind: Type.Literal("ServiceTemplate"), metadata: Type.Object({ name: Type.String() }, Open) },
  { ...Open, $id: "ServiceTemplateSpec", description: "wire-contract §7.4, rendered, with the meshagent.service.template.* annotations" },
);
const Body = Type.Object(
  {},
  {
    additionalProperties: true,
    description: "A ServiceSpec (version v1, kind Service; nulls count as absent) or a template body {template: <ServiceTemplate YAML>, values: {name: value}}",
  },
);
const TemplateBody = Type.Object({
  template: Type.String({ description: "ServiceTemplate YAML, rendered as a Jinja2 template with `values`" }),
  values: Type.Optional(Type.Union([Type.Record(Type.String(), Type.String()), Type.Null()])),
});
const List = Type.Object({ services: Type.Array(Type.Ref("ServiceSpec")) });

const ProjectP = Type.Object({ project_id: Uuid });
const ServiceP = Type.Object({ project_id: Uuid, service_id: Type.String({ minLength: 1, maxLength: 64 }) });
const RoomP = Type.Object({ project_id: Uuid, room_name: Type.String({ minLength: 1 }) });
const RoomServiceP = Type.Object({ project_id: Uuid, room_name: Type.String({ minLength: 1 }), service_id: Type.String({ minLength: 1, maxLength: 64 }) });

/** Wire-contract §4.2: project services, room services, template rendering. Services are a developer's business. */
export async function serviceRoutes(app: AreaApp, ctx: AppContext) {
  const { services } = ctx;
  const access = { access: "developer" } as const;

  // One set of five routes per scope: project (`P/services`) and room (`P/rooms/{room_name}/services`).
  const scopes = [
    { base: "/accounts/projects/:project_id/services", params: ProjectP, itemParams: ServiceP, room: false, s: "service", ss: "services" },
    {
      base: "/accounts/projects/:project_id/rooms/:room_name/services",
      params: RoomP,
      itemParams: RoomServiceP,
      room: true,
      s: "room_service",
      ss: "room_services",
    },
  ];
  for (const sc of scopes) {
    const roomOf = (p: { room_name?: string }) => (sc.room ? (p.room_name ?? null) : null);
    const where = sc.room ? "in the room (404 when the room does not exist)" : "in the project";
    app.post(
      sc.base,
      {
        config: access,
        schema: {
          summary: `create_${sc.s}`,
          description:
            `Creates a service ${where} from a ServiceSpec or a template body; answers the full ServiceSpec with its new id. ` +
            "409 when metadata.name is taken in the same scope; 400 names the offending path (unknown keys, port 8078, a secret that does not exist).",
          params: sc.params,
          body: Body,
          response: { 201: Type.Ref("ServiceSpec"), ...errors(400, 409) },
        },
      },
      async (req, reply) => {
        const p = req.params as { project_id: string; room_name?: string };
        reply.code(201);
        return services.create(p.project_id, roomOf(p), req.body, actorId(req.principal));
      },
    );

    app.get(
      sc.base,
      { config: access, schema: { summary: `list_${sc.ss}`, description: "Ordered by name.", params: sc.params, response: { 200: List, ...errors(400) } } },
      async (req, reply) => {
        const p = req.params as { project_id: string; room_name?: string };
        // The stored JSON text as it is (see specText): no parse, no serializer.
        return sendJsonText(reply, await services.listText(p.project_id, roomOf(p)));
      },
    );

    app.get(
      `${sc.base}/:service_id`,
      { config: access, schema: { summary: `get_${sc.s}`, params: sc.itemParams, response: { 200: Type.Ref("ServiceSpec"), ...errors(400) } } },
      async (req, reply) => {
        const p = req.params as { project_id: string; room_name?: string; service_id: string };
        return sendJsonText(reply, await services.getText(p.project_id, roomOf(p), p.service_id));
      },
    );

    app.put(
      `${sc.base}/:service_id`,
      {
        config: access,
        schema: {
          summary: `update_${sc.s}`,
          description: "A full replace, from a ServiceSpec (a body `id` must match the path or be null) or a template body; answers the stored ServiceSpec.",
          params: sc.itemParams,
          body: Body,
          response: { 200: Type.Ref("ServiceSpec"), ...errors(400, 409) },
        },
      },
      async (req) => {
        const p = req.params as { project_id: string; room_name?: string; service_id: string };
        return services.update(p.project_id, roomOf(p), p.service_id, req.body);
      },
    );

    app.delete(
      `${sc.base}/:service_id`,
      { config: access, schema: { summary: `delete_${sc.s}`, params: sc.itemParams, response: { 200: Ok, ...errors(400) } } },
      async (req) => {
        const p = req.params as { project_id: string; room_name?: string; service_id: string };
        await services.delete(p.project_id, roomOf(p), p.service_id);
        return { ok: true };
      },
    );
  }

  app.post(
    "/templates/render",
    {
      config: { access: "principal" },
      schema: {
        summary: "render_template",
        description:
          "Renders a ServiceTemplate: the whole YAML through Jinja2-compatible templating with `values`, `!template` tags, strict validation, " +
          "required and enum variables; answers the ServiceTemplateSpec with the meshagent.service.template.yaml/values annotations.",
        body: TemplateBody,
        response: { 200: Type.Ref("ServiceTemplateSpec"), ...errors(400) },
      },
    },
    async (req) => services.render(req.body),
  );
}

export const serviceSchemas = [ServiceSpec, ServiceTemplateSpec];
