-- Contacts, continued (issue 4): deleting lists, imports and their skipped rows, download
-- links for exports.

grant delete on contact_lists to obrol_app;

-- An import of a CSV or spreadsheet file: a durable job (kind 'contacts.import') works
-- through the rows in batches; each batch commits with the counts and the number of rows
-- done, so a restart resumes where the last batch ended.
create table contact_imports (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    created_by uuid references users (id) on delete set null,
    file_name text not null check (length(file_name) between 1 and 255),
    -- The uploaded file in the object store, until the import ends.
    object_key text not null,
    -- Which column goes to which property: [{"column": 0, "property": "phone"}, ...].
    mapping jsonb not null,
    labels text[] not null default '{}',
    list_id uuid references contact_lists (id) on delete set null,
    update_existing boolean not null,
    status text not null default 'QUEUED' check (status in ('QUEUED', 'RUNNING', 'DONE', 'FAILED')),
    total_rows integer not null check (total_rows >= 0),
    processed_rows integer not null default 0,
    created_count integer not null default 0,
    updated_count integer not null default 0,
    skipped_count integer not null default 0,
    failure text,
    created_at timestamptz not null default now(),
    finished_at timestamptz
);

create index contact_imports_company_idx on contact_imports (company_id, id desc);

alter table contact_imports enable row level security;
alter table contact_imports force row level security;
create policy contact_imports_tenant on contact_imports
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, update on contact_imports to obrol_app;

-- The rows an import skipped and why (the first 1,000 of an import; all are counted).
create table contact_import_errors (
    import_id uuid not null references contact_imports (id) on delete cascade,
    company_id uuid not null references companies (id) on delete cascade,
    row_number integer not null,
    reason text not null,
    primary key (import_id, row_number)
);

alter table contact_import_errors enable row level security;
alter table contact_import_errors force row level security;
create policy contact_import_errors_tenant on contact_import_errors
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert on contact_import_errors to obrol_app;

-- A short-lived link to a file the server makes when it is fetched (a contact export, the
-- import sample). The link's secret is stored only as its sha256. Whoever holds the link can
-- fetch the file until it expires, with the rights its maker has at that time.
create table downloads (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    user_id uuid not null references users (id) on delete cascade,
    token_hash bytea not null,
    kind text not null check (kind in ('CONTACT_EXPORT', 'CONTACT_IMPORT_SAMPLE')),
    params jsonb not null default '{}'::jsonb,
    expires_at timestamptz not null,
    created_at timestamptz not null default now()
);

create unique index downloads_token_key on downloads (token_hash);

alter table downloads enable row level security;
alter table downloads force row level security;
create policy downloads_tenant on downloads
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, delete on downloads to obrol_app;

-- Which company a download link belongs to: the one look across companies a link needs,
-- before the request can run as that company.
create function download_company(p_token_hash bytea) returns uuid
    language sql stable security definer set search_path = pg_catalog, public, pg_temp
    as $$ select company_id from downloads where token_hash = p_token_hash and expires_at > now() $$;

revoke all on function download_company(bytea) from public;
grant execute on function download_company(bytea) to obrol_app;

-- Merging two contacts moves everything of one to the other: its activity (only which
-- contact it belongs to may change), its files, and its months of activity (a person active
-- as both in one month counts once).
grant update (contact_id) on contact_activities to obrol_app;
grant update (contact_id) on contact_media to obrol_app;
grant delete on monthly_active_contacts to obrol_app;

-- Custom objects: admin-defined record types (orders, memberships, ...) with typed fields,
-- whose records belong to contacts.
create table custom_object_types (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    key text not null check (key ~ '^[a-z][a-z0-9_]{0,62}$'),
    name text not null check (length(name) between 1 and 100),
    -- [{"key": "status", "label": "Status", "type": "SINGLE_SELECT", "options": [...]}, ...]
    fields jsonb not null,
    display_field text not null,
    -- ONE_TO_ONE: at most one record per contact; ONE_TO_MANY: any number.
    relation text not null check (relation in ('ONE_TO_ONE', 'ONE_TO_MANY')),
    created_at timestamptz not null default now()
);

create unique index custom_object_types_key on custom_object_types (company_id, key);

alter table custom_object_types enable row level security;
alter table custom_object_types force row level security;
create policy custom_object_types_tenant on custom_object_types
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert on custom_object_types to obrol_app;

create table custom_object_records (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    type_id uuid not null references custom_object_types (id) on delete cascade,
    contact_id uuid not null references contacts (id) on delete cascade,
    "values" jsonb not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create index custom_object_records_type_idx on custom_object_records (type_id, id);
create index custom_object_records_contact_idx on custom_object_records (contact_id, type_id);
create index custom_object_records_values_idx on custom_object_records using gin ("values" jsonb_path_ops);

alter table custom_object_records enable row level security;
alter table custom_object_records force row level security;
create policy custom_object_records_tenant on custom_object_records
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, update, delete on custom_object_records to obrol_app;

-- "A record was created / updated / deleted", for automation to react to. They name the
-- fields that changed, never their values, and go with the contact when it is erased.
create table custom_object_events (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    type_id uuid not null references custom_object_types (id) on delete cascade,
    record_id uuid not null,
    contact_id uuid not null references contacts (id) on delete cascade,
    kind text not null check (kind in ('CREATED', 'UPDATED', 'DELETED')),
    fields text[] not null default '{}',
    created_at timestamptz not null default now()
);

create index custom_object_events_company_idx on custom_object_events (company_id, id);

alter table custom_object_events enable row level security;
alter table custom_object_events force row level security;
create policy custom_object_events_tenant on custom_object_events
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert on custom_object_events to obrol_app;
-- Merging contacts moves records and their events to the kept contact.
grant update (contact_id) on custom_object_events to obrol_app;
