-- Every message insert checked its foreign keys by locking the parent rows FOR KEY SHARE,
-- among them the company's row and the channel account's, which every message of a busy
-- account shares. Under load that made PostgreSQL build a MultiXact for those two rows on
-- nearly every insert (pg_stat_statements: 96,505 company-row locks for 20,000 webhooks and
-- the baseline's inserts). The two keys protected nothing that needs them:
-- - company: a message is deleted with its conversation (which is deleted with its
--   company), and row-level security already checks company_id on every insert;
-- - channel account: accounts are disconnected, not deleted; should one be deleted, the
--   trigger below clears its messages' reference, as `on delete set null` did.
alter table messages drop constraint messages_company_id_fkey;
alter table messages drop constraint messages_channel_account_id_fkey;

create function channel_account_deleted() returns trigger
    language plpgsql set search_path = pg_catalog, public, pg_temp
    as $$
    begin
        update messages set channel_account_id = null where channel_account_id = old.id;
        return old;
    end
    $$;

create trigger channel_accounts_clear_messages before delete on channel_accounts
    for each row execute function channel_account_deleted();
