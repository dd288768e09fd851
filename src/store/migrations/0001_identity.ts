import type { Migration } from "kysely";
import { tablesMigration } from "./ddl.js";

export const m0001_identity: Migration = tablesMigration({
  users: {
    id: "text primary key",
    email: "text not null",
    email_lower: "text not null unique",
    first_name: "text",
    last_name: "text",
    password_hash: "text",
    invited: "integer not null default 0",
    created_at: "bigint not null",
  },
  projects: {
    id: "text primary key",
    name: "text not null",
    settings: "text not null",
    enabled: "integer not null default 1",
    owner_user_id: "text",
    created_at: "bigint not null",
  },
  memberships: {
    project_id: "text not null references projects.id on delete cascade",
    user_id: "text not null references users.id on delete cascade",
    is_admin: "integer not null default 0",
    is_developer: "integer not null default 0",
    can_create_rooms: "integer not null default 0",
    can_use_llm_proxy: "integer not null default 0",
    created_at: "bigint not null",
    "constraint memberships_pk": "primary key (project_id, user_id)",
    "index memberships_user": "(user_id)",
  },
  api_keys: {
    id: "text primary key",
    project_id: "text not null references projects.id on delete cascade",
    name: "text not null",
    description: "text not null",
    secret_sealed: "text not null",
    secret_hash: "text not null",
    created_by: "text",
    created_at: "bigint not null",
    "index api_keys_project": "(project_id, created_at)",
  },
  user_tokens: {
    id: "text primary key",
    user_id: "text not null references users.id on delete cascade",
    token_hash: "text not null unique",
    kind: "text not null",
    name: "text not null",
    created_at: "bigint not null",
    expires_at: "bigint",
  },
});
