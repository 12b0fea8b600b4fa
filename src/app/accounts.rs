//! Accounts, passwords, logins, sessions and API tokens.
//!
//! - **Passwords** are at least 12 characters and not guessable: zxcvbn's
//!   score must reach 3 of 4, which refuses its 30,000 common passwords,
//!   names, dictionary words, keyboard walks, repeats and dates, each with
//!   l33t variants. They are hashed with argon2id ([`ARGON2_M_KIB`],
//!   [`ARGON2_T`], [`ARGON2_P`]: OWASP's first recommendation) on a
//!   blocking thread, never on the async runtime.
//! - **Logins** check a dummy hash for unknown and disabled accounts, so the
//!   time taken does not tell whether an account exists. Failures are
//!   counted per account and per client IP; past the free attempts each
//!   further attempt must wait, doubling from `admin.login_delay_base_secs`
//!   to `admin.login_delay_max_secs` (answered without checking the
//!   password).
//! - **Sessions** are random 256-bit ids held in an HttpOnly cookie and
//!   stored by their SHA-256; each has its own CSRF token. A login ends the
//!   session the browser presented and starts a new one (no fixation). A
//!   session ends after `admin.session_idle_minutes` without a request,
//!   `admin.session_absolute_hours` after login, when its account is
//!   disabled, or when its password changes (a fingerprint of the password
//!   hash is part of the session).
//! - **API tokens** are `wu_` and 43 characters of random base64url, shown
//!   once and stored by their SHA-256. A token acts with its user's role
//!   and stops working at once when revoked or when its user is disabled.

use std::net::IpAddr;
use std::sync::OnceLock;

use anyhow::{anyhow, Context, Result};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::Utc;
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

use super::error::AppError;
use super::require;
use crate::config::Config;
use crate::domain::{Account, Action, Actor, EmailAddress, Role};
use crate::store::audit::{AuditFilter, AuditRow};
use crate::store::users::{ApiToken, NewSession, Session, ThrottleScope, User};
use crate::store::Store;

/// Argon2id memory in KiB (19 MiB), iterations and lanes: OWASP's password
/// storage recommendation (m=19456, t=2, p=1).
pub const ARGON2_M_KIB: u32 = 19_456;
pub const ARGON2_T: u32 = 2;
pub const ARGON2_P: u32 = 1;

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// The prefix of API tokens, so they are recognisable in a leak scan.
pub const TOKEN_PREFIX: &str = "wu_";

fn argon2() -> Argon2<'static> {
    let params =
        Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// `n` random bytes from the operating system.
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    SystemRandom::new()
        .fill(&mut buf)
        .expect("the operating system's random number generator");
    buf
}

/// 256 random bits as base64url: session ids and CSRF tokens.
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// SHA-256 of a secret, in hex: how sessions and tokens are stored.
pub fn secret_hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The fingerprint of a password hash kept in each session.
fn password_tag(password_hash: &str) -> String {
    secret_hash(password_hash)[..32].to_string()
}

/// Checks the password rules; the error says what is wrong.
pub fn check_password(password: &str, email: &str) -> Result<(), AppError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AppError::field(
            "password",
            format!("must be at least {MIN_PASSWORD_CHARS} characters long"),
        ));
    }
    let local = email.split('@').next().unwrap_or("");
    let entropy = zxcvbn::zxcvbn(password, &[email, local, "whatsup", "tokyo"]);
    if u8::from(entropy.score()) < 3 {
        let why = entropy
            .feedback()
            .and_then(|f| f.warning())
            .map(|w| format!(" ({w})"))
            .unwrap_or_default();
        return Err(AppError::field(
            "password",
            format!(
                "is too common or too easy to guess{why}; use a longer phrase of unrelated words"
            ),
        ));
    }
    Ok(())
}

/// Hashes a password with argon2id on a blocking thread.
pub async fn hash_password(password: &str) -> Result<String> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&random_bytes::<16>())
            .map_err(|e| anyhow!("argon2 salt: {e}"))?;
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow!("argon2: {e}"))
    })
    .await
    .context("password hashing task")?
}

