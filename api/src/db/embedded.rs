//! The embedded default: a private PostgreSQL cluster under the data directory.
//!
//! `obrol serve` without `DATABASE_URL` creates the cluster once with `initdb`, starts it with
//! `pg_ctl` on a unix socket and a free loopback port, and stops it on shutdown. PostgreSQL
//! refuses to run as root, so when we are root the cluster belongs to the unprivileged
//! `postgres` OS user and every PostgreSQL program runs through `runuser`. A crashed earlier
//! run is handled: a postmaster that is still alive is reused, a stale `postmaster.pid` is
//! cleared. The superuser password is random, kept in the data directory (mode 0600), and
//! the cluster accepts only password (SCRAM) logins.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgConnectOptions;

pub const SUPERUSER: &str = "obrol";
const OS_USER: &str = "postgres";

/// How the cluster is tuned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// The normal, crash-safe settings.
    Durable,
    /// fsync off: only for throw-away test clusters.
    Throwaway,
}

#[derive(Debug)]
pub struct EmbeddedCluster {
    pg_dir: PathBuf,
    bin_dir: PathBuf,
    run_as_postgres: bool,
    socket_dir: PathBuf,
    port: u16,
    password: String,
    /// Whether this process started the postmaster (rather than finding one running).
    started_here: bool,
}

impl EmbeddedCluster {
    /// Creates the cluster if needed and makes sure it is running. Blocking.
    pub fn ensure_running(
        data_dir: &Path,
        pg_bin: Option<&Path>,
        durability: Durability,
    ) -> anyhow::Result<Self> {
        fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
        let data_dir = data_dir.canonicalize()?;
        let bin_dir = find_bin_dir(pg_bin)?;
        let run_as_postgres = is_root();
        let password = read_or_create_secret(&data_dir.join("pg-superuser-password"))?;
        let pg_dir = prepare_pg_dir(&data_dir, run_as_postgres)?;

        let mut cluster = Self {
            socket_dir: socket_dir_for(&pg_dir),
            pg_dir,
            bin_dir,
            run_as_postgres,
            port: 0,
            password,
            started_here: false,
        };
        if !cluster.pg_dir.join("PG_VERSION").exists() {
            cluster.initdb()?;
        }
        match cluster.running_postmaster() {
            Some(port) => {
                tracing::info!(
                    port,
                    "reusing the embedded PostgreSQL left running by an earlier run"
                );
                cluster.port = port;
            }
            None => {
                cluster.start(durability)?;
                cluster.started_here = true;
            }
        }
        Ok(cluster)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether this process started the cluster. One-off commands (`migrate`, `seed`) stop only
    /// a cluster they started, never the one a running `obrol serve` uses; `serve` owns its
    /// data directory and stops the cluster either way.
    pub fn started_here(&self) -> bool {
        self.started_here
    }

    /// Connection options for `database` over the unix socket, as the superuser.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.socket_dir)
            .port(self.port)
            .username(SUPERUSER)
            .password(&self.password)
            .database(database)
    }

    /// A TCP URL for `database`, for tools such as psql and pgbench.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// Stops the cluster (fast shutdown: open transactions are rolled back). Blocking.
    pub fn stop(&self) -> anyhow::Result<()> {
        let status = self
            .pg_command("pg_ctl")
            .arg("-D")
            .arg(&self.pg_dir)
            .args(["-m", "fast", "-w", "stop"])
            .output()
            .context("cannot run pg_ctl stop")?;
        if !status.status.success() {
            bail!(
                "pg_ctl stop failed: {}",
                String::from_utf8_lossy(&status.stderr).trim()
            );
        }
        Ok(())
    }

