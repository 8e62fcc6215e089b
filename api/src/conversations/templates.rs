//! WhatsApp message templates (PRODUCT.md §2): name, language, category, a body with
//! numbered variables ({{1}}, {{2}}, ...), and Meta's approval status. Outside the 24-hour
//! window only an APPROVED template may be sent.
//!
//! On an account that names its WhatsApp Business Account (`waba_id`), a new template is
//! submitted to Meta for review (`POST /<waba_id>/message_templates`) and stored only if
//! Meta took it, with Meta's id and first status. Without one, it is stored as PENDING, for
//! a template made in Meta's own tools. Either way Meta's verdict arrives by webhook
//! (`message_template_status_update`), or an Admin records it (`setMessageTemplateStatus`).

use sqlx::PgConnection;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{Actor, ApiScope, Role};
use crate::channels::ChannelType;
use crate::error::{is_unique_violation, ApiError, ApiResult};

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct TemplateRow {
    pub id: Uuid,
    pub channel_account_id: Uuid,
    pub name: String,
    pub language: String,
    pub category: String,
    pub body: String,
    pub variable_count: i32,
    pub status: String,
    pub rejection_reason: Option<String>,
    pub provider_template_id: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

const COLUMNS: &str = "id, channel_account_id, name, language, category, body, variable_count, \
    status, rejection_reason, provider_template_id, created_at";

#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateCategory {
    Marketing,
    Utility,
    Authentication,
}

impl TemplateCategory {
    fn as_db(self) -> &'static str {
        match self {
            TemplateCategory::Marketing => "MARKETING",
            TemplateCategory::Utility => "UTILITY",
            TemplateCategory::Authentication => "AUTHENTICATION",
        }
    }
}

#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateStatus {
    Pending,
    Approved,
    Rejected,
}

impl TemplateStatus {
    pub fn as_db(self) -> &'static str {
        match self {
            TemplateStatus::Pending => "PENDING",
            TemplateStatus::Approved => "APPROVED",
            TemplateStatus::Rejected => "REJECTED",
        }
    }

    pub fn from_db(value: &str) -> Self {
        match value {
            "APPROVED" => TemplateStatus::Approved,
            "REJECTED" => TemplateStatus::Rejected,
            _ => TemplateStatus::Pending,
        }
    }
}

/// The variables a body uses: they must be {{1}} to {{n}}, each at least once.
pub fn count_variables(body: &str) -> Result<i32, String> {
    let mut seen = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or("a '{{' in the body is never closed with '}}'")?;
        let inner = after[..end].trim();
        let n: usize = inner
            .parse()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| {
                format!("template variables are numbered {{{{1}}}}, {{{{2}}}}, ...; '{{{{{inner}}}}}' is not")
            })?;
        seen.push(n);
        rest = &after[end + 2..];
    }
    seen.sort_unstable();
    seen.dedup();
    for (i, n) in seen.iter().enumerate() {
        if *n != i + 1 {
            return Err(format!(
                "template variables must be numbered from {{{{1}}}} without gaps; {{{{{}}}}} is missing",
                i + 1
            ));
        }
    }
    Ok(seen.len() as i32)
}

/// The body with `variables` in place of {{1}}, {{2}}, ... (for the inbox's copy).
pub fn render(body: &str, variables: &[String]) -> String {
    let mut text = body.to_string();
    for (i, value) in variables.iter().enumerate().rev() {
        text = text.replace(&format!("{{{{{}}}}}", i + 1), value);
    }
    text
}

pub struct NewTemplate {
    pub channel_account_id: Uuid,
    pub name: String,
    pub language: String,
    pub category: TemplateCategory,
    pub body: String,
    /// A sample value per variable, in order (Meta reviews a template with them).
    pub examples: Vec<String>,
}