/// A hash of a random password, checked for unknown accounts so that a
/// login takes as long whether or not the account exists.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::encode_b64(&random_bytes::<16>()).expect("salt");
        argon2()
            .hash_password(random_token().as_bytes(), &salt)
            .expect("argon2 hash")
            .to_string()
    })
}

/// Verifies a password against a PHC hash on a blocking thread; an empty
/// hash (no account, no password) is checked against the dummy and fails.
pub async fn verify_password(password: &str, hash: &str) -> Result<bool> {
    let password = password.to_string();
    let hash = hash.to_string();
    tokio::task::spawn_blocking(move || {
        let real = !hash.is_empty();
        let hash = if real { hash.as_str() } else { dummy_hash() };
        let parsed = PasswordHash::new(hash).map_err(|e| anyhow!("stored password hash: {e}"))?;
        let ok = argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(ok && real)
    })
    .await
    .context("password verification task")?
}

// ---- accounts ----------------------------------------------------------

/// Adds an account; a password is optional (set it later with a reset).
pub async fn add_user(
    store: &Store,
    actor: &Actor,
    email: &str,
    name: &str,
    role: Role,
    password: Option<&str>,
) -> Result<User, AppError> {
    require(actor, Action::UsersManage)?;
    let email = EmailAddress::parse(email).map_err(|e| AppError::field("email", e.to_string()))?;
    let hash = match password {
        Some(p) => {
            check_password(p, email.as_str())?;
            hash_password(p).await?
        }
        None => String::new(),
    };
    if store.user_by_email(email.as_str()).await?.is_some() {
        return Err(AppError::Conflict(format!(
            "an account for {email} exists already"
        )));
    }
    Ok(store
        .create_user(email.as_str(), name, role, &hash, actor)
        .await?)
}

/// The account by id, or 404.
pub async fn user(store: &Store, id: i64) -> Result<User, AppError> {
    store
        .user_by_id(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no account with id {id}")))
}

/// The account by address, or 404.
pub async fn user_by_email(store: &Store, email: &str) -> Result<User, AppError> {
    store
        .user_by_email(email)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no account {}", email.trim())))
}

/// Refuses a change that would leave no enabled admin, or that an admin
/// makes to their own account's role or access (a lock-out by mistake).
async fn guard_admins(store: &Store, actor: &Actor, target: &User) -> Result<(), AppError> {
    if actor.account().is_some_and(|a| a.id == target.id) {
        return Err(AppError::Conflict(
            "you cannot change your own role or disable your own account; ask another admin".into(),
        ));
    }
    if target.role == Role::Admin.as_str()
        && !target.disabled()
        && store.enabled_admins().await? <= 1
    {
        return Err(AppError::Conflict(format!(
            "{} is the last enabled admin",
            target.email
        )));
    }
    Ok(())
}

pub async fn set_role(store: &Store, actor: &Actor, id: i64, role: Role) -> Result<User, AppError> {
    require(actor, Action::UsersManage)?;
    let target = user(store, id).await?;
    if target.role == role.as_str() {
        return Ok(target);
    }
    guard_admins(store, actor, &target).await?;
    store
        .set_user_role(id, role, actor)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no account with id {id}")))
}

/// Disables (at once: sessions end, tokens stop) or enables an account.
pub async fn set_disabled(
    store: &Store,
    actor: &Actor,
    id: i64,
    disabled: bool,
) -> Result<User, AppError> {
    require(actor, Action::UsersManage)?;
    let target = user(store, id).await?;
    if target.disabled() == disabled {
        return Ok(target);
    }
    if disabled {
        guard_admins(store, actor, &target).await?;
    }
    store
        .set_user_disabled(id, disabled, actor)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no account with id {id}")))
}

/// Sets a new password (its sessions end).
pub async fn reset_password(
    store: &Store,
    actor: &Actor,
    id: i64,
    password: &str,
) -> Result<User, AppError> {
    require(actor, Action::UsersManage)?;
    let target = user(store, id).await?;
    check_password(password, &target.email)?;
    let hash = hash_password(password).await?;
    store.set_password_hash(id, &hash, actor).await?;
    user(store, id).await
}

/// Every account, for those who manage them.
pub async fn list_users(store: &Store, actor: &Actor) -> Result<Vec<User>, AppError> {
    require(actor, Action::UsersManage)?;
    Ok(store.list_users().await?)
}

/// A page of the audit trail, newest first.
#[derive(Debug, Clone)]
pub struct AuditPage {
    pub items: Vec<AuditRow>,
    /// The `before` of the next (older) page; `None` at the end.
    pub next_before: Option<i64>,
}

/// The most entries one page of the audit trail holds.
pub const AUDIT_PAGE_MAX: i64 = 1000;

/// The audit trail filtered (`limit` is clamped to 1..=[`AUDIT_PAGE_MAX`]);
/// empty text filters are no filter.
pub async fn audit(
    store: &Store,
    actor: &Actor,
    filter: AuditFilter,
) -> Result<AuditPage, AppError> {
    require(actor, Action::AuditRead)?;
    let blank = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let filter = AuditFilter {
        actor: blank(filter.actor),
        object_kind: blank(filter.object_kind),
        object_id: blank(filter.object_id),
        limit: filter.limit.clamp(1, AUDIT_PAGE_MAX),
        ..filter
    };
    let items = store.audit_entries(&filter).await?;
    let next_before = if items.len() as i64 == filter.limit {
        items.last().map(|r| r.id)
    } else {
        None
    };
    Ok(AuditPage { items, next_before })
}

// ---- logins and sessions ---------------------------------------------

/// What a login presents.
#[derive(Debug, Clone)]
pub struct LoginRequest<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub ip: Option<IpAddr>,
    pub user_agent: &'a str,
    /// The session cookie the browser sent, if any: it ends at login.
    pub presented_session: Option<&'a str>,
}

