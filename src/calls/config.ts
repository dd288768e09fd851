/** room.call handoff settings (src/calls), from MESHAGENT_CALL_* in ConfigSchema (src/config.ts). */
export interface CallConfig {
  /** Longest a handoff may take, from the first connect until the target accepted (2xx, or the WebSocket opened). */
  timeoutMs: number;
}
