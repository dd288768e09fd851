export * from "./client.js";
export { MeshagentError, errorFromResponse } from "./errors.js";
export { HttpClient, retryAfterMs, type ClientOptions, type RequestOptions, type RawData, type Call, type Query } from "./http.js";
export { PagedList, offsetPage, type Page } from "./paging.js";
export type { paths, components } from "./openapi.js";
export * from "./room.js";