    fn initdb(&self) -> anyhow::Result<()> {
        tracing::info!(dir = %self.pg_dir.display(), "creating the embedded PostgreSQL cluster");
        // initdb reads the password from a file the postgres user can read; remove it after.
        let pwfile = self.pg_dir.with_file_name(".pg-initdb-password");
        write_private(&pwfile, self.password.as_bytes())?;
        if self.run_as_postgres {
            let (uid, gid) = postgres_ids()?;
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid))?;
        }
        let output = self
            .pg_command("initdb")
            .arg("-D")
            .arg(&self.pg_dir)
            .args([
                "-U",
                SUPERUSER,
                "-E",
                "UTF8",
                "--no-locale",
                "--auth=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .context("cannot run initdb");
        let _ = fs::remove_file(&pwfile);
        let output = output?;
        if !output.status.success() {
            bail!(
                "initdb failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    fn start(&mut self, durability: Durability) -> anyhow::Result<()> {
        let pid_file = self.pg_dir.join("postmaster.pid");
        if pid_file.exists() {
            clear_stale_pid_file(&pid_file)?;
        }
        self.port = free_port()?;
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c shared_buffers={}MB",
            self.port,
            self.socket_dir.display(),
            shared_buffers_mb()
        );
        if durability == Durability::Throwaway {
            options.push_str(
                " -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
                 -c max_connections=300",
            );
        }
        let output = self
            .pg_command("pg_ctl")
            .arg("-D")
            .arg(&self.pg_dir)
            .arg("-l")
            .arg(self.pg_dir.join("server.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .output()
            .context("cannot run pg_ctl start")?;
        if !output.status.success() {
            let log = fs::read_to_string(self.pg_dir.join("server.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            bail!(
                "PostgreSQL did not start: {}\n{}",
                String::from_utf8_lossy(&output.stderr).trim(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        tracing::info!(port = self.port, "embedded PostgreSQL started");
        Ok(())
    }

    /// The port of a postmaster of this cluster that is still alive, if any.
    fn running_postmaster(&self) -> Option<u16> {
        let pid_file = fs::read_to_string(self.pg_dir.join("postmaster.pid")).ok()?;
        let mut lines = pid_file.lines();
        let pid: u32 = lines.next()?.trim().parse().ok()?;
        let port: u16 = lines.nth(2)?.trim().parse().ok()?;
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let is_postgres = String::from_utf8_lossy(&cmdline).contains("postgres");
        let status = self
            .pg_command("pg_ctl")
            .arg("-D")
            .arg(&self.pg_dir)
            .arg("status")
            .output()
            .ok()?;
        (is_postgres && status.status.success()).then_some(port)
    }

    fn pg_command(&self, program: &str) -> Command {
        let program = self.bin_dir.join(program);
        if self.run_as_postgres {
            let mut command = Command::new("runuser");
            // Our working directory may be one the postgres user cannot enter.
            command
                .current_dir("/")
                .args(["-u", OS_USER, "--"])
                .arg(program);
            command
        } else {
            Command::new(program)
        }
    }
}

fn is_root() -> bool {
    // The effective uid is the third field of the `Uid:` line of /proc/self/status.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?.to_string();
            line.split_whitespace().nth(2).map(|uid| uid == "0")
        })
        .unwrap_or(false)
}

fn postgres_ids() -> anyhow::Result<(u32, u32)> {
    let id = |flag: &str| -> anyhow::Result<u32> {
        let out = Command::new("id").arg(flag).arg(OS_USER).output()?;
        if !out.status.success() {
            bail!("running as root needs the '{OS_USER}' OS user (installed with PostgreSQL); run scripts/bootstrap");
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
    };
    Ok((id("-u")?, id("-g")?))
}

/// Creates `<data_dir>/pg`, owned by the user that will run PostgreSQL. When the postgres
/// user cannot reach a directory under `data_dir` (e.g. it lies under /root), the cluster
/// lives under /var/lib/obrol and `<data_dir>/pg` links to it.
fn prepare_pg_dir(data_dir: &Path, run_as_postgres: bool) -> anyhow::Result<PathBuf> {
    let link = data_dir.join("pg");
    if let Ok(target) = fs::read_link(&link) {
        return Ok(target);
    }
    fs::create_dir_all(&link)?;
    if !run_as_postgres {
        fs::set_permissions(&link, fs::Permissions::from_mode(0o700))?;
        return Ok(link);
    }
    let (uid, gid) = postgres_ids()?;
    std::os::unix::fs::chown(&link, Some(uid), Some(gid))?;
    fs::set_permissions(&link, fs::Permissions::from_mode(0o700))?;
    if postgres_can_write(&link) {
        return Ok(link);
    }
    let digest = hex::encode(&Sha256::digest(data_dir.as_os_str().as_encoded_bytes())[..8]);
    let target = PathBuf::from("/var/lib/obrol/clusters").join(digest);
    tracing::info!(
        target = %target.display(),
        "the postgres user cannot reach the data directory; keeping the cluster elsewhere"
    );
    fs::create_dir_all(&target)?;
    std::os::unix::fs::chown(&target, Some(uid), Some(gid))?;
    fs::set_permissions(&target, fs::Permissions::from_mode(0o700))?;
    fs::remove_dir(&link)?;
    std::os::unix::fs::symlink(&target, &link)?;
    Ok(target)
}

fn postgres_can_write(dir: &Path) -> bool {
    Command::new("runuser")
        .args(["-u", OS_USER, "--", "test", "-w"])
        .arg(dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Unix socket paths are limited to ~107 bytes; long data directories use /tmp instead.
fn socket_dir_for(pg_dir: &Path) -> PathBuf {
    if pg_dir.as_os_str().len() < 80 {
        pg_dir.to_path_buf()
    } else {
        PathBuf::from("/tmp")
    }
}

fn find_bin_dir(configured: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = configured {
        return Ok(dir.to_path_buf());
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((version, bin)) if version >= 15 => Ok(bin),
        _ => bail!(
            "PostgreSQL 15 or newer was not found under /usr/lib/postgresql: \
             run scripts/bootstrap, set OBROL_PG_BIN, or set DATABASE_URL"
        ),
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Reads a secret file, creating it with a random value (mode 0600) the first time.
pub fn read_or_create_secret(path: &Path) -> anyhow::Result<String> {
    if let Ok(meta) = fs::symlink_metadata(path) {
        if meta.file_type().is_symlink() {
            bail!(
                "{} is a symbolic link; refusing to use it as a secret",
                path.display()
            );
        }
        // Tighten a secret file whose permissions were loosened by hand.
        if meta.permissions().mode() & 0o077 != 0 {
            fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
        }
    }
    if let Ok(existing) = fs::read_to_string(path) {
        let existing = existing.trim().to_string();
        if !existing.is_empty() {
            return Ok(existing);
        }
    }
    let secret = hex::encode(rand::random::<[u8; 32]>());
    write_private(path, secret.as_bytes())?;
    Ok(secret)
}

/// Removes `postmaster.pid` only when the process it names is certainly not a running
/// PostgreSQL: PostgreSQL relies on that file to keep two servers off one data directory.
fn clear_stale_pid_file(pid_file: &Path) -> anyhow::Result<()> {
    let text = fs::read_to_string(pid_file).unwrap_or_default();
    match text
        .lines()
        .next()
        .and_then(|line| line.trim().parse::<u32>().ok())
    {
        Some(pid) => {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains("postgres") {
                bail!(
                    "PostgreSQL (pid {pid}) is running on {} but does not answer; stop it or wait",
                    pid_file.parent().unwrap_or(pid_file).display()
                );
            }
        }
        None => {
            // Unreadable: a postmaster may be writing it right now; only an old one is stale.
            let age = fs::metadata(pid_file)?
                .modified()?
                .elapsed()
                .unwrap_or_default();
            if age < std::time::Duration::from_secs(30) {
                bail!(
                    "another PostgreSQL is starting on {}; try again shortly",
                    pid_file.display()
                );
            }
        }
    }
    tracing::warn!("removing a stale postmaster.pid left by a crashed run");
    fs::remove_file(pid_file)?;
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(bytes)?;
    Ok(())
}

/// Stops the cluster under `data_dir` if one is running (used to clean up test clusters).
pub fn stop_if_running(data_dir: &Path, pg_bin: Option<&Path>) -> anyhow::Result<bool> {
    // `pg` may link elsewhere (see `prepare_pg_dir`); PostgreSQL must get the real path.
    let Ok(pg_dir) = data_dir.join("pg").canonicalize() else {
        return Ok(false);
    };
    if !pg_dir.join("postmaster.pid").exists() {
        return Ok(false);
    }
    let cluster = EmbeddedCluster {
        socket_dir: socket_dir_for(&pg_dir),
        pg_dir,
        bin_dir: find_bin_dir(pg_bin)?,
        run_as_postgres: is_root(),
        port: 0,
        password: String::new(),
        started_here: false,
    };
    cluster.stop()?;
    Ok(true)
}

/// PostgreSQL's buffer cache: a quarter of the machine's memory (the usual advice), from 128 MB
/// to 8 GB. PostgreSQL's own default (128 MB) holds about 150,000 contacts; a company of a
/// million needs its table in memory for counts over a filter to stay fast (docs/benchmarks.md).
fn shared_buffers_mb() -> u64 {
    let total_kb = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    (total_kb / 1024 / 4).clamp(128, 8192)
}
