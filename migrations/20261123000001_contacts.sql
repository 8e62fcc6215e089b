-- Contacts (PRODUCT.md §3): default properties as columns, custom properties in typed slot
-- columns, labels, lists, saved views, channel identities, notes, reminders, the activity log
-- and Monthly Active Contacts. docs/decisions/0007-contact-properties-in-typed-slots.md says
-- why custom properties live in slots rather than in a jsonb document or a key-value table.
--
-- Every table has company_id with row-level security forced, like the foundation's.

create table contacts (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    first_name text check (length(first_name) <= 200),
    last_name text check (length(last_name) <= 200),
    -- The name as shown and sorted: first and last name joined, or '' when neither is known.
    display_name text not null
        generated always as (btrim(coalesce(first_name, '') || ' ' || coalesce(last_name, ''))) stored,
    -- E.164 (+ and 8 to 15 digits), normalised by the application.
    phone text check (phone ~ '^\+[1-9][0-9]{7,14}$'),
    email text check (email = lower(email) and length(email) <= 320),
    -- ISO 3166-1 alpha-2.
    country text check (country ~ '^[A-Z]{2}$'),
    location text check (length(location) <= 200),
    company_name text check (length(company_name) <= 200),
    job_title text check (length(job_title) <= 200),
    owner_id uuid references users (id) on delete set null,
    team_id uuid references teams (id) on delete set null,
    label_ids uuid[] not null default '{}',
    -- When the business last wrote to the contact, and when the contact last wrote to it.
    last_contacted_at timestamptz,
    last_inbound_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

-- Custom property slots: t1..t24 hold text, single-select, phone, e-mail and URL values;
-- n1..n12 numbers; d1..d12 dates; b1..b12 booleans; m1..m8 multi-select values. A company's
-- property definition names its slot; a slot means nothing across companies.
do $$
declare
    i integer;
begin
    for i in 1..24 loop
        execute format('alter table contacts add column t%s text check (length(t%s) <= 2000)', i, i);
        execute format('create index contacts_t%s_idx on contacts (company_id, t%s) where t%s is not null', i, i, i);
    end loop;
    for i in 1..12 loop
        execute format('alter table contacts add column n%s double precision', i);
        execute format('create index contacts_n%s_idx on contacts (company_id, n%s) where n%s is not null', i, i, i);
        execute format('alter table contacts add column d%s date', i);
        execute format('create index contacts_d%s_idx on contacts (company_id, d%s) where d%s is not null', i, i, i);
        -- Booleans split a company in two: an index would not be chosen, so none is kept.
        execute format('alter table contacts add column b%s boolean', i);
    end loop;
    for i in 1..8 loop
        execute format('alter table contacts add column m%s text[]', i);
        execute format('create index contacts_m%s_idx on contacts using gin (m%s) where m%s is not null', i, i, i);
    end loop;
end
$$;

-- Pages in the default order (newest first) and by name are index range scans.
create index contacts_company_idx on contacts (company_id, id);
create index contacts_name_idx on contacts (company_id, display_name, id);
create index contacts_updated_idx on contacts (company_id, updated_at, id);
create index contacts_owner_idx on contacts (company_id, owner_id) where owner_id is not null;
create index contacts_team_idx on contacts (company_id, team_id) where team_id is not null;
create index contacts_country_idx on contacts (company_id, country) where country is not null;
create index contacts_labels_idx on contacts using gin (label_ids);
create index contacts_last_contacted_idx on contacts (company_id, last_contacted_at)
    where last_contacted_at is not null;
create index contacts_last_inbound_idx on contacts (company_id, last_inbound_at)
    where last_inbound_at is not null;
-- One contact per phone number and per e-mail address in a company: imports update it.
create unique index contacts_phone_key on contacts (company_id, phone) where phone is not null;
create unique index contacts_email_key on contacts (company_id, email) where email is not null;

alter table contacts enable row level security;
alter table contacts force row level security;
create policy contacts_tenant on contacts
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, update, delete on contacts to obrol_app;

-- A company's custom properties. `slot` is the contacts column holding the values.
create table contact_properties (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    key text not null check (key ~ '^[a-z][a-z0-9_]{0,62}$'),
    label text not null check (length(label) between 1 and 100),
    type text not null check (type in (
        'TEXT', 'NUMBER', 'DATE', 'BOOLEAN', 'SINGLE_SELECT', 'MULTI_SELECT', 'PHONE', 'EMAIL', 'URL')),
    -- The allowed values of a single- or multi-select property, in order.
    options text[] not null default '{}',
    slot text not null check (slot ~ '^[tndbm][0-9]{1,2}$'),
    created_at timestamptz not null default now()
);

create unique index contact_properties_key on contact_properties (company_id, key);
create unique index contact_properties_slot_key on contact_properties (company_id, slot);

alter table contact_properties enable row level security;
alter table contact_properties force row level security;
create policy contact_properties_tenant on contact_properties
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, update on contact_properties to obrol_app;

create table labels (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    name text not null check (length(name) between 1 and 64),
    created_at timestamptz not null default now()
);

create unique index labels_name_key on labels (company_id, lower(name));

alter table labels enable row level security;
alter table labels force row level security;
create policy labels_tenant on labels
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert on labels to obrol_app;

-- Static lists keep their members in contact_list_members; criteria lists keep a filter and
-- have whoever matches it when used.
create table contact_lists (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    name text not null check (length(name) between 1 and 100),
    kind text not null check (kind in ('STATIC', 'CRITERIA')),
    filter jsonb,
    created_by uuid references users (id) on delete set null,
    created_at timestamptz not null default now(),
    check ((kind = 'CRITERIA') = (filter is not null))
);

create unique index contact_lists_name_key on contact_lists (company_id, lower(name));

alter table contact_lists enable row level security;
alter table contact_lists force row level security;
create policy contact_lists_tenant on contact_lists
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert on contact_lists to obrol_app;

create table contact_list_members (
    list_id uuid not null references contact_lists (id) on delete cascade,
    contact_id uuid not null references contacts (id) on delete cascade,
    company_id uuid not null references companies (id) on delete cascade,
    added_at timestamptz not null default now(),
    primary key (list_id, contact_id)
);

create index contact_list_members_contact_idx on contact_list_members (contact_id);

alter table contact_list_members enable row level security;
alter table contact_list_members force row level security;
create policy contact_list_members_tenant on contact_list_members
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, delete on contact_list_members to obrol_app;

-- Saved views: an admin's default views (user_id null) are everyone's; personal views are
-- their maker's alone.
create table contact_views (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    user_id uuid references users (id) on delete cascade,
    name text not null check (length(name) between 1 and 100),
    grouping text not null check (grouping in ('ALL', 'MINE', 'TEAM')),
    filter jsonb,
    order_by jsonb,
    created_at timestamptz not null default now()
);

create index contact_views_company_idx on contact_views (company_id, id);

alter table contact_views enable row level security;
alter table contact_views force row level security;
create policy contact_views_tenant on contact_views
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, update, delete on contact_views to obrol_app;

-- The same person on several channels is one contact.
create table contact_identities (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    contact_id uuid not null references contacts (id) on delete cascade,
    channel text not null check (channel in (
        'WHATSAPP', 'INSTAGRAM', 'MESSENGER', 'WECHAT', 'LINE', 'TELEGRAM', 'VIBER', 'SMS', 'LIVE_CHAT')),
    -- The contact's id on that channel (a phone number, a page-scoped id, a chat id, ...).
    external_id text not null check (length(external_id) between 1 and 200),
    created_at timestamptz not null default now()
);

create unique index contact_identities_key on contact_identities (company_id, channel, external_id);
create index contact_identities_contact_idx on contact_identities (contact_id);

alter table contact_identities enable row level security;
alter table contact_identities force row level security;
create policy contact_identities_tenant on contact_identities
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, update, delete on contact_identities to obrol_app;

create table contact_notes (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    contact_id uuid not null references contacts (id) on delete cascade,
    author_id uuid references users (id) on delete set null,
    body text not null check (length(body) between 1 and 10000),
    created_at timestamptz not null default now()
);

create index contact_notes_contact_idx on contact_notes (contact_id, id);

alter table contact_notes enable row level security;
alter table contact_notes force row level security;
create policy contact_notes_tenant on contact_notes
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, update, delete on contact_notes to obrol_app;

create table contact_reminders (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    contact_id uuid not null references contacts (id) on delete cascade,
    assignee_id uuid references users (id) on delete set null,
    created_by uuid references users (id) on delete set null,
    body text not null check (length(body) between 1 and 2000),
    due_at timestamptz not null,
    done_at timestamptz,
    created_at timestamptz not null default now()
);

create index contact_reminders_contact_idx on contact_reminders (contact_id, due_at);
create index contact_reminders_assignee_idx on contact_reminders (assignee_id, due_at)
    where done_at is null;

alter table contact_reminders enable row level security;
alter table contact_reminders force row level security;
create policy contact_reminders_tenant on contact_reminders
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, update, delete on contact_reminders to obrol_app;

-- Files shared in conversations, or attached by staff: references into the object store.
create table contact_media (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    contact_id uuid not null references contacts (id) on delete cascade,
    file_name text not null check (length(file_name) between 1 and 255),
    content_type text not null,
    size_bytes bigint not null check (size_bytes >= 0),
    object_key text not null,
    created_at timestamptz not null default now()
);

create index contact_media_contact_idx on contact_media (contact_id, id);

alter table contact_media enable row level security;
alter table contact_media force row level security;
create policy contact_media_tenant on contact_media
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, delete on contact_media to obrol_app;

-- The activity log: created, property changes, labels, list membership, notes; later issues
-- add messages, tickets and conversions. Erasing the contact erases its log.
create table contact_activities (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    contact_id uuid not null references contacts (id) on delete cascade,
    kind text not null,
    actor_user_id uuid references users (id) on delete set null,
    details jsonb not null default '{}'::jsonb,
    created_at timestamptz not null default now()
);

create index contact_activities_contact_idx on contact_activities (contact_id, id desc);

alter table contact_activities enable row level security;
alter table contact_activities force row level security;
create policy contact_activities_tenant on contact_activities
    using (company_id = app_company_id()) with check (company_id = app_company_id());
-- Append-only for the application; rows go only with their contact (the foreign key).
grant select, insert on contact_activities to obrol_app;

-- Monthly Active Contacts: one row the first time a contact is active in a month. Erasing a
-- contact keeps the month's count true: the row's contact_id becomes a random id.
create table monthly_active_contacts (
    company_id uuid not null references companies (id) on delete cascade,
    month date not null check (extract(day from month) = 1),
    contact_id uuid not null,
    first_active_at timestamptz not null,
    reason text not null,
    primary key (company_id, month, contact_id)
);

alter table monthly_active_contacts enable row level security;
alter table monthly_active_contacts force row level security;
create policy monthly_active_contacts_tenant on monthly_active_contacts
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, update on monthly_active_contacts to obrol_app;
