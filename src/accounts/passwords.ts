import { badRequest } from "../core/errors.js";

export const PASSWORD_MIN = 10;
export const PASSWORD_MAX = 512;
/** A few of the most used passwords; longer than PASSWORD_MIN so the length rule alone would let them through. */
const COMMON = new Set(["1234567890", "0123456789", "password12", "password123", "qwertyuiop", "1q2w3e4r5t", "iloveyou12", "passw0rd12", "abcdefghij"]);

/**
 * The minimum strength of a password: at least 10 characters (at most 512), at least 5 different ones, not one of
 * the best-known passwords, not the account's email address. Throws a 400 whose message says what to change.
 */
export function checkPassword(password: string, email: string): void {
  if (password.length < PASSWORD_MIN) throw badRequest(`the password must have at least ${PASSWORD_MIN} characters`, "weak_password");
  if (password.length > PASSWORD_MAX) throw badRequest(`the password must have at most ${PASSWORD_MAX} characters`, "weak_password");
  if (new Set(password).size < 5) throw badRequest("the password must use at least 5 different characters", "weak_password");
  const lower = password.toLowerCase();
  if (COMMON.has(lower)) throw badRequest("this password is one of the most used ones: choose another", "weak_password");
  if (lower === email.toLowerCase() || lower === email.toLowerCase().split("@")[0])
    throw badRequest("the password must not be your email address", "weak_password");
}
