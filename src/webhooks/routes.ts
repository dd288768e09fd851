import { Type } from "@sinclair/typebox";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { errors, Nullable, Ok, OrNull, ProjectParams, QueryInt, Uuid } from "../core/http.js";

const Webhook = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    description: Type.String(),
    url: Type.String(),
    events: Type.Array(Type.String()),
    action: OrNull(Type.String()),
    payload: OrNull(Type.Object({}, { additionalProperties: true })),
    secret: Type.String({ description: "signs every delivery (Meshagent-Signature and Standard Webhooks)" }),
    enabled: Type.Boolean(),
    state: Type.Union([Type.Literal("active"), Type.Literal("disabled")]),
    disabled_reason: OrNull(Type.String()),
    created_at: Type.String(),
    updated_at: Type.String(),
  },
  { $id: "Webhook" },
);

const Delivery = Type.Object(
  {
    id: Type.String({ description: "stable across retries; sent as webhook-id and Meshagent-Delivery" }),
    webhook_id: Type.String(),
    event_id: Type.String(),
    event: Type.String(),
    status: Type.Union([Type.Literal("pending"), Type.Literal("delivered"), Type.Literal("failed"), Type.Literal("held")]),
    attempts: Type.Integer(),
    next_attempt_at: OrNull(Type.String()),
    locked_until: OrNull(Type.String()),
    last_status_code: OrNull(Type.Integer()),
    last_error: OrNull(Type.String()),
    created_at: Type.String(),
    updated_at: Type.String(),
    delivered_at: OrNull(Type.String()),
    payload: Type.Unknown({ description: "the body sent" }),
    history: Type.Array(
      Type.Object({
        attempt: Type.Integer(),
        started_at: Type.String(),
        latency_ms: Type.Integer(),
        status_code: OrNull(Type.Integer()),
        error: OrNull(Type.String()),
        response_excerpt: OrNull(Type.String()),
      }),
    ),
  },
  { $id: "WebhookDelivery" },
);

const Fields = {
  description: Nullable(Type.String({ maxLength: 2000 })),
  action: Nullable(Type.String({ maxLength: 100 })),
  payload: Type.Optional(Type.Unknown({ description: 'a JSON object merged into every delivery body; "" or null for none' })),
  secret: Nullable(Type.String({ minLength: 1, maxLength: 500 })),
  enabled: Nullable(Type.Boolean()),
};
const EventList = Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 100 });
const HookParams = Type.Object({ project_id: Uuid, webhook_id: Type.String() });
const DeliveryParams = Type.Object({ project_id: Uuid, webhook_id: Type.String(), delivery_id: Type.String() });

export const webhookSchemas = [Webhook, Delivery];

