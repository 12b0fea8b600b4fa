//! Settings: built-in defaults, then `config/whatsup.toml` (or `--config`),
//! then `WHATSUP_<SECTION>_<KEY>` environment variables, then CLI flags.
//!
//! Secrets (the SMTP password, the token secret) are held in [`Secret`], whose
//! `Debug` and `Display` never show the value, so a logged config is safe.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// A string that must never appear in logs or error messages.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret value itself: call only where it is used, never to print.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "[empty]"
        } else {
            "[redacted]"
        })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The whole configuration. Every field has a default; see config/whatsup.toml.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub general: General,
    pub database: Database,
    pub import: Import,
    pub smtp: Smtp,
    pub security: Security,
    pub newsletter: Newsletter,
    pub sending: Sending,
    pub dkim: Dkim,
    pub bounces: Bounces,
    pub web: Web,
    pub webhooks: Webhooks,
    pub admin: Admin,
    pub branding: Branding,
    pub media: Media,
    pub doctor: Doctor,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct General {
    /// Where the SQLite database, outbox and previews live.
    pub data_dir: PathBuf,
    /// Time zone used to show times to operators.
    pub timezone: String,
    /// Log filter (tracing EnvFilter syntax); `RUST_LOG` wins if set.
    pub log: String,
    /// `text` (for people: colour only on a terminal, times in `timezone`)
    /// or `json` (one object a line, for journald and Loki); `--log-format`
    /// wins.
    pub log_format: String,
    /// Seconds `serve` and `worker` wait, after SIGTERM, for requests and
    /// messages in flight to finish and be recorded before they exit.
    pub stop_timeout_secs: u64,
}

