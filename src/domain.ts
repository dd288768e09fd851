import type { TSchema } from "@sinclair/typebox";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { FastifyBaseLogger, FastifyInstance, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from "fastify";
import type { AppContext } from "./context.js";
import type { EventSpec } from "./core/events.js";

/** The Fastify instance an area's routes are registered on (TypeBox schemas type the handlers). */
export type AreaApp = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, FastifyBaseLogger, TypeBoxTypeProvider>;

/**
 * What one area (a folder under src/) brings to the app: its routes, the shared schemas its routes `$ref` by `$id`,
 * and the events it publishes on the bus (the webhook catalog is their union). Each area's `index.ts` exports one;
 * `domains.ts` lists them, and the app registers that list.
 */
export interface Domain {
  name: string;
  /** The OpenAPI tag of its operations (default: the name); a route may name its own. */
  tag?: string;
  /** Registers the area's routes on its own encapsulated context (its hooks and parsers stay inside). */
  routes?: (app: AreaApp, ctx: AppContext) => Promise<void>;
  schemas?: TSchema[];
  events?: EventSpec[];
  /** The columns where it keeps values sealed with the master key: `rotate-master-key` re-seals them (src/keyring). */
  sealed?: SealedColumn[];
}

/**
 * One column of sealed values (`Sealer.seal`), for master-key rotation: the rotation pages through `table` by `key`
 * (the primary key, one or several text columns) and re-seals `column` in place with a compare-and-swap update. Null
 * values are skipped. `aad` gives the additional authenticated data the value was sealed with, from the row's key
 * columns and `column` (plus any `select`ed ones); absent: sealed without AAD.
 */
export interface SealedColumn {
  table: string;
  key: string | string[];
  column: string;
  aad?: (row: Record<string, unknown>) => string | undefined;
  /** More columns `aad` reads. */
  select?: string[];
}
