-- Channels (issue 5): a company's connected channel accounts. Credentials are sealed
-- (XChaCha20-Poly1305 with the server's secret key) before they reach the database and are
-- never returned by the API.
create table channel_accounts (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    type text not null check (type in (
        'WHATSAPP', 'INSTAGRAM', 'MESSENGER', 'WECHAT', 'LINE', 'TELEGRAM', 'VIBER', 'SMS', 'LIVE_CHAT')),
    name text not null check (length(name) between 1 and 100),
    -- The account's id at the provider (phone number id, page id, bot id, ...): a provider
    -- account is connected to one company at a time (the unique index sees all companies).
    external_id text,
    status text not null default 'ACTIVE' check (status in ('ACTIVE', 'DISCONNECTED')),
    credentials_sealed bytea not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create index channel_accounts_company_idx on channel_accounts (company_id, id);
create unique index channel_accounts_external_key on channel_accounts (type, external_id)
    where external_id is not null and status = 'ACTIVE';

alter table channel_accounts enable row level security;
alter table channel_accounts force row level security;
create policy channel_accounts_tenant on channel_accounts
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, update on channel_accounts to obrol_app;

-- Which company a webhook's channel account belongs to, before the request can run as it.
create function channel_account_company(p_id uuid) returns uuid
    language sql stable security definer set search_path = pg_catalog, public, pg_temp
    as $$ select company_id from channel_accounts where id = p_id $$;

revoke all on function channel_account_company(uuid) from public;
grant execute on function channel_account_company(uuid) to obrol_app;
