import { Type } from "@sinclair/typebox";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { AppContext } from "../context.js";
import { errors, Nullable, Ok, ProjectParams, QueryInt, Uuid } from "../core/http.js";
import { CATALOG } from "./catalog.js";

const Webhook = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    description: Type.String(),
    url: Type.String(),
    events: Type.Array(Type.String()),
    action: Type.Union([Type.String(), Type.Null()]),
    payload: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()]),
    secret: Type.String({ description: "signs every delivery (Meshagent-Signature and Standard Webhooks)" }),
    enabled: Type.Boolean(),
    state: Type.Union([Type.Literal("active"), Type.Literal("disabled")]),
    disabled_reason: Type.Union([Type.String(), Type.Null()]),
    created_at: Type.String(),
    updated_at: Type.String(),
  },
  { title: "Webhook" },
);

const Delivery = Type.Object(
  {
    id: Type.String({ description: "stable across retries; sent as webhook-id and Meshagent-Delivery" }),
    webhook_id: Type.String(),
    event_id: Type.String(),
    event: Type.String(),
    status: Type.Union([Type.Literal("pending"), Type.Literal("delivered"), Type.Literal("failed"), Type.Literal("held")]),
    attempts: Type.Integer(),
    next_attempt_at: Type.Union([Type.String(), Type.Null()]),
    locked_until: Type.Union([Type.String(), Type.Null()]),
    last_status_code: Type.Union([Type.Integer(), Type.Null()]),
    last_error: Type.Union([Type.String(), Type.Null()]),
    created_at: Type.String(),
    updated_at: Type.String(),
    delivered_at: Type.Union([Type.String(), Type.Null()]),
    payload: Type.Unknown({ description: "the body sent" }),
    history: Type.Array(
      Type.Object({
        attempt: Type.Integer(),
        started_at: Type.String(),
        latency_ms: Type.Integer(),
        status_code: Type.Union([Type.Integer(), Type.Null()]),
        error: Type.Union([Type.String(), Type.Null()]),
        response_excerpt: Type.Union([Type.String(), Type.Null()]),
      }),
    ),
  },
  { title: "WebhookDelivery" },
);

const Fields = {
  description: Nullable(Type.String({ maxLength: 2000 })),
  action: Nullable(Type.String({ maxLength: 100 })),
  payload: Type.Optional(Type.Unknown({ description: "a JSON object merged into every delivery body; \"\" or null for none" })),
  secret: Nullable(Type.String({ minLength: 1, maxLength: 500 })),
  enabled: Nullable(Type.Boolean()),
};
const EventList = Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 100 });
const HookParams = Type.Object({ project_id: Uuid, webhook_id: Type.String() });
const DeliveryParams = Type.Object({ project_id: Uuid, webhook_id: Type.String(), delivery_id: Type.String() });

