//! One real message over SMTP, for `whatsup issues test-send`.
//!
//! Uses lettre's async SMTP transport on tokio with rustls (or plain SMTP for
//! a local relay). The message bytes are sent as rendered, unchanged. Bulk
//! sending (pooling, rate limits, retries) belongs to the delivery module;
//! this is the single-message path editors use to see an issue in a real
//! mail client.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::compiled::RenderedMessage;
use crate::config::Smtp;

/// Sends the message to its recipient through the configured relay and
/// returns the server's reply.
pub async fn send_one(smtp: &Smtp, msg: &RenderedMessage) -> Result<String> {
    let from: Address = msg
        .from
        .parse()
        .with_context(|| format!("sender address {:?}", msg.from))?;
    let to: Address = msg
        .to
        .parse()
        .with_context(|| format!("recipient address {:?}", msg.to))?;
    let envelope = Envelope::new(Some(from), vec![to]).context("building the envelope")?;
    let mut builder = match smtp.tls.as_str() {
        "none" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
        "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)
            .with_context(|| format!("setting up STARTTLS to {}", smtp.host))?,
        "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)
            .with_context(|| format!("setting up TLS to {}", smtp.host))?,
        other => return Err(anyhow!("smtp.tls: unknown mode {other:?}")),
    };
    builder = builder
        .port(smtp.port)
        .timeout(Some(Duration::from_secs(30)));
    if !smtp.username.is_empty() {
        builder = builder.credentials(Credentials::new(
            smtp.username.clone(),
            smtp.password.expose().to_string(),
        ));
    }
    let transport = builder.build();
    // lettre's timeout covers each command; bound the whole conversation too.
    let response = tokio::time::timeout(
        Duration::from_secs(120),
        transport.send_raw(&envelope, &msg.bytes),
    )
    .await
    .map_err(|_| {
        anyhow!(
            "SMTP server {}:{} did not finish within 120 s",
            smtp.host,
            smtp.port
        )
    })?
    .with_context(|| format!("sending through {}:{}", smtp.host, smtp.port))?;
    Ok(response.message().collect::<Vec<_>>().join(" "))
}