pub async fn create(state: &AppState, actor: &Actor, input: NewTemplate) -> ApiResult<TemplateRow> {
    actor.require(Role::Admin, ApiScope::ConversationsWrite)?;
    let name = input.name.trim();
    if name.is_empty()
        || name.len() > 512
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(ApiError::validation(
            "a template name is lower-case letters, digits and underscores (Meta's rule)",
        ));
    }
    let language = input.language.trim();
    let language_ok = {
        let (code, region) = language.split_once('_').unwrap_or((language, ""));
        (2..=3).contains(&code.len())
            && code.bytes().all(|b| b.is_ascii_lowercase())
            && (region.is_empty()
                || ((2..=4).contains(&region.len())
                    && region.bytes().all(|b| b.is_ascii_alphabetic())))
    };
    if !language_ok {
        return Err(ApiError::validation(
            "a template language is a code such as en, en_US or pt_BR",
        ));
    }
    let body = input.body.trim();
    if body.is_empty() || body.chars().count() > 1024 {
        return Err(ApiError::validation(
            "a template body is between 1 and 1,024 characters",
        ));
    }
    let variable_count = count_variables(body).map_err(ApiError::validation)?;
    let examples: Vec<String> = input
        .examples
        .iter()
        .map(|e| e.trim().to_string())
        .collect();
    if !examples.is_empty() && examples.len() != variable_count as usize {
        return Err(ApiError::validation(format!(
            "give one example per variable: the body has {variable_count}, and {} were given",
            examples.len()
        )));
    }
    if examples
        .iter()
        .any(|e| e.is_empty() || e.chars().count() > 200)
    {
        return Err(ApiError::validation(
            "an example is between 1 and 200 characters",
        ));
    }
    let mut tx = state.db.tenant(actor.company_id).await?;
    let account: Option<(String, Vec<u8>)> = sqlx::query_as(
        "select type, credentials_sealed from channel_accounts where id = $1 and status = 'ACTIVE'",
    )
    .bind(input.channel_account_id)
    .fetch_optional(&mut *tx)
    .await?;
    let sealed = match account {
        None => return Err(ApiError::not_found("channel account")),
        Some((kind, sealed)) if ChannelType::from_db(&kind) == ChannelType::Whatsapp => sealed,
        Some(_) => {
            return Err(ApiError::validation(
                "message templates belong to WhatsApp accounts",
            ))
        }
    };
    let exists: bool = sqlx::query_scalar(
        "select exists (select 1 from message_templates
                        where channel_account_id = $1 and name = $2 and language = $3)",
    )
    .bind(input.channel_account_id)
    .bind(name)
    .bind(language)
    .fetch_one(&mut *tx)
    .await?;
    if exists {
        return Err(duplicate());
    }
    // No transaction stays open while Meta is asked.
    tx.commit().await?;
    let credentials = crate::channels::open_credentials(&state.sealer, &sealed)
        .map_err(|err| ApiError::internal("opening channel credentials", err))?;
    let submits = credentials
        .get("waba_id")
        .and_then(|v| v.as_str())
        .is_some_and(|id| !id.trim().is_empty());
    let submitted = if submits {
        if input.category == TemplateCategory::Authentication {
            return Err(ApiError::validation(
                "Meta writes authentication templates' text itself (a one-time code with a copy \
                 button): make them in WhatsApp Manager, then record them here without a waba_id",
            ));
        }
        if variable_count > 0 && examples.is_empty() {
            return Err(ApiError::validation(
                "Meta reviews a template with variables only with an example for each: give `examples`",
            ));
        }
        let submission = crate::channels::outbound::TemplateSubmission {
            name,
            language,
            category: input.category.as_db(),
            body,
            examples: &examples,
        };
        Some(submit(state, &credentials, &submission).await?)
    } else {
        None
    };
    let (status, provider_id, category) = match &submitted {
        Some(answer) => (
            answer.status.as_str(),
            answer.id.as_deref(),
            answer.category.as_deref().unwrap_or(input.category.as_db()),
        ),
        None => ("PENDING", None, input.category.as_db()),
    };
    let mut tx = state.db.tenant(actor.company_id).await?;
    let row: TemplateRow = sqlx::query_as(&format!(
        "insert into message_templates (id, company_id, channel_account_id, name, language, category,
             body, variable_count, status, provider_template_id)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) returning {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(actor.company_id)
    .bind(input.channel_account_id)
    .bind(name)
    .bind(language)
    .bind(category)
    .bind(body)
    .bind(variable_count)
    .bind(status)
    .bind(provider_id)
    .fetch_one(&mut *tx)
    .await
    .map_err(|err| {
        if is_unique_violation(&err, "message_templates_key") {
            duplicate()
        } else {
            err.into()
        }
    })?;
    tx.commit().await?;
    Ok(row)
}

