/** The rooms part of the config (read from MESHAGENT_ROOM_* and MESHAGENT_OTLP_* by config.ts). */
export interface RoomsConfig {
  /** MESHAGENT_ROOM_EMPTY_TIMEOUT (seconds, default 30): an empty room's session ends after this long. */
  emptyTimeoutMs: number;
  /** MESHAGENT_ROOM_LEASE (seconds, default 15): room ownership lease; renewed every third of it. */
  leaseMs: number;
  /** MESHAGENT_ROOM_SERVER_URL: how other server processes reach this one (default http://<host>:<port>). */
  serverUrl?: string;
  /** MESHAGENT_ROOM_PROXY (default true): proxy connections for rooms another process serves, or refuse them (1013). */
  proxy: boolean;
  /** MESHAGENT_ROOM_MAX_MESSAGE (bytes, default 64 MiB): largest protocol message a participant may send. */
  maxMessageBytes: number;
  /** MESHAGENT_ROOM_MAX_UPLOAD (bytes, default 1 GiB): largest file a storage.upload may write. */
  maxUploadBytes: number;
  /** MESHAGENT_ROOM_MAX_MESSAGES_PER_SECOND (default 1000): a participant's average message rate (token bucket). */
  maxMessagesPerSecond: number;
  /** MESHAGENT_ROOM_MESSAGE_BURST (default 2 × the rate): the token bucket's size. */
  messageBurst: number;
  /** MESHAGENT_ROOM_MAX_TOOL_CALLS (default 64): tool calls one participant may have in flight. */
  maxToolCalls: number;
  /** MESHAGENT_ROOM_MAX_STREAMS (default 16): streaming tool calls one participant may have open. */
  maxStreams: number;
  /** MESHAGENT_TOOL_CALL_TIMEOUT (seconds, default 300): how long a call routed to a hosted toolkit waits for its host. */
  toolCallTimeoutMs: number;
  /** MESHAGENT_SECRET_REQUEST_TIMEOUT (seconds, default 300): the longest secrets.request_secret / request_oauth_token wait for the other participant. */
  secretRequestTimeoutMs: number;
  /** MESHAGENT_OAUTH_ALLOW_PRIVATE (default false): OAuth token endpoints may be private, loopback or link-local addresses. */
  oauthAllowPrivate: boolean;
  /** MESHAGENT_OTLP_BODY_LIMIT (bytes, default 16 MiB): largest OTLP/HTTP request body. */
  otlpBodyLimit: number;
  /** MESHAGENT_OTLP_MAX_ROWS_PER_SESSION (default 100000, 0 = no limit): OTLP rows one session may take. */
  otlpMaxRowsPerSession: number;
}
