-- A WhatsApp template submitted to Meta for review keeps Meta's id for it.
alter table message_templates add column provider_template_id text;