/// A successful login: the new session's cookie value and CSRF token.
#[derive(Debug, Clone)]
pub struct LoggedIn {
    pub session: String,
    pub csrf_token: String,
    pub user: User,
}

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Too many recent failures: try again after this many seconds.
    #[error("too many failed logins; try again in {0} s")]
    Throttled(u64),
    /// Wrong address or password, or a disabled account (not told apart).
    #[error("wrong email address or password")]
    Invalid,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// How long (ms) a key must still wait before its next attempt.
fn throttle_wait_ms(failures: Option<(i64, i64)>, free: u32, config: &Config, now_ms: i64) -> i64 {
    let Some((n, last_ms)) = failures else {
        return 0;
    };
    let a = &config.admin;
    if now_ms - last_ms > (a.login_forget_minutes * 60_000) as i64 || n < i64::from(free) {
        return 0;
    }
    let doublings = (n - i64::from(free)).min(30) as u32;
    let delay_s = a
        .login_delay_base_secs
        .saturating_mul(1u64 << doublings)
        .min(a.login_delay_max_secs);
    (last_ms + (delay_s * 1000) as i64 - now_ms).max(0)
}

/// Logs a person in: throttling, the password check (argon2id), a new
/// session replacing any presented one, and the audit entries.
pub async fn login(
    store: &Store,
    config: &Config,
    req: &LoginRequest<'_>,
) -> Result<LoggedIn, LoginError> {
    let now_ms = Utc::now().timestamp_millis();
    let email = req.email.trim().to_lowercase();
    let ip = req.ip.map(|i| i.to_string()).unwrap_or_default();
    let a = &config.admin;
    let wait = throttle_wait_ms(
        store.login_failures(ThrottleScope::Account, &email).await?,
        a.login_free_attempts_per_account,
        config,
        now_ms,
    )
    .max(throttle_wait_ms(
        store.login_failures(ThrottleScope::Ip, &ip).await?,
        a.login_free_attempts_per_ip,
        config,
        now_ms,
    ));
    if wait > 0 {
        return Err(LoginError::Throttled((wait as u64).div_ceil(1000)));
    }
    let user = store.user_by_email(&email).await?;
    let hash = user
        .as_ref()
        .filter(|u| !u.disabled())
        .map(|u| u.password_hash.as_str())
        .unwrap_or("");
    let ok = verify_password(req.password, hash).await?;
    let Some(user) = user.filter(|_| ok) else {
        store
            .record_login_failure(
                &[(ThrottleScope::Account, &email), (ThrottleScope::Ip, &ip)],
                now_ms,
                (a.login_forget_minutes * 60_000) as i64,
                &Actor::Anonymous { ip: req.ip },
                &email,
            )
            .await?;
        return Err(LoginError::Invalid);
    };
    store
        .clear_login_failures(ThrottleScope::Account, &email)
        .await?;
    let session = random_token();
    let csrf_token = random_token();
    let actor = Actor::User {
        account: user.account()?,
        ip: req.ip,
    };
    let replaced = req.presented_session.map(secret_hash);
    store
        .create_session(
            &NewSession {
                id_hash: &secret_hash(&session),
                user_id: user.id,
                csrf_token: &csrf_token,
                password_tag: &password_tag(&user.password_hash),
                ip: req.ip.map(|i| i.to_string()),
                user_agent: req.user_agent,
                replaces: replaced.as_deref(),
            },
            &actor,
        )
        .await?;
    Ok(LoggedIn {
        session,
        csrf_token,
        user,
    })
}

