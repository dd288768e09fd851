import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { SignJWT } from "jose";
import { parse } from "yaml";
import { act, jsonArg, parseApiKey } from "../context.js";
import { CliError, out } from "../output.js";

/** ApiScope.user_default() (every section but llm, admin and tunnels), for a token whose spec names no `api`. */
const USER_DEFAULT = Object.fromEntries(
  ["livekit", "queues", "messaging", "dataset", "memory", "sync", "storage", "containers", "developer", "agents", "secrets", "services"].map((s) => [s, {}]),
);

interface TokenSpec {
  version?: string;
  kind?: string;
  room?: string;
  identity?: string;
  role?: string;
  api?: Record<string, unknown>;
}

export function registerToken(program: Command) {
  const token = program.command("token").description("participant tokens");
  token
    .command("generate")
    .description("sign a participant JWT locally (HS256 with the API key's secret, wire-contract §10.2); no request is made")
    .option("-i, --input <file>", "a ParticipantToken spec (YAML: room, identity, role, api)")
    .option("--room <room>", "the room")
    .option("--identity <name>", "the participant's name")
    .option("--role <role>", "user, agent or tool (default: the spec's, else user)")
    .option("--api <json>", "the ApiScope (default: the user default)")
    .option("--key <value>", "the API key to sign with (default: the API key in use)")
    .option("--expires-in <seconds>", "set exp this many seconds from now")
    .action(
      act(async (ctx, o: { input?: string; room?: string; identity?: string; role?: string; api?: string; key?: string; expiresIn?: string }) => {
        const spec: TokenSpec = o.input ? ((parse(readFileSync(o.input, "utf8")) as TokenSpec) ?? {}) : {};
        if (spec.kind && spec.kind !== "ParticipantToken") throw new CliError(`${o.input}: kind must be ParticipantToken`, "invalid_spec");
        const room = o.room ?? spec.room;
        const identity = o.identity ?? spec.identity;
        if (!room || !identity) throw new CliError("a room and an identity are required", "usage", "pass --room and --identity, or -i spec.yaml", 2);
        const cred = ctx.credential;
        const value = o.key ?? (cred.kind === "api key" ? cred.token : null);
        const key = value ? parseApiKey(value) : null;
        if (!key)
          throw new CliError(
            "no API key to sign with",
            "no_api_key",
            "pass --key ma-…, set MESHAGENT_API_KEY, or run meshagent api-key create NAME --activate",
          );
        const api = (jsonArg(o.api, "--api") as Record<string, unknown> | undefined) ?? spec.api ?? USER_DEFAULT;
        const payload: Record<string, unknown> = {
          name: identity,
          grants: [
            { name: "room", scope: room },
            { name: "role", scope: o.role ?? spec.role ?? "user" },
            { name: "api", scope: api },
          ],
          sub: key.projectId,
          kid: key.keyId,
          version: "0.39.9",
        };
        if (o.expiresIn) payload.exp = Math.floor(Date.now() / 1000) + Number(o.expiresIn);
        out(await new SignJWT(payload).setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(new TextEncoder().encode(key.secret)));
      }),
    );
}
