//! Webhook deliveries over HTTPS: the target's certificate must chain to a
//! trusted authority — here one the operator adds with
//! `--webhook-ca-file` (the test's own, made with openssl).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use convtrack::config::ServerConfig;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::json;

use crate::helpers::*;

/// The test authority and a certificate for 127.0.0.1 it signed, made once
/// per test run.
fn certificates() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("webhook-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory");
        crate::tls::make_certificates(&dir);
        dir
    })
}

fn trust_the_test_authority(config: &mut ServerConfig) {
    config.webhook_ca_file = Some(certificates().join("ca.crt"));
}

/// An HTTPS receiver on 127.0.0.1 with the test certificate; its URL and
/// the `webhook-id`s it got.
async fn tls_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = certificates();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.crt"))
        .expect("certificate")
        .collect::<Result<_, _>>()
        .expect("certificate");
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).expect("key");
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bound");
    let address = listener.local_addr().expect("address");
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let seen = seen.clone();
                        async move {
                            let id = request
                                .headers()
                                .get("webhook-id")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned();
                            let _ = request.into_body().collect().await;
                            seen.lock().expect("seen").push(id);
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                Bytes::new(),
                            )))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (format!("https://127.0.0.1:{}/hook", address.port()), got)
}

test_both!(
    deliveries_go_over_https_to_a_target_of_a_trusted_authority,
    with trust_the_test_authority,
    |app| {
        let (url, got) = tls_receiver().await;
        let body = app
            .gql(
                &app.admin,
                "mutation($url: String!) { createWebhookEndpoint(input: { url: $url }) { endpoint { id } } }",
                json!({ "url": url }),
            )
            .await;
        let id = data(&body, "createWebhookEndpoint")["endpoint"]["id"].clone();
        let session = app.start_session(Channel::Chat).await;
        app.record_conversion(&session, ConversionKind::TourBooked, "v-tls")
            .await;
        for _ in 0..2_000 {
            if !got.lock().expect("got").is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let ids = got.lock().expect("got").clone();
        assert_eq!(ids.len(), 1, "{ids:?}");
        assert!(ids[0].starts_with("evt_"));
        let log = loop {
            let body = app
                .gql(
                    &app.admin,
                    "query($id: ID!) { webhookDeliveries(endpointId: $id) { nodes { status lastStatusCode } } }",
                    json!({ "id": id }),
                )
                .await;
            let node = data(&body, "webhookDeliveries")["nodes"][0].clone();
            if node["status"] == "DELIVERED" {
                break node;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(log["lastStatusCode"], 200);
    }
);
