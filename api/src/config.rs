//! Configuration from `OBROL_*` environment variables, with defaults that run locally.
//! The README's configuration table lists every variable read here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};

#[derive(Clone, Debug)]
pub struct Config {
    /// Address the HTTP server binds (`OBROL_LISTEN`); port 0 picks a free port.
    pub listen: SocketAddr,
    /// External PostgreSQL (`DATABASE_URL`); `None` runs the embedded cluster.
    pub database_url: Option<String>,
    /// Where the embedded cluster, the secret key and demo credentials live (`OBROL_DATA_DIR`).
    pub data_dir: PathBuf,
    /// Directory of `initdb`, `pg_ctl` and `postgres` (`OBROL_PG_BIN`).
    pub pg_bin: Option<PathBuf>,
    /// 32-byte key sealing secrets at rest (`OBROL_SECRET_KEY`, hex); generated into the data
    /// directory when unset.
    pub secret_key: Option<String>,
    pub session_ttl: Duration,
    /// How long a resolved session or API key may be served from memory
    /// (`OBROL_CREDENTIAL_CACHE_SECONDS`; 0 turns the cache off). Changes are pushed to every
    /// node at once; this only bounds the damage of a lost notification.
    pub credential_cache_ttl: Duration,
    pub invite_ttl: Duration,
    pub db_max_connections: u32,
    /// How many events a real-time subscriber may be behind before it is told it missed
    /// some (`EVENTS_MISSED`) (`OBROL_EVENT_BUFFER`).
    pub event_buffer: usize,
    pub max_body_bytes: usize,
    pub log_json: bool,
    /// node_modules holding GraphiQL and React for the IDE page (`OBROL_GRAPHIQL_ASSETS`).
    pub graphiql_assets: PathBuf,
    /// Seed the demo company on first start of the embedded cluster (`OBROL_SEED_DEMO`).
    pub seed_demo: bool,
    pub knowledge: KnowledgeConfig,
    pub channels: ChannelsConfig,
}

