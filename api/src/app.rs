//! `App::build(config)`: the one way to assemble the server, used by `main` and by tests.
//! It finds (or starts) the database, migrates it, opens the pool, starts the event
//! listener, and binds the HTTP listener, so a caller learns the real address before serving.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_graphql::dataloader::DataLoader;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::Data;
use async_graphql_axum::{GraphQLProtocol, GraphQLResponse, GraphQLWebSocket};
use axum::extract::{MatchedPath, Request, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;

use crate::auth::cache::CredentialCache;
use crate::auth::secrets::Sealer;
use crate::auth::{authenticate, Auth};
use crate::config::{Config, EmbeddingsConfig, KnowledgeConfig};
use crate::db::embedded::{self, Durability, EmbeddedCluster};
use crate::db::{self, Db};
use crate::events::EventBus;
use crate::graphql::loaders::TenantLoader;
use crate::graphql::ws::{SocketExecutor, WsCredential};
use crate::graphql::{self as gql, ObrolSchema, RequestMeta};
use crate::knowledge::Knowledge;
use crate::seed::{self, DemoCredentials};
use object_store::local::LocalFileSystem;
use obrol_knowledge::embed::local::LocalEmbedder;
use obrol_knowledge::embed::openai::OpenAiEmbedder;
use obrol_knowledge::embed::Embedder;
use obrol_knowledge::fulltext::FullText;
use obrol_knowledge::web::FetchPolicy;

/// What every request handler and feature function can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub sealer: Sealer,
    pub events: EventBus,
    /// Resolved credentials, kept briefly (see `auth::cache`).
    pub credentials: Arc<CredentialCache>,
    pub knowledge: Arc<Knowledge>,
    /// Decrypted channel credentials for webhooks, kept briefly (see `channels::webhook`).
    pub webhook_accounts: Arc<crate::channels::webhook::AccountCache>,
    /// Calls the providers' APIs for outbound messages.
    pub sender: Arc<crate::channels::outbound::Sender>,
    /// Woken when this node queued an outbound message, so a send worker starts at once.
    pub outbox: Arc<tokio::sync::Notify>,
    /// The address this server listens on.
    pub address: SocketAddr,
    /// The chat widget's per-visitor and per-address rate limits in this process.
    pub widget_limits: Arc<crate::channels::widget::Limits>,
    /// Rows that every subscriber of an event needs, read once on this node.
    pub shared_reads: Arc<crate::conversations::reads::SharedReads>,
    /// Stores single-message webhook deliveries in batches (see `conversations::ingest`).
    pub inbound: Arc<crate::conversations::ingest::Batcher>,
}

impl AppState {
    /// Where providers reach this server: `OBROL_PUBLIC_URL`, else the bound address.
    pub fn base_url(&self) -> String {
        match &self.config.channels.public_url {
            Some(url) => url.clone(),
            None => format!("http://{}", self.address),
        }
    }
}

#[derive(Clone)]
struct HttpState {
    app: AppState,
    schema: ObrolSchema,
    metrics: PrometheusHandle,
    graphiql_assets: Option<PathBuf>,
}

pub struct App {
    pub state: AppState,
    pub address: SocketAddr,
    /// Set on the first start of the embedded cluster, or whenever it was seeded.
    pub demo: Option<DemoCredentials>,
    listener: TcpListener,
    router: Router,
    cluster: Option<EmbeddedCluster>,
}

/// Where the database is, and who started it.
pub struct Database {
    pub options: PgConnectOptions,
    pub cluster: Option<EmbeddedCluster>,
}

/// Uses `DATABASE_URL` when set; otherwise starts the embedded cluster and makes sure its
/// `obrol` database exists.
pub async fn open_database(config: &Config) -> anyhow::Result<Database> {
    if let Some(url) = &config.database_url {
        let options = PgConnectOptions::from_str(url)
            .context("DATABASE_URL is not a valid PostgreSQL URL")?;
        return Ok(Database {
            options,
            cluster: None,
        });
    }
    let data_dir = config.data_dir.clone();
    let pg_bin = config.pg_bin.clone();
    let cluster = tokio::task::spawn_blocking(move || {
        EmbeddedCluster::ensure_running(&data_dir, pg_bin.as_deref(), Durability::Durable)
    })
    .await??;
    let mut admin = PgConnection::connect_with(&cluster.connect_options("postgres")).await?;
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_database where datname = 'obrol')")
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        sqlx::query("create database obrol")
            .execute(&mut admin)
            .await?;
    }
    admin.close().await?;
    Ok(Database {
        options: cluster.connect_options("obrol"),
        cluster: Some(cluster),
    })
}

