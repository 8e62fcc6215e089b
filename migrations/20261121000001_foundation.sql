-- Foundation: tenancy, people, sessions, API keys and the audit log.
--
-- Tenant isolation is enforced here, not in the application: every tenant table has a
-- `company_id`, row-level security is enabled *and forced* on it, and its policy compares
-- that column with the per-transaction setting `app.company_id` (set with
-- `set_config('app.company_id', $1, true)` by `db::Db::tenant`). Without the setting a
-- query sees no rows at all, so a forgotten `where company_id = ...` cannot leak.
--
-- The application never runs as the owner of these tables: every pooled connection does
-- `set role obrol_app`, a role with no login, no superuser and no BYPASSRLS, holding only the
-- privileges granted below, table by table.
--
-- The few lookups that must happen before the company is known (a session token, an API key,
-- an invitation token, a login e-mail) go through narrow SECURITY DEFINER functions owned by
-- the migrating role; each takes an exact key and returns only what authentication needs.

do $$
begin
    create role obrol_app nologin nosuperuser nocreatedb nocreaterole noinherit nobypassrls;
exception when duplicate_object then
    null;
end
$$;

do $$
begin
    if not exists (
        select 1 from pg_auth_members m
        join pg_roles r on r.oid = m.roleid
        join pg_roles u on u.oid = m.member
        where r.rolname = 'obrol_app' and u.rolname = current_user
    ) and not (select rolsuper from pg_roles where rolname = current_user) then
        execute format('grant obrol_app to %I', current_user);
    end if;
end
$$;

grant usage on schema public to obrol_app;

-- The company the current transaction acts for, or null when none was set.
create function app_company_id() returns uuid
    language sql stable
    as $$ select nullif(current_setting('app.company_id', true), '')::uuid $$;

grant execute on function app_company_id() to obrol_app;

