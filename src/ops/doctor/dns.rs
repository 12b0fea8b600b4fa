//! The DNS checks, through `doctor.resolver` (or the system's resolver):
//!
//! - `dns.spf`: the envelope (bounce) domain's SPF record allows each
//!   sending address (`doctor.sending_ips`, else the relay's addresses),
//!   evaluated by mail-auth as a receiver would (includes, `a`, `mx`, …);
//! - `dns.dkim`: the selector's key is the configured key, byte for byte,
//!   with the configured algorithm;
//! - `dns.dmarc`: a DMARC record for the From domain (or its parent), and
//!   SPF or DKIM aligned with it under the record's `aspf`/`adkim`;
//! - `dns.mx`: the bounce domain can receive the bounces;
//! - `dns.ptr`: each sending address has a PTR whose name resolves back to
//!   it (forward-confirmed reverse DNS), when sending directly;
//! - `dns.base_url`: the base URL's host resolves.
//!
//! Relaxed alignment is judged without the public suffix list: two domains
//! align when one is the other or a subdomain of it. Sibling subdomains
//! (`a.example.org` and `b.example.org`) are reported as not aligned.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use mail_auth::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts,
};
use mail_auth::hickory_resolver::net::NetError;
use mail_auth::hickory_resolver::proto::rr::RData;
use mail_auth::hickory_resolver::TokioResolver;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{MessageAuthenticator, SpfResult};

use super::Check;
use crate::config::Config;
use crate::delivery::dkim::{DkimConfig, Signer};

pub async fn check_all(config: &Config) -> Vec<Check> {
    let auth = match authenticator(config) {
        Ok(a) => a,
        Err(e) => {
            return vec![Check::fail(
                "dns.resolver",
                format!("{e:#}"),
                "set doctor.resolver to a DNS server's address, or fix /etc/resolv.conf",
            )]
        }
    };
    let dns = Dns { auth };
    let from_domain = domain_of(&config.newsletter.from_address);
    let envelope = if config.sending.bounce_address.is_empty() {
        config.newsletter.from_address.clone()
    } else {
        config.sending.bounce_address.clone()
    };
    let envelope_domain = domain_of(&envelope);
    let mut checks = Vec::new();
    let (spf, spf_ok) = dns.spf(config, &envelope, &envelope_domain).await;
    checks.push(spf);
    let (dkim, dkim_ok) = dns.dkim(config).await;
    checks.push(dkim);
    checks.push(
        dns.dmarc(config, &from_domain, &envelope_domain, spf_ok, dkim_ok)
            .await,
    );
    checks.push(dns.mx(&envelope_domain).await);
    checks.extend(dns.ptr(config).await);
    checks.push(dns.base_url(config).await);
    checks
}

/// The resolver: the configured server, or the system's.
fn authenticator(config: &Config) -> Result<MessageAuthenticator> {
    let timeout = Duration::from_secs(config.doctor.timeout_secs);
    let resolver = config.doctor.resolver.trim();
    let (rc, mut opts) = if resolver.is_empty() {
        mail_auth::hickory_resolver::system_conf::read_system_conf()
            .context("reading the system's resolver (/etc/resolv.conf)")?
    } else {
        let addr: SocketAddr = resolver
            .parse()
            .or_else(|_| resolver.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
            .map_err(|_| anyhow!("doctor.resolver {resolver:?} is not an address"))?;
        let mut udp = ConnectionConfig::udp();
        udp.port = addr.port();
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = addr.port();
        let ns = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
        (
            ResolverConfig::from_name_servers(vec![ns]),
            ResolverOpts::default(),
        )
    };
    opts.timeout = timeout;
    opts.attempts = 1;
    MessageAuthenticator::new(rc, opts).context("setting up the resolver")
}

/// The domain of an address (lower-case), or the text itself.
fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or(address)
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// Relaxed alignment without the public suffix list: one domain is the
/// other or a subdomain of it.
fn aligned(a: &str, b: &str, strict: bool) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    a == b || (!strict && (a.ends_with(&format!(".{b}")) || b.ends_with(&format!(".{a}"))))
}

fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

/// A lookup that found no record of the type (or no such name).
fn is_absent(e: &NetError) -> bool {
    e.is_no_records_found() || e.is_nx_domain()
}

struct Dns {
    auth: MessageAuthenticator,
}

