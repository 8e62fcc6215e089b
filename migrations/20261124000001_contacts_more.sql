-- Contacts, continued (issue 4): lists can be deleted by Admins.
grant delete on contact_lists to obrol_app;
