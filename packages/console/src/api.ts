import { Meshagent, MeshagentError } from "@meshagent-oss/sdk";
import { beginSignIn, storedToken } from "./auth";

let client: Meshagent | null = null;
let clientToken = "";

/**
 * The SDK, with the signed-in user's access token. A 401 (the token expired or was revoked) starts a new sign-in
 * that comes back to the same page.
 */
export function api(): Meshagent {
  const t = storedToken();
  if (!t) {
    void beginSignIn(location.pathname + location.search);
    throw new MeshagentError({ status: 401, code: "signing_in", message: "signing in again", request: "" });
  }
  if (!client || clientToken !== t.access_token) {
    clientToken = t.access_token;
    client = new Meshagent({
      baseUrl: location.origin,
      token: t.access_token,
      maxRetries: 1,
      fetch: async (input, init) => {
        const res = await fetch(input, init);
        if (res.status === 401) {
          sessionStorage.removeItem("meshagent.console.token");
          void beginSignIn(location.pathname + location.search);
        }
        return res;
      },
    });
  }
  return client;
}

/** An error's text for people: the server's message, and its code and request id when there was an answer. */
export function errorText(e: unknown): string {
  if (e instanceof MeshagentError) return e.status ? `${e.message} (${e.code}, HTTP ${e.status}${e.requestId ? `, request ${e.requestId}` : ""})` : e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}
