//! A convtrack server the scenario can kill with `kill -9` and start again
//! on the same address, with what it needs to watch it: memory, open
//! file descriptors, pool gauges.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::server::{Server, free_port, wait_ready};

pub struct Instance {
    bin: PathBuf,
    database_url: String,
    addr: String,
    server: Option<Server>,
    http: reqwest::Client,
    /// Added to the server's environment.
    env: Vec<(&'static str, String)>,
}

impl Instance {
    /// Starts a server on a free port and waits until it is ready.
    pub async fn start(bin: &Path, database_url: &str) -> Result<Self, String> {
        Self::start_with(bin, database_url, Vec::new()).await
    }

    /// [`Self::start`] with `env` added to the server's environment.
    pub async fn start_with(
        bin: &Path,
        database_url: &str,
        env: Vec<(&'static str, String)>,
    ) -> Result<Self, String> {
        let mut instance = Self {
            env,
            bin: bin.to_owned(),
            database_url: database_url.to_owned(),
            addr: format!("127.0.0.1:{}", free_port()?),
            server: None,
            http: reqwest::Client::new(),
        };
        instance.restart().await?;
        Ok(instance)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://127.0.0.1:PORT/graphql`.
    pub fn socket(&self) -> String {
        format!("ws://{}/graphql", self.addr)
    }

    /// SIGKILL: the process gets no chance to finish anything.
    pub fn kill9(&mut self) {
        // Dropping the server sends SIGKILL and reaps the process.
        self.server = None;
    }

    /// Starts the server (again) on the same address; how long until it
    /// answered `/readyz` with 200.
    pub async fn restart(&mut self) -> Result<Duration, String> {
        let started = Instant::now();
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut server = Server::start_under(&[], &self.bin, &self.database_url, &self.addr, &env)?;
        wait_ready(&self.http, &mut server, &self.base()).await?;
        self.server = Some(server);
        Ok(started.elapsed())
    }

    /// Whether the process runs: not after `kill9`, nor if it exited.
    pub fn running(&mut self) -> bool {
        self.server.as_mut().is_some_and(Server::running)
    }

    /// Resident memory now, in kB.
    pub fn rss_kb(&self) -> Option<u64> {
        self.server.as_ref()?.rss_kb()
    }

    /// Open file descriptors now.
    pub fn open_fds(&self) -> Option<usize> {
        let pid = self.server.as_ref()?.pid();
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .ok()
            .map(|d| d.count())
    }

    /// (connections open, in use, max) from `/metrics`.
    pub async fn pool(&self) -> Option<(f64, f64, f64)> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base()))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let gauge = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        };
        Some((
            gauge("convtrack_db_pool_connections")?,
            gauge("convtrack_db_pool_in_use")?,
            gauge("convtrack_db_pool_max")?,
        ))
    }
}
