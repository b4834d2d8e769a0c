//! `convtrack serve` run as a process, as an operator runs it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// `convtrack serve` started as a process, stopped when dropped.
pub struct Served {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// Its standard output, line by line, as a thread reads it.
    printed: std::sync::mpsc::Receiver<String>,
    /// The log line saying it listens.
    pub listening: String,
}

impl Served {
    pub fn start(database_url: &str, args: &[&str]) -> Self {
        Self::start_with_env(database_url, args, &[])
    }

    /// As [`Served::start`], with these environment variables set.
    pub fn start_with_env(database_url: &str, args: &[&str], vars: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_convtrack"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .envs(vars.iter().copied())
            .env("DATABASE_URL", database_url)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start convtrack serve");
        let stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let listening = stderr
            .lines()
            .map_while(Result::ok)
            .find(|line| line.contains("convtrack listening"))
            .unwrap_or_else(|| panic!("convtrack serve {args:?} did not start"));
        let port = listening
            // `address=127.0.0.1:PORT` in text, `"address":"127.0.0.1:PORT"` in JSON.
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .unwrap_or_else(|| panic!("no address in {listening}"));
        let address = format!("http://127.0.0.1:{port}");
        // Stdout is read by a thread that ends with the child, so that the
        // server never blocks on a full pipe.
        let stdout = child.stdout.take().expect("stdout");
        let (lines, printed) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        Self {
            child,
            address,
            printed,
            listening,
        }
    }

    /// What it printed on standard output, up to the first line that
    /// contains `marker` (5 s at most for each line).
    pub fn printed_until(&self, marker: &str) -> Vec<String> {
        let mut printed = Vec::new();
        while let Ok(line) = self.printed.recv_timeout(std::time::Duration::from_secs(5)) {
            let found = line.contains(marker);
            printed.push(line);
            if found {
                return printed;
            }
        }
        panic!("no line with {marker:?} on standard output: {printed:?}");
    }

    /// Stops the server; everything it printed on standard output that was
    /// not read yet.
    pub fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The reader thread ends at the pipe's end, closing the channel.
        self.printed.iter().collect()
    }

    pub fn listen(&self) -> &str {
        self.address.trim_start_matches("http://")
    }

    pub async fn gql(
        &self,
        key: &str,
        query: &str,
        variables: serde_json::Value,
    ) -> serde_json::Value {
        crate::helpers::graphql_at(
            &reqwest::Client::new(),
            &self.address,
            key,
            query,
            variables,
        )
        .await
    }

    /// The status `/l/{token}` answers with.
    pub async fn follow(&self, token: &str) -> u16 {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
            .get(format!("{}/l/{token}", self.address))
            .send()
            .await
            .expect("answer")
            .status()
            .as_u16()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `convtrack healthcheck --listen ADDRESS`'s exit status.
pub async fn healthcheck(listen: &str) -> bool {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_convtrack"))
        .args(["healthcheck", "--listen", listen])
        .output()
        .await
        .expect("run convtrack healthcheck")
        .status
        .success()
}