impl Default for General {
    fn default() -> Self {
        General {
            data_dir: PathBuf::from("data"),
            timezone: "Asia/Tokyo".into(),
            log: "info".into(),
            log_format: "text".into(),
            stop_timeout_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Database {
    /// `sqlite://path/to/file.db` or `postgres://user:pass@host/db`. Empty:
    /// `sqlite://<data_dir>/whatsup.db`.
    pub url: Secret,
    /// Connection pool size.
    pub max_connections: u32,
    /// Apply pending migrations when the store is opened.
    pub auto_migrate: bool,
    /// SQLite `synchronous` pragma: `full` (every commit durable) or `normal`.
    pub sqlite_synchronous: String,
    /// Seconds to wait for a locked SQLite database before giving up.
    pub busy_timeout_secs: u64,
    /// SQLite page size in bytes for a database file whatsup creates
    /// (a power of two from 512 to 65536); an existing file keeps its own.
    pub sqlite_page_size: u32,
    /// Seconds the sender keeps retrying when the database is away (a
    /// PostgreSQL restart, lost connections, SQLite locked beyond
    /// `busy_timeout_secs`) before it pauses the campaign or gives up.
    pub retry_secs: u64,
}

impl Default for Database {
    fn default() -> Self {
        Database {
            url: Secret::default(),
            max_connections: 8,
            auto_migrate: true,
            sqlite_synchronous: "full".into(),
            busy_timeout_secs: 30,
            sqlite_page_size: 16384,
            retry_secs: 300,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Import {
    /// Rows per transaction: each batch commits all-or-nothing.
    pub batch_size: usize,
}

impl Default for Import {
    fn default() -> Self {
        Import { batch_size: 50_000 }
    }
}

/// Declares an SMTP server settings struct; `Smtp` (the primary server)
/// has the same fields plus the list of fallbacks.
macro_rules! smtp_server_struct {
    ($(#[$meta:meta])* $name:ident { $($extra:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Deserialize, Serialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            /// Name in logs, delivery records and rate-limit windows.
            pub name: String,
            pub host: String,
            pub port: u16,
            /// `none`, `starttls` or `tls` (implicit TLS).
            pub tls: String,
            /// PEM file of a further certificate to trust (a private CA);
            /// empty: only the built-in web PKI roots.
            pub ca_file: PathBuf,
            pub username: String,
            pub password: Secret,
            /// Share of messages relative to the other servers' weights.
            pub weight: u32,
            /// Most connections open at once to this server, per worker
            /// process.
            pub max_connections: u32,
            /// Messages per second for all workers together (0: unlimited):
            /// counted in one-second windows in the database.
            pub per_second: u32,
            /// Ceilings per UTC hour and day for all workers together (0: none).
            pub per_hour: i64,
            pub per_day: i64,
            /// Timeout for each SMTP step, in seconds.
            pub timeout_secs: u64,
            $($extra)*
        }
    };
}

smtp_server_struct!(
    /// The primary SMTP relay.
    Smtp {
        /// More relays, used by weight and when another is down.
        pub fallback: Vec<SmtpServer>,
    }
);

smtp_server_struct!(
    /// A further SMTP relay (`[[smtp.fallback]]`).
    SmtpServer {}
);

impl Default for Smtp {
    fn default() -> Self {
        let s = SmtpServer::default();
        Smtp {
            name: "primary".into(),
            host: s.host,
            port: s.port,
            tls: s.tls,
            ca_file: s.ca_file,
            username: s.username,
            password: s.password,
            weight: s.weight,
            max_connections: s.max_connections,
            per_second: s.per_second,
            per_hour: s.per_hour,
            per_day: s.per_day,
            timeout_secs: s.timeout_secs,
            fallback: Vec::new(),
        }
    }
}

impl Default for SmtpServer {
    fn default() -> Self {
        SmtpServer {
            name: String::new(),
            host: "localhost".into(),
            port: 25,
            tls: "none".into(),
            ca_file: PathBuf::new(),
            username: String::new(),
            password: Secret::default(),
            weight: 1,
            max_connections: 4,
            per_second: 0,
            per_hour: 0,
            per_day: 0,
            timeout_secs: 60,
        }
    }
}

impl Smtp {
    /// Every configured server, the primary first.
    pub fn servers(&self) -> Vec<SmtpServer> {
        let mut out = vec![SmtpServer {
            name: self.name.clone(),
            host: self.host.clone(),
            port: self.port,
            tls: self.tls.clone(),
            ca_file: self.ca_file.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
            weight: self.weight,
            max_connections: self.max_connections,
            per_second: self.per_second,
            per_hour: self.per_hour,
            per_day: self.per_day,
            timeout_secs: self.timeout_secs,
        }];
        for (i, f) in self.fallback.iter().enumerate() {
            let mut f = f.clone();
            if f.name.is_empty() {
                f.name = format!("fallback{}", i + 1);
            }
            out.push(f);
        }
        out
    }
}

/// How campaigns are sent.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sending {
    /// Transport for new campaigns: `outbox` (one .eml file per message) or `smtp`.
    pub transport: String,
    /// Where the outbox transport writes; empty: `<data_dir>/outbox`.
    pub outbox_dir: PathBuf,
    /// Deliveries claimed per batch; also the most messages sent or in
    /// flight without a recorded outcome (the duplicate bound after a crash).
    pub batch_size: u32,
    /// Seconds a claim is held without renewal; a live worker renews its
    /// claims every third of it, so only a dead worker's claims expire and
    /// are taken over.
    pub lease_secs: u64,
    /// Attempts before a temporary failure becomes permanent.
    pub max_attempts: u32,
    /// Retry backoff: base and cap in seconds (exponential, with jitter).
    pub retry_base_secs: u64,
    pub retry_max_secs: u64,
    /// Pause the campaign when at least this share of the recent outcomes
    /// (the last `pause_error_window`) are permanent failures; 0: never.
    pub pause_error_rate: f64,
    pub pause_error_window: u32,
    /// Seconds a campaign waits for an unreachable relay (no message is
    /// attempted, none uses up an attempt) before it pauses with the
    /// reason; 0: as long as the retry schedule (`retry_base_secs`
    /// doubling up to `retry_max_secs`, `max_attempts` − 1 times).
    pub relay_outage_secs: u64,
    /// VERP base address: the envelope sender becomes
    /// `local+TOKEN@domain`; empty: the From address, without VERP.
    pub bounce_address: String,
    /// Optional Feedback-ID header value (Gmail's feedback loop).
    pub feedback_id: String,
    /// Seconds an idle worker waits before looking for work again.
    pub poll_secs: u64,
}

impl Default for Sending {
    fn default() -> Self {
        Sending {
            transport: "outbox".into(),
            outbox_dir: PathBuf::new(),
            batch_size: 100,
            lease_secs: 300,
            max_attempts: 6,
            retry_base_secs: 60,
            retry_max_secs: 3600,
            pause_error_rate: 0.5,
            pause_error_window: 200,
            relay_outage_secs: 0,
            bounce_address: "bounces@tokyo.example.org".into(),
            feedback_id: String::new(),
            poll_secs: 5,
        }
    }
}

/// DKIM signing of every campaign message.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Dkim {
    pub enabled: bool,
    /// Signing domain (d=) and selector (s=).
    pub domain: String,
    pub selector: String,
    /// `ed25519` or `rsa` (rsa-sha256).
    pub algorithm: String,
    /// PEM file with the private key.
    pub key_file: PathBuf,
    /// The PEM itself (prefer WHATSUP_DKIM_PRIVATE_KEY); wins over key_file.
    pub private_key: Secret,
}

impl Default for Dkim {
    fn default() -> Self {
        Dkim {
            enabled: false,
            domain: String::new(),
            selector: String::new(),
            algorithm: "ed25519".into(),
            key_file: PathBuf::new(),
            private_key: Secret::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Security {
    /// Key for HMAC-signed unsubscribe and preference tokens (at least 32 bytes).
    pub token_secret: Secret,
    /// Earlier keys, still accepted when verifying tokens (key rotation).
    pub previous_token_secrets: Vec<Secret>,
}

/// The newsletter's identity and the links every message carries.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Newsletter {
    /// The newsletter's name, shown in the masthead and the List-Id phrase.
    pub name: String,
    /// Display name of the sender.
    pub from_name: String,
    /// Sender address; Message-IDs are made on its domain.
    pub from_address: String,
    /// Reply-To address; empty for none.
    pub reply_to: String,
    /// List-Id identifier (RFC 2919), a domain-like name.
    pub list_id: String,
    /// Base URL of the public web endpoints (unsubscribe, preferences,
    /// view in browser); must be https.
    pub base_url: String,
    /// Optional mailto address offered in List-Unsubscribe beside the URL.
    pub unsubscribe_mailto: String,
    /// Time zone in which issue dates and event times are shown.
    pub timezone: String,
    /// Directory whose files override the built-in templates by name; empty
    /// for none.
    pub templates_dir: PathBuf,
    /// Port of `whatsup issues preview --serve` on 127.0.0.1 (0: any free port).
    pub preview_port: u16,
    /// Two-person rule: a campaign starts only after an operator or admin
    /// other than its creator and the issue revision's author approved
    /// that revision and segment.
    pub require_approval: bool,
}

impl Default for Newsletter {
    fn default() -> Self {
        Newsletter {
            name: "WHAT'S UP Tokyo".into(),
            from_name: "Tokyo Metropolitan Government".into(),
            from_address: "whatsup@tokyo.example.org".into(),
            reply_to: String::new(),
            list_id: "whatsup.tokyo.example.org".into(),
            base_url: "https://whatsup.tokyo.example.org".into(),
            unsubscribe_mailto: String::new(),
            timezone: "Asia/Tokyo".into(),
            templates_dir: PathBuf::new(),
            preview_port: 8025,
            require_approval: true,
        }
    }
}

/// `whatsup serve`: the recipients' pages, the archive, tracking, limits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Web {
    /// Address and port the server listens on.
    pub bind: String,
    /// The `lang` attribute of the pages.
    pub lang: String,
    /// Serve the public archive of sent issues at /archive (and its feed).
    pub archive: bool,
    /// Tags a recipient may opt in or out of on the preferences page. Other
    /// tags (how the list is organised: embassies, sister-cities…) are never
    /// shown to recipients.
    pub preference_tags: Vec<String>,
    /// Requests per second allowed per client IP on the public pages (0: no
    /// limit). RFC 8058 one-click POSTs have their own limits below.
    pub rate_limit_per_second: u32,
    /// Requests a client may make at once before the rate applies.
    pub rate_limit_burst: u32,
    /// One-click unsubscribes (POST /u/{token}) per second per client IP
    /// (0: no per-IP limit). Mail providers post them from few addresses.
    pub one_click_per_second: u32,
    /// One-click unsubscribes a client may post at once before its rate
    /// applies.
    pub one_click_burst: u32,
    /// One-click unsubscribes per second from all clients together (0: no
    /// ceiling). Above it, requests wait their turn (up to
    /// `one_click_max_wait_secs`) instead of being refused.
    pub one_click_ceiling_per_second: u32,
    /// Longest a one-click unsubscribe waits under the ceiling before it
    /// gets a 429 (with Retry-After).
    pub one_click_max_wait_secs: u64,
    /// Where /metrics is served: an address and port of its own (default
    /// 127.0.0.1:9464, so that only the host and its Prometheus see it),
    /// `public` to serve it on the public listener (then `metrics_token` is
    /// required), or `off`.
    pub metrics_bind: String,
    /// A bearer token /metrics requires (`Authorization: Bearer …`) on
    /// whatever listener it is; required when `metrics_bind = "public"`.
    /// Prefer WHATSUP_WEB_METRICS_TOKEN.
    pub metrics_token: Secret,
    /// Days a view-in-browser link works after its message was sent (0:
    /// always); then the page offers the public archive copy instead.
    pub view_token_days: u32,
    /// Take the client IP from the last X-Forwarded-For entry (only behind a
    /// reverse proxy that sets it).
    pub trust_forwarded_for: bool,
    /// Most unsubscribes committed together in one transaction.
    pub commit_batch: usize,
    /// Count opens with a tracking pixel.
    pub track_opens: bool,
    /// Count clicks through signed redirect links (only to URLs in the issue).
    pub track_clicks: bool,
    /// Store the client IP with each open and click.
    pub track_ips: bool,
}

impl Default for Web {
    fn default() -> Self {
        Web {
            bind: "127.0.0.1:8080".into(),
            lang: "en".into(),
            archive: true,
            preference_tags: vec![
                "culture".into(),
                "economy".into(),
                "tourism".into(),
                "press".into(),
            ],
            rate_limit_per_second: 20,
            rate_limit_burst: 100,
            one_click_per_second: 500,
            one_click_burst: 5000,
            one_click_ceiling_per_second: 2000,
            one_click_max_wait_secs: 10,
            metrics_bind: "127.0.0.1:9464".into(),
            metrics_token: Secret::default(),
            view_token_days: 90,
            trust_forwarded_for: false,
            commit_batch: 1024,
            track_opens: false,
            track_clicks: false,
            track_ips: false,
        }
    }
}

/// Bounce and complaint webhooks of sending services, served by `whatsup
/// serve` (see `src/web/webhooks.rs`). Each endpoint exists only when its
/// verification material is configured.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Webhooks {
    /// Largest request body accepted, in bytes (larger: 413).
    pub max_body_bytes: usize,
    /// Amazon SES through SNS (`POST /webhooks/ses`): the SNS topics whose
    /// notifications are accepted. Empty: the endpoint is off.
    pub ses_topic_arns: Vec<String>,
    /// Host patterns a `SigningCertURL` or `SubscribeURL` must match; `*`
    /// stands for one DNS label (the region).
    pub ses_cert_hosts: Vec<String>,
    /// Directory of pinned signing certificates, consulted before any fetch:
    /// the certificate of `https://HOST/PATH` is the file `<dir>/HOST/PATH`.
    pub ses_cert_dir: PathBuf,
    /// Fetch signing certificates that are not pinned over HTTPS (cached).
    pub ses_fetch_certs: bool,
    /// Confirm SNS subscriptions by fetching the `SubscribeURL`; when off,
    /// the URL is logged for the operator to open.
    pub ses_confirm_subscriptions: bool,
    /// SendGrid Event Webhook (`POST /webhooks/sendgrid`): the verification
    /// key from the SendGrid settings (base64 of the P-256 public key's
    /// SubjectPublicKeyInfo DER). Empty: the endpoint is off.
    pub sendgrid_public_key: String,
    /// Largest difference between the signed timestamp and now, in seconds.
    pub sendgrid_max_age_secs: u64,
    /// Postmark (`POST /webhooks/postmark`): the HTTP Basic credentials put
    /// in the webhook URL (Postmark does not sign webhooks). Both empty: the
    /// endpoint is off.
    pub postmark_username: String,
    /// Prefer WHATSUP_WEBHOOKS_POSTMARK_PASSWORD.
    pub postmark_password: Secret,
}

impl Default for Webhooks {
    fn default() -> Self {
        Webhooks {
            max_body_bytes: 5 * 1024 * 1024,
            ses_topic_arns: Vec::new(),
            ses_cert_hosts: vec!["sns.*.amazonaws.com".into()],
            ses_cert_dir: PathBuf::new(),
            ses_fetch_certs: true,
            ses_confirm_subscriptions: true,
            sendgrid_public_key: String::new(),
            sendgrid_max_age_secs: 300,
            postmark_username: String::new(),
            postmark_password: Secret::default(),
        }
    }
}

/// `whatsup doctor`: where it looks things up.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Doctor {
    /// The DNS server to ask (`IP` or `IP:PORT`); empty: the system's
    /// resolver (/etc/resolv.conf).
    pub resolver: String,
    /// The public addresses mail leaves from when the relay delivers
    /// straight to recipients' servers (a Postfix on this host): SPF, PTR
    /// and forward-confirmed reverse DNS are checked for them. Empty: the
    /// relay is a smarthost, and SPF is checked for its own addresses.
    pub sending_ips: Vec<String>,
    /// Seconds to wait for each DNS answer, connection or reply.
    pub timeout_secs: u64,
}

impl Default for Doctor {
    fn default() -> Self {
        Doctor {
            resolver: String::new(),
            sending_ips: Vec::new(),
            timeout_secs: 5,
        }
    }
}

/// The admin listener of `whatsup serve`: the REST API (`/api/v1`) for
/// scripts and the web admin, accounts and sessions. Never served on the
/// recipients' public listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Admin {
    /// Address and port of the admin listener; empty: no admin listener.
    pub bind: String,
    /// The URL the admin is reached at (behind a proxy, its public URL).
    /// With https the session cookie is marked Secure.
    pub base_url: String,
    /// A session ends after this many minutes without a request.
    pub session_idle_minutes: u64,
    /// A session ends this many hours after login, however active.
    pub session_absolute_hours: u64,
    /// Failed logins per account before each further attempt must wait.
    pub login_free_attempts_per_account: u32,
    /// Failed logins per client IP before each further attempt must wait.
    pub login_free_attempts_per_ip: u32,
    /// The first wait, in seconds; it doubles with each further failure.
    pub login_delay_base_secs: u64,
    /// The longest wait, in seconds.
    pub login_delay_max_secs: u64,
    /// Failures are forgotten this many minutes after the latest one.
    pub login_forget_minutes: u64,
    /// Take the client IP from the last X-Forwarded-For entry (only behind
    /// a reverse proxy that sets it).
    pub trust_forwarded_for: bool,
    /// Addresses test messages may go to besides the user's own.
    pub test_send_allowlist: Vec<String>,
    /// Largest request body (CSV uploads included), in bytes.
    pub max_body_bytes: usize,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            bind: "127.0.0.1:8081".into(),
            base_url: "http://127.0.0.1:8081".into(),
            session_idle_minutes: 30,
            session_absolute_hours: 12,
            login_free_attempts_per_account: 5,
            login_free_attempts_per_ip: 20,
            login_delay_base_secs: 1,
            login_delay_max_secs: 900,
            login_forget_minutes: 60,
            trust_forwarded_for: false,
            test_send_allowlist: Vec::new(),
            max_body_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The look of the web admin (`[branding]`): the organisation's name, its
/// colours and its logo. Checked when loaded: colours are `#rrggbb`, white
/// text on the primary colour reaches WCAG's 4.5:1, and the accent (focus
/// rings, the rule under the header) reaches 3:1 against white.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Branding {
    /// The organisation named in the admin's header and page titles.
    pub organisation: String,
    /// The admin's own name, beside the organisation's.
    pub product: String,
    /// Header, buttons and headings; white text is set on it.
    pub primary_colour: String,
    /// The rule under the header, focus rings and current-page markers.
    pub accent_colour: String,
    /// An SVG, PNG, JPEG or WebP file shown in the header (at most 512 KiB,
    /// read at start-up); empty: the organisation's name alone.
    pub logo_file: PathBuf,
}

impl Default for Branding {
    fn default() -> Self {
        Branding {
            organisation: "Tokyo Metropolitan Government".into(),
            product: "WHAT'S UP workspace".into(),
            primary_colour: "#14284b".into(),
            accent_colour: "#d64933".into(),
            logo_file: PathBuf::new(),
        }
    }
}

impl Branding {
    fn validate(&self) -> Result<()> {
        if self.organisation.trim().is_empty() {
            bail!("branding.organisation: must not be empty");
        }
        for (key, colour, min, against) in [
            (
                "branding.primary_colour",
                &self.primary_colour,
                4.5,
                "white text on it",
            ),
            (
                "branding.accent_colour",
                &self.accent_colour,
                3.0,
                "it on white",
            ),
        ] {
            let Some(rgb) = parse_hex_colour(colour) else {
                bail!("branding: {key} = {colour:?} is not a colour of the form #rrggbb");
            };
            let ratio = contrast_with_white(rgb);
            if ratio < min {
                bail!(
                    "{key}: {colour} gives {against} a contrast of only {ratio:.1}:1 \
                     (at least {min}:1 is needed)"
                );
            }
        }
        Ok(())
    }
}

/// `#rrggbb` as three bytes.
pub fn parse_hex_colour(s: &str) -> Option<[u8; 3]> {
    let hex = s.strip_prefix('#').filter(|h| h.len() == 6)?;
    let byte = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

/// The WCAG 2 contrast ratio of a colour against white.
pub fn contrast_with_white(rgb: [u8; 3]) -> f64 {
    let channel = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let l = 0.2126 * channel(rgb[0]) + 0.7152 * channel(rgb[1]) + 0.0722 * channel(rgb[2]);
    1.05 / (l + 0.05)
}

/// The media library (`[media]`): images uploaded for issues.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Media {
    /// Where files are stored under their content hash; empty:
    /// `<data_dir>/media`.
    pub dir: PathBuf,
    /// Largest upload accepted, in bytes.
    pub max_upload_bytes: u64,
    /// Wider images are scaled down to this width (2× a 600 px column).
    pub max_width: u32,
    /// Largest width × height decoded; anything bigger is refused before
    /// its pixels are read (a decompression bomb).
    pub max_pixels: u64,
    /// Largest width or height decoded.
    pub max_dimension: u32,
}

impl Default for Media {
    fn default() -> Self {
        Media {
            dir: PathBuf::new(),
            max_upload_bytes: 10 * 1024 * 1024,
            max_width: 1200,
            max_pixels: 40_000_000,
            max_dimension: 16_384,
        }
    }
}

impl Media {
    fn validate(&self) -> Result<()> {
        if self.max_upload_bytes < 1024 {
            bail!("media.max_upload_bytes: must be at least 1024");
        }
        if !(16..=10_000).contains(&self.max_width) {
            bail!(
                "media.max_width: must be between 16 and 10000, got {}",
                self.max_width
            );
        }
        if self.max_dimension < self.max_width || self.max_dimension > 65_535 {
            bail!("media.max_dimension: must be between media.max_width and 65535");
        }
        if self.max_pixels < u64::from(self.max_width) * u64::from(self.max_width) / 4 {
            bail!("media.max_pixels: too small for an image media.max_width wide");
        }
        Ok(())
    }
}

impl Config {
    /// Where the media library's files are: `media.dir`, or `<data_dir>/media`.
    pub fn media_dir(&self) -> PathBuf {
        if self.media.dir.as_os_str().is_empty() {
            self.general.data_dir.join("media")
        } else {
            self.media.dir.clone()
        }
    }
}

/// Where the settings came from, for `whatsup config`.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub file: Option<PathBuf>,
    pub env_overrides: Vec<String>,
    /// `WHATSUP_*` variables that are no setting (misspelt, or of another
    /// version), each with the nearest known name.
    pub unknown_env: Vec<UnknownVariable>,
}

/// A `WHATSUP_*` environment variable whatsup does not know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnknownVariable {
    pub name: String,
    /// The known variable nearest to it.
    pub nearest: Option<String>,
}

