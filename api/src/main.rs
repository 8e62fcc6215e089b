//! The `obrol` command: `serve` (the default), `migrate`, `schema`, `seed`.

use clap::{Parser, Subcommand};
use obrol_api::app::{open_database, App};
use obrol_api::config::Config;

#[derive(Parser)]
#[command(
    name = "obrol",
    version,
    about = "Obrol: omnichannel conversational AI, self-hosted"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Start the API server (the embedded PostgreSQL when DATABASE_URL is unset).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Create the demo company if it does not exist and print its credentials.
    Seed,
    /// Rebuild this node's full-text index of knowledge passages from PostgreSQL.
    Reindex,
    /// Internal: read one document from stdin in isolation (the server starts this itself).
    #[command(hide = true)]
    ExtractWorker {
        #[arg(long)]
        mode: obrol_knowledge::extract::isolated::Mode,
        #[arg(long)]
        name: Option<String>,
    },
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OBROL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The isolated document reader runs before any runtime or logging exists: it reads
    // stdin, writes one JSON answer, and exits.
    if let Some(Command::ExtractWorker { mode, name }) = &cli.command {
        std::process::exit(obrol_knowledge::extract::isolated::child_main(
            *mode,
            name.as_deref(),
        ));
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::Schema) = cli.command {
        print!("{}", obrol_api::graphql::sdl());
        return Ok(());
    }
    let config = Config::from_env()?;
    init_logging(config.log_json);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            let database = open_database(&config).await?;
            obrol_api::db::migrate(&database.options).await?;
            println!("database is up to date");
            stop(database.cluster).await
        }
        Command::Seed => {
            let config = Config {
                listen: "127.0.0.1:0".parse()?,
                seed_demo: false,
                ..config
            };
            let app = App::build(config).await?;
            match obrol_api::seed::ensure_demo(&app.state).await? {
                Some(demo) => println!("demo login: {} / {}", demo.email, demo.password),
                None => println!("the demo company exists; its password is not known here"),
            }
            app.close().await
        }
        Command::Reindex => {
            let config = Config {
                listen: "127.0.0.1:0".parse()?,
                seed_demo: false,
                ..config
            };
            let app = App::build(config).await?;
            let sources = obrol_api::knowledge::index::rebuild(&app.state).await?;
            println!(
                "full-text index rebuilt: {sources} sources, {} passages",
                app.state.knowledge.fulltext.num_docs()
            );
            app.close().await
        }
        Command::Schema | Command::ExtractWorker { .. } => unreachable!("handled above"),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = App::build(config).await?;
    app.start_background();
    let url = format!("http://{}", app.address);
    if let Some(demo) = &app.demo {
        println!("demo login: {} / {}", demo.email, demo.password);
    }
    // Tests and scripts read this line to learn the address; it comes last.
    println!("GraphQL API and GraphiQL: {url}/graphql");
    println!("obrol listening on {url}");
    app.serve().await
}

/// Stops the embedded cluster if this command started it (never one `obrol serve` is using).
async fn stop(cluster: Option<obrol_api::db::embedded::EmbeddedCluster>) -> anyhow::Result<()> {
    if let Some(cluster) = cluster.filter(|c| c.started_here()) {
        tokio::task::spawn_blocking(move || cluster.stop()).await??;
    }
    Ok(())
}
