//! TLS to PostgreSQL: a private cluster of the test's own (`initdb`) that
//! accepts only TLS connections, with a certificate authority and a server
//! certificate the test makes with `openssl`. Runs with the PostgreSQL
//! tests (`CONVTRACK_TEST_POSTGRES` set); the machine's PostgreSQL is not
//! touched.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::json;

use crate::process::Served;

/// A PostgreSQL cluster in a temporary folder that speaks TLS only, stopped
/// and removed when dropped.
struct TlsPostgres {
    folder: tempfile::TempDir,
    port: u16,
    /// initdb and postgres refuse to run as root: they run as `postgres`.
    as_postgres: bool,
}

impl TlsPostgres {
    fn start() -> Self {
        let folder = tempfile::Builder::new()
            .prefix("convtrack-tls-pg-")
            .tempdir()
            .expect("temporary folder");
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cluster = Self {
            folder,
            port,
            as_postgres,
        };
        let dir = cluster.folder.path();
        make_certificates(dir);
        if as_postgres {
            run(Command::new("chown").args(["-R", "postgres"]).arg(dir));
        }
        run(cluster
            .tool("initdb")
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]));
        // Local (socket) connections for the test's own checks; over TCP,
        // TLS or nothing.
        std::fs::write(
            dir.join("data/pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .expect("pg_hba.conf");
        let options = format!(
            "-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c ssl=on \
             -c ssl_cert_file={dir}/server.crt -c ssl_key_file={dir}/server.key",
            dir = dir.display()
        );
        run(cluster
            .tool("pg_ctl")
            .arg("-D")
            .arg(dir.join("data"))
            .arg("-l")
            .arg(dir.join("postgres.log"))
            .args(["-o", &options, "-w", "start"]));
        cluster
    }

    fn tool(&self, name: &str) -> Command {
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--", name]);
            command
        } else {
            Command::new(name)
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.folder.path().join(name)
    }

    /// A URL to the cluster over TCP with these query parameters.
    fn url(&self, query: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?{query}",
            self.port
        )
    }

    /// Client connections to the cluster that use TLS, as its own view
    /// (`pg_stat_ssl`) counts them, asked over the local socket.
    fn tls_connections(&self) -> i64 {
        let output = self
            .tool("psql")
            .args(["-h"])
            .arg(self.folder.path())
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-tAc"])
            .arg("SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE s.ssl AND a.backend_type = 'client backend'")
            .output()
            .expect("psql");
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("psql: {}", String::from_utf8_lossy(&output.stderr)))
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(self.folder.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn run(command: &mut Command) {
    let output = command.output().expect("the command runs");
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// In `dir`: `ca.crt` (the authority the server's certificate chains to),
/// `server.crt`/`server.key` for 127.0.0.1 and localhost, and `other-ca.crt`,
/// an authority that signed nothing here.
pub(crate) fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| run(Command::new("openssl").current_dir(dir).args(args));
    for ca in ["ca", "other-ca"] {
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=convtrack test {ca}"),
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.crt"),
        ]);
    }
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n",
    )
    .expect("extensions");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ]);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("the key is private");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_reaches_a_postgresql_that_requires_tls() {
    if std::env::var_os("CONVTRACK_TEST_POSTGRES").is_none() {
        return;
    }
    let cluster = tokio::task::spawn_blocking(TlsPostgres::start)
        .await
        .expect("cluster");
    let ca = cluster.file("ca.crt");
    let verified = cluster.url(&format!("sslmode=verify-full&sslrootcert={}", ca.display()));
    let key_file = cluster.file("first-admin-key");
    let served = Served::start(
        &verified,
        &["--first-admin-key-file", key_file.to_str().expect("path")],
    );
    let admin = std::fs::read_to_string(&key_file).expect("the first key");
    let body = served
        .gql(
            admin.trim(),
            "mutation { startSession(input: { channel: CHAT }) { sessionId } }",
            json!({}),
        )
        .await;
    assert!(
        body["data"]["startSession"]["sessionId"].is_string(),
        "{body}"
    );
    assert!(
        cluster.tls_connections() > 0,
        "the pool's connections are encrypted"
    );
    drop(served);

    // verify-ca and require connect too; without TLS the cluster refuses.
    for (query, connects) in [
        (
            format!("sslmode=verify-ca&sslrootcert={}", ca.display()),
            true,
        ),
        ("sslmode=require".to_owned(), true),
        ("sslmode=disable".to_owned(), false),
    ] {
        let migrated = Command::new(env!("CARGO_BIN_EXE_convtrack"))
            .arg("migrate")
            .env("DATABASE_URL", cluster.url(&query))
            .output()
            .expect("convtrack migrate");
        assert_eq!(
            migrated.status.success(),
            connects,
            "{query}: {}",
            String::from_utf8_lossy(&migrated.stderr)
        );
    }

    // An authority that did not sign the server's certificate: refused at
    // start, saying why.
    let wrong = cluster.url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        cluster.file("other-ca.crt").display()
    ));
    let refused = tokio::process::Command::new(env!("CARGO_BIN_EXE_convtrack"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", &wrong)
        .output()
        .await
        .expect("convtrack serve");
    assert!(!refused.status.success(), "a wrong CA must not connect");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("certificate") && stderr.contains("PostgreSQL"),
        "a clear startup error: {stderr}"
    );
}