impl fmt::Display for UnknownVariable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is not a whatsup setting; it is ignored", self.name)?;
        match &self.nearest {
            Some(n) => write!(f, " (did you mean {n}?)"),
            None => Ok(()),
        }
    }
}

/// `WHATSUP_*` variables read outside the configuration (besides those of
/// command-line flags, which the CLI adds): the test suite's and the
/// fuzzer's.
pub const OTHER_VARIABLES: &[&str] = &[
    "WHATSUP_CONFIG",
    "WHATSUP_TEST_POSTGRES_URL",
    "WHATSUP_FUZZ_SECS",
    "WHATSUP_BLESS",
];

/// The config file used when `--config` is not given, if it exists.
/// What whatsup does with what comes back (see docs/bounces.md).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Bounces {
    /// Action for a hard bounce: `bounce` (the contact becomes bounced at
    /// once), `unsubscribe` or `record` (only recorded).
    pub hard_action: String,
    /// Action once a contact reaches the soft-bounce threshold.
    pub soft_action: String,
    /// Soft bounces within `soft_window_days`, with no successful delivery
    /// in between, that trigger `soft_action`.
    pub soft_threshold: u32,
    pub soft_window_days: u32,
    /// Action for a complaint (ARF): `unsubscribe` by default.
    pub complaint_action: String,
    /// Let bounces and complaints matched only by something anyone can
    /// write (the address, a bare delivery id, an old Message-ID, a From
    /// address) change statuses too. Off by default: such events are only
    /// recorded. For a site whose relay strips VERP and the signed header.
    pub act_on_unverified: bool,
    /// Messages larger than this are set aside without being read.
    pub max_message_bytes: u64,
    /// Where unreadable messages are set aside; empty: `<data_dir>/bounces/quarantine`.
    pub quarantine_dir: PathBuf,
    /// The mailbox `whatsup bounces poll imap` reads (`[bounces.imap]`).
    pub imap: Imap,
    /// The mailbox `whatsup bounces poll pop3` reads (`[bounces.pop3]`).
    pub pop3: Pop3,
}