export const webhookRoutes =
  (ctx: AppContext): FastifyPluginAsyncTypebox =>
  async (app) => {
    const { auth, webhooks } = ctx;
    const tags = ["webhooks"];
    // Schemas are inlined, not added with addSchema: a plugin-level addSchema gives the plugin a schema controller
    // without the app's strict body validator.
    const admin = (req: Parameters<typeof auth.projectAccess>[0], projectId: string) => auth.projectAccess(req, projectId, "admin");

    app.get(
      "/webhooks/events",
      { schema: { tags, summary: "the event catalog", security: [], response: { 200: Type.Object({ events: Type.Array(Type.Object({ event: Type.String(), description: Type.String(), data: Type.Record(Type.String(), Type.String()) })) }) } } },
      async () => ({ events: CATALOG }),
    );

    app.post(
      "/accounts/projects/:project_id/webhooks",
      {
        schema: {
          tags,
          summary: "create_webhook",
          description: "The secret is generated (whsec_…) when absent and returned here and on GET.",
          params: ProjectParams,
          body: Type.Object({ name: Type.String({ minLength: 1, maxLength: 200 }), url: Type.String({ minLength: 1, maxLength: 2000 }), events: EventList, ...Fields }),
          response: { 201: Webhook, ...errors(400, 401, 403, 404, 413) },
        },
      },
      async (req, reply) => {
        await admin(req, req.params.project_id);
        reply.code(201);
        return webhooks.create(req.params.project_id, req.body);
      },
    );

    app.get(
      "/accounts/projects/:project_id/webhooks",
      { schema: { tags, summary: "list_webhooks", params: ProjectParams, response: { 200: Type.Object({ webhooks: Type.Array(Webhook) }), ...errors(401, 403, 404) } } },
      async (req) => {
        await admin(req, req.params.project_id);
        return { webhooks: await webhooks.list(req.params.project_id) };
      },
    );

    app.get(
      "/accounts/projects/:project_id/webhooks/:webhook_id",
      { schema: { tags, summary: "get a webhook", params: HookParams, response: { 200: Webhook, ...errors(401, 403, 404) } } },
      async (req) => {
        await admin(req, req.params.project_id);
        return webhooks.get(req.params.project_id, req.params.webhook_id);
      },
    );

    app.put(
      "/accounts/projects/:project_id/webhooks/:webhook_id",
      {
        schema: {
          tags,
          summary: "update_webhook",
          description: "Keys that are null or absent keep their value. `enabled: true` re-enables a webhook disabled by a 410; its held deliveries resume.",
          params: HookParams,
          body: Type.Object({ name: Nullable(Type.String({ minLength: 1, maxLength: 200 })), url: Nullable(Type.String({ minLength: 1, maxLength: 2000 })), events: Nullable(EventList), ...Fields }),
          response: { 200: Webhook, ...errors(400, 401, 403, 404, 413) },
        },
      },
      async (req) => {
        await admin(req, req.params.project_id);
        return webhooks.update(req.params.project_id, req.params.webhook_id, req.body);
      },
    );

    app.delete(
      "/accounts/projects/:project_id/webhooks/:webhook_id",
      { schema: { tags, summary: "delete_webhook", description: "Deletes the webhook with its deliveries.", params: HookParams, response: { 200: Ok, ...errors(401, 403, 404) } } },
      async (req) => {
        await admin(req, req.params.project_id);
        await webhooks.delete(req.params.project_id, req.params.webhook_id);
        return { ok: true };
      },
    );

    app.get(
      "/accounts/projects/:project_id/webhooks/:webhook_id/deliveries",
      {
        schema: {
          tags,
          summary: "list a webhook's deliveries (newest first) with every attempt",
          params: HookParams,
          querystring: Type.Object({
            limit: QueryInt({ maximum: 1000 }),
            offset: QueryInt(),
            status: Type.Optional(Type.Union([Type.Literal("pending"), Type.Literal("delivered"), Type.Literal("failed"), Type.Literal("held")])),
          }),
          response: { 200: Type.Object({ deliveries: Type.Array(Delivery), total: Type.Integer() }), ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => {
        await admin(req, req.params.project_id);
        return webhooks.deliveries(req.params.project_id, req.params.webhook_id, req.query);
      },
    );

    app.get(
      "/accounts/projects/:project_id/webhooks/:webhook_id/deliveries/:delivery_id",
      { schema: { tags, summary: "one delivery with every attempt", params: DeliveryParams, response: { 200: Delivery, ...errors(401, 403, 404) } } },
      async (req) => {
        await admin(req, req.params.project_id);
        return webhooks.delivery(req.params.project_id, req.params.webhook_id, req.params.delivery_id);
      },
    );

    app.post(
      "/accounts/projects/:project_id/webhooks/:webhook_id/deliveries/:delivery_id/retry",
      {
        schema: {
          tags,
          summary: "send a delivery again now (same id and body)",
          params: DeliveryParams,
          response: { 200: Delivery, ...errors(401, 403, 404, 409) },
        },
      },
      async (req) => {
        await admin(req, req.params.project_id);
        return webhooks.retry(req.params.project_id, req.params.webhook_id, req.params.delivery_id);
      },
    );

    app.post(
      "/accounts/projects/:project_id/webhooks/:webhook_id/test",
      {
        schema: {
          tags,
          summary: "send a webhook.test ping to this webhook",
          params: HookParams,
          response: { 201: Delivery, ...errors(401, 403, 404) },
        },
      },
      async (req, reply) => {
        await admin(req, req.params.project_id);
        reply.code(201);
        return webhooks.test(req.params.project_id, req.params.webhook_id);
      },
    );
  };