export async function webhookRoutes(app: AreaApp, ctx: AppContext) {
  const { webhooks } = ctx;

  app.get(
    "/webhooks/events",
    {
      config: { access: "public" },
      schema: {
        summary: "the event catalog",
        response: {
          200: Type.Object({
            events: Type.Array(Type.Object({ event: Type.String(), description: Type.String(), data: Type.Record(Type.String(), Type.String()) })),
          }),
        },
      },
    },
    async () => ({ events: webhooks.catalog.entries }),
  );

  app.post(
    "/accounts/projects/:project_id/webhooks",
    {
      config: { access: "admin" },
      schema: {
        summary: "create_webhook",
        description: "The secret is generated (whsec_…) when absent and returned here and on GET.",
        params: ProjectParams,
        body: Type.Object({
          name: Type.String({ minLength: 1, maxLength: 200 }),
          url: Type.String({ minLength: 1, maxLength: 2000 }),
          events: EventList,
          ...Fields,
        }),
        response: { 201: Type.Ref("Webhook"), ...errors(400, 413) },
      },
    },
    async (req, reply) => {
      reply.code(201);
      return webhooks.create(req.params.project_id, req.body);
    },
  );

  app.get(
    "/accounts/projects/:project_id/webhooks",
    {
      config: { access: "admin" },
      schema: { summary: "list_webhooks", params: ProjectParams, response: { 200: Type.Object({ webhooks: Type.Array(Type.Ref("Webhook")) }) } },
    },
    async (req) => ({ webhooks: await webhooks.list(req.params.project_id) }),
  );

  app.get(
    "/accounts/projects/:project_id/webhooks/:webhook_id",
    { config: { access: "admin" }, schema: { summary: "get a webhook", params: HookParams, response: { 200: Type.Ref("Webhook") } } },
    async (req) => webhooks.get(req.params.project_id, req.params.webhook_id),
  );

  app.put(
    "/accounts/projects/:project_id/webhooks/:webhook_id",
    {
      config: { access: "admin" },
      schema: {
        summary: "update_webhook",
        description: "Keys that are null or absent keep their value. `enabled: true` re-enables a webhook disabled by a 410; its held deliveries resume.",
        params: HookParams,
        body: Type.Object({
          name: Nullable(Type.String({ minLength: 1, maxLength: 200 })),
          url: Nullable(Type.String({ minLength: 1, maxLength: 2000 })),
          events: Nullable(EventList),
          ...Fields,
        }),
        response: { 200: Type.Ref("Webhook"), ...errors(400, 413) },
      },
    },
    async (req) => webhooks.update(req.params.project_id, req.params.webhook_id, req.body),
  );

  app.delete(
    "/accounts/projects/:project_id/webhooks/:webhook_id",
    {
      config: { access: "admin" },
      schema: { summary: "delete_webhook", description: "Deletes the webhook with its deliveries.", params: HookParams, response: { 200: Ok } },
    },
    async (req) => {
      await webhooks.delete(req.params.project_id, req.params.webhook_id);
      return { ok: true };
    },
  );

  app.get(
    "/accounts/projects/:project_id/webhooks/:webhook_id/deliveries",
    {
      config: { access: "admin" },
      schema: {
        summary: "list a webhook's deliveries (newest first) with every attempt",
        params: HookParams,
        querystring: Type.Object({
          limit: QueryInt({ maximum: 1000 }),
          offset: QueryInt(),
          status: Type.Optional(Type.Union([Type.Literal("pending"), Type.Literal("delivered"), Type.Literal("failed"), Type.Literal("held")])),
        }),
        response: { 200: Type.Object({ deliveries: Type.Array(Type.Ref("WebhookDelivery")), total: Type.Integer() }), ...errors(400) },
      },
    },
    async (req) => webhooks.deliveries(req.params.project_id, req.params.webhook_id, req.query),
  );

  app.get(
    "/accounts/projects/:project_id/webhooks/:webhook_id/deliveries/:delivery_id",
    {
      config: { access: "admin" },
      schema: { summary: "one delivery with every attempt", params: DeliveryParams, response: { 200: Type.Ref("WebhookDelivery") } },
    },
    async (req) => webhooks.delivery(req.params.project_id, req.params.webhook_id, req.params.delivery_id),
  );

  app.post(
    "/accounts/projects/:project_id/webhooks/:webhook_id/deliveries/:delivery_id/retry",
    {
      config: { access: "admin" },
      schema: {
        summary: "send a delivery again now (same id and body)",
        params: DeliveryParams,
        response: { 200: Type.Ref("WebhookDelivery"), ...errors(409) },
      },
    },
    async (req) => webhooks.retry(req.params.project_id, req.params.webhook_id, req.params.delivery_id),
  );

  app.post(
    "/accounts/projects/:project_id/webhooks/:webhook_id/test",
    {
      config: { access: "admin" },
      schema: {
        summary: "send a webhook.test ping to this webhook",
        params: HookParams,
        response: { 201: Type.Ref("WebhookDelivery") },
      },
    },
    async (req, reply) => {
      reply.code(201);
      return webhooks.test(req.params.project_id, req.params.webhook_id);
    },
  );
}