/// An IMAP mailbox that receives bounces (`[bounces.imap]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Imap {
    pub host: String,
    /// 0: the standard port for `tls` (993 for `tls`, else 143).
    pub port: u16,
    /// `none`, `starttls` or `tls` (implicit TLS).
    pub tls: String,
    /// PEM file of further certificates to trust (a private CA); empty: only
    /// the built-in web PKI roots.
    pub ca_file: PathBuf,
    pub username: String,
    /// Prefer WHATSUP_BOUNCES_IMAP_PASSWORD.
    pub password: Secret,
    /// The folder bounces arrive in.
    pub folder: String,
    /// What happens to a message once its result is committed: `move` (to
    /// `processed_folder`) or `delete`.
    pub after: String,
    /// Created if missing.
    pub processed_folder: String,
    /// Unreadable messages are moved here (after a copy is written to the
    /// quarantine directory); empty: they get the `after` treatment.
    pub quarantine_folder: String,
    /// Messages fetched per round trip.
    pub batch_size: u32,
    /// Seconds between passes when polling continuously.
    pub poll_secs: u64,
    /// Timeout for connecting and for each command, in seconds.
    pub timeout_secs: u64,
}

impl Default for Imap {
    fn default() -> Self {
        Imap {
            host: "localhost".into(),
            port: 0,
            tls: "tls".into(),
            ca_file: PathBuf::new(),
            username: String::new(),
            password: Secret::default(),
            folder: "INBOX".into(),
            after: "move".into(),
            processed_folder: "Processed".into(),
            quarantine_folder: "Quarantine".into(),
            batch_size: 100,
            poll_secs: 60,
            timeout_secs: 60,
        }
    }
}

