-- Knowledge bases, their sources and passages (with pgvector embeddings), and the durable
-- job queue that ingests them. Same tenancy rules as the foundation: company_id on every
-- row, row-level security enabled and forced, narrow SECURITY DEFINER functions for the two
-- things that must look across companies (a worker claiming the next job, and a node
-- bringing its full-text index up to date).

create extension if not exists vector;

create table knowledge_bases (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    name text not null check (length(name) between 1 and 200),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index knowledge_bases_company on knowledge_bases (company_id, id);

alter table knowledge_bases enable row level security;
alter table knowledge_bases force row level security;
create policy knowledge_bases_tenant on knowledge_bases
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, update, delete on knowledge_bases to obrol_app;

create table knowledge_sources (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    knowledge_base_id uuid not null references knowledge_bases (id) on delete cascade,
    kind text not null check (kind in ('FILE', 'URL', 'GOOGLE_DOC', 'GOOGLE_SHEET', 'TEXT')),
    name text not null check (length(name) between 1 and 300),
    -- What was asked for (URL kinds) and the detected format ('pdf', 'xlsx', ...).
    url text,
    format text,
    status text not null check (status in ('QUEUED', 'EXTRACTING', 'EMBEDDING', 'READY', 'FAILED')),
    error text,
    -- Bytes counted against the knowledge base's total (the file, page or text).
    byte_size bigint not null default 0 check (byte_size >= 0),
    page_count integer not null default 0,
    chunk_count integer not null default 0,
    embedded_count integer not null default 0,
    -- Every ingestion gets a new generation; searches only see `active_generation`, which
    -- moves to the new one when it is fully ingested (or at once, for a first ingestion, as
    -- soon as its text is indexed). Old passages therefore serve until new ones are ready.
    generation integer not null default 1,
    active_generation integer,
    -- Where the bytes of `generation` are kept in the object store.
    object_key text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index knowledge_sources_base on knowledge_sources (knowledge_base_id, id);

alter table knowledge_sources enable row level security;
alter table knowledge_sources force row level security;
create policy knowledge_sources_tenant on knowledge_sources
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, update, delete on knowledge_sources to obrol_app;

create table knowledge_chunks (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    knowledge_base_id uuid not null references knowledge_bases (id) on delete cascade,
    source_id uuid not null references knowledge_sources (id) on delete cascade,
    generation integer not null,
    position integer not null,
    text text not null,
    heading_path text[] not null default '{}',
    page_start integer,
    page_end integer,
    embedding vector(384),
    embedding_model text,
    unique (source_id, generation, position)
);
create index knowledge_chunks_base on knowledge_chunks (knowledge_base_id);
create index knowledge_chunks_embedding on knowledge_chunks
    using hnsw (embedding vector_cosine_ops);

alter table knowledge_chunks enable row level security;
alter table knowledge_chunks force row level security;
create policy knowledge_chunks_tenant on knowledge_chunks
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, update, delete on knowledge_chunks to obrol_app;

-- Durable background jobs (see api/src/jobs/mod.rs and docs/decisions/0004-jobs.md).
create table jobs (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    kind text not null,
    payload jsonb not null default '{}'::jsonb,
    run_at timestamptz not null default now(),
    attempts integer not null default 0,
    max_attempts integer not null default 5,
    locked_by text,
    locked_until timestamptz,
    last_error text,
    created_at timestamptz not null default now()
);
create index jobs_due on jobs (run_at) where locked_until is null;
create index jobs_leased on jobs (locked_until) where locked_until is not null;

alter table jobs enable row level security;
alter table jobs force row level security;
create policy jobs_tenant on jobs
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, update, delete on jobs to obrol_app;

-- Claims the next due job of the given kinds for `p_worker`, leasing it for `p_lease`.
-- A job whose lease ran out (its worker died) is due again. Returns no row when nothing is.
create function claim_job(p_kinds text[], p_worker text, p_lease interval)
returns table (id uuid, company_id uuid, kind text, payload jsonb, attempts integer,
               max_attempts integer)
    language plpgsql volatile security definer set search_path = pg_catalog, public, pg_temp
    as $$
    begin
        return query
        update jobs j
        set locked_by = p_worker, locked_until = now() + p_lease, attempts = j.attempts + 1
        where j.id = (
            select c.id from jobs c
            where c.kind = any (p_kinds)
              and c.run_at <= now()
              and (c.locked_until is null or c.locked_until < now())
            order by c.run_at, c.id
            limit 1
            for update skip locked
        )
        returning j.id, j.company_id, j.kind, j.payload, j.attempts, j.max_attempts;
    end
    $$;

-- What every node's full-text index should hold: each source with searchable passages, and
-- the generation they belong to. Ids only; the passages are read per company under RLS.
create function knowledge_index_state()
returns table (company_id uuid, knowledge_base_id uuid, source_id uuid, generation integer)
    language sql stable security definer set search_path = pg_catalog, public, pg_temp
    as $$
        select s.company_id, s.knowledge_base_id, s.id, s.active_generation
        from knowledge_sources s
        where s.active_generation is not null
    $$;

revoke all on function claim_job(text[], text, interval), knowledge_index_state() from public;
grant execute on function claim_job(text[], text, interval), knowledge_index_state()
    to obrol_app;
