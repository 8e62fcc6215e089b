-- Inbound messages are stored in batches: the webhooks that arrive while the database is
-- busy with one batch are stored together by the next, in one statement and one
-- transaction, each still acknowledged only after its own message is committed. Per
-- message, PostgreSQL then runs one row of each set-based statement instead of a dozen
-- statements (each with its executor start-up) and a commit.

-- The sender's contact (found by channel identity, else by phone, else created) and its open
-- conversation (found, else opened), the conversation locked for the rest of the
-- transaction. The part of storing a message that only a new sender or a closed
-- conversation needs.
create function inbound_conversation(
    p_company uuid, p_account uuid, p_channel text, p_from text, p_name text, p_phone text,
    p_new_contact_id uuid, p_new_conversation_id uuid, p_event_id uuid,
    out contact_id uuid, out conversation_id uuid, out contact_created boolean,
    out conversation_opened boolean, out last_inbound_at timestamptz)
    language plpgsql volatile set search_path = pg_catalog, public, pg_temp
    as $$
    #variable_conflict use_column
    declare
        v_name text := nullif(btrim(coalesce(p_name, '')), '');
        v_first text;
        v_team uuid;
    begin
        contact_created := false;
        conversation_opened := false;
        select i.contact_id, c.last_inbound_at into contact_id, last_inbound_at
        from contact_identities i join contacts c on c.id = i.contact_id
        where i.company_id = p_company and i.channel = p_channel and i.external_id = p_from;
        if not found then
            -- The same phone number is already a contact (imported, or met on another
            -- channel): the person is that contact.
            if p_phone is not null then
                select c.id, c.last_inbound_at into contact_id, last_inbound_at from contacts c
                where c.company_id = p_company and c.phone = p_phone;
            end if;
            if contact_id is null then
                v_first := split_part(v_name, ' ', 1);
                insert into contacts (id, company_id, first_name, last_name, phone)
                values (p_new_contact_id, p_company, left(nullif(v_first, ''), 200),
                        left(nullif(btrim(substr(v_name, length(v_first) + 1)), ''), 200), p_phone)
                on conflict do nothing;
                if found then
                    contact_id := p_new_contact_id;
                    contact_created := true;
                else
                    select c.id, c.last_inbound_at into contact_id, last_inbound_at
                    from contacts c where c.company_id = p_company and c.phone = p_phone;
                end if;
            end if;
            insert into contact_identities (id, company_id, contact_id, channel, external_id)
            values (gen_random_uuid(), p_company, contact_id, p_channel, p_from)
            on conflict do nothing;
            if not found then
                -- A simultaneous delivery from the same sender made the identity first.
                if contact_created then
                    delete from contacts c where c.id = p_new_contact_id;
                    contact_created := false;
                end if;
                select i.contact_id, c.last_inbound_at into contact_id, last_inbound_at
                from contact_identities i join contacts c on c.id = i.contact_id
                where i.company_id = p_company and i.channel = p_channel and i.external_id = p_from;
            elsif contact_created then
                insert into contact_activities (id, company_id, contact_id, kind, details)
                values (gen_random_uuid(), p_company, contact_id, 'CREATED',
                        jsonb_build_object('source', p_channel));
                -- Messenger and Instagram webhooks carry no name: it is asked of Meta's
                -- profile API (conversations::profiles), after the acknowledgement.
                if v_name is null and p_channel in ('MESSENGER', 'INSTAGRAM') then
                    insert into jobs (id, company_id, kind, payload)
                    values (gen_random_uuid(), p_company, 'contact.fetch_profile',
                            jsonb_build_object('contact_id', contact_id::text,
                                               'account_id', p_account::text,
                                               'external_id', p_from));
                end if;
            end if;
        end if;

        select c.id into conversation_id from conversations c
        where c.contact_id = inbound_conversation.contact_id and c.status = 'OPEN' for update;
        if not found then
            select a.team_id into v_team from channel_accounts a where a.id = p_account;
            insert into conversations (id, company_id, contact_id, channel_account_id, source, team_id)
            values (p_new_conversation_id, p_company, contact_id, p_account, 'CONTACT', v_team)
            on conflict do nothing;
            if found then
                conversation_id := p_new_conversation_id;
                conversation_opened := true;
                insert into conversation_events (id, company_id, conversation_id, kind, source)
                values (p_event_id, p_company, p_new_conversation_id, 'OPENED', 'CONTACT');
            else
                select c.id into conversation_id from conversations c
                where c.contact_id = inbound_conversation.contact_id and c.status = 'OPEN'
                for update;
            end if;
        end if;
    end
    $$;

