import nunjucks from "nunjucks";

/**
 * The account pages: plain server-rendered HTML (nunjucks, autoescaped), usable without JavaScript, with labels,
 * a language, a title, one h1 and errors announced (role="alert") next to the form.
 */
const layout = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · MeshAgent</title>
<style>
body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;line-height:1.5;color:#111;background:#fff}
label{display:block;margin-top:1rem;font-weight:600}
input{display:block;width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem;border:1px solid #555;border-radius:4px}
button{margin-top:1.5rem;padding:.6rem 1.2rem;font-size:1rem;background:#0b5cad;color:#fff;border:0;border-radius:4px}
button.secondary{background:#fff;color:#0b5cad;border:1px solid #0b5cad;margin-left:.5rem}
.hint{font-size:.9rem;color:#333;margin:.25rem 0 0}
.error{border:2px solid #b00020;padding:.75rem;color:#b00020;background:#fff5f5}
</style>
</head>
<body>
<main>
{% block main %}{% endblock %}
</main>
</body>
</html>`;

const invitation = `{% extends "layout" %}{% block main %}
<h1>Join {{ project or "MeshAgent" }}</h1>
<p>You were invited as <strong>{{ email }}</strong>. Choose a password to create your account.</p>
{% if error %}<p class="error" role="alert" id="form-error">{{ error }}</p>{% endif %}
<form method="post" action="/accounts/invitation" {% if error %}aria-describedby="form-error"{% endif %}>
<input type="hidden" name="token" value="{{ token }}">
<label for="first_name">First name (optional)</label>
<input id="first_name" name="first_name" autocomplete="given-name" value="{{ first_name }}">
<label for="last_name">Last name (optional)</label>
<input id="last_name" name="last_name" autocomplete="family-name" value="{{ last_name }}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="new-password" required minlength="{{ min }}" aria-describedby="password-hint">
<p class="hint" id="password-hint">At least {{ min }} characters, with at least 5 different ones.</p>
<label for="password_confirm">Password again</label>
<input id="password_confirm" name="password_confirm" type="password" autocomplete="new-password" required minlength="{{ min }}">
<button type="submit">Create my account</button>
</form>
{% endblock %}`;

const message = `{% extends "layout" %}{% block main %}
<h1>{{ title }}</h1>
{% if error %}<p class="error" role="alert">{{ text }}</p>{% else %}<p>{{ text }}</p>{% endif %}
{% if next %}<p>{{ next }}</p>{% endif %}
{% if link %}<p><a href="{{ link.href }}">{{ link.text }}</a></p>{% endif %}
{% endblock %}`;

const signIn = `{% extends "layout" %}{% block main %}
<h1>Sign in</h1>
{% if error %}<p class="error" role="alert" id="form-error">{{ error }}</p>{% endif %}
{% if client %}<p>to continue to <strong>{{ client }}</strong></p>{% endif %}
<form method="post" action="{{ action or '/accounts/sign-in' }}" {% if error %}aria-describedby="form-error"{% endif %}>
{% if next %}<input type="hidden" name="next" value="{{ next }}">{% endif %}
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="username" required value="{{ email }}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
<p><a href="/accounts/password-reset">Forgot your password?</a></p>
{% if signup %}<p>No account yet? <a href="{{ signup }}">Create one</a></p>{% endif %}
{% endblock %}`;

const totp = `{% extends "layout" %}{% block main %}
<h1>Two-step verification</h1>
<p>Enter the 6-digit code your authenticator app shows for <strong>{{ email }}</strong>.</p>
{% if error %}<p class="error" role="alert" id="form-error">{{ error }}</p>{% endif %}
<form method="post" action="{{ action }}" {% if error %}aria-describedby="form-error"{% endif %}>
<input type="hidden" name="pending" value="{{ pending }}">
{% if next %}<input type="hidden" name="next" value="{{ next }}">{% endif %}
<label for="code">Authentication code</label>
<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required>
<button type="submit">Verify</button>
</form>
{% endblock %}`;

const totpSetup = `{% extends "layout" %}{% block main %}
<h1>Two-step verification</h1>
{% if enabled %}
<p>Two-step verification is <strong>on</strong>: signing in asks for a code from your authenticator app.</p>
{% if error %}<p class="error" role="alert" id="form-error">{{ error }}</p>{% endif %}
<form method="post" action="/accounts/two-factor/disable" {% if error %}aria-describedby="form-error"{% endif %}>
<input type="hidden" name="csrf" value="{{ csrf }}">
<label for="code">A current code, to turn it off</label>
<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required>
<button type="submit">Turn off two-step verification</button>
</form>
{% else %}
<p>Add this account to an authenticator app (scan the link or type the key), then enter the code it shows.</p>
<p>Key: <code id="totp-secret">{{ secret }}</code></p>
<p><a href="{{ uri }}">Open in an authenticator app</a></p>
{% if error %}<p class="error" role="alert" id="form-error">{{ error }}</p>{% endif %}
<form method="post" action="/accounts/two-factor" {% if error %}aria-describedby="form-error"{% endif %}>
<input type="hidden" name="csrf" value="{{ csrf }}">
<input type="hidden" name="secret" value="{{ secret }}">
<label for="code">Code from the app</label>
<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required>
<button type="submit">Turn on two-step verification</button>
</form>
{% endif %}
<p><a href="/accounts">Back to your account</a></p>
{% endblock %}`;

const signUp = `{% extends "layout" %}{% block main %}
<h1>Create your account</h1>
{% if error %}<p class="error" role="alert" id="form-error">{{ error }}</p>{% endif %}
<form method="post" action="/accounts/sign-up" {% if error %}aria-describedby="form-error"{% endif %}>
{% if next %}<input type="hidden" name="next" value="{{ next }}">{% endif %}
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="username" required value="{{ email }}">
<label for="first_name">First name (optional)</label>
<input id="first_name" name="first_name" autocomplete="given-name" value="{{ first_name }}">
<label for="last_name">Last name (optional)</label>
<input id="last_name" name="last_name" autocomplete="family-name" value="{{ last_name }}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="new-password" required minlength="{{ min }}" aria-describedby="password-hint">
<p class="hint" id="password-hint">At least {{ min }} characters, with at least 5 different ones.</p>
<label for="password_confirm">Password again</label>
<input id="password_confirm" name="password_confirm" type="password" autocomplete="new-password" required minlength="{{ min }}">
<button type="submit">Create my account</button>
</form>
<p>Have an account? <a href="/accounts/sign-in{% if next %}?next={{ next | urlencode }}{% endif %}">Sign in</a></p>
{% endblock %}`;

const consent = `{% extends "layout" %}{% block main %}
<h1>Allow {{ client }}?</h1>
<p><strong>{{ client }}</strong> asks to act as <strong>{{ email }}</strong> on this server with these permissions:</p>
<ul>
{% for s in scopes %}<li><code>{{ s.name }}</code>: {{ s.text }}</li>{% endfor %}
</ul>
<form method="post" action="{{ action }}">
<input type="hidden" name="csrf" value="{{ csrf }}">
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny" class="secondary">Deny</button>
</form>
{% endblock %}`;

const deviceInput = `{% extends "layout" %}{% block main %}
<h1>Sign in a device</h1>
<p>Enter the code your device (or terminal) shows.</p>
{% if error %}<p class="error" role="alert" id="form-error">{{ error }}</p>{% endif %}
<form method="post" action="{{ action }}" {% if error %}aria-describedby="form-error"{% endif %}>
<input type="hidden" name="xsrf" value="{{ xsrf }}">
<label for="user_code">Code</label>
<input id="user_code" name="user_code" autocomplete="off" autocapitalize="characters" required value="{{ code }}">
<button type="submit">Continue</button>
</form>
{% endblock %}`;

const deviceConfirm = `{% extends "layout" %}{% block main %}
<h1>Confirm the device</h1>
<p><strong>{{ client }}</strong> asks to sign in. Continue only if your device shows this code:</p>
<p><code>{{ userCode }}</code></p>
<form method="post" action="{{ action }}">
<input type="hidden" name="xsrf" value="{{ xsrf }}">
<input type="hidden" name="user_code" value="{{ code }}">
<input type="hidden" name="confirm" value="yes">
<button type="submit">Continue</button>
<button type="submit" name="abort" value="yes" class="secondary">Cancel</button>
</form>
{% endblock %}`;

const resetRequest = `{% extends "layout" %}{% block main %}
<h1>Reset your password</h1>
<p>Enter the email address of your account: we will mail you a link to choose a new password.</p>
{% if error %}<p class="error" role="alert" id="form-error">{{ error }}</p>{% endif %}
<form method="post" action="/accounts/password-reset" {% if error %}aria-describedby="form-error"{% endif %}>
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="username" required>
<button type="submit">Send the link</button>
</form>
<p><a href="/accounts/sign-in">Back to sign in</a></p>
{% endblock %}`;

const resetChoose = `{% extends "layout" %}{% block main %}
<h1>Choose a new password</h1>
<p>For <strong>{{ email }}</strong>. Every browser signed in to this account is signed out.</p>
{% if error %}<p class="error" role="alert" id="form-error">{{ error }}</p>{% endif %}
<form method="post" action="/accounts/password-reset/choose" {% if error %}aria-describedby="form-error"{% endif %}>
<input type="hidden" name="token" value="{{ token }}">
<label for="password">New password</label>
<input id="password" name="password" type="password" autocomplete="new-password" required minlength="{{ min }}" aria-describedby="password-hint">
<p class="hint" id="password-hint">At least {{ min }} characters, with at least 5 different ones.</p>
<label for="password_confirm">New password again</label>
<input id="password_confirm" name="password_confirm" type="password" autocomplete="new-password" required minlength="{{ min }}">
<button type="submit">Set the new password</button>
</form>
{% endblock %}`;

const home = `{% extends "layout" %}{% block main %}
<h1>Your account</h1>
<p>Signed in as <strong>{{ email }}</strong>.</p>
<ul>
<li><a href="/accounts/password">Change your password</a></li>
<li><a href="/accounts/two-factor">Two-step verification</a> ({{ "on" if totp else "off" }})</li>
</ul>
<p>This server's API: <code>{{ api }}</code></p>
<form method="post" action="/accounts/sign-out">
<input type="hidden" name="csrf" value="{{ csrf }}">
<button type="submit">Sign out</button>
</form>
{% endblock %}`;

const password = `{% extends "layout" %}{% block main %}
<h1>Change your password</h1>
{% if error %}<p class="error" role="alert" id="form-error">{{ error }}</p>{% endif %}
<form method="post" action="/accounts/password" {% if error %}aria-describedby="form-error"{% endif %}>
<input type="hidden" name="csrf" value="{{ csrf }}">
<label for="current">Current password</label>
<input id="current" name="current" type="password" autocomplete="current-password" required>
<label for="password">New password</label>
<input id="password" name="password" type="password" autocomplete="new-password" required minlength="{{ min }}" aria-describedby="password-hint">
<p class="hint" id="password-hint">At least {{ min }} characters, with at least 5 different ones. Your other signed-in browsers are signed out.</p>
<label for="password_confirm">New password again</label>
<input id="password_confirm" name="password_confirm" type="password" autocomplete="new-password" required minlength="{{ min }}">
<button type="submit">Change password</button>
</form>
<p><a href="/accounts">Back to your account</a></p>
{% endblock %}`;

const checkout = `{% extends "layout" %}{% block main %}
<h1>{{ heading }}</h1>
<p>Project <strong>{{ project }}</strong>, signed in as <strong>{{ email }}</strong>.</p>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
<dl>
<dt>Item</dt><dd>{{ item }}</dd>
<dt>Price</dt><dd>{{ price }}</dd>
</dl>
<p class="hint">This server has no payment network (the local payment provider): confirming records the purchase and saves this project's payment method for auto-recharge.</p>
<form method="post" action="/billing/checkout/{{ id }}">
<input type="hidden" name="csrf" value="{{ csrf }}">
<button type="submit" name="action" value="confirm">Confirm purchase</button>
<button type="submit" name="action" value="cancel" class="secondary">Cancel</button>
</form>
{% endblock %}`;

const templates: Record<string, nunjucks.Template> = {};
const sources: Record<string, string> = {
  layout,
  invitation,
  message,
  signIn,
  home,
  password,
  resetRequest,
  resetChoose,
  totp,
  totpSetup,
  signUp,
  consent,
  deviceInput,
  deviceConfirm,
  checkout,
};
const loader = { getSource: (name: string) => ({ src: sources[name], path: name, noCache: false }) };
const envWithLoader = new nunjucks.Environment(loader as unknown as nunjucks.ILoader, { autoescape: true });

function render(name: string, ctx: Record<string, unknown>): string {
  if (!(name in sources)) throw new Error(`no page template ${name}`);
  templates[name] ??= envWithLoader.getTemplate(name);
  return templates[name].render(ctx);
}

export const invitationPage = (ctx: {
  token: string;
  email: string;
  project: string | null;
  error?: string;
  first_name?: string;
  last_name?: string;
  min: number;
}) => render("invitation", { title: "Accept your invitation", ...ctx });

export const messagePage = (ctx: { title: string; text: string; next?: string; error?: boolean; link?: { href: string; text: string } }) =>
  render("message", ctx);

export const signInPage = (ctx: { next?: string; email?: string; error?: string; action?: string; client?: string; signup?: string }) =>
  render("signIn", { title: "Sign in", ...ctx });
export const homePage = (ctx: { email: string; csrf: string; api: string; totp: boolean }) => render("home", { title: "Your account", ...ctx });
export const totpPage = (ctx: { email: string; pending: string; action: string; next?: string; error?: string }) =>
  render("totp", { title: "Two-step verification", ...ctx });
export const totpSetupPage = (ctx: { csrf: string; enabled: boolean; secret?: string; uri?: string; error?: string }) =>
  render("totpSetup", { title: "Two-step verification", ...ctx });
export const signUpPage = (ctx: { next?: string; email?: string; first_name?: string; last_name?: string; error?: string; min: number }) =>
  render("signUp", { title: "Create your account", ...ctx });
export const consentPage = (ctx: { client: string; email: string; scopes: { name: string; text: string }[]; action: string; csrf: string }) =>
  render("consent", { title: `Allow ${ctx.client}?`, ...ctx });
export const deviceInputPage = (ctx: { action: string; xsrf: string; code?: string; error?: string | undefined }) =>
  render("deviceInput", { title: "Sign in a device", ...ctx });
export const deviceConfirmPage = (ctx: { action: string; xsrf: string; code?: string; client: string; userCode: string }) =>
  render("deviceConfirm", { title: "Confirm the device", ...ctx });
export const deviceSuccessPage = (ctx: { client: string }) =>
  messagePage({ title: "Device signed in", text: `${ctx.client} is signed in. You can close this page and go back to it.` });
export const oauthErrorPage = (ctx: { error: string; description: string }) =>
  messagePage({ title: "This sign-in cannot go on", text: ctx.description ? `${ctx.description} (${ctx.error})` : ctx.error, error: true });
export const passwordPage = (ctx: { csrf: string; error?: string; min: number }) => render("password", { title: "Change your password", ...ctx });
export const resetRequestPage = (ctx: { error?: string }) => render("resetRequest", { title: "Reset your password", ...ctx });
export const resetChoosePage = (ctx: { token: string; email: string; error?: string; min: number }) =>
  render("resetChoose", { title: "Choose a new password", ...ctx });

export const checkoutPage = (ctx: { id: string; heading: string; project: string; email: string; item: string; price: string; csrf: string; error?: string }) =>
  render("checkout", { title: ctx.heading, ...ctx });