impl Dns {
    fn resolver(&self) -> &TokioResolver {
        self.auth.resolver()
    }

    /// The TXT records at `name`, each joined from its strings.
    async fn txt(&self, name: &str) -> std::result::Result<Vec<String>, NetError> {
        match self.resolver().txt_lookup(fqdn(name)).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(t) => Some(
                        t.txt_data
                            .iter()
                            .map(|p| String::from_utf8_lossy(p).into_owned())
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect()),
            Err(e) if is_absent(&e) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    async fn ips(&self, host: &str) -> std::result::Result<Vec<IpAddr>, NetError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        match self.resolver().lookup_ip(fqdn(host)).await {
            Ok(l) => Ok(l.iter().collect()),
            Err(e) if is_absent(&e) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// The addresses SPF must allow, and whether they are the relay's.
    async fn sending_ips(&self, config: &Config) -> Result<(Vec<IpAddr>, bool)> {
        if !config.doctor.sending_ips.is_empty() {
            let ips = config
                .doctor
                .sending_ips
                .iter()
                .map(|s| s.parse().map_err(|_| anyhow!("{s:?} is not an address")))
                .collect::<Result<_>>()?;
            return Ok((ips, false));
        }
        let ips = self
            .ips(&config.smtp.host)
            .await
            .map_err(|e| anyhow!("resolving smtp.host {}: {e}", config.smtp.host))?;
        Ok((ips, true))
    }

    async fn spf(&self, config: &Config, envelope: &str, domain: &str) -> (Check, bool) {
        const ID: &str = "dns.spf";
        let records = match self.txt(domain).await {
            Ok(r) => r,
            Err(e) => return (lookup_failed(ID, domain, &e), false),
        };
        let spf: Vec<&String> = records
            .iter()
            .filter(|r| r.to_ascii_lowercase().starts_with("v=spf1"))
            .collect();
        let example = match config.doctor.sending_ips.first() {
            Some(ip) if ip.contains(':') => format!("v=spf1 ip6:{ip} -all"),
            Some(ip) => format!("v=spf1 ip4:{ip} -all"),
            None => "v=spf1 include:<your relay's SPF domain> -all".to_string(),
        };
        let record = match spf.as_slice() {
            [] => {
                return (
                    Check::fail(
                        ID,
                        format!("no SPF record for the envelope domain {domain}"),
                        format!("publish a TXT record at {domain}: \"{example}\""),
                    ),
                    false,
                )
            }
            [one] => one.to_string(),
            more => {
                return (
                    Check::fail(
                        ID,
                        format!(
                            "{} SPF records for {domain}: receivers treat that as an error",
                            more.len()
                        ),
                        "merge them into one TXT record starting with v=spf1",
                    ),
                    false,
                )
            }
        };
        let (ips, relay) = match self.sending_ips(config).await {
            Ok(x) => x,
            Err(e) => {
                return (
                    Check::warn(
                        ID,
                        format!("{domain}: \"{record}\"; {e:#}"),
                        "check smtp.host",
                    ),
                    false,
                )
            }
        };
        let public: Vec<IpAddr> = ips.iter().copied().filter(|ip| is_public(*ip)).collect();
        if public.is_empty() {
            return (
                Check::warn(
                    ID,
                    format!(
                        "{domain} has \"{record}\", but the relay {} is on this host or a private network, \
                         so doctor cannot tell which address the mail leaves from",
                        config.smtp.host
                    ),
                    "set doctor.sending_ips to the public addresses your mail leaves from",
                ),
                false,
            );
        }
        let mut bad = Vec::new();
        for ip in &public {
            let out = self
                .auth
                .verify_spf(SpfParameters::verify_mail_from(
                    *ip,
                    &config.smtp.host,
                    "doctor.invalid",
                    envelope,
                ))
                .await;
            let result = out.result();
            if result != SpfResult::Pass {
                bad.push(format!("{ip}: {result:?}"));
            }
        }
        let whose = if relay {
            "the relay's address"
        } else {
            "sending address"
        };
        if bad.is_empty() {
            let list: Vec<String> = public.iter().map(IpAddr::to_string).collect();
            (
                Check::pass(
                    ID,
                    format!("{domain}: \"{record}\" allows {whose} {}", list.join(", ")),
                ),
                true,
            )
        } else {
            (
                Check::fail(
                    ID,
                    format!(
                        "{domain}: \"{record}\" does not pass {whose}: {}",
                        bad.join("; ")
                    ),
                    format!("add the address to the SPF record, e.g. \"{example}\""),
                ),
                false,
            )
        }
    }

    async fn dkim(&self, config: &Config) -> (Check, bool) {
        const ID: &str = "dns.dkim";
        if !config.dkim.enabled {
            return (
                Check::skip(
                    ID,
                    "DKIM signing is off (dkim.enabled = false); see bulk.dkim",
                ),
                false,
            );
        }
        let signer = match signer(config) {
            Ok(s) => s,
            Err(e) => {
                return (
                    Check::fail(
                        ID,
                        format!("the DKIM key cannot be used: {e:#}"),
                        "check dkim.key_file and dkim.algorithm",
                    ),
                    false,
                )
            }
        };
        let name = signer.dns_name();
        let expected = signer.dns_record();
        let want_key = tag(&expected, "p").unwrap_or_default();
        let want_k = signer.algorithm().key_type();
        let records = match self.txt(&name).await {
            Ok(r) => r,
            Err(e) => return (lookup_failed(ID, &name, &e), false),
        };
        let publish = format!("publish a TXT record at {name}: \"{expected}\"");
        let Some(record) = records.iter().find(|r| tag(r, "p").is_some()) else {
            return (
                Check::fail(ID, format!("no DKIM key at {name}"), publish),
                false,
            );
        };
        let k = tag(record, "k")
            .unwrap_or_else(|| "rsa".into())
            .to_ascii_lowercase();
        let p = tag(record, "p").unwrap_or_default();
        if p.is_empty() {
            return (
                Check::fail(
                    ID,
                    format!("the key at {name} is revoked (empty p=)"),
                    publish,
                ),
                false,
            );
        }
        if k != want_k {
            return (
                Check::fail(
                    ID,
                    format!("{name} publishes a k={k} key, and whatsup signs with {want_k}"),
                    publish,
                ),
                false,
            );
        }
        let published = STANDARD.decode(p.as_bytes()).unwrap_or_default();
        let ours = STANDARD.decode(want_key.as_bytes()).unwrap_or_default();
        // An RSA key may be published as the bare RSAPublicKey, which ends
        // the SubjectPublicKeyInfo whatsup derives.
        let same = published == ours
            || (want_k == "rsa" && published.len() > 64 && ours.ends_with(&published));
        if same {
            (
                Check::pass(
                    ID,
                    format!("{name}: the published {k} key is the configured key"),
                ),
                true,
            )
        } else {
            (
                Check::fail(
                    ID,
                    format!("{name}: the published key is not the configured key (dkim.key_file): every signature would fail"),
                    publish,
                ),
                false,
            )
        }
    }

    async fn dmarc(
        &self,
        config: &Config,
        from: &str,
        envelope: &str,
        spf_ok: bool,
        dkim_ok: bool,
    ) -> Check {
        const ID: &str = "dns.dmarc";
        let mut domain = from.to_string();
        let record = loop {
            let name = format!("_dmarc.{domain}");
            let records = match self.txt(&name).await {
                Ok(r) => r,
                Err(e) => return lookup_failed(ID, &name, &e),
            };
            if let Some(r) = records.into_iter().find(|r| {
                r.to_ascii_uppercase()
                    .replace(' ', "")
                    .starts_with("V=DMARC1")
            }) {
                break Some((domain.clone(), r));
            }
            match domain.split_once('.') {
                Some((_, parent)) if parent.contains('.') => domain = parent.to_string(),
                _ => break None,
            }
        };
        let Some((at, record)) = record else {
            return Check::fail(
                ID,
                format!("no DMARC record for the From domain {from}: Gmail and Yahoo require one of bulk senders"),
                format!("publish a TXT record at _dmarc.{from}: \"v=DMARC1; p=none; rua=mailto:dmarc@{from}\" (then tighten p= once reports look right)"),
            );
        };
        let policy = if at == from {
            tag(&record, "p")
        } else {
            tag(&record, "sp").or_else(|| tag(&record, "p"))
        }
        .unwrap_or_else(|| "none".into());
        let strict_spf = tag(&record, "aspf").is_some_and(|v| v.eq_ignore_ascii_case("s"));
        let strict_dkim = tag(&record, "adkim").is_some_and(|v| v.eq_ignore_ascii_case("s"));
        let spf_aligned = spf_ok && aligned(envelope, from, strict_spf);
        let dkim_aligned = dkim_ok && aligned(&config.dkim.domain, from, strict_dkim);
        let how = match (spf_aligned, dkim_aligned) {
            (true, true) => "SPF and DKIM align",
            (true, false) => "SPF aligns (DKIM does not)",
            (false, true) => "DKIM aligns (SPF does not)",
            (false, false) => {
                return Check::fail(
                    ID,
                    format!(
                        "_dmarc.{at}: p={policy}, but neither SPF (envelope {envelope}, {}) nor DKIM \
                         (d={}, {}) passes aligned with {from}",
                        if spf_ok { "passes" } else { "does not pass" },
                        if config.dkim.enabled { config.dkim.domain.as_str() } else { "off" },
                        if dkim_ok { "passes" } else { "does not pass" },
                    ),
                    format!("sign with dkim.domain = {from} (or a subdomain) and publish its key; or use a bounce address at {from} that SPF allows"),
                );
            }
        };
        let summary = format!("_dmarc.{at}: p={policy}; {how} with {from}");
        if policy.eq_ignore_ascii_case("none") {
            Check::warn(
                ID,
                summary,
                "p=none only monitors: move to p=quarantine or p=reject once the reports show only your own mail",
            )
        } else {
            Check::pass(ID, summary)
        }
    }

    async fn mx(&self, domain: &str) -> Check {
        const ID: &str = "dns.mx";
        match self.resolver().mx_lookup(fqdn(domain)).await {
            Ok(lookup) => {
                let mut hosts: Vec<(u16, String)> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => Some((mx.preference, trim_dot(mx.exchange.to_ascii()))),
                        _ => None,
                    })
                    .collect();
                hosts.sort();
                if hosts.iter().any(|(_, h)| h.is_empty()) {
                    return Check::fail(
                        ID,
                        format!("{domain} has a null MX: it accepts no mail, so no bounce can come back"),
                        format!("publish an MX record for {domain} pointing at the server that receives bounces"),
                    );
                }
                if hosts.is_empty() {
                    return self.mx_absent(domain).await;
                }
                let list: Vec<String> = hosts.iter().map(|(p, h)| format!("{p} {h}")).collect();
                Check::pass(
                    ID,
                    format!("{domain} receives bounces at {}", list.join(", ")),
                )
            }
            Err(e) if is_absent(&e) => self.mx_absent(domain).await,
            Err(e) => lookup_failed(ID, domain, &e),
        }
    }

