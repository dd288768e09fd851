import { Type, type TSchema } from "@sinclair/typebox";
import type { FastifyReply } from "fastify";

/** A field that is always present and may be null (responses: the contract's `X | null`). */
export const OrNull = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

/** An optional field that also accepts null: the Python client sends null for every unset optional (contract §1). */
export const Nullable = <T extends TSchema>(t: T) => Type.Optional(OrNull(t));

export const Uuid = Type.String({ format: "uuid" });

export const ProjectParams = Type.Object({ project_id: Uuid });

export const ErrorResponse = Type.Object(
  { error: Type.Object({ code: Type.String(), message: Type.String() }) },
  { $id: "Error", description: "Every error: a snake_case code and a human message" },
);

export const Ok = Type.Object({ ok: Type.Boolean() });

/** Any JSON object, returned as given (settings, metadata). */
export const AnyObject = Type.Object({}, { additionalProperties: true });

/**
 * The bound of every integer query parameter (paging included) unless a route declares a smaller one: 2^31-1, so a
 * huge value (`99999999999999999999`, `1e309`) is a 400 naming the parameter instead of reaching SQL. The fuzz suite
 * checks that every integer query parameter of /openapi.json has a maximum.
 */
export const INT_MAX = 2 ** 31 - 1;

/** Query integers arrive as strings; the query validator coerces them. At most {@link INT_MAX} unless `maximum` says less. */
export const QueryInt = (opts: { minimum?: number; maximum?: number } = {}) =>
  Type.Optional(Type.Integer({ minimum: 0, ...opts, maximum: Math.min(opts.maximum ?? INT_MAX, INT_MAX) }));

/** Standard error responses for the OpenAPI document. */
export const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, Type.Ref("Error")])) as Record<number, TSchema>;

/** Answer JSON that is already text (e.g. stored as it is answered): sent as it is, no parse and no serializer. */
export const sendJsonText = (reply: FastifyReply, text: string) => reply.type("application/json; charset=utf-8").send(text);
