import {
  useEffect,
  useId,
  useRef,
  useState,
  type ButtonHTMLAttributes,
  type InputHTMLAttributes,
  type ReactNode,
  type SelectHTMLAttributes,
  type TextareaHTMLAttributes,
} from "react";
import { errorText } from "./api";

/** A page: its heading (focused on navigation, for screen readers), actions beside it, then the content. */
export function Page({ title, actions, children }: { title: string; actions?: ReactNode; children: ReactNode }) {
  const h = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${title} · MeshAgent Console`;
    h.current?.focus({ preventScroll: true });
  }, [title]);
  return (
    <section className="page" aria-labelledby="page-title">
      <header className="page-head">
        <h1 id="page-title" tabIndex={-1} ref={h}>
          {title}
        </h1>
        {actions ? <div className="actions">{actions}</div> : null}
      </header>
      {children}
    </section>
  );
}

/** An API error, with the server's message, code and request id. */
export function ErrorBox({ error, title = "Something went wrong" }: { error: unknown; title?: string }) {
  if (!error) return null;
  return (
    <div className="error" role="alert">
      <strong>{title}</strong>
      <p>{errorText(error)}</p>
    </div>
  );
}

export function Loading({ label = "Loading…" }: { label?: string }) {
  return (
    <p className="loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" /> {label}
    </p>
  );
}

/** An empty list: what it is, and what to do next. */
export function Empty({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="empty">
      <p className="empty-title">{title}</p>
      {children ? <div className="empty-hint">{children}</div> : null}
    </div>
  );
}

/** A view of an async value: loading, error, empty, or the content. */
export function AsyncView<T>({
  state,
  empty,
  children,
}: {
  state: { data: T | undefined; error: unknown; loading: boolean };
  empty?: (data: T) => ReactNode | null;
  children: (data: T) => ReactNode;
}) {
  if (state.data === undefined) return state.error ? <ErrorBox error={state.error} /> : <Loading />;
  const e = empty?.(state.data);
  return (
    <>
      {state.error ? <ErrorBox error={state.error} title="Could not refresh" /> : null}
      {e ?? children(state.data)}
    </>
  );
}

export interface Column<T> {
  label: string;
  render: (row: T) => ReactNode;
  className?: string;
}

/** A table that scrolls sideways on narrow screens, with a caption for screen readers. */
export function Table<T>({ caption, columns, rows, rowKey }: { caption: string; columns: Column<T>[]; rows: T[]; rowKey: (row: T) => string }) {
  return (
    <div className="table-wrap" role="region" aria-label={caption} tabIndex={0}>
      <table>
        <caption className="sr-only">{caption}</caption>
        <thead>
          <tr>
            {columns.map((c) => (
              <th key={c.label} scope="col" className={c.className}>
                {c.label}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={rowKey(r)}>
              {columns.map((c) => (
                <td key={c.label} className={c.className} data-label={c.label}>
                  {c.render(r)}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** Previous / next paging for limit/offset lists (`more`: a full page came back). */
export function Pager({
  offset,
  limit,
  count,
  more,
  onChange,
}: {
  offset: number;
  limit: number;
  count: number;
  more: boolean;
  onChange: (offset: number) => void;
}) {
  return (
    <nav className="pager" aria-label="Pages">
      <Button kind="secondary" disabled={offset === 0} onClick={() => onChange(Math.max(0, offset - limit))}>
        Previous
      </Button>
      <span aria-live="polite">{count ? `${offset + 1}–${offset + count}` : "none"}</span>
      <Button kind="secondary" disabled={!more} onClick={() => onChange(offset + limit)}>
        Next
      </Button>
    </nav>
  );
}

export function Button({
  kind = "primary",
  busy,
  children,
  ...rest
}: ButtonHTMLAttributes<HTMLButtonElement> & { kind?: "primary" | "secondary" | "danger"; busy?: boolean }) {
  return (
    <button type="button" {...rest} className={`btn btn-${kind} ${rest.className ?? ""}`} disabled={rest.disabled || busy} aria-busy={busy || undefined}>
      {children}
    </button>
  );
}

type FieldProps = { label: string; hint?: ReactNode; error?: string | null };

/** A labelled input, with a hint and an error tied to it (aria-describedby). */
export function Field({ label, hint, error, ...input }: FieldProps & InputHTMLAttributes<HTMLInputElement>) {
  const id = useId();
  const desc = [hint ? `${id}-hint` : "", error ? `${id}-err` : ""].filter(Boolean).join(" ") || undefined;
  return (
    <div className={`field ${input.type === "checkbox" ? "field-check" : ""}`}>
      <label htmlFor={id}>{label}</label>
      <input id={id} aria-describedby={desc} aria-invalid={error ? true : undefined} {...input} />
      {hint ? (
        <small id={`${id}-hint`} className="hint">
          {hint}
        </small>
      ) : null}
      {error ? (
        <small id={`${id}-err`} className="field-error">
          {error}
        </small>
      ) : null}
    </div>
  );
}

export function TextArea({ label, hint, error, ...input }: FieldProps & TextareaHTMLAttributes<HTMLTextAreaElement>) {
  const id = useId();
  const desc = [hint ? `${id}-hint` : "", error ? `${id}-err` : ""].filter(Boolean).join(" ") || undefined;
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <textarea id={id} aria-describedby={desc} aria-invalid={error ? true : undefined} spellCheck={false} {...input} />
      {hint ? (
        <small id={`${id}-hint`} className="hint">
          {hint}
        </small>
      ) : null}
      {error ? (
        <small id={`${id}-err`} className="field-error" role="status">
          {error}
        </small>
      ) : null}
    </div>
  );
}

export function Select({ label, hint, children, ...input }: FieldProps & SelectHTMLAttributes<HTMLSelectElement>) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <select id={id} aria-describedby={hint ? `${id}-hint` : undefined} {...input}>
        {children}
      </select>
      {hint ? (
        <small id={`${id}-hint`} className="hint">
          {hint}
        </small>
      ) : null}
    </div>
  );
}

/**
 * A form that runs `onSubmit`, shows its error (the server's message) and disables itself while it runs. `onSubmit`
 * may throw; a success may return a message to announce.
 */
export function Form({
  onSubmit,
  submit,
  children,
  className,
}: {
  onSubmit: () => Promise<string | void>;
  submit: string;
  children: ReactNode;
  className?: string;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<string | null>(null);
  return (
    <form
      className={`form ${className ?? ""}`}
      onSubmit={async (e) => {
        e.preventDefault();
        setBusy(true);
        setError(null);
        setDone(null);
        try {
          const msg = await onSubmit();
          if (msg) setDone(msg);
        } catch (err) {
          setError(err);
        } finally {
          setBusy(false);
        }
      }}
    >
      {children}
      <ErrorBox error={error} title="Not saved" />
      <div className="form-actions">
        <button type="submit" className="btn btn-primary" disabled={busy} aria-busy={busy || undefined}>
          {submit}
        </button>
        {done ? (
          <span className="ok" role="status">
            {done}
          </span>
        ) : null}
      </div>
    </form>
  );
}

/** A button that asks before it acts (a second click within the prompt), and shows the action's error. */
export function ConfirmButton({
  label,
  confirm,
  onConfirm,
  kind = "danger",
}: {
  label: string;
  confirm: string;
  onConfirm: () => Promise<unknown>;
  kind?: "danger" | "secondary";
}) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  if (!asking)
    return (
      <>
        <Button kind={kind} onClick={() => setAsking(true)}>
          {label}
        </Button>
        <ErrorBox error={error} title={`${label} failed`} />
      </>
    );
  return (
    <span className="confirm" role="group" aria-label={confirm}>
      <span>{confirm}</span>
      <Button
        kind="danger"
        busy={busy}
        autoFocus
        onClick={async () => {
          setBusy(true);
          setError(null);
          try {
            await onConfirm();
          } catch (e) {
            setError(e);
          } finally {
            setBusy(false);
            setAsking(false);
          }
        }}
      >
        Yes, {label.toLowerCase()}
      </Button>
      <Button kind="secondary" onClick={() => setAsking(false)}>
        Cancel
      </Button>
    </span>
  );
}

/** A secret shown once: it can be copied now and is never shown again. */
export function ShownOnce({ label, value, onDone }: { label: string; value: string; onDone: () => void }) {
  const [copied, setCopied] = useState(false);
  return (
    <div className="shown-once" role="dialog" aria-modal="false" aria-labelledby="shown-once-title">
      <p id="shown-once-title">
        <strong>{label}</strong>: copy it now, it will not be shown again.
      </p>
      <code className="secret" data-testid="shown-once-value">
        {value}
      </code>
      <div className="form-actions">
        <Button
          onClick={async () => {
            await navigator.clipboard?.writeText(value).catch(() => {});
            setCopied(true);
          }}
        >
          Copy
        </Button>
        <Button kind="secondary" onClick={onDone}>
          Done
        </Button>
        {copied ? <span role="status">Copied</span> : null}
      </div>
    </div>
  );
}

/** A date for people, in their locale (the title carries the exact ISO time). */
export function When({ at }: { at: string | number | null | undefined }) {
  if (at === null || at === undefined || at === "") return <span>—</span>;
  const d = new Date(at);
  if (Number.isNaN(d.getTime())) return <span>{String(at)}</span>;
  return <time dateTime={d.toISOString()}>{d.toLocaleString()}</time>;
}