    async fn mx_absent(&self, domain: &str) -> Check {
        let fix = format!(
            "publish an MX record for {domain} pointing at the server that receives bounces"
        );
        match self.ips(domain).await {
            Ok(ips) if !ips.is_empty() => Check::warn(
                "dns.mx",
                format!(
                    "{domain} has no MX; bounces go to its address record ({})",
                    ips[0]
                ),
                fix,
            ),
            _ => Check::fail(
                "dns.mx",
                format!("{domain} has no MX and no address: bounces cannot come back"),
                fix,
            ),
        }
    }

    async fn ptr(&self, config: &Config) -> Vec<Check> {
        if config.doctor.sending_ips.is_empty() {
            return vec![Check::skip(
                "dns.ptr",
                format!(
                    "the relay {} delivers for whatsup; its reverse DNS is its operator's (set doctor.sending_ips when this host delivers directly)",
                    config.smtp.host
                ),
            )];
        }
        let mut out = Vec::new();
        for ip in &config.doctor.sending_ips {
            let id = format!("dns.ptr.{ip}");
            let Ok(addr) = ip.parse::<IpAddr>() else {
                continue;
            };
            let fix = "ask whoever runs the address (the hosting provider) to set its reverse DNS to the \
                       host's name, and give that name an A/AAAA record with this address";
            let names: Vec<String> = match self.resolver().reverse_lookup(addr).await {
                Ok(l) => l
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::PTR(p) => Some(p.to_ascii().trim_end_matches('.').to_string()),
                        _ => None,
                    })
                    .collect(),
                Err(e) if is_absent(&e) => Vec::new(),
                Err(e) => {
                    out.push(lookup_failed(&id, ip, &e));
                    continue;
                }
            };
            if names.is_empty() {
                out.push(Check::fail(
                    &id,
                    format!("{ip} has no PTR record: many receivers refuse such mail"),
                    fix,
                ));
                continue;
            }
            let mut confirmed = None;
            for name in &names {
                if self.ips(name).await.is_ok_and(|ips| ips.contains(&addr)) {
                    confirmed = Some(name.clone());
                    break;
                }
            }
            out.push(match confirmed {
                Some(name) => Check::pass(&id, format!("{ip} → {name} → {ip} (forward-confirmed)")),
                None => Check::fail(
                    &id,
                    format!(
                        "{ip} → {} but that name does not resolve back to {ip}",
                        names.join(", ")
                    ),
                    fix,
                ),
            });
        }
        out
    }

    async fn base_url(&self, config: &Config) -> Check {
        const ID: &str = "dns.base_url";
        let url = &config.newsletter.base_url;
        let Some(host) = url_host(url) else {
            return Check::fail(
                ID,
                format!("newsletter.base_url {url:?} has no host"),
                "set newsletter.base_url to https://HOST",
            );
        };
        match self.ips(&host).await {
            Ok(ips) if !ips.is_empty() => {
                let list: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
                Check::pass(ID, format!("{host} resolves to {}", list.join(", ")))
            }
            Ok(_) => Check::fail(
                ID,
                format!("{host} (newsletter.base_url) does not resolve: every unsubscribe link would fail"),
                format!("publish an A or AAAA record for {host} pointing at the reverse proxy in front of whatsup serve"),
            ),
            Err(e) => lookup_failed(ID, &host, &e),
        }
    }
}

