//! Test harness for black-box tests: each test gets a fresh database (cloned in milliseconds
//! from a migrated template) on one shared throw-away PostgreSQL cluster under `target/`, and
//! starts the real `obrol` binary on a free port against it, then talks GraphQL over HTTP and
//! WebSocket like any client.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use obrol_api::db::embedded::{Durability, EmbeddedCluster};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub mod fake_provider;
mod pdf;
pub mod sign;
pub use pdf::pdf_from_objects;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// Where the shared test cluster lives.
pub fn cluster_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("obrol-test-pg")
}

/// The `obrol` binary built next to this test binary (target/debug/obrol).
pub fn obrol_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("OBROL_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target profile dir");
    profile_dir.join("obrol")
}

fn template_name() -> String {
    let mut checksum = Vec::new();
    for migration in obrol_api::db::MIGRATOR.iter() {
        checksum.extend_from_slice(&migration.checksum);
    }
    let digest = sha_hex(&checksum);
    format!("obrol_template_{}", &digest[..16])
}

fn sha_hex(bytes: &[u8]) -> String {
    // A tiny FNV-1a is enough to tell migration sets apart; collisions only cost a rebuild.
    let mut hash: u64 = 0xcbf29ce484222325;
    for byte in bytes {
        hash ^= *byte as u64;
        hash = hash.wrapping_mul(0x100000001b3);
    }
    format!("{hash:016x}{:016x}", bytes.len())
}

/// Starts (once, across all test processes) the shared cluster and the migrated template.
fn shared_cluster() -> anyhow::Result<EmbeddedCluster> {
    let dir = cluster_dir();
    std::fs::create_dir_all(&dir)?;
    let lock = std::fs::File::create(dir.with_extension("lock"))?;
    lock.lock()?;
    let cluster = EmbeddedCluster::ensure_running(&dir, None, Durability::Throwaway)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut admin = PgConnection::connect_with(&cluster.connect_options("postgres")).await?;
        let template = template_name();
        let exists: bool =
            sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
                .bind(&template)
                .fetch_one(&mut admin)
                .await?;
        if !exists {
            let building = format!("{template}_building");
            sqlx::query(&format!("drop database if exists {building}"))
                .execute(&mut admin)
                .await?;
            sqlx::query(&format!("create database {building}"))
                .execute(&mut admin)
                .await?;
            obrol_api::db::migrate(&cluster.connect_options(&building)).await?;
            sqlx::query(&format!("alter database {building} rename to {template}"))
                .execute(&mut admin)
                .await?;
        }
        admin.close().await?;
        anyhow::Ok(())
    })?;
    drop(lock);
    Ok(cluster)
}

/// A fresh database for one test. It is dropped when the test passes and kept when it fails
/// (a panic), so a failure can be looked at; `keep` keeps it either way.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    cluster: EmbeddedCluster,
    drop_when_done: bool,
}

impl TestDatabase {
    pub async fn create() -> anyhow::Result<Self> {
        let cluster = tokio::task::spawn_blocking(shared_cluster).await??;
        let name = format!("t_{}", uuid::Uuid::now_v7().simple());
        let mut admin = PgConnection::connect_with(&cluster.connect_options("postgres")).await?;
        sqlx::query(&format!(
            "create database {name} template {}",
            template_name()
        ))
        .execute(&mut admin)
        .await?;
        admin.close().await?;
        Ok(Self {
            url: cluster.url(&name),
            name,
            cluster,
            drop_when_done: true,
        })
    }

    /// Leaves the database in the cluster after the test (a benchmark's data, to reuse).
    pub fn keep(&mut self) {
        self.drop_when_done = false;
    }

    /// A database an earlier run created and left in the shared cluster (the benchmarks
    /// reuse one to measure again without rebuilding it).
    pub async fn existing(name: &str) -> anyhow::Result<Self> {
        let cluster = tokio::task::spawn_blocking(shared_cluster).await??;
        let mut admin = PgConnection::connect_with(&cluster.connect_options("postgres")).await?;
        let exists: bool =
            sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
                .bind(name)
                .fetch_one(&mut admin)
                .await?;
        admin.close().await?;
        anyhow::ensure!(
            exists,
            "there is no database {name} in {}",
            cluster_dir().display()
        );
        Ok(Self {
            url: cluster.url(name),
            name: name.to_string(),
            cluster,
            drop_when_done: false,
        })
    }

