-- Conversations, messages, templates and routing (issue 5; PRODUCT.md §2 and §4).
-- Every table has company_id with row-level security forced, like the foundation's.

-- Where a channel account's new conversations go first (null: the company inbox).
alter table channel_accounts add column team_id uuid references teams (id) on delete set null;
-- A live-chat widget's allowed origins (scheme://host[:port]); none: the widget is closed.
alter table channel_accounts add column widget_origins text[] not null default '{}';

-- Webhooks arrive without a session: this tells the route which company and credentials an
-- account has, before the request can run as that company.
create function channel_account_for_webhook(p_id uuid)
returns table (company_id uuid, type text, status text, credentials_sealed bytea,
               widget_origins text[])
    language sql stable security definer set search_path = pg_catalog, public, pg_temp
    as $$
        select company_id, type, status, credentials_sealed, widget_origins
        from channel_accounts where id = p_id
    $$;
revoke all on function channel_account_for_webhook(uuid) from public;
grant execute on function channel_account_for_webhook(uuid) to obrol_app;

create table conversations (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    contact_id uuid not null references contacts (id) on delete cascade,
    -- The account the contact last wrote on: replies leave through it.
    channel_account_id uuid references channel_accounts (id) on delete set null,
    status text not null default 'OPEN' check (status in ('OPEN', 'CLOSED')),
    -- Who opened it: the contact writing, or the business (an agent, a broadcast reply).
    source text not null check (source in ('CONTACT', 'BUSINESS')),
    team_id uuid references teams (id) on delete set null,
    assignee_id uuid references users (id) on delete set null,
    assigned_at timestamptz,
    -- Set while a round-robin team had no agent with room: the queue, oldest first.
    queued_at timestamptz,
    -- Skill-based routing: the team whose question the contact has been asked, and when.
    routing_team_id uuid references teams (id) on delete set null,
    routing_asked_at timestamptz,
    -- The contact's first message that nobody has answered yet (null: answered).
    awaiting_reply_since timestamptz,
    -- Users @mentioned in its notes: it shows in their inbox.
    mentioned_user_ids uuid[] not null default '{}',
    unread_count integer not null default 0 check (unread_count >= 0),
    last_message_at timestamptz not null default now(),
    last_message_preview text,
    opened_at timestamptz not null default now(),
    closed_at timestamptz,
    updated_at timestamptz not null default now()
);

-- A contact has at most one open conversation.
create unique index conversations_one_open on conversations (contact_id) where status = 'OPEN';
create index conversations_activity_idx on conversations (company_id, last_message_at desc, id desc);
create index conversations_assignee_idx on conversations (assignee_id, status) where assignee_id is not null;
create index conversations_team_idx on conversations (team_id, status, queued_at) where team_id is not null;
create index conversations_contact_idx on conversations (contact_id, opened_at desc);

alter table conversations enable row level security;
alter table conversations force row level security;
create policy conversations_tenant on conversations
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, update, delete on conversations to obrol_app;

create table messages (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    conversation_id uuid not null references conversations (id) on delete cascade,
    contact_id uuid not null references contacts (id) on delete cascade,
    channel_account_id uuid references channel_accounts (id) on delete set null,
    direction text not null check (direction in ('INBOUND', 'OUTBOUND', 'INTERNAL')),
    sender_type text not null check (sender_type in ('CONTACT', 'USER', 'AI_AGENT', 'SYSTEM')),
    sender_user_id uuid references users (id) on delete set null,
    -- channels::model::Content for inbound messages; the sent content for outbound ones.
    content jsonb not null,
    -- A line of text for previews and search.
    preview text not null default '',
    -- Internal notes are INTERNAL messages with is_note; they never leave the platform.
    is_note boolean not null default false,
    mentions uuid[] not null default '{}',
    provider_message_id text,
    status text not null check (status in (
        'RECEIVED', 'QUEUED', 'SENT', 'DELIVERED', 'READ', 'FAILED', 'NOTE')),
    failure_reason text,
    status_at timestamptz,
    -- Set while a sender is calling the provider: found set by the next attempt, it means
    -- the server stopped mid-call, and the message is not sent again (it may have gone).
    send_started_at timestamptz,
    -- When the contact sent it (inbound, by the provider's clock but never later than
    -- created_at), or when it was sent (outbound).
    sent_at timestamptz,
    created_at timestamptz not null default now()
);

-- A redelivered webhook names a message already stored: it is not stored twice.
create unique index messages_provider_key on messages (channel_account_id, provider_message_id)
    where provider_message_id is not null;
create index messages_conversation_idx on messages (conversation_id, id);
create index messages_contact_idx on messages (contact_id, id);
-- The window: the contact's last message on an account.
create index messages_last_inbound_idx on messages (contact_id, channel_account_id, sent_at desc)
    where direction = 'INBOUND';