/// A POP3 maildrop that receives bounces (`[bounces.pop3]`). POP3 has no
/// folders: a message is deleted once its result is committed.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Pop3 {
    pub host: String,
    /// 0: the standard port for `tls` (995 for `tls`, else 110).
    pub port: u16,
    /// `none`, `starttls` (STLS) or `tls` (implicit TLS).
    pub tls: String,
    /// PEM file of further certificates to trust; empty: the built-in roots.
    pub ca_file: PathBuf,
    pub username: String,
    /// Prefer WHATSUP_BOUNCES_POP3_PASSWORD.
    pub password: Secret,
    /// Messages handled per session; deletions take effect at its QUIT.
    pub batch_size: u32,
    /// Seconds between passes when polling continuously.
    pub poll_secs: u64,
    /// Timeout for connecting and for each command, in seconds.
    pub timeout_secs: u64,
}

impl Default for Pop3 {
    fn default() -> Self {
        Pop3 {
            host: "localhost".into(),
            port: 0,
            tls: "tls".into(),
            ca_file: PathBuf::new(),
            username: String::new(),
            password: Secret::default(),
            batch_size: 100,
            poll_secs: 60,
            timeout_secs: 60,
        }
    }
}

impl Default for Bounces {
    fn default() -> Self {
        Bounces {
            hard_action: "bounce".into(),
            soft_action: "bounce".into(),
            soft_threshold: 3,
            soft_window_days: 30,
            complaint_action: "unsubscribe".into(),
            act_on_unverified: false,
            max_message_bytes: 10 * 1024 * 1024,
            quarantine_dir: PathBuf::new(),
            imap: Imap::default(),
            pop3: Pop3::default(),
        }
    }
}

pub const DEFAULT_FILE: &str = "config/whatsup.toml";

impl Config {
    /// Loads defaults, the file (explicit, or the default one if present), then
    /// the environment given as `(name, value)` pairs.
    pub fn load(
        explicit: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded> {
        let file = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from(DEFAULT_FILE)).filter(|p| p.exists()),
        };
        let mut value = toml::Value::try_from(Config::default()).context("encoding defaults")?;
        if let Some(path) = &file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            let from_file: toml::Value =
                toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e))?;
            // Validate the file's own keys and types before merging.
            Config::deserialize(from_file.clone())
                .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e))?;
            merge(&mut value, from_file);
        }
        let env: Vec<(String, String)> = env.into_iter().collect();
        let known = setting_variables(&value);
        let unknown_env = unknown_variables(env.iter().map(|(k, _)| k.as_str()), &known, &[]);
        let env_overrides = apply_env(&mut value, env)?;
        let config = Config::deserialize(value).context("applying environment overrides")?;
        config.validate()?;
        Ok(Loaded {
            config,
            file,
            env_overrides,
            unknown_env,
        })
    }

    /// The database URL, with the embedded default filled in.
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!(
                "sqlite://{}",
                self.general.data_dir.join("whatsup.db").display()
            )
        } else {
            self.database.url.expose().to_string()
        }
    }

    fn validate(&self) -> Result<()> {
        if !matches!(
            self.database.sqlite_synchronous.as_str(),
            "full" | "normal" | "extra"
        ) {
            bail!(
                "database.sqlite_synchronous: {:?} is not one of full, normal, extra",
                self.database.sqlite_synchronous
            );
        }
        let page = self.database.sqlite_page_size;
        if !(512..=65536).contains(&page) || !page.is_power_of_two() {
            bail!(
                "database.sqlite_page_size: must be a power of two from 512 to 65536, got {page}"
            );
        }
        if self.import.batch_size == 0 || self.import.batch_size > 100_000 {
            bail!(
                "import.batch_size: must be between 1 and 100000, got {}",
                self.import.batch_size
            );
        }
        if !matches!(self.general.log_format.as_str(), "text" | "json") {
            bail!(
                "general.log_format: {:?} is not one of text, json",
                self.general.log_format
            );
        }
        if self.general.timezone.parse::<chrono_tz::Tz>().is_err() {
            bail!(
                "general.timezone: {:?} is not an IANA time zone",
                self.general.timezone
            );
        }
        for server in self.smtp.servers() {
            if !matches!(server.tls.as_str(), "none" | "starttls" | "tls") {
                bail!(
                    "smtp.tls ({}): {:?} is not one of none, starttls, tls",
                    server.name,
                    server.tls
                );
            }
            if server.weight == 0 || server.max_connections == 0 {
                bail!(
                    "smtp ({}): weight and max_connections must be at least 1",
                    server.name
                );
            }
        }
        if !matches!(self.sending.transport.as_str(), "outbox" | "smtp") {
            bail!(
                "sending.transport: {:?} is not one of outbox, smtp",
                self.sending.transport
            );
        }
        if self.sending.batch_size == 0 || self.sending.max_attempts == 0 {
            bail!("sending.batch_size and sending.max_attempts must be at least 1");
        }
        // A live worker renews its claims every third of the lease, so a
        // batch need not drain within one lease; the lease only has to
        // leave room for that heartbeat.
        if self.sending.lease_secs == 0 || self.sending.lease_secs > 86_400 {
            bail!(
                "sending.lease_secs: must be between 1 and 86400, got {} (claims are renewed \
                 every third of it while their worker lives)",
                self.sending.lease_secs
            );
        }
        if !(0.0..=1.0).contains(&self.sending.pause_error_rate) {
            bail!("sending.pause_error_rate must be between 0 and 1");
        }
        for (key, action) in [
            ("bounces.hard_action", &self.bounces.hard_action),
            ("bounces.soft_action", &self.bounces.soft_action),
            ("bounces.complaint_action", &self.bounces.complaint_action),
        ] {
            if !matches!(action.as_str(), "bounce" | "unsubscribe" | "record") {
                bail!("{key}: {action:?} is not one of bounce, unsubscribe, record");
            }
        }
        if self.bounces.soft_threshold == 0 || self.bounces.soft_window_days == 0 {
            bail!("bounces.soft_threshold and bounces.soft_window_days must be at least 1");
        }
        self.validate_mailboxes()?;
        if !matches!(self.dkim.algorithm.as_str(), "ed25519" | "rsa") {
            bail!(
                "dkim.algorithm: {:?} is not one of ed25519, rsa",
                self.dkim.algorithm
            );
        }
        if self.newsletter.timezone.parse::<chrono_tz::Tz>().is_err() {
            bail!(
                "newsletter.timezone: {:?} is not an IANA time zone",
                self.newsletter.timezone
            );
        }
        if !self.newsletter.base_url.starts_with("https://")
            && !self.newsletter.base_url.starts_with("http://")
        {
            bail!(
                "newsletter.base_url: {:?} must start with https://",
                self.newsletter.base_url
            );
        }
        if !self.newsletter.from_address.contains('@') {
            bail!(
                "newsletter.from_address: {:?} is not an email address",
                self.newsletter.from_address
            );
        }
        if self.web.bind.parse::<std::net::SocketAddr>().is_err() {
            bail!(
                "web.bind: {:?} is not an address and port such as 127.0.0.1:8080",
                self.web.bind
            );
        }
        self.validate_admin()?;
        match self.web.metrics_bind.as_str() {
            "off" => {}
            "public" if self.web.metrics_token.is_empty() => bail!(
                "web.metrics_token: required when web.metrics_bind is \"public\" \
                 (set WHATSUP_WEB_METRICS_TOKEN to a long random string)"
            ),
            "public" => {}
            other if other.parse::<std::net::SocketAddr>().is_err() => bail!(
                "web.metrics_bind: {other:?} is not an address and port such as \
                 127.0.0.1:9464, nor \"public\" or \"off\""
            ),
            _ => {}
        }
        if self.web.one_click_max_wait_secs > 60 {
            bail!(
                "web.one_click_max_wait_secs: at most 60, got {}",
                self.web.one_click_max_wait_secs
            );
        }
        if self.web.commit_batch == 0 || self.web.commit_batch > 10_000 {
            bail!(
                "web.commit_batch: must be between 1 and 10000, got {}",
                self.web.commit_batch
            );
        }
        let hooks = &self.webhooks;
        if hooks.max_body_bytes < 1024 {
            bail!(
                "webhooks.max_body_bytes: must be at least 1024, got {}",
                hooks.max_body_bytes
            );
        }
        if hooks.postmark_username.is_empty() != hooks.postmark_password.is_empty() {
            bail!("webhooks.postmark_username and webhooks.postmark_password: set both or neither");
        }
        if hooks.postmark_username.contains(':') {
            bail!("webhooks.postmark_username: must not contain ':' (HTTP Basic)");
        }
        if !hooks.ses_topic_arns.is_empty() && hooks.ses_cert_hosts.is_empty() {
            bail!("webhooks.ses_cert_hosts: at least one host pattern is needed for SES");
        }
        for arn in &hooks.ses_topic_arns {
            if !arn.starts_with("arn:") {
                bail!("webhooks.ses_topic_arns: {arn:?} is not an ARN (arn:aws:sns:REGION:ACCOUNT:TOPIC)");
            }
        }
        if hooks.sendgrid_max_age_secs == 0 {
            bail!("webhooks.sendgrid_max_age_secs must be at least 1");
        }
        self.branding.validate()?;
        self.media.validate()?;
        self.validate_doctor()?;
        if !self.security.token_secret.is_empty() && self.security.token_secret.expose().len() < 32
        {
            bail!("security.token_secret: must be at least 32 bytes long");
        }
        Ok(())
    }
}