/// Why a session is no longer valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    Unknown,
    Idle,
    Absolute,
    Disabled,
    PasswordChanged,
}

/// A valid session: the actor and the session's CSRF token.
#[derive(Debug, Clone)]
pub struct ValidSession {
    pub actor: Actor,
    pub session: Session,
}

/// Checks a session cookie; an expired or invalidated session is removed.
pub async fn check_session(
    store: &Store,
    config: &Config,
    cookie: &str,
    ip: Option<IpAddr>,
) -> Result<Result<ValidSession, SessionEnd>> {
    let id_hash = secret_hash(cookie);
    let Some((session, user)) = store.session(&id_hash).await? else {
        return Ok(Err(SessionEnd::Unknown));
    };
    let now = Utc::now();
    let a = &config.admin;
    let end = if user.disabled() {
        Some(SessionEnd::Disabled)
    } else if session.password_tag != password_tag(&user.password_hash) {
        Some(SessionEnd::PasswordChanged)
    } else if now - session.created_at > chrono::Duration::hours(a.session_absolute_hours as i64) {
        Some(SessionEnd::Absolute)
    } else if now - session.last_seen_at > chrono::Duration::minutes(a.session_idle_minutes as i64)
    {
        Some(SessionEnd::Idle)
    } else {
        None
    };
    if let Some(end) = end {
        store.delete_session(&id_hash, None).await?;
        return Ok(Err(end));
    }
    // At most one write a minute per session for the idle clock.
    if now - session.last_seen_at > chrono::Duration::seconds(60) {
        store.touch_session(&id_hash).await?;
    }
    Ok(Ok(ValidSession {
        actor: Actor::User {
            account: user.account()?,
            ip,
        },
        session,
    }))
}

/// Ends a session (logout).
pub async fn logout(store: &Store, cookie: &str, actor: &Actor) -> Result<()> {
    store
        .delete_session(&secret_hash(cookie), Some(actor))
        .await?;
    Ok(())
}

// ---- API tokens --------------------------------------------------------

/// Creates a token for an account; returns it with its secret, which is
/// shown once and never stored.
pub async fn create_token(
    store: &Store,
    actor: &Actor,
    user_id: i64,
    name: &str,
) -> Result<(ApiToken, String), AppError> {
    require(actor, Action::TokensManage)?;
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(AppError::field("name", "must be 1 to 100 characters"));
    }
    let owner = user(store, user_id).await?;
    if owner.disabled() {
        return Err(AppError::Conflict(format!("{} is disabled", owner.email)));
    }
    if store
        .list_tokens(Some(user_id))
        .await?
        .iter()
        .any(|t| t.name == name)
    {
        return Err(AppError::Conflict(format!(
            "{} already has a token named {name:?}",
            owner.email
        )));
    }
    let secret = format!("{TOKEN_PREFIX}{}", random_token());
    let prefix: String = secret.chars().take(TOKEN_PREFIX.len() + 6).collect();
    let token = store
        .create_token(user_id, name, &secret_hash(&secret), &prefix, actor)
        .await?;
    Ok((token, secret))
}

