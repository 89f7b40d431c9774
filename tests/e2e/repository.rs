//! The certificate repository over real HTTPS on 127.0.0.1:0, with the test PKI's TLS
//! certificate.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use ca_tools::repository::{self, RepositoryConfig};
use http_body_util::{BodyExt, Empty};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

/// Starts a repository over a copy of the test PKI's `sp/` and `ca/` folders (keys included,
/// to prove they are not served). Returns its address and the stop handle.
async fn start(dir: &std::path::Path) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    for sub in ["sp/1001", "ca"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for entry in std::fs::read_dir(certs_test::path(sub)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.join(sub).join(path.file_name().unwrap())).unwrap();
        }
    }
    let tls = rest::tls::acceptor_from_pem(
        &std::fs::read(certs_test::path("tls/server.pem")).unwrap(),
        &std::fs::read(certs_test::path("tls/server.key")).unwrap(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = RepositoryConfig {
        dir: dir.to_owned(),
        max_age: 900,
    };
    tokio::spawn(repository::serve(listener, tls, config, async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

fn client_config() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(certs_test::path("tls/root.pem")).unwrap();
    for der in passport::cert::chain_from_pem(&pem).unwrap() {
        roots.add(CertificateDer::from(der)).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> Sender {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(client_config());
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

async fn request(
    sender: &mut Sender,
    method: &str,
    path: &str,
    etag: Option<&str>,
) -> (StatusCode, hyper::HeaderMap, Bytes) {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    if let Some(etag) = etag {
        builder = builder.header("if-none-match", etag);
    }
    sender.ready().await.unwrap();
    let response = sender
        .send_request(builder.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_chains_and_crls_with_caching_headers() {
    let dir = crate::support::tempdir();
    let (addr, _stop) = start(dir.path()).await;
    let mut client = connect(addr).await;

    let chain = std::fs::read(certs_test::path("sp/1001/chain.pem")).unwrap();
    let (status, headers, body) = request(&mut client, "GET", "/sp/1001/chain.pem", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/pem-certificate-chain");
    assert_eq!(headers["cache-control"], "max-age=900");
    assert_eq!(body.as_ref(), chain.as_slice());
    let etag = headers["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");

    let (status, headers, body) =
        request(&mut client, "GET", "/sp/1001/chain.pem", Some(&etag)).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert_eq!(headers["etag"].to_str().unwrap(), etag);
    assert!(body.is_empty());
    let (status, _, _) = request(&mut client, "GET", "/sp/1001/chain.pem", Some("\"other\"")).await;
    assert_eq!(status, StatusCode::OK);

    let (status, headers, body) = request(&mut client, "HEAD", "/sp/1001/chain.pem", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-length"], chain.len().to_string().as_str());
    assert!(body.is_empty());

    let crl = std::fs::read(certs_test::path("ca/intermediate.crl")).unwrap();
    let (status, headers, body) = request(&mut client, "GET", "/ca/intermediate.crl", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/pkix-crl");
    assert_eq!(body.as_ref(), crl.as_slice());

    for path in [
        "/sp/1001/key.pem",
        "/ca/root.key",
        "/ca/../sp/1001/key.pem",
        "/nothing.pem",
        "/ca/README",
    ] {
        let (status, _, body) = request(&mut client, "GET", path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(!String::from_utf8_lossy(&body).contains("PRIVATE KEY"));
    }
    let (status, headers, _) = request(&mut client, "DELETE", "/ca/intermediate.crl", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "GET, HEAD");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_serving_under_concurrent_load() {
    let dir = crate::support::tempdir();
    let (addr, _stop) = start(dir.path()).await;
    let chain = Bytes::from(std::fs::read(certs_test::path("sp/1001/chain.pem")).unwrap());
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let chain = chain.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = connect(addr).await;
            let mut ok = 0;
            for _ in 0..25 {
                let (status, _, body) =
                    request(&mut client, "GET", "/sp/1001/chain.pem", None).await;
                if status == StatusCode::OK && body == chain {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    assert_eq!(total, 32 * 25);
}