/// Keys whose values are secrets, wherever they appear.
const SECRET_KEYS: &[&str] = &[
    "password",
    "token_secret",
    "previous_token_secrets",
    "private_key",
    "postmark_password",
    "metrics_token",
];

impl Config {
    fn validate_doctor(&self) -> Result<()> {
        let d = &self.doctor;
        if !d.resolver.is_empty()
            && d.resolver.parse::<std::net::IpAddr>().is_err()
            && d.resolver.parse::<std::net::SocketAddr>().is_err()
        {
            bail!(
                "doctor.resolver: {:?} is not an address such as 192.0.2.53 or 127.0.0.1:5353",
                d.resolver
            );
        }
        for ip in &d.sending_ips {
            if ip.parse::<std::net::IpAddr>().is_err() {
                bail!("doctor.sending_ips: {ip:?} is not an IP address");
            }
        }
        if d.timeout_secs == 0 {
            bail!("doctor.timeout_secs must be at least 1");
        }
        Ok(())
    }

    /// The settings as a TOML value with every secret shown only as set
    /// (`[redacted]`) or not (empty), and the database URL's password
    /// hidden.
    pub fn redacted(&self) -> Result<toml::Value> {
        fn walk(v: &mut toml::Value) {
            // Arrays of tables too: each `[[smtp.fallback]]` has a password.
            if let toml::Value::Array(items) = v {
                items.iter_mut().for_each(walk);
            }
            if let toml::Value::Table(t) = v {
                for (k, slot) in t.iter_mut() {
                    if SECRET_KEYS.contains(&k.as_str()) {
                        let set = match &*slot {
                            toml::Value::String(s) => !s.is_empty(),
                            toml::Value::Array(a) => !a.is_empty(),
                            _ => false,
                        };
                        *slot = toml::Value::String(if set {
                            "[redacted]".into()
                        } else {
                            String::new()
                        });
                    } else {
                        walk(slot);
                    }
                }
            }
        }
        let mut value = toml::Value::try_from(self)?;
        walk(&mut value);
        if let Some(url) = value.get_mut("database").and_then(|d| d.get_mut("url")) {
            *url = toml::Value::String(crate::store::redact_url(self.database.url.expose()));
        }
        Ok(value)
    }

    fn validate_admin(&self) -> Result<()> {
        let a = &self.admin;
        if !a.bind.is_empty() {
            let Ok(bind) = a.bind.parse::<std::net::SocketAddr>() else {
                bail!(
                    "admin.bind: {:?} is not an address and port such as 127.0.0.1:8081",
                    a.bind
                );
            };
            // Port 0 (any free port) gives each listener a port of its own.
            if a.bind == self.web.bind && bind.port() != 0 {
                bail!("admin.bind: the admin listener cannot share web.bind ({bind}), the recipients' listener");
            }
            if a.bind == self.web.metrics_bind && bind.port() != 0 {
                bail!("admin.bind: the admin listener cannot share web.metrics_bind ({bind})");
            }
        }
        if !a.base_url.starts_with("https://") && !a.base_url.starts_with("http://") {
            bail!(
                "admin.base_url: {:?} must start with https:// or http://",
                a.base_url
            );
        }
        for (key, n) in [
            ("admin.session_idle_minutes", a.session_idle_minutes),
            ("admin.session_absolute_hours", a.session_absolute_hours),
            ("admin.login_delay_base_secs", a.login_delay_base_secs),
            ("admin.login_forget_minutes", a.login_forget_minutes),
        ] {
            if n == 0 {
                bail!("{key}: must be at least 1");
            }
        }
        if a.login_delay_max_secs < a.login_delay_base_secs {
            bail!("admin.login_delay_max_secs: must be at least admin.login_delay_base_secs");
        }
        if a.max_body_bytes < 1024 {
            bail!(
                "admin.max_body_bytes: must be at least 1024, got {}",
                a.max_body_bytes
            );
        }
        Ok(())
    }

