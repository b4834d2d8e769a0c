//! The processes a benchmark runs beside itself, above all the convtrack
//! server: start one on an address with its output in a temporary log,
//! wait until it is ready, create an API key with its CLI, read its memory
//! from /proc, kill it when done.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempPath;

/// A child process's output: a temporary file, removed on drop unless a
/// message has sent the user to read it.
struct Log {
    /// `None` once kept.
    file: Option<TempPath>,
    path: PathBuf,
}

impl Log {
    /// A new log named `<prefix><random>.log` and the handle for the child's stdout;
    /// clone it for stderr (same offset, so the two interleave in order).
    fn create(prefix: &str) -> Result<(Self, File), String> {
        let (file, path) = tempfile::Builder::new()
            .prefix(prefix)
            .suffix(".log")
            .tempfile()
            .map_err(|e| format!("creating a log file in the temp directory: {e}"))?
            .into_parts();
        let log = Self {
            path: path.to_path_buf(),
            file: Some(path),
        };
        Ok((log, file))
    }

    /// The file's path, from now on left in place after the run: for every
    /// message that sends the user there.
    fn keep(&mut self) -> &Path {
        if let Some(file) = self.file.take() {
            // On Unix keeping only forgets to remove the file: it cannot fail.
            let _ = file.keep();
        }
        &self.path
    }
}

/// A child process with its output in a [`Log`]; killed when dropped, on
/// every path out.
pub struct Process {
    child: Child,
    log: Log,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Spawns `command` with stdout and stderr in a new log named
    /// `<log_prefix><random>.log`.
    pub fn spawn(command: &mut Command, log_prefix: &str) -> Result<Self, String> {
        let (log, out) = Log::create(log_prefix)?;
        let err = out
            .try_clone()
            .map_err(|e| format!("opening {}: {e}", log.path.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| {
                let program = Path::new(command.get_program());
                format!("starting {}: {e}", program.display())
            })?;
        Ok(Self { child, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How the process ended, if it has.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The output file, kept after the run (the caller prints it).
    pub fn keep_log(&mut self) -> &Path {
        self.log.keep()
    }
}

/// The convtrack server process.
pub struct Server(Process);

impl Server {
    pub fn start(bin: &Path, database_url: &str, addr: &str) -> Result<Self, String> {
        Self::start_under(&[], bin, database_url, addr, &[])
    }

    /// Starts the server as the last argument of `launcher` (e.g. valgrind
    /// and its flags; plainly when `launcher` is empty), with `env` added
    /// to its environment.
    pub fn start_under(
        launcher: &[&str],
        bin: &Path,
        database_url: &str,
        addr: &str,
        env: &[(&str, &str)],
    ) -> Result<Self, String> {
        let mut command = match launcher.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(bin);
                command
            }
            None => Command::new(bin),
        };
        command
            .args(["serve", "--listen", addr])
            .env("DATABASE_URL", database_url)
            // Per-request log lines would be part of what is measured; keep
            // the user's RUST_LOG if set, else warnings only.
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            // The benchmark measures the server, not its per-key budget.
            .env("CONVTRACK_RATE_LIMIT_BURST", "1000000000000")
            .env("CONVTRACK_RATE_LIMIT_PER_SECOND", "1000000000000")
            .envs(env.iter().copied());
        let prefix = format!("convtrack-bench-{}-", addr.replace([':', '.'], "_"));
        Process::spawn(&mut command, &prefix).map(Self)
    }

    pub fn pid(&self) -> u32 {
        self.0.pid()
    }

    /// The server's output file, kept after the run (the caller prints it).
    pub fn keep_log(&mut self) -> &Path {
        self.0.keep_log()
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        self.0.exited().is_none()
    }

    /// Why the process is gone, if it is; the message names its log.
    pub fn exited(&mut self) -> Option<String> {
        let status = self.0.exited()?;
        Some(format!(
            "the server exited ({status}); its output is in {}",
            self.keep_log().display()
        ))
    }

    /// Peak resident set size (VmHWM) in MB.
    pub fn peak_rss_mb(&self) -> Option<f64> {
        peak_rss_mb(self.pid())
    }

    /// Resident memory now (VmRSS), in kB.
    pub fn rss_kb(&self) -> Option<u64> {
        kb(status_field(&proc_status(self.pid())?, "VmRSS:")?)
    }

    /// Peak and current resident set size as /proc writes them ("1234 kB").
    pub fn memory(&self) -> Option<(String, String)> {
        let status = proc_status(self.pid())?;
        Some((
            status_field(&status, "VmHWM:")?.to_owned(),
            status_field(&status, "VmRSS:")?.to_owned(),
        ))
    }
}

/// Peak resident set size (VmHWM) of any process, in MB.
pub fn peak_rss_mb(pid: u32) -> Option<f64> {
    let kb = kb(status_field(&proc_status(pid)?, "VmHWM:")?)?;
    Some(kb as f64 / 1024.0)
}

fn proc_status(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status")).ok()
}

/// The trimmed value of the line starting with `name` ("VmHWM:").
fn status_field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(str::trim)
}

/// "1234 kB" → 1234.
fn kb(value: &str) -> Option<u64> {
    value.strip_suffix("kB")?.trim().parse().ok()
}

pub fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

pub async fn wait_ready(
    client: &reqwest::Client,
    server: &mut Server,
    base: &str,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(exit) = server.exited() {
            return Err(exit);
        }
        if let Ok(response) = client.get(format!("{base}/readyz")).send().await
            && response.status() == reqwest::StatusCode::OK
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the server did not answer /readyz with 200 within 2 minutes; its output is in {}",
                server.keep_log().display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An ADMIN key for `tenant`, made by the server binary's own `keys create`.
pub fn create_key(bin: &Path, database_url: &str, tenant: &str) -> Result<String, String> {
    let output = Command::new(bin)
        .args([
            "keys",
            "create",
            "--tenant",
            tenant,
            "--role",
            "ADMIN",
            "--create-tenant",
        ])
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {} keys create: {e}", bin.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} keys create failed ({}): {}",
            bin.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| "keys create printed no key".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_parse_as_kb() {
        let status = "Name:\tconvtrack\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_field(status, "VmHWM:"), Some("20480 kB"));
        assert_eq!(status_field(status, "VmRSS:").and_then(kb), Some(10240));
        assert_eq!(status_field(status, "VmSwap:"), None);
        assert_eq!(kb("12 MB"), None);
    }

    #[test]
    fn a_log_is_removed_unless_kept() {
        let (log, _) = Log::create("convtrack-bench-test-").expect("temp dir");
        let path = log.path.clone();
        assert!(path.exists());
        drop(log);
        assert!(!path.exists());

        let (mut log, _) = Log::create("convtrack-bench-test-").expect("temp dir");
        let kept = log.keep().to_path_buf();
        drop(log);
        assert!(kept.exists());
        std::fs::remove_file(kept).expect("kept log");
    }
}