fn secret_key(config: &Config) -> anyhow::Result<Sealer> {
    let key = match &config.secret_key {
        Some(key) => key.clone(),
        None => {
            std::fs::create_dir_all(&config.data_dir)?;
            embedded::read_or_create_secret(&config.data_dir.join("secret.key"))?
        }
    };
    Ok(Sealer::from_hex(&key)?)
}

fn metrics_handle() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // A second App in one process (tests) shares the first one's recorder.
    if metrics::set_global_recorder(recorder).is_ok() {
        let _ = HANDLE.set(handle.clone());
    }
    Ok(HANDLE.get().cloned().unwrap_or(handle))
}

async fn build_knowledge(config: &KnowledgeConfig) -> anyhow::Result<Knowledge> {
    let embedder: Arc<dyn Embedder> = match &config.embeddings {
        EmbeddingsConfig::Local { model_dir } => {
            let model = LocalEmbedder::lazy(model_dir);
            if !model.files_present() {
                tracing::warn!(
                    "the embedding model is missing from {}; knowledge sources will fail until \
                     scripts/bootstrap installs it (make run does)",
                    model_dir.display()
                );
            }
            Arc::new(model)
        }
        EmbeddingsConfig::OpenAi {
            base_url,
            api_key,
            model,
        } => Arc::new(OpenAiEmbedder::new(base_url, api_key, model)),
    };
    std::fs::create_dir_all(&config.files_dir)
        .with_context(|| format!("cannot create {}", config.files_dir.display()))?;
    let objects = Arc::new(
        LocalFileSystem::new_with_prefix(&config.files_dir)
            .with_context(|| format!("cannot use {}", config.files_dir.display()))?,
    );
    let index_dir = config.index_dir.clone();
    let fulltext = tokio::task::spawn_blocking(move || FullText::open(Some(&index_dir)))
        .await?
        .with_context(|| {
            format!(
                "cannot open the full-text index in {}",
                config.index_dir.display()
            )
        })?;
    Ok(Knowledge {
        fulltext: Arc::new(fulltext),
        embedder,
        objects,
        inspect: Knowledge::isolation(Duration::from_secs(30), config.extract_memory_mb),
        extract: Knowledge::isolation(config.extract_timeout, config.extract_memory_mb),
        fetch: FetchPolicy {
            allow_private: config.allow_private_urls,
            timeout: config.fetch_timeout,
            google_base: config.google_docs_base.clone(),
            ..FetchPolicy::default()
        },
        index_changed: Arc::new(tokio::sync::Notify::new()),
        jobs_queued: Arc::new(tokio::sync::Notify::new()),
    })
}