    fn validate_mailboxes(&self) -> Result<()> {
        let imap = &self.bounces.imap;
        let pop3 = &self.bounces.pop3;
        for (key, tls) in [
            ("bounces.imap.tls", &imap.tls),
            ("bounces.pop3.tls", &pop3.tls),
        ] {
            if !matches!(tls.as_str(), "none" | "starttls" | "tls") {
                bail!("{key}: {tls:?} is not one of none, starttls, tls");
            }
        }
        if !matches!(imap.after.as_str(), "move" | "delete") {
            bail!(
                "bounces.imap.after: {:?} is not one of move, delete",
                imap.after
            );
        }
        for (key, n) in [
            ("bounces.imap.batch_size", imap.batch_size),
            ("bounces.pop3.batch_size", pop3.batch_size),
        ] {
            if n == 0 || n > 10_000 {
                bail!("{key}: must be between 1 and 10000, got {n}");
            }
        }
        for (key, n) in [
            ("bounces.imap.poll_secs", imap.poll_secs),
            ("bounces.imap.timeout_secs", imap.timeout_secs),
            ("bounces.pop3.poll_secs", pop3.poll_secs),
            ("bounces.pop3.timeout_secs", pop3.timeout_secs),
        ] {
            if n == 0 {
                bail!("{key}: must be at least 1");
            }
        }
        // Folder names go on the wire as quoted strings; names outside
        // printable ASCII would need IMAP's modified UTF-7.
        for (key, name) in [
            ("bounces.imap.folder", &imap.folder),
            ("bounces.imap.processed_folder", &imap.processed_folder),
            ("bounces.imap.quarantine_folder", &imap.quarantine_folder),
        ] {
            if !name.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
                bail!(
                    "{key}: {name:?} must be printable ASCII (folder names in \
                     modified UTF-7 are not supported)"
                );
            }
        }
        if imap.folder.is_empty() {
            bail!("bounces.imap.folder: must not be empty");
        }
        if imap.after == "move" && imap.processed_folder.is_empty() {
            bail!("bounces.imap.processed_folder: must not be empty when after = \"move\"");
        }
        let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        if imap.after == "move" && same(&imap.processed_folder, &imap.folder) {
            bail!(
                "bounces.imap.processed_folder: {:?} is the folder being read",
                imap.processed_folder
            );
        }
        if same(&imap.quarantine_folder, &imap.folder) {
            bail!(
                "bounces.imap.quarantine_folder: {:?} is the folder being read",
                imap.quarantine_folder
            );
        }
        Ok(())
    }
}

fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// The `WHATSUP_<SECTION>_<KEY>` name of every setting in `value` (the
/// defaults: every key exists there).
fn setting_variables(value: &toml::Value) -> Vec<String> {
    fn walk(prefix: &str, table: &toml::map::Map<String, toml::Value>, out: &mut Vec<String>) {
        for (key, v) in table {
            let name = format!("{prefix}_{}", key.to_uppercase());
            match v {
                toml::Value::Table(inner) => walk(&name, inner, out),
                _ => out.push(name),
            }
        }
    }
    let mut out = Vec::new();
    if let toml::Value::Table(t) = value {
        walk("WHATSUP", t, &mut out);
    }
    out
}

