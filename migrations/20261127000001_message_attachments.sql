-- Attachments of messages are the contact's files (`contact_media`): a file a contact sent
-- or an agent sent them is listed with the contact, moves with a merge and goes with an
-- erasure, like a file staff attached by hand.
--
-- An agent's file is stored before its message is queued (READY at once). A contact's file
-- is still at the provider when the webhook is acknowledged: its row starts PENDING and a
-- `message.fetch_media` job copies it into the object store (READY), or gives the reason it
-- could not (FAILED). `object_key` is where the file is or will be.
alter table contact_media
    add column message_id uuid references messages (id) on delete cascade,
    add column status text not null default 'READY'
        check (status in ('PENDING', 'READY', 'FAILED')),
    add column failure_reason text;

create index contact_media_message_idx on contact_media (message_id) where message_id is not null;

grant update (status, failure_reason, size_bytes, content_type, file_name) on contact_media
    to obrol_app;

-- An inbound message with media gets its PENDING file and the fetch job in the statement
-- that stores it (`ingest_inbound_message`), so an acknowledged webhook never loses a file
-- to a crash before the job was queued. Runs as the caller: row-level security applies.
create function queue_inbound_media() returns trigger
    language plpgsql set search_path = pg_catalog, public, pg_temp
    as $$
    declare
        v_file uuid := gen_random_uuid();
        v_name text := left(coalesce(nullif(btrim(new.content ->> 'filename'), ''),
                                     lower(coalesce(new.content ->> 'media', 'file'))), 255);
    begin
        insert into contact_media (id, company_id, contact_id, message_id, file_name,
                                   content_type, size_bytes, object_key, status)
        values (v_file, new.company_id, new.contact_id, new.id, v_name,
                coalesce(nullif(new.content ->> 'mimeType', ''), 'application/octet-stream'), 0,
                'conversation-media/' || new.company_id || '/' || new.conversation_id || '/' || v_file,
                'PENDING');
        insert into jobs (id, company_id, kind, payload, max_attempts)
        values (gen_random_uuid(), new.company_id, 'message.fetch_media',
                jsonb_build_object('file_id', v_file::text), 6);
        return null;
    end
    $$;

create trigger messages_inbound_media after insert on messages
    for each row when (new.direction = 'INBOUND' and new.content ->> 'kind' = 'MEDIA')
    execute function queue_inbound_media();