impl App {
    /// Starts this process's background work: job workers and the full-text index sync.
    pub fn start_background(&self) {
        let state = self.state.clone();
        let knowledge = &state.config.knowledge;
        // Extraction and embedding have their own workers: embedding a large file takes
        // minutes of CPU and must not delay the next upload's extraction.
        let pools = [
            (crate::knowledge::INGEST_JOB, knowledge.job_workers),
            (crate::knowledge::EMBED_JOB, knowledge.embedding_workers),
        ]
        .map(|(kind, concurrency)| {
            crate::jobs::Workers::start(
                state.db.clone(),
                vec![kind.to_string()],
                crate::knowledge::pipeline::handler(state.clone()),
                concurrency,
                knowledge.job_lease,
            )
        });
        // Contact imports: one at a time per process, each in batches. Idle workers look
        // for due jobs twice a second, so no wake-up handle is kept.
        // Outbound messages, and the routing timers (reassignment, nudges).
        let senders = crate::jobs::Workers::start(
            state.db.clone(),
            vec![crate::conversations::send::SEND_JOB.to_string()],
            crate::conversations::send::handler(state.clone()),
            state.config.channels.send_workers,
            knowledge.job_lease,
        );
        let outbox = state.outbox.clone();
        tokio::spawn(async move {
            loop {
                outbox.notified().await;
                senders.wake();
            }
        });
        let _timers = crate::jobs::Workers::start(
            state.db.clone(),
            vec![
                crate::conversations::routing::ROUTE_JOB.to_string(),
                crate::conversations::routing::REASSIGN_JOB.to_string(),
                crate::conversations::routing::NUDGE_JOB.to_string(),
            ],
            crate::conversations::routing::handler(state.clone()),
            1,
            knowledge.job_lease,
        );
        // Contacts' files, copied from the providers.
        let _fetchers = crate::jobs::Workers::start(
            state.db.clone(),
            vec![crate::conversations::attachments::FETCH_JOB.to_string()],
            crate::conversations::attachments::handler(state.clone()),
            2,
            knowledge.job_lease,
        );
        // Names of contacts met on Messenger and Instagram.
        let _profiles = crate::jobs::Workers::start(
            state.db.clone(),
            vec![crate::conversations::profiles::PROFILE_JOB.to_string()],
            crate::conversations::profiles::handler(state.clone()),
            1,
            knowledge.job_lease,
        );
        let _registrations = crate::jobs::Workers::start(
            state.db.clone(),
            vec![crate::channels::setup::REGISTER_JOB.to_string()],
            crate::channels::setup::handler(state.clone()),
            1,
            knowledge.job_lease,
        );
        // Webhook credentials cached here are dropped when any node changes the account.
        let cache = state.webhook_accounts.clone();
        let mut changes = state.events.subscribe();
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(event) => {
                        if let crate::events::EventKind::ChannelAccountChanged { account_id } =
                            event.kind
                        {
                            cache.forget(account_id);
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => cache.clear(),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        let _imports = crate::jobs::Workers::start(
            state.db.clone(),
            vec![crate::contacts::import::IMPORT_JOB.to_string()],
            crate::contacts::import::handler(state.clone()),
            1,
            knowledge.job_lease,
        );
        let queued = state.knowledge.jobs_queued.clone();
        tokio::spawn(async move {
            loop {
                queued.notified().await;
                for workers in &pools {
                    workers.wake();
                }
            }
        });
        crate::knowledge::index::spawn_sync(state);
    }

    pub async fn build(config: Config) -> anyhow::Result<App> {
        let database = open_database(&config).await?;
        db::migrate(&database.options.clone().disable_statement_logging())
            .await
            .context("migrating the database")?;
        let db = Db::connect(database.options.clone(), config.db_max_connections).await?;
        let sealer = secret_key(&config)?;
        let credentials = Arc::new(CredentialCache::new(config.credential_cache_ttl));
        let events = EventBus::start(db.pool(), credentials.clone(), config.event_buffer).await?;
        let knowledge = Arc::new(build_knowledge(&config.knowledge).await?);
        // Bound before the state is made, so the state knows its own address.
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let address = listener.local_addr()?;
        let sender = crate::channels::outbound::Sender::new(
            config.channels.api_base.clone(),
            config.channels.provider_timeout,
        );
        let inbound = Arc::new(crate::conversations::ingest::Batcher::start(
            db.pool().clone(),
        ));
        let shared_reads = Arc::new(crate::conversations::reads::SharedReads::start(&db));
        let state = AppState {
            db,
            config: Arc::new(config),
            sealer,
            events,
            credentials,
            knowledge,
            webhook_accounts: Arc::default(),
            sender: Arc::new(sender),
            outbox: Arc::new(tokio::sync::Notify::new()),
            address,
            widget_limits: Arc::default(),
            shared_reads,
            inbound,
        };

        let demo = if database.cluster.is_some() && state.config.seed_demo {
            seed::ensure_demo(&state).await?
        } else {
            None
        };

        let http = HttpState {
            app: state.clone(),
            schema: gql::build(state.clone()),
            metrics: metrics_handle()?,
            graphiql_assets: crate::graphiql::locate(&state.config.graphiql_assets),
        };
        let router = router(http, state.config.max_body_bytes);
        Ok(App {
            state,
            address,
            demo,
            listener,
            router,
            cluster: database.cluster,
        })
    }

    /// Ends a one-off command: closes the pool and stops the embedded cluster if this process
    /// started it (a running `obrol serve` keeps its database).
    pub async fn close(self) -> anyhow::Result<()> {
        self.state.db.pool().close().await;
        if let Some(cluster) = self.cluster.filter(|c| c.started_here()) {
            tokio::task::spawn_blocking(move || cluster.stop()).await??;
        }
        Ok(())
    }

    /// Serves until SIGINT/SIGTERM, then stops the embedded cluster (the data directory is
    /// this process's, also when it found the cluster left running by a crashed run).
    pub async fn serve(self) -> anyhow::Result<()> {
        let served = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown_signal())
        .await;
        self.state.db.pool().close().await;
        if let Some(cluster) = self.cluster {
            tokio::task::spawn_blocking(move || cluster.stop()).await??;
            tracing::info!("embedded PostgreSQL stopped");
        }
        Ok(served?)
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}

fn router(http: HttpState, max_body_bytes: usize) -> Router {
    let assets = Router::new()
        .route("/graphiql/assets/{name}", get(crate::graphiql::asset))
        .with_state(http.graphiql_assets.clone());
    let widget = {
        use crate::channels::widget;
        Router::new()
            .route(
                "/widget/{account}/sessions",
                axum::routing::post(widget::create_session).options(widget::preflight),
            )
            .route(
                "/widget/{account}/messages",
                get(widget::messages).options(widget::preflight),
            )
            .route("/widget/{account}/ws", get(widget::socket))
            .layer(RequestBodyLimitLayer::new(64 * 1024))
            .with_state(http.app.clone())
    };
    Router::new()
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/downloads/{token}", get(download))
        .route("/media/{token}/{name}", get(media))
        .route("/webhooks/{channel}/{id}", get(webhook).post(webhook))
        .layer(RequestBodyLimitLayer::new(max_body_bytes))
        // Added after the layer, so outside it: /graphql applies its own limits (JSON vs.
        // uploads) as it reads, and answers in GraphQL's error format.
        .route("/graphql", get(graphiql).post(graphql))
        .with_state(http)
        .merge(assets)
        .merge(widget)
        .layer(middleware::from_fn(track_requests))
        // A bug must cost one request a 500, never the connection or the process.
        .layer(CatchPanicLayer::new())
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim())
}

/// The most a multipart request (one file plus the operation) may carry.
const UPLOAD_REQUEST_LIMIT: usize = obrol_knowledge::limits::MAX_BYTES as usize + 1024 * 1024;

fn request_error(status: StatusCode, code: &str, message: String) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code } }]
    });
    (status, axum::Json(body)).into_response()
}