/// A DNS name without its final dot (the root stays empty).
fn trim_dot(name: String) -> String {
    name.trim_end_matches('.').to_string()
}

fn lookup_failed(id: &str, name: &str, e: &NetError) -> Check {
    Check::warn(
        id,
        format!("looking up {name} failed: {e}"),
        "check doctor.resolver and the network; run doctor again",
    )
}

/// The value of `tag` in a `k=v; k=v` record (whitespace removed).
fn tag(record: &str, tag: &str) -> Option<String> {
    record.split(';').find_map(|part| {
        let (k, v) = part.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(tag)
            .then(|| v.chars().filter(|c| !c.is_whitespace()).collect())
    })
}

/// The host of an http(s) URL.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_string())
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified())
        }
        IpAddr::V6(v6) => {
            !(v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xfe00) == 0xfc00)
        }
    }
}

/// The signer the configuration describes (the key is read like the
/// sender reads it).
pub fn signer(config: &Config) -> Result<Signer> {
    let pem = if config.dkim.private_key.is_empty() {
        std::fs::read_to_string(&config.dkim.key_file)
            .with_context(|| format!("reading dkim.key_file {}", config.dkim.key_file.display()))?
    } else {
        config.dkim.private_key.expose().to_string()
    };
    Ok(Signer::new(&DkimConfig {
        domain: config.dkim.domain.clone(),
        selector: config.dkim.selector.clone(),
        algorithm: config.dkim.algorithm.parse()?,
        private_key_pem: pem,
    })?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_is_the_same_domain_or_a_subdomain() {
        assert!(aligned("news.example.org", "example.org", false));
        assert!(aligned("example.org", "news.example.org", false));
        assert!(!aligned("news.example.org", "example.org", true));
        assert!(!aligned("example.org.evil.example", "example.org", false));
        assert!(!aligned("a.example.org", "b.example.org", false));
    }

    #[test]
    fn tags_are_read_without_whitespace_and_case_insensitively() {
        let r = "v=DKIM1; K=ed25519; p=abc\n def ";
        assert_eq!(tag(r, "k").as_deref(), Some("ed25519"));
        assert_eq!(tag(r, "p").as_deref(), Some("abcdef"));
        assert_eq!(tag(r, "t"), None);
    }

    #[test]
    fn the_base_url_host_is_found_in_any_url_shape() {
        assert_eq!(
            url_host("https://news.example.org/x").as_deref(),
            Some("news.example.org")
        );
        assert_eq!(
            url_host("http://127.0.0.1:8080").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            url_host("https://[2001:db8::1]:443/").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(url_host("not a url"), None);
    }
}
