-- Attachments of messages are the contact's files (`contact_media`): a file a contact sent
-- or an agent sent them is listed with the contact, moves with a merge and goes with an
-- erasure, like a file staff attached by hand.
--
-- An agent's file is stored before its message is queued (READY at once). A contact's file
-- is still at the provider when the webhook is acknowledged: its row starts PENDING, in the
-- webhook's transaction, and a `message.fetch_media` job copies it into the object store
-- (READY), or gives the reason it could not (FAILED). `object_key` is where the file is or
-- will be.
alter table contact_media
    add column message_id uuid references messages (id) on delete cascade,
    add column status text not null default 'READY'
        check (status in ('PENDING', 'READY', 'FAILED')),
    add column failure_reason text;

create index contact_media_message_idx on contact_media (message_id) where message_id is not null;

grant update (status, failure_reason, size_bytes, content_type, file_name) on contact_media
    to obrol_app;
