import type { TSchema } from "@sinclair/typebox";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { AppContext } from "./context.js";
import type { EventSpec } from "./core/events.js";

/**
 * What one area (a folder under src/) brings to the app: its routes, the shared schemas its routes `$ref` by `$id`,
 * and the events it publishes on the bus (the webhook catalog is their union). Each area's `index.ts` exports one;
 * `domains.ts` lists them, and the app registers that list.
 */
export interface Domain {
  name: string;
  routes?: (ctx: AppContext) => FastifyPluginAsyncTypebox;
  schemas?: TSchema[];
  events?: EventSpec[];
}