alter table messages enable row level security;
alter table messages force row level security;
create policy messages_tenant on messages
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, update, delete on messages to obrol_app;

-- A delivery status that arrived before the send job recorded the provider's id for the
-- message (fast providers answer the webhook first): applied when the id is recorded.
create table pending_statuses (
    company_id uuid not null references companies (id) on delete cascade,
    channel_account_id uuid not null references channel_accounts (id) on delete cascade,
    provider_message_id text not null,
    status text not null check (status in ('SENT', 'DELIVERED', 'READ', 'FAILED')),
    failure_reason text,
    status_at timestamptz not null,
    created_at timestamptz not null default now()
);

create index pending_statuses_key on pending_statuses (channel_account_id, provider_message_id);
create index pending_statuses_age on pending_statuses (created_at);

alter table pending_statuses enable row level security;
alter table pending_statuses force row level security;
create policy pending_statuses_tenant on pending_statuses
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, delete on pending_statuses to obrol_app;

-- Opened, closed, reopened, assigned, routed ...: what automation and reports read.
create table conversation_events (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    conversation_id uuid not null references conversations (id) on delete cascade,
    kind text not null check (kind in (
        'OPENED', 'CLOSED', 'REOPENED', 'ASSIGNED', 'UNASSIGNED', 'QUEUED', 'REASSIGNED',
        'ROUTED', 'ROUTING_ASKED', 'ROUTING_NUDGED')),
    -- For OPENED: CONTACT or BUSINESS.
    source text,
    actor_user_id uuid references users (id) on delete set null,
    details jsonb not null default '{}'::jsonb,
    created_at timestamptz not null default now()
);

create index conversation_events_conversation_idx on conversation_events (conversation_id, id);

alter table conversation_events enable row level security;
alter table conversation_events force row level security;
create policy conversation_events_tenant on conversation_events
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, delete on conversation_events to obrol_app;

