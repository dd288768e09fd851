import { Type, type TSchema } from "@sinclair/typebox";

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

/** Query integers arrive as strings; the query validator coerces them. */
export const QueryInt = (opts: { minimum?: number; maximum?: number } = {}) => Type.Optional(Type.Integer({ minimum: 0, ...opts }));

/** Standard error responses for the OpenAPI document. */
export const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, Type.Ref("Error")])) as Record<number, TSchema>;