/// Reads a GraphQL request: JSON up to `OBROL_MAX_BODY_BYTES`, or a multipart upload up to
/// the knowledge file limit, spooled to a temporary file. A body over its limit is cut off
/// as soon as the limit is passed (at once when Content-Length says so), so a 2 GB upload
/// never sits in memory or on disk.
async fn read_graphql_request(
    http: &HttpState,
    headers: &HeaderMap,
    request: Request,
) -> Result<async_graphql::Request, Response> {
    use futures_util::{StreamExt, TryStreamExt};
    use std::sync::atomic::{AtomicUsize, Ordering};

    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let multipart = content_type
        .as_deref()
        .is_some_and(|c| c.to_ascii_lowercase().starts_with("multipart/form-data"));
    let limit = if multipart {
        UPLOAD_REQUEST_LIMIT
    } else {
        http.app.config.max_body_bytes
    };
    let too_large = || {
        let message = if multipart {
            format!(
                "A file may be at most {} MB.",
                obrol_knowledge::limits::MAX_BYTES / (1024 * 1024)
            )
        } else {
            format!("The request body is larger than {limit} bytes.")
        };
        request_error(StatusCode::PAYLOAD_TOO_LARGE, "LIMIT_EXCEEDED", message)
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let stream = request.into_body().into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        if counter.fetch_add(chunk.len(), Ordering::Relaxed) + chunk.len() > limit {
            return Err(std::io::Error::other("request body over its limit"));
        }
        Ok(chunk)
    });
    let options = async_graphql::http::MultipartOptions::default()
        .max_file_size(obrol_knowledge::limits::MAX_BYTES as usize)
        .max_num_files(1);
    let parsed =
        async_graphql::http::receive_body(content_type, stream.into_async_read(), options).await;
    match parsed {
        Ok(request) => Ok(request),
        Err(_) if seen.load(Ordering::Relaxed) > limit => Err(too_large()),
        Err(async_graphql::ParseRequestError::PayloadTooLarge) => Err(too_large()),
        Err(err) => Err(request_error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            format!("The request could not be read: {err}"),
        )),
    }
}

