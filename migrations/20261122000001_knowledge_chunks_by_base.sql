-- Passages partitioned by knowledge base (hash, 16 partitions), each partition with its own
-- HNSW index.
--
-- A search looks in one knowledge base. With one HNSW graph for every company's passages,
-- the walk also visits the other bases' passages and keeps going (iterative scan) until
-- enough of this base's pass the filter; in a partition, most neighbours belong to the base
-- searched, and the graph is a sixteenth of the size. Measured on the benchmark's data
-- (docs/benchmarks.md, (d)): the vector query took 4.4–4.9 ms p50 and up to 12 ms with the
-- shared index, 2.5–3.1 ms and up to 7 ms in the partition, finding as many of the exact top
-- 50 (76% at ef_search 100 against 73% at 64).
--
-- PostgreSQL needs the partition key in every unique constraint, so knowledge_base_id joins
-- the primary key and the per-source position key. The table is only reached through the
-- parent, where its row-level security policy applies: obrol_app has no grant on the
-- partitions, which have row-level security enabled and no policy (no rows for anyone but
-- the owner).

alter table knowledge_chunks rename to knowledge_chunks_shared;
alter table knowledge_chunks_shared rename constraint knowledge_chunks_pkey to knowledge_chunks_shared_pkey;
alter index knowledge_chunks_base rename to knowledge_chunks_shared_base;
alter index knowledge_chunks_embedding rename to knowledge_chunks_shared_embedding;
alter table knowledge_chunks_shared
    rename constraint knowledge_chunks_source_id_generation_position_key
    to knowledge_chunks_shared_source_key;

create table knowledge_chunks (
    id uuid not null,
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
    primary key (id, knowledge_base_id),
    unique (source_id, generation, position, knowledge_base_id)
) partition by hash (knowledge_base_id);

do $$
begin
    for i in 0..15 loop
        execute format(
            'create table knowledge_chunks_p%s partition of knowledge_chunks '
            'for values with (modulus 16, remainder %s)', i, i);
        -- Without a policy: whoever might one day be granted a partition sees no rows.
        execute format('alter table knowledge_chunks_p%s enable row level security', i);
        execute format('alter table knowledge_chunks_p%s force row level security', i);
    end loop;
end $$;

-- Vectors stay in the row (see 20261121000003); set on the parent, it reaches every partition.
alter table knowledge_chunks alter column embedding set storage plain;

-- The owner reads every company's rows only once row-level security is no longer forced on
-- it; otherwise a migrating role without BYPASSRLS would copy nothing and drop everything.
alter table knowledge_chunks_shared no force row level security;
insert into knowledge_chunks
select id, company_id, knowledge_base_id, source_id, generation, position, text, heading_path,
       page_start, page_end, embedding, embedding_model
from knowledge_chunks_shared;
drop table knowledge_chunks_shared;

create index knowledge_chunks_base on knowledge_chunks (knowledge_base_id);
create index knowledge_chunks_embedding on knowledge_chunks
    using hnsw (embedding vector_cosine_ops);

alter table knowledge_chunks enable row level security;
alter table knowledge_chunks force row level security;
create policy knowledge_chunks_tenant on knowledge_chunks
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, update, delete on knowledge_chunks to obrol_app;

-- Plans for the searches from the start, not after autovacuum's first pass.
analyze knowledge_chunks;
