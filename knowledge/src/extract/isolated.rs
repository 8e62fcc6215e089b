//! Runs extraction in a child process with a time limit and a memory limit.
//!
//! The child is the server's own binary started with a hidden subcommand (`obrol
//! extract-worker`), which calls [`child_main`]: it reads the file from stdin and writes one
//! JSON result to stdout. Whatever the parser does (panic, endless loop, unbounded
//! allocation, stack overflow), the parent sees a result, a timeout or a dead child, and turns
//! the last two into a clear [`ExtractError`].

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ExtractError, Inspection};
use crate::document::Extracted;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Inspect,
    Extract,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Inspect => "inspect",
            Mode::Extract => "extract",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "inspect" => Ok(Mode::Inspect),
            "extract" => Ok(Mode::Extract),
            other => Err(format!("unknown mode {other}")),
        }
    }
}

/// How to start the child and what it may use.
#[derive(Clone, Debug)]
pub struct Isolation {
    pub program: PathBuf,
    /// Arguments before `--mode ... --name ...` (e.g. `["extract-worker"]`).
    pub args: Vec<String>,
    pub timeout: Duration,
    /// Address-space limit of the child, in bytes.
    pub memory_bytes: u64,
}

#[derive(Serialize, Deserialize)]
enum Reply {
    Inspected(Result<Inspection, ExtractError>),
    Extracted(Result<Extracted, ExtractError>),
}

/// The child's side: stdin in, one JSON reply out. Returns the process exit code.
pub fn child_main(mode: Mode, name: Option<&str>) -> i32 {
    let mut bytes = Vec::new();
    if std::io::stdin().read_to_end(&mut bytes).is_err() {
        return 2;
    }
    let reply = match mode {
        Mode::Inspect => Reply::Inspected(super::inspect(&bytes, name)),
        Mode::Extract => Reply::Extracted(super::extract(&bytes, name)),
    };
    let mut out = std::io::stdout().lock();
    match serde_json::to_writer(&mut out, &reply) {
        Ok(()) => {
            let _ = out.flush();
            0
        }
        Err(_) => 3,
    }
}

pub async fn inspect(
    isolation: &Isolation,
    bytes: &[u8],
    name: Option<&str>,
) -> Result<Inspection, ExtractError> {
    match run(isolation, Mode::Inspect, bytes, name).await? {
        Reply::Inspected(result) => result,
        Reply::Extracted(_) => Err(ExtractError::Crashed("the reader answered oddly".into())),
    }
}

pub async fn extract(
    isolation: &Isolation,
    bytes: &[u8],
    name: Option<&str>,
) -> Result<Extracted, ExtractError> {
    match run(isolation, Mode::Extract, bytes, name).await? {
        Reply::Extracted(result) => result,
        Reply::Inspected(_) => Err(ExtractError::Crashed("the reader answered oddly".into())),
    }
}

async fn run(
    isolation: &Isolation,
    mode: Mode,
    bytes: &[u8],
    name: Option<&str>,
) -> Result<Reply, ExtractError> {
    let mut command = tokio::process::Command::new(&isolation.program);
    command
        .args(&isolation.args)
        .arg("--mode")
        .arg(mode.as_str());
    if let Some(name) = name {
        command.arg("--name").arg(name);
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("RUST_BACKTRACE", "0")
        .kill_on_drop(true);
    let memory = isolation.memory_bytes;
    // SAFETY: between fork and exec only async-signal-safe calls are allowed; setrlimit is.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: memory as libc::rlim_t,
                rlim_max: memory as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| ExtractError::Crashed(format!("the reader could not be started ({e})")))?;
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let input = bytes.to_vec();
    let work = async move {
        let feed = async {
            if let Some(stdin) = stdin.as_mut() {
                // A child that dies early closes the pipe; its exit status tells why.
                let _ = stdin.write_all(&input).await;
                let _ = stdin.shutdown().await;
            }
            drop(stdin.take());
        };
        let mut out = Vec::new();
        let mut err = Vec::new();
        let read_out = async {
            if let Some(s) = stdout.as_mut() {
                let _ = s.read_to_end(&mut out).await;
            }
        };
        let read_err = async {
            if let Some(s) = stderr.as_mut() {
                let _ = s.take(64 * 1024).read_to_end(&mut err).await;
            }
        };
        tokio::join!(feed, read_out, read_err);
        let status = child.wait().await;
        (status, out, err)
    };
    let (status, out, err) = match tokio::time::timeout(isolation.timeout, work).await {
        Ok(done) => done,
        // Dropping the future drops the child, which kill_on_drop kills.
        Err(_) => return Err(ExtractError::TimedOut(isolation.timeout.as_secs().max(1))),
    };
    let status = status.map_err(|e| ExtractError::Crashed(format!("the reader was lost ({e})")))?;
    if status.success() {
        return serde_json::from_slice(&out).map_err(|e| {
            ExtractError::Crashed(format!("the reader's answer was unreadable ({e})"))
        });
    }
    let stderr = String::from_utf8_lossy(&err);
    let out_of_memory = stderr.contains("memory allocation")
        || stderr.contains("out of memory")
        || stderr.contains("capacity overflow");
    let detail = if out_of_memory {
        format!(
            "it needs more than the {} MB of memory a file may use",
            isolation.memory_bytes / (1024 * 1024)
        )
    } else if stderr.contains("panicked") {
        "the reader hit an internal error on this file".to_string()
    } else {
        use std::os::unix::process::ExitStatusExt;
        match status.signal() {
            Some(signal) => format!("the reader stopped with signal {signal}"),
            None => format!(
                "the reader failed (exit code {})",
                status.code().unwrap_or(-1)
            ),
        }
    };
    tracing::warn!(%detail, stderr = %stderr.chars().take(500).collect::<String>(), "isolated extraction failed");
    Err(ExtractError::Crashed(detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(script: &str, timeout: Duration) -> Isolation {
        Isolation {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into(), "sh".into()],
            timeout,
            memory_bytes: 1 << 30,
        }
    }

    #[tokio::test]
    async fn a_hanging_reader_is_stopped() {
        let started = std::time::Instant::now();
        let err = extract(&shell("sleep 30", Duration::from_millis(300)), b"x", None)
            .await
            .unwrap_err();
        assert_eq!(err, ExtractError::TimedOut(1));
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn a_crashing_reader_is_reported() {
        let err = extract(
            &shell("cat >/dev/null; kill -SEGV $$", Duration::from_secs(10)),
            b"x",
            None,
        )
        .await
        .unwrap_err();
        assert_eq!(
            err,
            ExtractError::Crashed("the reader stopped with signal 11".into())
        );
        let err = extract(
            &shell(
                "cat >/dev/null; echo \"thread 'main' panicked at x\" >&2; exit 101",
                Duration::from_secs(10),
            ),
            b"x",
            None,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ExtractError::Crashed(m) if m.contains("internal error")));
    }
}