/// API tokens, newest first (never their secrets); `user_id` for one
/// account's.
pub async fn list_tokens(
    store: &Store,
    actor: &Actor,
    user_id: Option<i64>,
) -> Result<Vec<ApiToken>, AppError> {
    require(actor, Action::TokensManage)?;
    Ok(store.list_tokens(user_id).await?)
}

/// Revokes a token. A token cannot revoke itself (use another, or the CLI).
pub async fn revoke_token(store: &Store, actor: &Actor, id: i64) -> Result<ApiToken, AppError> {
    require(actor, Action::TokensManage)?;
    if matches!(actor, Actor::Token { token_id, .. } if *token_id == id) {
        return Err(AppError::Conflict(
            "a token cannot revoke itself; revoke it with another token or the CLI".into(),
        ));
    }
    let token = store
        .token_by_id(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no token with id {id}")))?;
    if !store.revoke_token(id, actor).await? {
        return Err(AppError::Conflict(format!(
            "token {id} was revoked already"
        )));
    }
    Ok(store.token_by_id(id).await?.unwrap_or(token))
}

/// The actor of a bearer token, or `None` when it is unknown, revoked or
/// its account is disabled.
pub async fn check_token(store: &Store, secret: &str, ip: Option<IpAddr>) -> Result<Option<Actor>> {
    let Some((token, user)) = store.token_by_hash(&secret_hash(secret)).await? else {
        return Ok(None);
    };
    if token.revoked_at.is_some() || user.disabled() {
        return Ok(None);
    }
    store.touch_token(token.id, Utc::now()).await?;
    Ok(Some(Actor::Token {
        token_id: token.id,
        name: token.name,
        account: user.account()?,
        ip,
    }))
}

/// The account named by the CLI's `--as`: it must exist and be enabled.
pub async fn cli_account(store: &Store, email: &str) -> Result<Account, AppError> {
    let user = user_by_email(store, email).await?;
    if user.disabled() {
        return Err(AppError::Forbidden(format!("{} is disabled", user.email)));
    }
    Ok(user.account()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_common_passwords_are_refused_and_a_passphrase_is_not() {
        for bad in [
            "short1!",
            "password1234",
            "qwertyuiopasdf",
            "aaaaaaaaaaaaaa",
        ] {
            assert!(check_password(bad, "a@example.org").is_err(), "{bad}");
        }
        assert!(check_password("alice@example.org1", "alice@example.org").is_err());
        check_password("violet kettle harbour sings", "a@example.org").unwrap();
    }

    #[test]
    fn a_failure_count_past_the_free_attempts_waits_longer_each_time() {
        let config = Config::default();
        let now = 1_000_000_000;
        let wait = |n| throttle_wait_ms(Some((n, now)), 5, &config, now);
        assert_eq!(wait(4), 0);
        assert_eq!(wait(5), 1000);
        assert_eq!(wait(6), 2000);
        assert_eq!(wait(7), 4000);
        assert_eq!(wait(40), 900_000);
        let forgotten = throttle_wait_ms(Some((9, now - 3_600_001)), 5, &config, now);
        assert_eq!(forgotten, 0);
    }

    #[tokio::test]
    async fn a_password_verifies_against_its_hash_and_nothing_verifies_against_none() {
        let hash = hash_password("violet kettle harbour sings").await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password("violet kettle harbour sings", &hash)
            .await
            .unwrap());
        assert!(!verify_password("violet kettle harbour sang", &hash)
            .await
            .unwrap());
        assert!(!verify_password("anything at all here", "").await.unwrap());
    }
}