grant execute on function inbound_conversation(uuid, uuid, text, text, text, text, uuid, uuid,
    uuid) to obrol_app;

-- Stores the messages of one channel account, in order, once each (a provider id already
-- stored is a redelivery: its row is answered with duplicate = true). One result row per
-- input position, in input order. `p_new_ids` holds three fresh ids per message (for a
-- contact, a conversation and its OPENED event), used only where one is created.
create function ingest_inbound_messages(
    p_company uuid, p_account uuid, p_channel text, p_provider_ids text[], p_froms text[],
    p_names text[], p_phones text[], p_sent_at timestamptz[], p_contents jsonb[],
    p_previews text[], p_message_ids uuid[], p_new_ids uuid[])
returns table (message_id uuid, conversation_id uuid, contact_id uuid,
               contact_created boolean, conversation_opened boolean, duplicate boolean,
               route_job uuid)
    language plpgsql volatile
    -- Its statements' plans are made once per connection and kept. With the arrays' sizes
    -- known, PostgreSQL would find every batch-specific plan cheaper than the general one
    -- and plan each statement again at every call (most of a small batch's time); the
    -- statements are written so that the general plan is the right one for any size.
    set plan_cache_mode = force_generic_plan
    set search_path = pg_catalog, public, pg_temp
    as $$
    #variable_conflict use_column
    declare
        n integer := coalesce(cardinality(p_message_ids), 0);
        v_company uuid;
        v_timezone text;
        v_sent timestamptz[];
        v_existing uuid[];
        v_contact uuid[];
        v_conversation uuid[];
        v_last timestamptz[];
        v_locked uuid[];
        v_created boolean[] := array_fill(false, array[n]);
        v_opened boolean[] := array_fill(false, array[n]);
        v_stored boolean[] := array_fill(false, array[n]);
        v_due boolean[] := array_fill(false, array[n]);
        v_any_due boolean := false;
        v_job uuid[];
        v_scope jsonb[];
        v_inserted uuid[];
        v_touched uuid[];
        v_added integer[];
        v_preview text[];
        v_touched_team uuid[];
        v_touched_routing uuid[];
        v_touched_scope jsonb[];
        v_due_contacts uuid[];
        v_due_sent timestamptz[];
        v_found record;
        v_i integer;
    begin
        if n = 0 then
            return;
        end if;
        if cardinality(p_provider_ids) <> n or cardinality(p_froms) <> n
           or cardinality(p_names) <> n or cardinality(p_phones) <> n
           or cardinality(p_sent_at) <> n or cardinality(p_contents) <> n
           or cardinality(p_previews) <> n or cardinality(p_new_ids) <> 3 * n then
            raise exception 'ingest_inbound_messages: arrays of different lengths';
        end if;
        perform set_config('app.company_id', p_company::text, true);
        v_company := app_company_id();

        -- Every look-up below is a subquery per message (an index probe each), whatever
        -- the planner would guess about the size of a batch it cannot see.

        -- Redeliveries, the senders already known, and when each message was sent (by the
        -- provider's clock, never later than now).
        select array_agg(u.existing order by u.i),
               array_agg(case when u.existing is null then (
                   select ci.contact_id from contact_identities ci
                   where ci.company_id = v_company and ci.channel = p_channel
                     and ci.external_id = u.sender) end order by u.i),
               array_agg(least(coalesce(u.sent, now()), now()) order by u.i)
          into v_existing, v_contact, v_sent
        from (select (select m.id from messages m
                      where m.channel_account_id = p_account and m.provider_message_id = p.pid)
                         as existing, p.sender, p.sent, p.i
              from unnest(p_provider_ids, p_froms, p_sent_at) with ordinality p (pid, sender, sent, i)
              offset 0 -- (each message's probe runs once, not once per use of `existing`)
             ) u;
        select array_agg((select c.last_inbound_at from contacts c where c.id = u.contact)
                             order by u.i),
               array_agg((select c.id from conversations c
                          where c.contact_id = u.contact and c.status = 'OPEN') order by u.i)
          into v_last, v_conversation
        from unnest(v_contact) with ordinality u (contact, i);

        -- Their open conversations, locked in one order (two batches never wait on each
        -- other in a circle). One closed meanwhile is not locked, and is treated as none.
        select coalesce(array_agg(l.id), '{}') into v_locked from (
            select c.id from conversations c
            where c.id = any(v_conversation) and c.status = 'OPEN'
            order by c.id for update
        ) l;
        for i in 1 .. n loop
            if not (v_conversation[i] = any(v_locked)) then
                v_conversation[i] := null;
            end if;
        end loop;

        -- New senders, and contacts without an open conversation, one at a time, in sender
        -- order: what this takes (a new contact, identity, conversation, or the lock on one
        -- opened meanwhile), two batches then take in the same order.
        for v_i in
            select g.i from generate_series(1, n) g (i)
            where v_existing[g.i] is null and v_conversation[g.i] is null
            order by p_froms[g.i], g.i
        loop
            select * into v_found from inbound_conversation(
                v_company, p_account, p_channel, p_froms[v_i], p_names[v_i], p_phones[v_i],
                p_new_ids[3 * v_i - 2], p_new_ids[3 * v_i - 1], p_new_ids[3 * v_i]);
            v_contact[v_i] := v_found.contact_id;
            v_conversation[v_i] := v_found.conversation_id;
            v_last[v_i] := v_found.last_inbound_at;
            v_created[v_i] := v_found.contact_created;
            v_opened[v_i] := v_found.conversation_opened;
        end loop;

        with stored as (
            insert into messages as m (id, company_id, conversation_id, contact_id,
                                       channel_account_id, direction, sender_type, content,
                                       preview, provider_message_id, status, sent_at)
            select p_message_ids[i], v_company, v_conversation[i], v_contact[i], p_account,
                   'INBOUND', 'CONTACT', p_contents[i], left(p_previews[i], 2000),
                   p_provider_ids[i], 'RECEIVED', v_sent[i]
            from generate_series(1, n) i
            where v_existing[i] is null
            order by i
            on conflict (channel_account_id, provider_message_id)
                where provider_message_id is not null
            do nothing
            returning m.id
        )
        select coalesce(array_agg(id), '{}') into v_inserted from stored;

        -- "Last contacted by them" to the minute, and the month's activity: a contact
        -- writing in bursts is not rewritten (with all its indexes) for every message.
        -- Every timezone's month starts on a quarter hour, so the first message in a new
        -- quarter hour always looks again, and no month is missed.
        for i in 1 .. n loop
            v_stored[i] := p_message_ids[i] = any(v_inserted);
            v_due[i] := v_stored[i] and (v_last[i] is null
                or v_sent[i] >= v_last[i] + interval '1 minute'
                or floor(extract(epoch from v_sent[i]) / 900)
                   <> floor(extract(epoch from v_last[i]) / 900));
            v_any_due := v_any_due or v_due[i];
        end loop;
        if cardinality(v_inserted) < n then
            -- Stored meanwhile by a simultaneous redelivery, or twice in this batch: the
            -- answer names the message stored first.
            for i in 1 .. n loop
                if not v_stored[i] then
                    select m.id, m.conversation_id, m.contact_id
                      into v_found
                    from messages m
                    where m.channel_account_id = p_account
                      and m.provider_message_id = p_provider_ids[i];
                    v_existing[i] := v_found.id;
                    v_conversation[i] := v_found.conversation_id;
                    v_contact[i] := v_found.contact_id;
                end if;
            end loop;
        end if;

        -- Each conversation once: the messages' count, the last one's preview; and the
        -- new rows' routing state and who may see them, for routing and the events.
        select array_agg(g.id), array_agg(g.added), array_agg(g.preview)
          into v_touched, v_added, v_preview
        from (select v_conversation[i] as id, count(*)::integer as added,
                     (array_agg(left(p_previews[i], 200) order by i desc))[1] as preview
              from generate_series(1, n) i
              where v_stored[i]
              group by 1) g;
        with updated as (
            update conversations c
            set last_message_at = now(),
                last_message_preview = v_preview[array_position(v_touched, c.id)],
                unread_count = c.unread_count + v_added[array_position(v_touched, c.id)],
                awaiting_reply_since = coalesce(c.awaiting_reply_since, now()),
                channel_account_id = p_account, updated_at = now()
            where c.id = any(v_touched)
            returning c.id, c.team_id, c.routing_team_id,
                jsonb_build_object('team_id', c.team_id, 'assignee_id', c.assignee_id,
                                   'mentioned', to_jsonb(c.mentioned_user_ids)) as scope
        )
        select array_agg(id), array_agg(team_id), array_agg(routing_team_id), array_agg(scope)
          into v_touched, v_touched_team, v_touched_routing, v_touched_scope
        from updated;

        if v_any_due then
            select co.timezone into v_timezone from companies co where co.id = v_company;
            select array_agg(d.contact), array_agg(d.sent) into v_due_contacts, v_due_sent
            from (select v_contact[i] as contact, max(v_sent[i]) as sent
                  from generate_series(1, n) i where v_due[i] group by 1) d;
            update contacts c
            set last_inbound_at = v_due_sent[array_position(v_due_contacts, c.id)]
            where c.id = any(v_due_contacts)
              and (c.last_inbound_at is null
                   or c.last_inbound_at < v_due_sent[array_position(v_due_contacts, c.id)]);
            insert into monthly_active_contacts (company_id, month, contact_id, first_active_at,
                                                 reason)
            select v_company, d.month, d.contact, min(d.sent), 'INBOUND_MESSAGE'
            from (select v_contact[i] as contact, v_sent[i] as sent,
                         date_trunc('month', v_sent[i] at time zone v_timezone)::date as month
                  from generate_series(1, n) i where v_due[i]) d
            group by d.contact, d.month
            on conflict do nothing;
        end if;
        -- Routing, run by the caller right after the commit (the job is the fallback): a
        -- conversation just opened in a team that routes, and every message of a
        -- conversation waiting for the answer to a routing question.
        v_scope := array_fill(null::jsonb, array[n]);
        v_job := array_fill(null::uuid, array[n]);
        for i in 1 .. n loop
            if v_stored[i] then
                v_scope[i] := v_touched_scope[array_position(v_touched, v_conversation[i])];
            end if;
        end loop;
        if true = any(v_opened) or cardinality(array_remove(v_touched_routing, null)) > 0 then
            with wanted as (
                select g.i, gen_random_uuid() as job
                from generate_series(1, n) g (i)
                join unnest(v_touched, v_touched_team, v_touched_routing)
                     as t (id, team_id, routing_team_id) on t.id = v_conversation[g.i]
                where v_stored[g.i] and (t.routing_team_id is not null
                    or (v_opened[g.i] and exists (
                        select 1 from team_routing r
                        where r.team_id = t.team_id and r.method <> 'CHERRY_PICK')))
            ), queued as (
                insert into jobs (id, company_id, kind, payload, run_at)
                select job, v_company, 'conversation.route',
                       jsonb_build_object('conversation_id', v_conversation[i]::text,
                                          'message_id', p_message_ids[i]::text),
                       now() + interval '30 seconds'
                from wanted
            )
            select array_agg(w.job order by g.i) into v_job
            from generate_series(1, n) g (i) left join wanted w on w.i = g.i;
        end if;

        -- The event conversations::graphql subscribers and the chat widget listen for, in
        -- the shape of events::Event (a new message also means the conversation changed),
        -- one per message, in order. It names the rows rather than carry them:
        -- PostgreSQL's notification queue is small.
        for i in 1 .. n loop
            if v_stored[i] then
                perform pg_notify('obrol_events', jsonb_build_object('company_id', v_company,
                    'type', 'message_added', 'conversation_id', v_conversation[i],
                    'message_id', p_message_ids[i], 'scope', v_scope[i],
                    'contact_id', v_contact[i])::text);
            end if;
        end loop;

        return query
            select coalesce(v_existing[i], p_message_ids[i]), v_conversation[i], v_contact[i],
                   v_created[i], v_opened[i], not v_stored[i], v_job[i]
            from generate_series(1, n) i
            order by i;
    end
    $$;

grant execute on function ingest_inbound_messages(uuid, uuid, text, text[], text[], text[],
    text[], timestamptz[], jsonb[], text[], uuid[], uuid[]) to obrol_app;

drop function ingest_inbound_message(uuid, uuid, text, text, text, text, text, timestamptz,
    jsonb, text, uuid, uuid, uuid, uuid);
