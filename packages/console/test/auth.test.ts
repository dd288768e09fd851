// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { beginSignIn, codeChallenge, finishSignIn, storedToken, SignInError } from "../src/auth";

/** sessionStorage's interface over a Map (each test its own). */
function memoryStorage(): Storage {
  const m = new Map<string, string>();
  return {
    get length() {
      return m.size;
    },
    clear: () => m.clear(),
    getItem: (k) => m.get(k) ?? null,
    key: (i) => [...m.keys()][i] ?? null,
    removeItem: (k) => void m.delete(k),
    setItem: (k, v) => void m.set(k, String(v)),
  };
}

describe("sign-in: authorization code + PKCE as the public client meshagent-console", () => {
  it("computes the S256 challenge of RFC 7636's example", async () => {
    expect(await codeChallenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")).toBe("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
  });

  it("goes to the authorization endpoint once, and trades the code with the verifier it kept", async () => {
    const storage = memoryStorage();
    const went: string[] = [];
    await Promise.all([beginSignIn("/console/projects/p/rooms", storage, (u) => went.push(u)), beginSignIn("/console/x", storage, (u) => went.push(u))]);
    expect(went).toHaveLength(1);
    const q = new URL(went[0], "http://h").searchParams;
    expect(q.get("client_id")).toBe("meshagent-console");
    expect(q.get("code_challenge_method")).toBe("S256");
    expect(q.get("redirect_uri")).toBe(`${location.origin}/console/callback`);

    const sent: URLSearchParams[] = [];
    const fetchImpl = (async (_url: string, init: RequestInit) => {
      sent.push(new URLSearchParams(String(init.body)));
      return new Response(JSON.stringify({ access_token: "tok", expires_in: 3600, token_type: "Bearer" }), { status: 200 });
    }) as typeof fetch;
    const to = await finishSignIn(`?code=c1&state=${q.get("state")}`, storage, fetchImpl);
    expect(to).toBe("/console/projects/p/rooms");
    expect(sent[0].get("code")).toBe("c1");
    expect(await codeChallenge(sent[0].get("code_verifier")!)).toBe(q.get("code_challenge"));
    expect(storedToken(storage)?.access_token).toBe("tok");
  });

  it("refuses an answer whose state is not this tab's, and the server's error", async () => {
    const storage = memoryStorage();
    storage.setItem("meshagent.console.flow", JSON.stringify({ verifier: "v", state: "mine", returnTo: "/console/" }));
    await expect(finishSignIn("?code=c&state=theirs", storage, fetch)).rejects.toThrow(SignInError);
    await expect(finishSignIn("?error=access_denied&error_description=no", storage, fetch)).rejects.toThrow(/access_denied: no/);
  });

  it("forgets a token about to expire", () => {
    const storage = memoryStorage();
    storage.setItem("meshagent.console.token", JSON.stringify({ access_token: "t", expires_at: Date.now() + 30_000 }));
    expect(storedToken(storage)).toBeNull();
    storage.setItem("meshagent.console.token", "{broken");
    expect(storedToken(storage)).toBeNull();
  });
});