    /// A superuser connection to this database (bypasses RLS: for arranging and inspecting).
    pub async fn superuser(&self) -> anyhow::Result<PgConnection> {
        Ok(PgConnection::connect_with(&self.cluster.connect_options(&self.name)).await?)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if !self.drop_when_done || std::thread::panicking() {
            return;
        }
        // Its own thread and runtime: this may run inside a test's runtime, which cannot block.
        let options = self.cluster.connect_options("postgres");
        let statement = format!("drop database if exists {} with (force)", self.name);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect_with(&options).await?;
                sqlx::query(&statement).execute(&mut admin).await?;
                admin.close().await?;
                anyhow::Ok(())
            })
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!("could not drop test database {}: {error:#}", self.name);
        }
    }
}

/// The embedding model scripts/bootstrap installs (`make test` runs it first).
pub fn model_dir() -> PathBuf {
    std::env::var_os("OBROL_EMBEDDING_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.obrol/models/all-MiniLM-L6-v2")
        })
}

/// Files the project made for its tests (tests/fixtures/knowledge, see its README).
pub fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/knowledge")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A running `obrol serve` process.
pub struct TestServer {
    pub url: String,
    pub child: Child,
    pub stdout: Vec<String>,
}

impl TestServer {
    /// Starts the binary with `env` and waits for its "listening on" line.
    pub async fn start(env: &[(&str, String)]) -> anyhow::Result<Self> {
        let mut command = Command::new(obrol_bin());
        command
            .arg("serve")
            .env_remove("DATABASE_URL")
            .env("OBROL_LISTEN", "127.0.0.1:0")
            .env("OBROL_LOG", "warn")
            // The model scripts/bootstrap installed in the workspace's data directory.
            .env("OBROL_EMBEDDING_MODEL_DIR", model_dir())
            .env("OBROL_JOB_WORKERS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", obrol_bin().display()))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let mut seen = Vec::new();
        let url = tokio::time::timeout(Duration::from_secs(90), async {
            while let Some(line) = lines.next_line().await? {
                seen.push(line.clone());
                if let Some(url) = line.strip_prefix("obrol listening on ") {
                    return anyhow::Ok(url.trim().to_string());
                }
            }
            bail!("obrol exited before listening; it printed: {seen:?}")
        })
        .await
        .context("obrol did not start within 90 s")??;
        // Keep reading so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            url,
            child,
            stdout: seen,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// One test's server and database.
pub struct TestApp {
    pub server: TestServer,
    pub db: TestDatabase,
    pub secret_key: String,
    pub http: reqwest::Client,
    data_dir: TempDir,
    env: Vec<(&'static str, String)>,
}

/// A user signed up or logged in during a test.
#[derive(Clone, Debug)]
pub struct Session {
    pub token: String,
    pub user_id: String,
    pub company_id: String,
    pub email: String,
    pub password: String,
}

pub const PASSWORD: &str = "correct horse battery staple";

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    pub async fn spawn_with(extra_env: &[(&'static str, String)]) -> Self {
        let db = TestDatabase::create().await.expect("test database");
        let secret_key = hex_key();
        Self::start_on(db, secret_key, extra_env).await
    }

    /// A server on `db` (for instance `TestDatabase::existing`), with a new data directory.
    pub async fn start_on(
        db: TestDatabase,
        secret_key: String,
        extra_env: &[(&'static str, String)],
    ) -> Self {
        let data_dir = TempDir::new();
        let mut env = vec![
            ("DATABASE_URL", db.url.clone()),
            ("OBROL_SECRET_KEY", secret_key.clone()),
            ("OBROL_DATA_DIR", data_dir.path.display().to_string()),
        ];
        env.extend(extra_env.iter().cloned());
        let server = TestServer::start(&env).await.expect("obrol server");
        Self {
            server,
            db,
            secret_key,
            http: reqwest::Client::new(),
            data_dir,
            env,
        }
    }

    /// This server's data directory (its files and full-text index live there).
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir.path
    }

    /// Kills the server (SIGKILL: no clean shutdown) and starts it again on the same
    /// database and data directory.
    pub async fn kill_and_restart(&mut self) {
        self.kill().await;
        self.server = TestServer::start(&self.env).await.expect("restarted obrol");
    }

    /// Kills the server (SIGKILL) and waits for it to be gone.
    pub async fn kill(&mut self) {
        let _ = self.server.child.kill().await;
        let _ = self.server.child.wait().await;
    }

    /// The environment the server runs with (database, key, data directory, extras).
    pub fn env(&self) -> &[(&'static str, String)] {
        &self.env
    }

    /// A second `obrol` process on the same database (as a second API node would be).
    pub async fn second_node(&self) -> TestServer {
        let data_dir = TempDir::new();
        let env = vec![
            ("DATABASE_URL", self.db.url.clone()),
            ("OBROL_SECRET_KEY", self.secret_key.clone()),
            ("OBROL_DATA_DIR", data_dir.path.display().to_string()),
        ];
        let server = TestServer::start(&env).await.expect("second obrol node");
        std::mem::forget(data_dir);
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
    }

    /// The value of metric `name` (a line `name value`, labels included in `name`) on the
    /// node at `base`'s `/metrics`; 0 when the node has not recorded it yet.
    pub async fn metric_at(&self, base: &str, name: &str) -> f64 {
        let text = self
            .http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Posts a GraphQL request and returns the whole JSON response.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        gql_at(&self.http, &self.server.url, token, query, variables).await
    }

    /// Posts a GraphQL mutation with one file, by the GraphQL multipart request spec, as
    /// `variables.file`; returns the whole JSON response.
    pub async fn gql_upload(
        &self,
        token: &str,
        query: &str,
        variables: Value,
        file_name: &str,
        bytes: Vec<u8>,
    ) -> Value {
        let operations = serde_json::json!({ "query": query, "variables": variables });
        let form = reqwest::multipart::Form::new()
            .text("operations", operations.to_string())
            .text(
                "map",
                serde_json::json!({ "0": ["variables.file"] }).to_string(),
            )
            .part(
                "0",
                reqwest::multipart::Part::bytes(bytes).file_name(file_name.to_string()),
            );
        let response = self
            .http
            .post(self.url("/graphql"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .expect("upload request");
        response.json().await.expect("JSON response")
    }

    /// Posts a GraphQL request that must succeed; returns `data`.
    pub async fn gql_ok(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let response = self.gql(token, query, variables).await;
        assert!(
            response.get("errors").is_none(),
            "unexpected errors: {response:#}"
        );
        response["data"].clone()
    }

    pub async fn sign_up(&self, company: &str) -> Session {
        let email = format!("admin-{}@example.com", uuid::Uuid::now_v7().simple());
        let data = self
            .gql_ok(
                None,
                "mutation($input: SignUpInput!) { signUp(input: $input) { token user { id company { id } } } }",
                json!({ "input": { "companyName": company, "name": format!("{company} Admin"), "email": email, "password": PASSWORD } }),
            )
            .await;
        Session {
            token: data["signUp"]["token"].as_str().unwrap().to_string(),
            user_id: data["signUp"]["user"]["id"].as_str().unwrap().to_string(),
            company_id: data["signUp"]["user"]["company"]["id"]
                .as_str()
                .unwrap()
                .to_string(),
            email,
            password: PASSWORD.to_string(),
        }
    }

    /// Logs an existing user in; returns their session.
    pub async fn log_in(&self, email: &str, password: &str) -> Session {
        let data = self
            .gql_ok(
                None,
                "mutation($input: LogInInput!) { logIn(input: $input) { token user { id company { id } } } }",
                json!({ "input": { "email": email, "password": password } }),
            )
            .await;
        Session {
            token: data["logIn"]["token"].as_str().unwrap().to_string(),
            user_id: data["logIn"]["user"]["id"].as_str().unwrap().to_string(),
            company_id: data["logIn"]["user"]["company"]["id"]
                .as_str()
                .unwrap()
                .to_string(),
            email: email.to_string(),
            password: password.to_string(),
        }
    }

    /// Invites a user with `role` and accepts the invitation; returns their session.
    pub async fn add_user(&self, admin: &Session, role: &str) -> Session {
        let email = format!(
            "{}-{}@example.com",
            role.to_lowercase(),
            uuid::Uuid::now_v7().simple()
        );
        let data = self
            .gql_ok(
                Some(&admin.token),
                "mutation($input: InviteUserInput!) { inviteUser(input: $input) { token user { id } } }",
                json!({ "input": { "email": email, "name": format!("A {role}"), "role": role } }),
            )
            .await;
        let invite_token = data["inviteUser"]["token"].as_str().unwrap().to_string();
        let data = self
            .gql_ok(
                None,
                "mutation($input: AcceptInviteInput!) { acceptInvite(input: $input) { token user { id } } }",
                json!({ "input": { "token": invite_token, "password": PASSWORD } }),
            )
            .await;
        Session {
            token: data["acceptInvite"]["token"].as_str().unwrap().to_string(),
            user_id: data["acceptInvite"]["user"]["id"]
                .as_str()
                .unwrap()
                .to_string(),
            company_id: admin.company_id.clone(),
            email,
            password: PASSWORD.to_string(),
        }
    }
}

/// The TOTP code an authenticator app would show now for `secret_base32`.
pub fn totp_code(secret_base32: &str) -> String {
    let seed = totp_rs::Secret::Encoded(secret_base32.to_string())
        .to_bytes()
        .expect("a base32 TOTP secret");
    let totp = totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        seed,
        None,
        "test".into(),
    )
    .expect("a valid TOTP");
    totp.generate_current().expect("the system clock")
}

/// Two-factor authentication as turned on by [`TestApp::enable_two_factor`].
pub struct TwoFactor {
    pub secret: String,
    pub recovery_codes: Vec<String>,
}

impl TestApp {
    /// Turns on two-factor authentication for `user` through the API.
    pub async fn enable_two_factor(&self, user: &Session) -> TwoFactor {
        let setup = self
            .gql_ok(
                Some(&user.token),
                "mutation { startTwoFactorSetup { secret } }",
                json!({}),
            )
            .await;
        let secret = setup["startTwoFactorSetup"]["secret"]
            .as_str()
            .unwrap()
            .to_string();
        let confirmed = self
            .gql_ok(
                Some(&user.token),
                "mutation($c: String!) { confirmTwoFactorSetup(code: $c) }",
                json!({ "c": totp_code(&secret) }),
            )
            .await;
        let recovery_codes = confirmed["confirmTwoFactorSetup"]
            .as_array()
            .unwrap()
            .iter()
            .map(|code| code.as_str().unwrap().to_string())
            .collect();
        TwoFactor {
            secret,
            recovery_codes,
        }
    }
}

pub async fn gql_at(
    http: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Value {
    let mut request = http
        .post(format!("{base}/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("HTTP request");
    response.json().await.expect("JSON response")
}

/// The `extensions.code` of the first error, if any.
pub fn error_code(response: &Value) -> Option<&str> {
    response["errors"][0]["extensions"]["code"].as_str()
}

pub fn hex_key() -> String {
    uuid::Uuid::new_v4().simple().to_string() + &uuid::Uuid::new_v4().simple().to_string()
}

/// A directory removed when dropped.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new() -> Self {
        let path =
            std::env::temp_dir().join(format!("obrol-test-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&path).expect("temp dir");
        Self { path }
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A graphql-ws (graphql-transport-ws) client for subscriptions.
pub struct Subscription {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Subscription {
    /// Connects, authenticates with `token` in `connection_init`, and subscribes to `query`.
    /// Fails if the server does not acknowledge the connection.
    pub async fn start(base_url: &str, token: Option<&str>, query: &str) -> anyhow::Result<Self> {
        let ws_url = format!("{}/graphql/ws", base_url.replacen("http", "ws", 1));
        let mut request = ws_url.into_client_request()?;
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
        let payload = match token {
            Some(token) => json!({ "token": token }),
            None => json!({}),
        };
        socket
            .send(Message::text(
                json!({ "type": "connection_init", "payload": payload }).to_string(),
            ))
            .await?;
        let ack = next_json(&mut socket, Duration::from_secs(10)).await?;
        if ack["type"] != "connection_ack" {
            bail!("connection not acknowledged: {ack}");
        }
        socket
            .send(Message::text(
                json!({ "id": "1", "type": "subscribe", "payload": { "query": query } })
                    .to_string(),
            ))
            .await?;
        Ok(Self { socket })
    }

    /// Starts another operation (query, mutation or subscription) on the same connection.
    pub async fn send(&mut self, id: &str, query: &str, variables: Value) -> anyhow::Result<()> {
        let message = json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } });
        self.socket.send(Message::text(message.to_string())).await?;
        Ok(())
    }

    /// The next message about operation `id`, within `wait` (others are skipped).
    pub async fn next_for(&mut self, id: &str, wait: Duration) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let message = self.next(left).await?;
            if message["id"] == id {
                return Ok(message);
            }
        }
    }

    /// The next message for the subscription (`next`, `error` or `complete`), within `wait`.
    pub async fn next(&mut self, wait: Duration) -> anyhow::Result<Value> {
        loop {
            let message = next_json(&mut self.socket, wait).await?;
            if message["type"] == "ping" {
                self.socket
                    .send(Message::text(json!({ "type": "pong" }).to_string()))
                    .await?;
                continue;
            }
            return Ok(message);
        }
    }
}

async fn next_json(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    wait: Duration,
) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .context("no message within the deadline")?
            .ok_or_else(|| anyhow!("socket closed"))??;
        match message {
            Message::Text(text) => return Ok(serde_json::from_str(&text)?),
            Message::Close(frame) => bail!("socket closed: {frame:?}"),
            _ => continue,
        }
    }
}

/// The value at percentile `p` (0 to 100) of `sorted` samples, by nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// p50, p99 and mean of `samples`.
pub fn summary(mut samples: Vec<f64>) -> (f64, f64, f64) {
    samples.sort_by(f64::total_cmp);
    (
        percentile(&samples, 50.0),
        percentile(&samples, 99.0),
        samples.iter().sum::<f64>() / samples.len() as f64,
    )
}
