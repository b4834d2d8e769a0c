//! One webhook POST, made so that a target cannot turn the server against
//! its own network: the host's addresses are resolved here and checked
//! (public only, unless the operator allows the host), and the connection
//! goes to the address that was checked — a name that resolves to a public
//! address when checked and a private one when connecting cannot slip
//! through. No redirects are followed; the whole exchange has a deadline;
//! at most [`MAX_RESPONSE_BYTES`] of the answer are read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use url::Url;

use crate::domain::webhook;

/// Longest an attempt may take, connecting and answering included.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The most of an answer that is read (the rest is dropped).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The endpoint answered with this status.
    Status(u16),
    /// No answer: why (never the response body, which may be anything).
    Failed(String),
}

/// One request to make.
pub struct Post<'a> {
    pub url: &'a Url,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

/// Makes the request; `allowed_hosts` skip the public-address check; an
/// HTTPS target must chain to an authority of `tls`.
pub async fn send(
    post: Post<'_>,
    allowed_hosts: &[String],
    tls: &Arc<rustls::ClientConfig>,
) -> (Answer, Duration) {
    let started = Instant::now();
    let answer = match tokio::time::timeout(TIMEOUT, exchange(post, allowed_hosts, tls)).await {
        Ok(Ok(status)) => Answer::Status(status),
        Ok(Err(why)) => Answer::Failed(why),
        Err(_) => Answer::Failed(format!("no answer within {} s", TIMEOUT.as_secs())),
    };
    (answer, started.elapsed())
}

async fn exchange(
    post: Post<'_>,
    allowed_hosts: &[String],
    tls: &Arc<rustls::ClientConfig>,
) -> Result<u16, String> {
    let url = post.url;
    let host = url.host_str().ok_or("the URL has no host")?.to_owned();
    let port = url.port_or_known_default().ok_or("the URL has no port")?;
    let address = checked_address(&host, port, allowed_hosts).await?;
    let tcp = TcpStream::connect(address)
        .await
        .map_err(|e| format!("connecting to {address}: {}", e.kind()))?;
    tcp.set_nodelay(true).ok();
    if url.scheme() == "https" {
        let name =
            rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                .map_err(|_| "the host is not a valid TLS server name".to_owned())?;
        let tls = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        request(tls, post).await
    } else {
        request(tcp, post).await
    }
}

/// The address to connect to: the first the host resolves to, all of
/// which must be public unless the host is allowed.
async fn checked_address(
    host: &str,
    port: u16,
    allowed_hosts: &[String],
) -> Result<SocketAddr, String> {
    let bare = host.trim_matches(['[', ']']);
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|_| format!("{host} does not resolve"))?
        .collect();
    let first = *addresses
        .first()
        .ok_or_else(|| format!("{host} does not resolve"))?;
    if webhook::host_is_allowed(host, allowed_hosts) {
        return Ok(first);
    }
    // Every address is checked, not only the one used: a name that mixes
    // public and private addresses is refused outright.
    if let Some(private) = addresses
        .iter()
        .find(|a| !webhook::address_is_public(a.ip()))
    {
        return Err(format!(
            "{host} resolves to {}, which is not a public address",
            private.ip()
        ));
    }
    Ok(first)
}

async fn request<S>(stream: S, post: Post<'_>) -> Result<u16, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let driver = tokio::spawn(connection);
    let url = post.url;
    let mut target = url.path().to_owned();
    if let Some(query) = url.query() {
        target.push('?');
        target.push_str(query);
    }
    let authority = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let mut builder = hyper::Request::post(target)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::USER_AGENT, "convtrack-webhooks/1");
    for (name, value) in post.headers {
        builder = builder.header(name, value);
    }
    let request = builder
        .body(Full::new(post.body))
        .map_err(|e| format!("building the request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let status = response.status().as_u16();
    // Read (a bounded part of) the answer so the exchange ends cleanly;
    // what it says is not kept.
    let _ = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await;
    driver.abort();
    Ok(status)
}

/// Trusts the Mozilla root certificates (webpki-roots), as a browser
/// would, and the authorities in `ca_file` (PEM), if given.
pub fn tls_config(ca_file: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(file) = ca_file {
        let certificates = CertificateDer::pem_file_iter(file)
            .map_err(|e| format!("{}: {e}", file.display()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{}: {e}", file.display()))?;
        if certificates.is_empty() {
            return Err(format!("{} holds no certificate", file.display()));
        }
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|e| format!("{}: {e}", file.display()))?;
        }
    }
    // ring, as for the database connections: the provider rustls now
    // prefers (aws-lc-rs) would add a C library to the build for the one
    // thing ring lacks, post-quantum key exchange.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
