//! The one HTTP request doctor makes (`--online`): a GET over plain TCP or
//! TLS (web PKI roots, as the sender trusts), `Connection: close`, reading
//! the status, the `Date` header and a small body.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use chrono::{DateTime, Utc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::bounce::mailbox::net::{Endpoint, Security};

/// What came back.
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub date: Option<DateTime<Utc>>,
}

/// GETs an `http://` or `https://` URL.
pub async fn get(url: &str, timeout: Duration) -> Result<Reply> {
    let (security, rest, default_port) = if let Some(r) = url.strip_prefix("https://") {
        (Security::Tls, r, 443)
    } else if let Some(r) = url.strip_prefix("http://") {
        (Security::None, r, 80)
    } else {
        bail!("{url:?} is not an http or https URL");
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => match p.parse() {
            Ok(p) => (h.trim_matches(['[', ']']).to_string(), p),
            Err(_) => (authority.to_string(), default_port),
        },
        _ => (authority.to_string(), default_port),
    };
    let endpoint = Endpoint {
        host: host.clone(),
        port,
        security,
        ca_file: None,
        timeout,
    };
    let exchange = async {
        let mut conn = endpoint.connect().await?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: whatsup-doctor\r\n\
             Connection: close\r\n\r\n"
        );
        conn.write_all(request.as_bytes()).await?;
        let mut buf = Vec::new();
        conn.take(1 << 20).read_to_end(&mut buf).await?;
        Ok::<_, anyhow::Error>(buf)
    };
    let buf = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| anyhow!("no answer within {timeout:?}"))??;
    parse(&buf)
}

fn parse(buf: &[u8]) -> Result<Reply> {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("not an HTTP reply"))?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("not an HTTP status line"))?;
    let mut date = None;
    let mut chunked = false;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        if k.eq_ignore_ascii_case("date") {
            date = DateTime::parse_from_rfc2822(v.trim())
                .ok()
                .map(|d| d.with_timezone(&Utc));
        }
        if k.eq_ignore_ascii_case("transfer-encoding") && v.trim().eq_ignore_ascii_case("chunked") {
            chunked = true;
        }
    }
    let body = if chunked {
        unchunk(body)
    } else {
        body.to_string()
    };
    Ok(Reply { status, body, date })
}

fn unchunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_gives_its_status_date_and_body_chunked_or_not() {
        let r = parse(b"HTTP/1.1 200 OK\r\nDate: Tue, 01 Jul 2025 01:00:00 GMT\r\nContent-Length: 3\r\n\r\nok\n").unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
        assert_eq!(r.date.unwrap().to_rfc3339(), "2025-07-01T01:00:00+00:00");
        let c =
            parse(b"HTTP/1.1 503 X\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nok\n\r\n0\r\n\r\n")
                .unwrap();
        assert_eq!((c.status, c.body.as_str()), (503, "ok\n"));
    }
}