/// The `WHATSUP_*` names among `names` that are neither a setting
/// (`settings`), nor in [`OTHER_VARIABLES`] or `also_known`, each with the
/// nearest known name.
pub fn unknown_variables<'a>(
    names: impl IntoIterator<Item = &'a str>,
    settings: &[String],
    also_known: &[String],
) -> Vec<UnknownVariable> {
    let known: Vec<&str> = settings
        .iter()
        .chain(also_known)
        .map(String::as_str)
        .chain(OTHER_VARIABLES.iter().copied())
        .collect();
    let mut out: Vec<UnknownVariable> = names
        .into_iter()
        .filter(|n| n.starts_with("WHATSUP_") && !known.contains(n))
        .map(|name| UnknownVariable {
            name: name.to_string(),
            nearest: known
                .iter()
                .min_by_key(|k| strsim::damerau_levenshtein(name, k))
                .map(|k| k.to_string()),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup();
    out
}

/// The `WHATSUP_<SECTION>_<KEY>` name of every setting.
pub fn all_setting_variables() -> Vec<String> {
    toml::Value::try_from(Config::default())
        .map(|v| setting_variables(&v))
        .unwrap_or_default()
}

/// Applies `WHATSUP_<SECTION>_<KEY>` variables to the known keys, parsing each
/// by the type of its default. Returns the names of the variables applied.
fn apply_env(
    value: &mut toml::Value,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<String>> {
    let mut applied = Vec::new();
    let vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("WHATSUP_"))
        .collect();
    let toml::Value::Table(sections) = value else {
        return Ok(applied);
    };
    for (section, table) in sections.iter_mut() {
        let toml::Value::Table(keys) = table else {
            continue;
        };
        apply_env_table(
            keys,
            &format!("WHATSUP_{}", section.to_uppercase()),
            &vars,
            &mut applied,
        )?;
    }
    Ok(applied)
}

/// Applies `<prefix>_<KEY>` to each key of `keys`; a nested table (such as
/// `[bounces.imap]`) takes `<prefix>_<TABLE>_<KEY>`.
fn apply_env_table(
    keys: &mut toml::map::Map<String, toml::Value>,
    prefix: &str,
    vars: &[(String, String)],
    applied: &mut Vec<String>,
) -> Result<()> {
    for (key, slot) in keys.iter_mut() {
        let name = format!("{prefix}_{}", key.to_uppercase());
        if let toml::Value::Table(inner) = slot {
            apply_env_table(inner, &name, vars, applied)?;
            continue;
        }
        let Some((_, raw)) = vars.iter().find(|(k, _)| *k == name) else {
            continue;
        };
        *slot = match slot {
            toml::Value::Integer(_) => toml::Value::Integer(
                raw.trim()
                    .parse()
                    .with_context(|| format!("{name}: not an integer"))?,
            ),
            toml::Value::Float(_) => toml::Value::Float(
                raw.trim()
                    .parse()
                    .with_context(|| format!("{name}: not a number"))?,
            ),
            toml::Value::Array(_) => toml::Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(|v| toml::Value::String(v.to_string()))
                    .collect(),
            ),
            toml::Value::Boolean(_) => toml::Value::Boolean(match raw.trim() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => bail!("{name}: expected true or false"),
            }),
            _ => toml::Value::String(raw.clone()),
        };
        applied.push(name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug_output() {
        let mut c = Config::default();
        c.smtp.password = Secret::new("hunter2-very-secret");
        c.database.url = Secret::new("postgres://u:pw@localhost/db");
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains(":pw@"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn redacted_settings_hide_every_secret_including_the_fallback_relays() {
        let mut c = Config::default();
        c.smtp.password = Secret::new("hunter2-primary");
        c.database.url = Secret::new("postgres://u:dbpass@localhost/db");
        c.smtp.fallback = vec![SmtpServer {
            name: "backup".into(),
            password: Secret::new("hunter2-fallback"),
            ..SmtpServer::default()
        }];
        let shown = toml::to_string(&c.redacted().unwrap()).unwrap();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("dbpass"), "{shown}");
        assert_eq!(shown.matches("[redacted]").count(), 2, "{shown}");
        assert!(shown.contains("backup"), "{shown}");
    }

    #[test]
    fn the_admin_listener_may_not_share_the_recipients_address_but_both_may_take_any_free_port() {
        let mut c = Config::default();
        c.web.bind = "127.0.0.1:8080".into();
        c.admin.bind = "127.0.0.1:8080".into();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("cannot share web.bind"), "{e}");
        c.web.bind = "127.0.0.1:0".into();
        c.admin.bind = "127.0.0.1:0".into();
        c.validate().unwrap();
    }

    #[test]
    fn environment_variables_override_file_and_defaults() {
        let env = vec![
            (
                "WHATSUP_DATABASE_URL".to_string(),
                "sqlite://x.db".to_string(),
            ),
            ("WHATSUP_IMPORT_BATCH_SIZE".to_string(), "500".to_string()),
            (
                "WHATSUP_DATABASE_AUTO_MIGRATE".to_string(),
                "false".to_string(),
            ),
            ("UNRELATED".to_string(), "1".to_string()),
        ];
        let loaded = Config::load(Some(Path::new("/dev/null")), env).unwrap();
        assert_eq!(loaded.config.database_url(), "sqlite://x.db");
        assert_eq!(loaded.config.import.batch_size, 500);
        assert!(!loaded.config.database.auto_migrate);
        assert_eq!(loaded.env_overrides.len(), 3);
    }

    #[test]
    fn nested_tables_take_environment_variables_with_the_table_name() {
        let env = vec![
            (
                "WHATSUP_BOUNCES_IMAP_PASSWORD".to_string(),
                "imap-secret".to_string(),
            ),
            ("WHATSUP_BOUNCES_POP3_PORT".to_string(), "1110".to_string()),
        ];
        let loaded = Config::load(Some(Path::new("/dev/null")), env).unwrap();
        assert_eq!(loaded.config.bounces.imap.password.expose(), "imap-secret");
        assert_eq!(loaded.config.bounces.pop3.port, 1110);
        assert_eq!(
            loaded.env_overrides,
            ["WHATSUP_BOUNCES_IMAP_PASSWORD", "WHATSUP_BOUNCES_POP3_PORT"]
        );
        assert!(!format!("{:?}", loaded.config).contains("imap-secret"));
    }

    #[test]
    fn a_mailbox_that_would_move_messages_into_itself_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[bounces.imap]\nprocessed_folder = \"inbox\"\n").unwrap();
        let err = Config::load(Some(&path), Vec::new()).unwrap_err();
        assert!(
            err.to_string().contains("bounces.imap.processed_folder"),
            "{err:#}"
        );
    }

    #[test]
    fn a_sqlite_page_size_that_is_not_a_power_of_two_in_range_is_refused() {
        for bad in ["1000", "256", "131072"] {
            let env = vec![(
                "WHATSUP_DATABASE_SQLITE_PAGE_SIZE".to_string(),
                bad.to_string(),
            )];
            let err = Config::load(Some(Path::new("/dev/null")), env).unwrap_err();
            assert!(
                format!("{err:#}").contains("database.sqlite_page_size"),
                "{bad}: {err:#}"
            );
        }
        let env = vec![(
            "WHATSUP_DATABASE_SQLITE_PAGE_SIZE".to_string(),
            "8192".to_string(),
        )];
        let loaded = Config::load(Some(Path::new("/dev/null")), env).unwrap();
        assert_eq!(loaded.config.database.sqlite_page_size, 8192);
    }

    #[test]
    fn a_misspelt_variable_is_reported_with_the_nearest_known_name() {
        let env = vec![
            ("WHATSUP_SMTP_PROT".to_string(), "2525".to_string()),
            ("WHATSUP_SMTP_PORT".to_string(), "2526".to_string()),
            ("WHATSUP_CONFIG".to_string(), "/dev/null".to_string()),
            ("WHATSUP_TEST_POSTGRES_URL".to_string(), "x".to_string()),
            ("NOT_OURS_SMTP_PROT".to_string(), "1".to_string()),
        ];
        let loaded = Config::load(Some(Path::new("/dev/null")), env).unwrap();
        assert_eq!(loaded.config.smtp.port, 2526);
        assert_eq!(
            loaded.unknown_env,
            [UnknownVariable {
                name: "WHATSUP_SMTP_PROT".into(),
                nearest: Some("WHATSUP_SMTP_PORT".into()),
            }]
        );
        assert_eq!(
            loaded.unknown_env[0].to_string(),
            "WHATSUP_SMTP_PROT is not a whatsup setting; it is ignored \
             (did you mean WHATSUP_SMTP_PORT?)"
        );
        // Nested tables' keys are known too, and names a flag reads can be added.
        let names = ["WHATSUP_BOUNCES_IMAP_PASWORD", "WHATSUP_ADMIN_TOKEN"];
        let unknown = unknown_variables(
            names,
            &all_setting_variables(),
            &["WHATSUP_ADMIN_TOKEN".to_string()],
        );
        assert_eq!(unknown.len(), 1);
        assert_eq!(
            unknown[0].nearest.as_deref(),
            Some("WHATSUP_BOUNCES_IMAP_PASSWORD")
        );
    }

    #[test]
    fn a_bad_environment_value_names_the_variable() {
        let env = vec![("WHATSUP_IMPORT_BATCH_SIZE".to_string(), "many".to_string())];
        let err = Config::load(Some(Path::new("/dev/null")), env).unwrap_err();
        assert!(
            format!("{err:#}").contains("WHATSUP_IMPORT_BATCH_SIZE"),
            "{err:#}"
        );
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors_with_the_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[database]\nurll = \"x\"\n").unwrap();
        let err = Config::load(Some(&path), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("c.toml") && err.contains("urll"), "{err}");
    }

    #[test]
    fn branding_colours_must_be_hex_and_keep_text_readable() {
        let load = |key: &str, value: &str| {
            Config::load(
                Some(Path::new("/dev/null")),
                vec![(key.to_string(), value.to_string())],
            )
        };
        let err = load("WHATSUP_BRANDING_PRIMARY_COLOUR", "#f0f0f0").unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("branding.primary_colour") && msg.contains("4.5:1"),
            "{msg}"
        );
        let err = load("WHATSUP_BRANDING_ACCENT_COLOUR", "red; x: y").unwrap_err();
        assert!(format!("{err:#}").contains("#rrggbb"), "{err:#}");
        let err = load("WHATSUP_BRANDING_ACCENT_COLOUR", "#ffff00").unwrap_err();
        assert!(format!("{err:#}").contains("3:1"), "{err:#}");
        let ok = load("WHATSUP_BRANDING_PRIMARY_COLOUR", "#000000").unwrap();
        assert_eq!(ok.config.branding.primary_colour, "#000000");
        // The defaults: navy with white text, a vermilion rule.
        assert!(contrast_with_white(parse_hex_colour("#14284b").unwrap()) > 13.0);
        assert!(contrast_with_white(parse_hex_colour("#d64933").unwrap()) > 4.0);
    }

    #[test]
    fn the_shipped_config_file_matches_the_built_in_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_FILE);
        let loaded = Config::load(Some(&path), Vec::new()).unwrap();
        let shipped = toml::Value::try_from(&loaded.config).unwrap();
        let defaults = toml::Value::try_from(Config::default()).unwrap();
        assert_eq!(shipped, defaults);
    }
}