async fn graphql(State(http): State<HttpState>, headers: HeaderMap, request: Request) -> Response {
    let auth = match headers.get(header::AUTHORIZATION) {
        None => Auth::Anonymous,
        Some(_) => match bearer_token(&headers) {
            None => Auth::Rejected,
            Some(token) => match authenticate(&http.app.db, &http.app.credentials, Some(token))
                .await
            {
                Ok(auth) => auth,
                Err(err) => {
                    let response = async_graphql::Response::from_errors(vec![
                        async_graphql::Error::from(err).into_server_error(Default::default()),
                    ]);
                    return GraphQLResponse::from(response).into_response();
                }
            },
        },
    };
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(300).collect());
    let request = match read_graphql_request(&http, &headers, request).await {
        Ok(request) => request,
        Err(response) => return response,
    };
    let mut request = request.data(RequestMeta { user_agent });
    if let Auth::Actor(actor) = &auth {
        let loader = TenantLoader {
            db: http.app.db.clone(),
            company_id: actor.company_id,
        };
        request = request.data(DataLoader::new(loader, tokio::spawn));
    }
    let request = request.data(auth);
    GraphQLResponse::from(http.schema.execute(request).await).into_response()
}

async fn graphiql(State(http): State<HttpState>) -> Html<String> {
    crate::graphiql::page(http.graphiql_assets.as_deref())
}

/// graphql-ws (and the legacy subscriptions-transport-ws). The credential travels in the
/// `connection_init` payload as `{"token": "..."}` or `{"Authorization": "Bearer ..."}`.
async fn graphql_ws(
    State(http): State<HttpState>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let state = http.app.clone();
    let schema = http.schema.clone();
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .max_message_size(http.app.config.max_body_bytes)
        .on_upgrade(move |stream| {
            let executor = SocketExecutor {
                schema,
                state: state.clone(),
            };
            GraphQLWebSocket::new(stream, executor, protocol)
                .on_connection_init(move |payload| async move {
                    let token = ["token", "authToken", "Authorization", "authorization"]
                        .iter()
                        .find_map(|key| payload.get(*key).and_then(|v| v.as_str()))
                        .map(|raw| {
                            raw.strip_prefix("Bearer ")
                                .unwrap_or(raw)
                                .trim()
                                .to_string()
                        });
                    let credential = WsCredential { token };
                    if let Auth::Rejected = credential.resolve(&state).await {
                        return Err(async_graphql::Error::new(
                            "the session or API key is invalid, expired or revoked",
                        ));
                    }
                    // Only the token is kept: every operation resolves it again.
                    let mut data = Data::default();
                    data.insert(credential);
                    Ok(data)
                })
                .serve()
        })
}

/// A download link's file (contact exports, the import sample); see contacts/export.rs.
async fn download(
    State(http): State<HttpState>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Response {
    crate::contacts::export::serve(http.app.clone(), &token).await
}

/// A file of a conversation, by capability link (see conversations/attachments.rs).
async fn media(
    State(http): State<HttpState>,
    path: axum::extract::Path<(String, String)>,
) -> Response {
    crate::conversations::attachments::serve(State(http.app.clone()), path).await
}

/// A provider's webhook delivery (see channels/webhook.rs).
async fn webhook(
    State(http): State<HttpState>,
    path: axum::extract::Path<(String, String)>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    crate::channels::webhook::receive(State(http.app.clone()), path, method, uri, headers, body)
        .await
}

async fn readyz(State(http): State<HttpState>) -> Response {
    let check = tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query("select 1").execute(http.app.db.pool()),
    )
    .await;
    match check {
        Ok(Ok(_)) => (StatusCode::OK, "ready").into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response(),
    }
}

async fn metrics_text(State(http): State<HttpState>) -> Response {
    let pool = http.app.db.pool();
    metrics::gauge!("obrol_db_pool_connections").set(pool.size() as f64);
    metrics::gauge!("obrol_db_pool_idle_connections").set(pool.num_idle() as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        http.metrics.render(),
    )
        .into_response()
}

async fn track_requests(request: Request, next: Next) -> Response {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("obrol_http_requests_total", "path" => path.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("obrol_http_request_duration_seconds", "path" => path)
        .record(started.elapsed().as_secs_f64());
    response
}
