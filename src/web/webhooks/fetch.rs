//! A small HTTPS GET client for the two requests the SNS webhook makes: the
//! signing certificate (`SigningCertURL`) and the subscription confirmation
//! (`SubscribeURL`).
//!
//! It is hyper's HTTP/1.1 client connection over tokio-rustls with the
//! Mozilla roots (`webpki-roots`), ring as the crypto provider. All of these
//! are already in the build for axum and lettre, so this costs a few feature
//! flags instead of reqwest and its dependency tree. No redirects are
//! followed, one request per connection, with an overall timeout and a cap on
//! the body size. The caller checks the URL (https, allowed host) first.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, Request, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Why a GET failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("not an https URL with a host: {0}")]
    BadUrl(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("connecting: {0}")]
    Connect(#[source] std::io::Error),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("the reply is larger than {0} bytes")]
    TooLarge(usize),
}

/// An HTTPS client (cheap to clone).
#[derive(Clone)]
pub struct Https {
    tls: TlsConnector,
    timeout: Duration,
    max_bytes: usize,
}

impl std::fmt::Debug for Https {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Https")
            .field("timeout", &self.timeout)
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

/// A reply: its status and body.
#[derive(Debug)]
pub struct Fetched {
    pub status: u16,
    pub body: Bytes,
}

impl Https {
    /// A client trusting the Mozilla roots.
    pub fn new(timeout: Duration, max_bytes: usize) -> anyhow::Result<Https> {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Https {
            tls: TlsConnector::from(Arc::new(config)),
            timeout,
            max_bytes,
        })
    }

    /// GETs `uri` (https only).
    pub async fn get(&self, uri: &Uri) -> Result<Fetched, FetchError> {
        tokio::time::timeout(self.timeout, self.get_inner(uri))
            .await
            .map_err(|_| FetchError::Timeout(self.timeout))?
    }

    async fn get_inner(&self, uri: &Uri) -> Result<Fetched, FetchError> {
        let bad = || FetchError::BadUrl(uri.to_string());
        if uri.scheme_str() != Some("https") {
            return Err(bad());
        }
        let host = uri.host().ok_or_else(bad)?;
        let port = uri.port_u16().unwrap_or(443);
        let name = ServerName::try_from(host.to_string()).map_err(|_| bad())?;
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(FetchError::Connect)?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(FetchError::Connect)?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| FetchError::Http(e.to_string()))?;
        let driver = tokio::spawn(conn);
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let request = Request::get(path)
            .header(header::HOST, host)
            .header(header::USER_AGENT, "whatsup-webhooks")
            .body(Empty::<Bytes>::new())
            .map_err(|e| FetchError::Http(e.to_string()))?;
        let result = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| FetchError::Http(e.to_string()))?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), self.max_bytes)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        FetchError::TooLarge(self.max_bytes)
                    } else {
                        FetchError::Http(e.to_string())
                    }
                })?
                .to_bytes();
            Ok(Fetched { status, body })
        }
        .await;
        driver.abort();
        result
    }
}
