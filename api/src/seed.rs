//! The demo company seeded on the first start of the embedded cluster (and by `obrol seed`):
//! an Admin with a random password, and two teams. The credentials are kept in the data
//! directory (mode 0600) so every later start can print them again.

use std::path::Path;

use crate::app::AppState;
use crate::auth::{login, Actor, Credential, Role};
use crate::error::ApiError;
use crate::teams;

pub const DEMO_EMAIL: &str = "admin@demo.example.com";

#[derive(Clone, Debug)]
pub struct DemoCredentials {
    pub email: String,
    pub password: String,
}

fn credentials_file(state: &AppState) -> std::path::PathBuf {
    state.config.data_dir.join("demo-credentials")
}

fn read(path: &Path) -> Option<DemoCredentials> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    Some(DemoCredentials {
        email: lines.next()?.to_string(),
        password: lines.next()?.to_string(),
    })
}

/// Seeds the demo company unless it exists; returns its credentials when they are known.
pub async fn ensure_demo(state: &AppState) -> anyhow::Result<Option<DemoCredentials>> {
    let path = credentials_file(state);
    if let Some(known) = read(&path) {
        return Ok(Some(known));
    }
    let password = hex::encode(rand::random::<[u8; 9]>());
    let session = match login::sign_up(
        state,
        "Demo Company",
        "Demo Admin",
        DEMO_EMAIL,
        password.clone(),
        None,
    )
    .await
    {
        Ok(session) => session,
        Err(ApiError::Conflict(_)) => {
            tracing::warn!("the demo company exists but its credentials file is gone; use `obrol seed` on a fresh database");
            return Ok(None);
        }
        Err(err) => anyhow::bail!("seeding the demo company failed: {}", err.message()),
    };
    let actor = Actor {
        company_id: session.user.company_id,
        role: Role::Admin,
        user: session.user,
        credential: Credential::Session {
            session_id: uuid::Uuid::nil(),
        },
    };
    for team in ["Sales", "Support"] {
        let team = teams::create(state, &actor, team)
            .await
            .map_err(|e| anyhow::anyhow!(e.message()))?;
        teams::add_member(state, &actor, team.id, actor.user_id())
            .await
            .map_err(|e| anyhow::anyhow!(e.message()))?;
    }
    std::fs::create_dir_all(&state.config.data_dir)?;
    let credentials = DemoCredentials {
        email: DEMO_EMAIL.into(),
        password,
    };
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        writeln!(file, "{}\n{}", credentials.email, credentials.password)?;
    }
    Ok(Some(credentials))
}