#[derive(Clone, Debug)]
pub struct ChannelsConfig {
    /// The address providers reach this server at (`OBROL_PUBLIC_URL`, such as
    /// https://obrol.example.com): webhook URLs shown to admins, Twilio's signed URL and
    /// status callbacks. Unset: the Host a request came to (and the bound address).
    pub public_url: Option<String>,
    /// Replaces scheme, host and port of every provider API (`OBROL_CHANNEL_API_BASE`;
    /// for tests, which point it at a local fake provider).
    pub api_base: Option<String>,
    /// Workers sending outbound messages in this process (`OBROL_SEND_WORKERS`).
    pub send_workers: usize,
    /// Limit on one provider call (`OBROL_PROVIDER_TIMEOUT_SECONDS`).
    pub provider_timeout: Duration,
    /// Reverse proxies in front of this server (`OBROL_TRUSTED_PROXIES`, comma-separated
    /// addresses): from them, the client's address is read from `X-Forwarded-For`.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

/// Where knowledge vectors come from.
#[derive(Clone, Debug)]
pub enum EmbeddingsConfig {
    /// all-MiniLM-L6-v2 in-process, from this directory (`OBROL_EMBEDDING_MODEL_DIR`).
    Local { model_dir: PathBuf },
    /// An OpenAI-compatible `/embeddings` endpoint (`OBROL_EMBEDDINGS=openai`).
    OpenAi {
        base_url: String,
        api_key: String,
        model: String,
    },
}

#[derive(Clone, Debug)]
pub struct KnowledgeConfig {
    pub embeddings: EmbeddingsConfig,
    /// Uploaded and fetched files (`OBROL_FILES_DIR`, default `<data dir>/files`).
    pub files_dir: PathBuf,
    /// This node's full-text index (`OBROL_INDEX_DIR`, default `<data dir>/index`).
    pub index_dir: PathBuf,
    /// Lets knowledge URLs reach private and loopback addresses (`OBROL_KNOWLEDGE_ALLOW_PRIVATE_URLS`;
    /// for tests only: with it, the server can be made to fetch internal services).
    pub allow_private_urls: bool,
    /// Where Google Docs/Sheets exports are fetched from (`OBROL_GOOGLE_DOCS_BASE`).
    pub google_docs_base: String,
    /// Limit on reading one file in the isolated reader (`OBROL_EXTRACT_TIMEOUT_SECONDS`).
    pub extract_timeout: Duration,
    /// Memory one isolated reader may use (`OBROL_EXTRACT_MEMORY_MB`).
    pub extract_memory_mb: u64,
    /// Limit on fetching one web page (`OBROL_FETCH_TIMEOUT_SECONDS`).
    pub fetch_timeout: Duration,
    /// Workers that fetch and extract knowledge sources in this process (`OBROL_JOB_WORKERS`).
    pub job_workers: usize,
    /// Workers that embed passages in this process (`OBROL_EMBEDDING_WORKERS`). One is
    /// enough for the local model, which uses every core for one batch.
    pub embedding_workers: usize,
    /// How long a job stays claimed by a worker that stopped answering
    /// (`OBROL_JOB_LEASE_SECONDS`); after it, another worker takes the job over.
    pub job_lease: Duration,
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        let listen = env_or("OBROL_LISTEN", "127.0.0.1:8080")
            .parse()
            .context("OBROL_LISTEN must be an address such as 127.0.0.1:8080")?;
        let database_url = std::env::var("DATABASE_URL").ok().filter(|v| !v.is_empty());
        let data_dir = PathBuf::from(env_or("OBROL_DATA_DIR", ".obrol"));
        let pg_bin = std::env::var("OBROL_PG_BIN").ok().map(PathBuf::from);
        let secret_key = std::env::var("OBROL_SECRET_KEY")
            .ok()
            .filter(|v| !v.is_empty());
        let session_ttl = Duration::from_secs(3600 * parse_env("OBROL_SESSION_TTL_HOURS", 720)?);
        let credential_cache_ttl =
            Duration::from_secs(parse_env("OBROL_CREDENTIAL_CACHE_SECONDS", 30)?);
        let invite_ttl = Duration::from_secs(3600 * parse_env("OBROL_INVITE_TTL_HOURS", 168)?);
        let db_max_connections = parse_env("OBROL_DB_MAX_CONNECTIONS", 16)?;
        let event_buffer = parse_env("OBROL_EVENT_BUFFER", 1024)?;
        let max_body_bytes = parse_env("OBROL_MAX_BODY_BYTES", 1024 * 1024)?;
        let log_json = match env_or("OBROL_LOG_FORMAT", "text").as_str() {
            "json" => true,
            "text" => false,
            other => bail!("OBROL_LOG_FORMAT must be 'text' or 'json', not '{other}'"),
        };
        let seed_demo = parse_env("OBROL_SEED_DEMO", true)?;
        let graphiql_assets = PathBuf::from(env_or(
            "OBROL_GRAPHIQL_ASSETS",
            "frontend/graphiql/node_modules",
        ));
        let embeddings = match env_or("OBROL_EMBEDDINGS", "local").as_str() {
            "local" => EmbeddingsConfig::Local {
                model_dir: std::env::var_os("OBROL_EMBEDDING_MODEL_DIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| data_dir.join("models/all-MiniLM-L6-v2")),
            },
            "openai" => EmbeddingsConfig::OpenAi {
                base_url: env_or("OBROL_EMBEDDINGS_BASE_URL", "https://api.openai.com/v1"),
                api_key: std::env::var("OBROL_EMBEDDINGS_API_KEY").unwrap_or_default(),
                model: env_or("OBROL_EMBEDDINGS_MODEL", "text-embedding-3-small"),
            },
            other => bail!("OBROL_EMBEDDINGS must be 'local' or 'openai', not '{other}'"),
        };
        let knowledge = KnowledgeConfig {
            embeddings,
            files_dir: std::env::var_os("OBROL_FILES_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| data_dir.join("files")),
            index_dir: std::env::var_os("OBROL_INDEX_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| data_dir.join("index")),
            allow_private_urls: parse_env("OBROL_KNOWLEDGE_ALLOW_PRIVATE_URLS", false)?,
            google_docs_base: env_or("OBROL_GOOGLE_DOCS_BASE", "https://docs.google.com"),
            extract_timeout: Duration::from_secs(parse_env("OBROL_EXTRACT_TIMEOUT_SECONDS", 120)?),
            extract_memory_mb: parse_env("OBROL_EXTRACT_MEMORY_MB", 2048)?,
            fetch_timeout: Duration::from_secs(parse_env("OBROL_FETCH_TIMEOUT_SECONDS", 20)?),
            job_workers: parse_env("OBROL_JOB_WORKERS", 2)?,
            embedding_workers: parse_env("OBROL_EMBEDDING_WORKERS", 1)?,
            job_lease: Duration::from_secs(parse_env::<u64>("OBROL_JOB_LEASE_SECONDS", 60)?.max(2)),
        };
        let public_url = std::env::var("OBROL_PUBLIC_URL")
            .ok()
            .map(|v| v.trim().trim_end_matches('/').to_string())
            .filter(|v| !v.is_empty());
        if let Some(url) = &public_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                bail!("OBROL_PUBLIC_URL must start with https:// or http://, not '{url}'");
            }
        }
        let channels = ChannelsConfig {
            public_url,
            api_base: std::env::var("OBROL_CHANNEL_API_BASE")
                .ok()
                .map(|v| v.trim().trim_end_matches('/').to_string())
                .filter(|v| !v.is_empty()),
            send_workers: parse_env("OBROL_SEND_WORKERS", 4)?,
            provider_timeout: Duration::from_secs(parse_env("OBROL_PROVIDER_TIMEOUT_SECONDS", 15)?),
            trusted_proxies: trusted_proxies(
                &std::env::var("OBROL_TRUSTED_PROXIES").unwrap_or_default(),
            )?,
        };
        Ok(Self {
            channels,
            knowledge,
            listen,
            database_url,
            data_dir,
            pg_bin,
            secret_key,
            session_ttl,
            credential_cache_ttl,
            invite_ttl,
            db_max_connections,
            event_buffer,
            max_body_bytes,
            log_json,
            seed_demo,
            graphiql_assets,
        })
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn parse_env<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(raw) if !raw.is_empty() => raw
            .parse()
            .map_err(|_| anyhow::anyhow!("{name} has an invalid value: '{raw}'")),
        _ => Ok(default),
    }
}

/// `OBROL_TRUSTED_PROXIES`: addresses separated by commas (or spaces).
fn trusted_proxies(value: &str) -> anyhow::Result<Vec<std::net::IpAddr>> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse().map_err(|_| {
                anyhow::anyhow!(
                    "OBROL_TRUSTED_PROXIES: '{part}' is not an IP address (list the proxies' \
                     addresses, separated by commas)"
                )
            })
        })
        .collect()
}
