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
<form method="post" action="/accounts/sign-in" {% if error %}aria-describedby="form-error"{% endif %}>
<input type="hidden" name="next" value="{{ next }}">
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="username" required value="{{ email }}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
<p><a href="/accounts/password-reset">Forgot your password?</a></p>
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

const templates: Record<string, nunjucks.Template> = {};
const sources: Record<string, string> = { layout, invitation, message, signIn, home, password, resetRequest, resetChoose };
const loader = { getSource: (name: string) => ({ src: sources[name], path: name, noCache: false }) };
const envWithLoader = new nunjucks.Environment(loader as unknown as nunjucks.ILoader, { autoescape: true });

function render(name: "invitation" | "message" | "signIn" | "home" | "password" | "resetRequest" | "resetChoose", ctx: Record<string, unknown>): string {
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

export const signInPage = (ctx: { next: string; email?: string; error?: string }) => render("signIn", { title: "Sign in", ...ctx });
export const homePage = (ctx: { email: string; csrf: string; api: string }) => render("home", { title: "Your account", ...ctx });
export const passwordPage = (ctx: { csrf: string; error?: string; min: number }) => render("password", { title: "Change your password", ...ctx });
export const resetRequestPage = (ctx: { error?: string }) => render("resetRequest", { title: "Reset your password", ...ctx });
export const resetChoosePage = (ctx: { token: string; email: string; error?: string; min: number }) =>
  render("resetChoose", { title: "Choose a new password", ...ctx });
