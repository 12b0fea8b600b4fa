//! TCP and TLS connections for the mailbox clients: one stream type over a
//! plain or a rustls-encrypted socket, so the IMAP and POP3 code can upgrade
//! a connection in place (STARTTLS, STLS).
//!
//! Certificates are checked against the built-in web PKI roots
//! (`webpki-roots`, as lettre does for SMTP) plus the certificates in the
//! configured `ca_file`, for a server with a private CA.

use std::fmt;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;
use tokio_rustls::TlsConnector;

/// How the connection is protected (the `tls` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain text: only for loopback or a trusted network.
    None,
    /// Plain, then upgraded (IMAP `STARTTLS`, POP3 `STLS`) before logging in.
    StartTls,
    /// TLS from the first byte.
    Tls,
}

impl Security {
    /// Reads `none`, `starttls` or `tls`; `key` names the setting in errors.
    pub fn parse(value: &str, key: &str) -> Result<Security> {
        match value {
            "none" => Ok(Security::None),
            "starttls" => Ok(Security::StartTls),
            "tls" => Ok(Security::Tls),
            other => bail!("{key}: {other:?} is not one of none, starttls, tls"),
        }
    }
}

/// A connection, before or after TLS.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conn::Plain(s) => write!(f, "Conn::Plain({:?})", s.peer_addr().ok()),
            Conn::Tls(s) => write!(f, "Conn::Tls({:?})", s.get_ref().0.peer_addr().ok()),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Where to connect, and how.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// Extra trusted certificates (PEM); `None`: only the built-in roots.
    pub ca_file: Option<std::path::PathBuf>,
    pub timeout: Duration,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Endpoint {
    /// Opens the TCP connection, and the TLS session for implicit TLS.
    pub async fn connect(&self) -> Result<Conn> {
        if self.security == Security::None && !is_loopback(&self.host) {
            tracing::warn!(
                "{self}: tls = \"none\": the password and the messages cross the network unencrypted"
            );
        }
        let tcp = tokio::time::timeout(
            self.timeout,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| anyhow!("connecting to {self}: no answer within {:?}", self.timeout))?
        .with_context(|| format!("connecting to {self}"))?;
        tcp.set_nodelay(true).ok();
        match self.security {
            Security::Tls => self.handshake(tcp).await,
            Security::None | Security::StartTls => Ok(Conn::Plain(tcp)),
        }
    }

    /// Upgrades a plain connection after STARTTLS/STLS was accepted.
    pub async fn upgrade(&self, conn: Conn) -> Result<Conn> {
        match conn {
            Conn::Plain(tcp) => self.handshake(tcp).await,
            Conn::Tls(_) => bail!("{self}: the connection is already encrypted"),
        }
    }

    async fn handshake(&self, tcp: TcpStream) -> Result<Conn> {
        let connector = tls_connector(self.ca_file.as_deref())?;
        let name = ServerName::try_from(self.host.clone()).map_err(|e| {
            anyhow!(
                "{self}: {:?} is not a valid TLS server name: {e}",
                self.host
            )
        })?;
        let tls = tokio::time::timeout(self.timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| {
                anyhow!(
                    "TLS handshake with {self}: no answer within {:?}",
                    self.timeout
                )
            })?
            .with_context(|| format!("TLS handshake with {self}"))?;
        Ok(Conn::Tls(Box::new(tls)))
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A rustls client with the web PKI roots and the certificates of `ca_file`.
fn tls_connector(ca_file: Option<&Path>) -> Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path)
            .with_context(|| format!("reading CA file {}", path.display()))?
        {
            let cert = cert.with_context(|| format!("reading CA file {}", path.display()))?;
            roots
                .add(cert)
                .with_context(|| format!("CA file {}: unusable certificate", path.display()))?;
            added += 1;
        }
        if added == 0 {
            bail!("CA file {}: no PEM certificate in it", path.display());
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("setting up TLS")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Runs `fut` with the timeout, naming `what` and `endpoint` when it runs out.
pub async fn timed<T, E>(
    endpoint: &Endpoint,
    what: &str,
    fut: impl std::future::Future<Output = std::result::Result<T, E>>,
) -> Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match tokio::time::timeout(endpoint.timeout, fut).await {
        Ok(r) => r.map_err(|e| anyhow::Error::new(e).context(format!("{endpoint}: {what}"))),
        Err(_) => bail!(
            "{endpoint}: {what}: no answer within {:?}",
            endpoint.timeout
        ),
    }
}
