import type { Toolkit, ToolCall } from "../connection.js";
import { empty, ErrorCode, invalid, ToolError } from "../protocol.js";

const MAX_TYPE = 256;

function parsed(call: ToolCall): { type: string; message: unknown; attachment?: Buffer } {
  const { type, message_json, attachment_base64 } = call.args;
  if (typeof type !== "string" || !type || type.length > MAX_TYPE) throw invalid(`type must be a string of 1-${MAX_TYPE} characters`);
  if (typeof message_json !== "string") throw invalid("message_json must be a JSON string");
  let message: unknown;
  try {
    message = JSON.parse(message_json);
  } catch {
    throw invalid("message_json is not valid JSON");
  }
  let attachment: Buffer | undefined;
  if (attachment_base64 !== undefined && attachment_base64 !== null) {
    if (typeof attachment_base64 !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(attachment_base64)) throw invalid("attachment_base64 must be base64");
    attachment = Buffer.from(attachment_base64, "base64");
  }
  return { type, message, attachment };
}

/**
 * The `messaging` toolkit: direct messages, broadcasts, and presence. Presence is opt-in per connection
 * (`enable`); a participant allowed to list (api.messaging.list, default true) gets `messaging.enabled` with the
 * other enabled participants, then `participant.enabled` / `participant.disabled` / `participant.attributes`.
 * Messages reach every connected participant of the room, enabled or not.
 */
export function messagingToolkit(): Toolkit {
  return {
    tools: {
      async enable(call) {
        call.conn.scope.require("messaging");
        call.room.enableMessaging(call.conn);
        return empty();
      },
      async disable(call) {
        call.conn.scope.require("messaging");
        call.room.disableMessaging(call.conn);
        return empty();
      },
      async send(call) {
        call.conn.scope.messagingSend();
        const to = call.args.to_participant_id;
        if (typeof to !== "string") throw invalid("to_participant_id must be a string");
        const m = parsed(call);
        const target = call.room.connections.get(to);
        if (!target || target.closed) throw new ToolError("the participant was not found", ErrorCode.NOT_FOUND);
        target.deliver(call.conn.id, m.type, m.message, m.attachment);
        call.room.stats.messages++;
        return empty();
      },
      async broadcast(call) {
        call.conn.scope.messagingBroadcast();
        const m = parsed(call);
        const others = [...call.room.connections.values()].filter((c) => c !== call.conn);
        call.room.fanout(others, "messaging.send", { from_participant_id: call.conn.id, type: m.type, message: m.message }, m.attachment);
        call.room.stats.messages++;
        return empty();
      },
    },
  };
}