-- WhatsApp message templates, per WhatsApp account.
create table message_templates (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    channel_account_id uuid not null references channel_accounts (id) on delete cascade,
    -- Meta's rule: lower-case letters, digits and underscores.
    name text not null check (name ~ '^[a-z0-9_]+$' and length(name) <= 512),
    language text not null check (language ~ '^[a-z]{2,3}(_[A-Za-z]{2,4})?$'),
    category text not null check (category in ('MARKETING', 'UTILITY', 'AUTHENTICATION')),
    body text not null check (length(body) between 1 and 1024),
    variable_count integer not null check (variable_count between 0 and 100),
    status text not null default 'PENDING' check (status in ('PENDING', 'APPROVED', 'REJECTED')),
    rejection_reason text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create unique index message_templates_key on message_templates (channel_account_id, name, language);

alter table message_templates enable row level security;
alter table message_templates force row level security;
create policy message_templates_tenant on message_templates
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, update, delete on message_templates to obrol_app;

-- How a team hands out its conversations. No row: cherry pick.
create table team_routing (
    team_id uuid primary key references teams (id) on delete cascade,
    company_id uuid not null references companies (id) on delete cascade,
    method text not null check (method in ('CHERRY_PICK', 'ROUND_ROBIN', 'SKILL_BASED')),
    -- Round robin: the most open conversations an agent is given (null: no cap) ...
    max_open_per_agent integer check (max_open_per_agent between 1 and 1000),
    -- ... and after how long without a reply a conversation moves to the next agent.
    reassign_after_minutes integer check (reassign_after_minutes between 1 and 10080),
    -- The rotation: the agent who was given the last conversation.
    last_assigned_user_id uuid references users (id) on delete set null,
    -- Skill based: the question, its options ([{id, title, teamId}]), the contact property
    -- the answer is saved to, and the nudge when no option is chosen in time.
    skill_question text check (length(skill_question) between 1 and 1024),
    skill_options jsonb,
    skill_property text,
    skill_nudge_after_minutes integer check (skill_nudge_after_minutes between 1 and 10080),
    skill_nudge_text text check (length(skill_nudge_text) between 1 and 1024),
    updated_at timestamptz not null default now()
);

alter table team_routing enable row level security;
alter table team_routing force row level security;
create policy team_routing_tenant on team_routing
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, update, delete on team_routing to obrol_app;


-- Stores one inbound message for company `p_company` (the function sets the transaction's
-- company first, then runs as the caller, so row-level security applies): finds the contact
-- by channel identity (or by phone number, or creates it), finds the contact's open
-- conversation (or opens one in the account's team), stores the message unless the
-- provider's id is already stored, marks the contact active for the month, queues the
-- real-time events (with the message and conversation rows, when they fit a notification),
-- and, when the conversation needs routing (a new one in a routed team, or a pending routing
-- question), a `conversation.route` job due in 30 s, which the caller runs at once and
-- deletes; the job is there for when the caller stops first. One statement: a webhook is
-- one round trip.
create function ingest_inbound_message(
    p_company uuid, p_account uuid, p_channel text, p_provider_id text, p_from text,
    p_name text, p_phone text, p_sent_at timestamptz, p_content jsonb, p_preview text,
    p_message_id uuid, p_new_contact_id uuid, p_new_conversation_id uuid, p_event_id uuid)
returns table (message_id uuid, conversation_id uuid, contact_id uuid,
               contact_created boolean, conversation_opened boolean, duplicate boolean,
               route_job uuid)
    language plpgsql volatile set search_path = pg_catalog, public, pg_temp
    as $$
    #variable_conflict use_column
    declare
        v_company uuid;
        v_contact uuid;
        v_conversation uuid;
        v_existing uuid;
        v_created boolean := false;
        v_opened boolean := false;
        v_name text := nullif(btrim(coalesce(p_name, '')), '');
        v_first text;
        v_team uuid;
        v_timezone text;
        v_last timestamptz;
        v_route_job uuid;
        v_message uuid;
        v_conv conversations%rowtype;
        v_scope jsonb;
        v_sent timestamptz := least(coalesce(p_sent_at, now()), now());
    begin
        perform set_config('app.company_id', p_company::text, true);
        v_company := app_company_id();

        select m.id, m.conversation_id, m.contact_id into v_existing, v_conversation, v_contact
        from messages m
        where m.channel_account_id = p_account and m.provider_message_id = p_provider_id;
        if found then
            return query select v_existing, v_conversation, v_contact, false, false, true, null::uuid;
            return;
        end if;

        select i.contact_id, c.last_inbound_at into v_contact, v_last
        from contact_identities i join contacts c on c.id = i.contact_id
        where i.company_id = v_company and i.channel = p_channel and i.external_id = p_from;
        if not found then
            -- The same phone number is already a contact (imported, or met on another
            -- channel): the person is that contact.
            if p_phone is not null then
                select c.id into v_contact from contacts c
                where c.company_id = v_company and c.phone = p_phone;
            end if;
            if v_contact is null then
                v_first := split_part(v_name, ' ', 1);
                insert into contacts (id, company_id, first_name, last_name, phone)
                values (p_new_contact_id, v_company, left(nullif(v_first, ''), 200),
                        left(nullif(btrim(substr(v_name, length(v_first) + 1)), ''), 200), p_phone)
                on conflict do nothing;
                if found then
                    v_contact := p_new_contact_id;
                    v_created := true;
                else
                    select c.id into v_contact from contacts c
                    where c.company_id = v_company and c.phone = p_phone;
                end if;
            end if;
            insert into contact_identities (id, company_id, contact_id, channel, external_id)
            values (gen_random_uuid(), v_company, v_contact, p_channel, p_from)
            on conflict do nothing;
            if not found then
                -- A simultaneous delivery from the same sender made the identity first.
                if v_created then
                    delete from contacts c where c.id = p_new_contact_id;
                    v_created := false;
                end if;
                select i.contact_id into v_contact from contact_identities i
                where i.company_id = v_company and i.channel = p_channel and i.external_id = p_from;
            elsif v_created then
                insert into contact_activities (id, company_id, contact_id, kind, details)
                values (gen_random_uuid(), v_company, v_contact, 'CREATED',
                        jsonb_build_object('source', p_channel));
            end if;
        end if;

        select c.id into v_conversation from conversations c
        where c.contact_id = v_contact and c.status = 'OPEN' for update;
        if not found then
            select a.team_id into v_team from channel_accounts a where a.id = p_account;
            insert into conversations (id, company_id, contact_id, channel_account_id, source, team_id)
            values (p_new_conversation_id, v_company, v_contact, p_account, 'CONTACT', v_team)
            on conflict do nothing;
            if found then
                v_conversation := p_new_conversation_id;
                v_opened := true;
                insert into conversation_events (id, company_id, conversation_id, kind, source)
                values (p_event_id, v_company, v_conversation, 'OPENED', 'CONTACT');
            else
                select c.id into v_conversation from conversations c
                where c.contact_id = v_contact and c.status = 'OPEN' for update;
            end if;
        end if;

        insert into messages as m (id, company_id, conversation_id, contact_id, channel_account_id,
                              direction, sender_type, content, preview, provider_message_id,
                              status, sent_at)
        values (p_message_id, v_company, v_conversation, v_contact, p_account, 'INBOUND',
                'CONTACT', p_content, left(p_preview, 2000), p_provider_id, 'RECEIVED', v_sent)
        on conflict (channel_account_id, provider_message_id) where provider_message_id is not null
        do nothing
        returning m.id into v_message;
        if v_message is null then
            -- A simultaneous redelivery stored it first.
            return query
                select m.id, m.conversation_id, m.contact_id, false, false, true, null::uuid
                from messages m
                where m.channel_account_id = p_account and m.provider_message_id = p_provider_id;
            return;
        end if;

        update conversations c
        set last_message_at = now(), last_message_preview = left(p_preview, 200),
            unread_count = c.unread_count + 1,
            awaiting_reply_since = coalesce(c.awaiting_reply_since, now()),
            channel_account_id = p_account, updated_at = now()
        where c.id = v_conversation
        returning c.* into v_conv;
        -- "Last contacted by them" to the minute, and the month's activity: a contact writing
        -- in bursts is not rewritten (with all its indexes) for every message. Every
        -- timezone's month starts on a quarter hour, so the first message in a new quarter
        -- hour always looks again, and no month is missed.
        if v_last is null or v_sent >= v_last + interval '1 minute'
           or floor(extract(epoch from v_sent) / 900) <> floor(extract(epoch from v_last) / 900) then
            update contacts c set last_inbound_at = v_sent
            where c.id = v_contact and (c.last_inbound_at is null or c.last_inbound_at < v_sent);
            select co.timezone into v_timezone from companies co where co.id = v_company;
            insert into monthly_active_contacts (company_id, month, contact_id, first_active_at, reason)
            values (v_company, date_trunc('month', v_sent at time zone v_timezone)::date, v_contact,
                    v_sent, 'INBOUND_MESSAGE')
            on conflict do nothing;
        end if;

        if (v_opened and v_conv.team_id is not null and exists (
                select 1 from team_routing r
                where r.team_id = v_conv.team_id and r.method <> 'CHERRY_PICK'))
           or v_conv.routing_team_id is not null then
            v_route_job := gen_random_uuid();
            insert into jobs (id, company_id, kind, payload, run_at)
            values (v_route_job, v_company, 'conversation.route',
                    jsonb_build_object('conversation_id', v_conversation::text,
                                       'message_id', p_message_id::text),
                    now() + interval '30 seconds');
        end if;

        -- The event conversations::graphql subscribers and the chat widget listen for, in
        -- the shape of events::Event (a new message also means the conversation changed).
        -- It names the rows rather than carry them: PostgreSQL's notification queue is
        -- small, and kilobytes per message made it a bottleneck.
        v_scope := jsonb_build_object('team_id', v_conv.team_id, 'assignee_id', v_conv.assignee_id,
                                      'mentioned', to_jsonb(v_conv.mentioned_user_ids));
        perform pg_notify('obrol_events', jsonb_build_object('company_id', v_company,
            'type', 'message_added', 'conversation_id', v_conversation,
            'message_id', p_message_id, 'scope', v_scope, 'contact_id', v_contact)::text);

        return query select p_message_id, v_conversation, v_contact, v_created, v_opened, false,
            v_route_job;
    end
    $$;

grant execute on function ingest_inbound_message(uuid, uuid, text, text, text, text, text,
    timestamptz, jsonb, text, uuid, uuid, uuid, uuid) to obrol_app;

-- Website visitors of a live-chat widget: an anonymous contact each, recognised by a token
-- kept in the visitor's browser (only its sha256 is stored).
create table widget_visitors (
    id uuid primary key,
    company_id uuid not null references companies (id) on delete cascade,
    channel_account_id uuid not null references channel_accounts (id) on delete cascade,
    contact_id uuid not null references contacts (id) on delete cascade,
    token_hash bytea not null unique,
    created_at timestamptz not null default now(),
    last_seen_at timestamptz not null default now()
);

create index widget_visitors_contact_idx on widget_visitors (contact_id);

alter table widget_visitors enable row level security;
alter table widget_visitors force row level security;
create policy widget_visitors_tenant on widget_visitors
    using (company_id = app_company_id()) with check (company_id = app_company_id());
grant select, insert, update, delete on widget_visitors to obrol_app;

-- A visitor's token names their company, before the request can run as it.
create function widget_visitor(p_token_hash bytea)
returns table (id uuid, company_id uuid, channel_account_id uuid, contact_id uuid)
    language sql stable security definer set search_path = pg_catalog, public, pg_temp
    as $$
        select v.id, v.company_id, v.channel_account_id, v.contact_id
        from widget_visitors v join channel_accounts a on a.id = v.channel_account_id
        where v.token_hash = p_token_hash and a.status = 'ACTIVE'
    $$;
revoke all on function widget_visitor(bytea) from public;
grant execute on function widget_visitor(bytea) to obrol_app;