create table companies (
    id uuid primary key,
    name text not null check (length(name) between 1 and 200),
    timezone text not null default 'UTC',
    -- {"monday": [{"start": "09:00", "end": "17:00"}], ...}; a missing day is closed.
    working_hours jsonb not null default '{}'::jsonb,
    plan text not null default 'FREE' check (plan in ('FREE', 'PRO', 'PREMIUM', 'ENTERPRISE')),
    -- Whether Staff see every contact and conversation, or only their own and their teams'.
    staff_see_all boolean not null default true,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

alter table companies enable row level security;
alter table companies force row level security;
create policy companies_tenant on companies
    using (id = app_company_id()) with check (id = app_company_id());
grant select, insert, update on companies to obrol_app;

create table users (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    email text not null check (email = lower(email) and email like '%_@_%'),
    name text not null check (length(name) between 1 and 200),
    -- argon2id PHC string; null until an invited user sets a password.
    password_hash text,
    role text not null check (role in ('ADMIN', 'TEAM_ADMIN', 'STAFF')),
    status text not null default 'ACTIVE' check (status in ('INVITED', 'ACTIVE', 'DEACTIVATED')),
    presence text not null default 'OFFLINE' check (presence in ('ONLINE', 'AWAY', 'OFFLINE')),
    -- TOTP secrets are sealed with the server's secret key (ChaCha20-Poly1305), never clear.
    totp_secret_sealed bytea,
    totp_pending_sealed bytea,
    -- The last 30-second TOTP step accepted, so a code cannot be replayed.
    totp_last_step bigint,
    failed_logins integer not null default 0,
    locked_until timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

-- One account per e-mail address across the installation: logging in needs no company name.
create unique index users_email_key on users (email);
create index users_company_idx on users (company_id, created_at, id);

alter table users enable row level security;
alter table users force row level security;
create policy users_tenant on users
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, update on users to obrol_app;

create table recovery_codes (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    user_id uuid not null references users (id) on delete cascade,
    code_hash bytea not null,
    used_at timestamptz
);

create index recovery_codes_user_idx on recovery_codes (user_id);

alter table recovery_codes enable row level security;
alter table recovery_codes force row level security;
create policy recovery_codes_tenant on recovery_codes
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, update, delete on recovery_codes to obrol_app;

create table teams (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    name text not null check (length(name) between 1 and 100),
    created_at timestamptz not null default now()
);

create unique index teams_name_key on teams (company_id, lower(name));

alter table teams enable row level security;
alter table teams force row level security;
create policy teams_tenant on teams
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, update, delete on teams to obrol_app;

create table team_members (
    company_id uuid not null references companies (id) on delete cascade,
    team_id uuid not null references teams (id) on delete cascade,
    user_id uuid not null references users (id) on delete cascade,
    created_at timestamptz not null default now(),
    primary key (team_id, user_id)
);

create index team_members_user_idx on team_members (user_id);

alter table team_members enable row level security;
alter table team_members force row level security;
create policy team_members_tenant on team_members
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, delete on team_members to obrol_app;

create table sessions (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    user_id uuid not null references users (id) on delete cascade,
    -- sha256 of the opaque token; the token itself is only ever in the client's hands.
    token_hash bytea not null,
    user_agent text,
    created_at timestamptz not null default now(),
    last_used_at timestamptz not null default now(),
    expires_at timestamptz not null,
    revoked_at timestamptz
);

create unique index sessions_token_key on sessions (token_hash);
create index sessions_user_idx on sessions (user_id, created_at);

alter table sessions enable row level security;
alter table sessions force row level security;
create policy sessions_tenant on sessions
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, update on sessions to obrol_app;

create table api_keys (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    created_by uuid not null references users (id) on delete cascade,
    name text not null check (length(name) between 1 and 100),
    -- The first characters of the key, shown in lists so people can tell keys apart.
    prefix text not null,
    key_hash bytea not null,
    scopes text[] not null,
    created_at timestamptz not null default now(),
    last_used_at timestamptz,
    revoked_at timestamptz
);

create unique index api_keys_hash_key on api_keys (key_hash);
create index api_keys_company_idx on api_keys (company_id, created_at);

alter table api_keys enable row level security;
alter table api_keys force row level security;
create policy api_keys_tenant on api_keys
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, update on api_keys to obrol_app;

create table invites (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    user_id uuid not null references users (id) on delete cascade,
    token_hash bytea not null,
    invited_by uuid references users (id) on delete set null,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null,
    accepted_at timestamptz
);

create unique index invites_token_key on invites (token_hash);

alter table invites enable row level security;
alter table invites force row level security;
create policy invites_tenant on invites
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, update on invites to obrol_app;

-- Append-only: the application may add and read audit events, never change or remove them.
create table audit_events (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    actor_user_id uuid,
    actor_api_key_id uuid,
    action text not null,
    target_type text,
    target_id uuid,
    details jsonb not null default '{}'::jsonb,
    created_at timestamptz not null default now()
);

create index audit_events_company_idx on audit_events (company_id, id desc);

alter table audit_events enable row level security;
alter table audit_events force row level security;
create policy audit_events_tenant on audit_events
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert on audit_events to obrol_app;

-- Authentication look-ups that precede knowing the company. Each takes an exact key.

-- plpgsql rather than sql: a security-definer SQL function cannot be inlined and would be
-- planned again on every call; plpgsql keeps the plan for the session.
create function auth_session(p_token_hash bytea)
returns table (
    session_id uuid, session_last_used_at timestamptz, session_expires_at timestamptz,
    id uuid, company_id uuid, email text, name text, role text, status text, presence text,
    two_factor_enabled boolean, created_at timestamptz
)
    language plpgsql stable security definer set search_path = pg_catalog, public, pg_temp
    as $$
    begin
        return query
        select s.id, s.last_used_at, s.expires_at,
               u.id, u.company_id, u.email, u.name, u.role, u.status, u.presence,
               u.totp_secret_sealed is not null, u.created_at
        from sessions s
        join users u on u.id = s.user_id
        where s.token_hash = p_token_hash
          and s.revoked_at is null
          and s.expires_at > now()
          and u.status = 'ACTIVE';
    end
    $$;

create function auth_api_key(p_key_hash bytea)
returns table (
    api_key_id uuid, scopes text[], api_key_last_used_at timestamptz,
    id uuid, company_id uuid, email text, name text, role text, status text, presence text,
    two_factor_enabled boolean, created_at timestamptz
)
    language plpgsql stable security definer set search_path = pg_catalog, public, pg_temp
    as $$
    begin
        return query
        select k.id, k.scopes, k.last_used_at,
               u.id, u.company_id, u.email, u.name, u.role, u.status, u.presence,
               u.totp_secret_sealed is not null, u.created_at
        from api_keys k
        join users u on u.id = k.created_by
        where k.key_hash = p_key_hash
          and k.revoked_at is null
          and u.status = 'ACTIVE';
    end
    $$;

create function auth_login_company(p_email text) returns uuid
    language sql stable security definer set search_path = pg_catalog, public, pg_temp
    as $$ select company_id from users where email = lower(p_email) $$;

create function auth_invite_company(p_token_hash bytea) returns uuid
    language sql stable security definer set search_path = pg_catalog, public, pg_temp
    as $$
        select i.company_id from invites i
        join users u on u.id = i.user_id
        where i.token_hash = p_token_hash and i.accepted_at is null and i.expires_at > now()
          and u.status = 'INVITED'
    $$;

create function auth_email_taken(p_email text) returns boolean
    language sql stable security definer set search_path = pg_catalog, public, pg_temp
    as $$ select exists (select 1 from users where email = lower(p_email)) $$;

revoke all on function auth_session(bytea), auth_api_key(bytea), auth_login_company(text),
    auth_invite_company(bytea), auth_email_taken(text) from public;
grant execute on function auth_session(bytea), auth_api_key(bytea), auth_login_company(text),
    auth_invite_company(bytea), auth_email_taken(text) to obrol_app;

-- Credential-cache invalidation (see api/src/auth/cache.rs): every API node caches resolved
-- session tokens and API keys for a few seconds, and forgets a user's entries when it hears
-- their id on this channel. Triggers, not application code, send it, so no code path that
-- changes a user, a session or an API key can forget to.

create function notify_credentials_changed() returns trigger
    language plpgsql
    as $$
    begin
        -- One branch per table: a record only has its own table's fields.
        if tg_table_name = 'users' then
            perform pg_notify('obrol_credentials', new.id::text);
        elsif tg_table_name = 'sessions' then
            perform pg_notify('obrol_credentials', new.user_id::text);
        else
            perform pg_notify('obrol_credentials', new.created_by::text);
        end if;
        return null;
    end
    $$;

create trigger users_credentials_changed
    after update on users
    for each row
    when (old.role is distinct from new.role
          or old.status is distinct from new.status
          or old.presence is distinct from new.presence
          or old.name is distinct from new.name
          or old.email is distinct from new.email
          or old.totp_secret_sealed is distinct from new.totp_secret_sealed)
    execute function notify_credentials_changed();

create trigger sessions_credentials_changed
    after update on sessions
    for each row
    when (old.revoked_at is distinct from new.revoked_at or old.expires_at is distinct from new.expires_at)
    execute function notify_credentials_changed();

create trigger api_keys_credentials_changed
    after update on api_keys
    for each row
    when (old.revoked_at is distinct from new.revoked_at or old.scopes is distinct from new.scopes)
    execute function notify_credentials_changed();