/// Submits a template to Meta. Should Meta refuse it, or not answer after it may have taken
/// it, a template of that name and language already at Meta (an earlier attempt's, or one
/// made in WhatsApp Manager) is adopted with its id and status.
async fn submit(
    state: &AppState,
    credentials: &crate::channels::outbound::Credentials,
    submission: &crate::channels::outbound::TemplateSubmission<'_>,
) -> ApiResult<crate::channels::outbound::TemplateSubmitted> {
    let err = match state
        .sender
        .submit_whatsapp_template(credentials, submission)
        .await
    {
        Ok(answer) => return Ok(answer),
        Err(err) => err,
    };
    if !err.retryable || err.maybe_delivered {
        if let Ok(Some(found)) = state
            .sender
            .find_whatsapp_template(credentials, submission.name, submission.language)
            .await
        {
            return Ok(found);
        }
    }
    if err.retryable {
        Err(ApiError::RateLimited(format!(
            "Meta could not take the template now ({}); try again shortly",
            err.reason
        )))
    } else {
        Err(ApiError::validation(format!(
            "Meta refused the template: {}",
            err.reason
        )))
    }
}

fn duplicate() -> ApiError {
    ApiError::conflict("this account already has a template with that name and language")
}

pub async fn list(
    state: &AppState,
    actor: &Actor,
    channel_account_id: Option<Uuid>,
) -> ApiResult<Vec<TemplateRow>> {
    actor.require(Role::Staff, ApiScope::ConversationsRead)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let rows = sqlx::query_as(&format!(
        "select {COLUMNS} from message_templates
         where $1::uuid is null or channel_account_id = $1 order by name, language"
    ))
    .bind(channel_account_id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows)
}

pub async fn by_id(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<TemplateRow>> {
    sqlx::query_as(&format!(
        "select {COLUMNS} from message_templates where id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Records Meta's verdict given in its own tools.
pub async fn set_status(
    state: &AppState,
    actor: &Actor,
    id: Uuid,
    status: TemplateStatus,
    reason: Option<String>,
) -> ApiResult<TemplateRow> {
    actor.require(Role::Admin, ApiScope::ConversationsWrite)?;
    let mut tx = state.db.tenant(actor.company_id).await?;
    let row: Option<TemplateRow> = sqlx::query_as(&format!(
        "update message_templates set status = $2, rejection_reason = $3, updated_at = now()
         where id = $1 returning {COLUMNS}"
    ))
    .bind(id)
    .bind(status.as_db())
    .bind(reason.filter(|_| status == TemplateStatus::Rejected))
    .fetch_optional(&mut *tx)
    .await?;
    let row = row.ok_or_else(|| ApiError::not_found("message template"))?;
    tx.commit().await?;
    Ok(row)
}

/// Meta's `message_template_status_update` webhook.
pub async fn reviewed(
    conn: &mut PgConnection,
    account_id: Uuid,
    name: &str,
    language: &str,
    status: &str,
    reason: Option<String>,
) -> sqlx::Result<()> {
    let status = TemplateStatus::from_db(status);
    sqlx::query(
        "update message_templates set status = $4, rejection_reason = $5, updated_at = now()
         where channel_account_id = $1 and name = $2 and language = $3",
    )
    .bind(account_id)
    .bind(name)
    .bind(language)
    .bind(status.as_db())
    .bind(reason.filter(|_| status == TemplateStatus::Rejected))
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_numbered_from_one_without_gaps() {
        assert_eq!(count_variables("Hello"), Ok(0));
        assert_eq!(count_variables("Hi {{1}}, order {{2}} ships {{1}}"), Ok(2));
        assert!(count_variables("Hi {{2}}").is_err());
        assert!(count_variables("Hi {{name}}").is_err());
        assert!(count_variables("Hi {{1").is_err());
        assert_eq!(
            render("Hi {{1}}, order {{2}}", &["Ana".into(), "#12".into()]),
            "Hi Ana, order #12"
        );
    }
}
