//! Accounts, browser sessions, API tokens and login throttling.
//!
//! No secret is stored: a session and a token are found by the SHA-256 of
//! what the client holds, and passwords are argon2id PHC strings (made and
//! checked in `app::accounts`, never here). Every change writes its audit
//! entry in the same transaction.

use anyhow::{anyhow, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::audit::record_audit;
use super::{begin_write, Store};
use crate::domain::{Account, Actor, Role};

/// An account as stored. The password hash is never serialised.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub role: String,
    #[serde(skip)]
    pub password_hash: String,
    pub disabled_at: Option<DateTime<Utc>>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl User {
    pub fn role(&self) -> Result<Role> {
        Ok(Role::parse(&self.role)?)
    }

    /// The account as an actor carries it.
    pub fn account(&self) -> Result<Account> {
        Ok(Account {
            id: self.id,
            email: self.email.clone(),
            role: self.role()?,
        })
    }

    pub fn disabled(&self) -> bool {
        self.disabled_at.is_some()
    }
}

/// A browser session as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Session {
    pub id_hash: String,
    pub user_id: i64,
    pub csrf_token: String,
    pub password_tag: String,
    pub ip: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

/// A new session: what the server made at login.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub id_hash: &'a str,
    pub user_id: i64,
    pub csrf_token: &'a str,
    pub password_tag: &'a str,
    pub ip: Option<String>,
    pub user_agent: &'a str,
    /// The session the browser presented at login, if any: it ends here,
    /// so an id planted before login is worthless after it.
    pub replaces: Option<&'a str>,
}

/// An API token as stored (its hash is never serialised).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ApiToken {
    pub id: i64,
    pub user_id: i64,
    pub user_email: String,
    pub name: String,
    #[serde(skip)]
    pub token_hash: String,
    pub prefix: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Where a login failure is counted: per account and per client IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleScope {
    Account,
    Ip,
}

impl ThrottleScope {
    fn as_str(&self) -> &'static str {
        match self {
            ThrottleScope::Account => "account",
            ThrottleScope::Ip => "ip",
        }
    }
}

const USER_SELECT: &str = "SELECT id, email, name, role, password_hash, disabled_at, \
     last_login_at, created_at, updated_at FROM users";

const TOKEN_SELECT: &str = "SELECT t.id, t.user_id, u.email AS user_email, t.name, t.token_hash, \
     t.prefix, t.created_by, t.created_at, t.last_used_at, t.revoked_at \
     FROM api_tokens t JOIN users u ON u.id = t.user_id";

const SESSION_SELECT: &str = "SELECT id_hash, user_id, csrf_token, password_tag, ip, created_at, \
     last_seen_at FROM sessions";

/// Is this error a violated UNIQUE constraint (a duplicate)?
pub fn is_unique_violation(e: &anyhow::Error) -> bool {
    e.downcast_ref::<sqlx::Error>()
        .and_then(|e| e.as_database_error())
        .is_some_and(|d| d.is_unique_violation())
}

impl Store {
    // ---- accounts ------------------------------------------------------

    /// Adds an account. `email` must be normalised; a duplicate is a
    /// unique violation (see [`is_unique_violation`]).
    pub async fn create_user(
        &self,
        email: &str,
        name: &str,
        role: Role,
        password_hash: &str,
        actor: &Actor,
    ) -> Result<User> {
        let now = Utc::now();
        let id: i64 = on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO users (email, name, role, password_hash, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
            )
            .bind(email).bind(name.trim()).bind(role.as_str()).bind(password_hash).bind(now)
            .fetch_one(&mut *tx).await?;
            record_audit!(&mut *tx, actor, "user.create", "user", id,
                serde_json::json!({"email": email, "name": name.trim(), "role": role.as_str(),
                                   "password_set": !password_hash.is_empty()}));
            tx.commit().await?;
            id
        });
        self.user_by_id(id)
            .await?
            .ok_or_else(|| anyhow!("user {id} vanished"))
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>> {
        let sql = format!("{USER_SELECT} WHERE id = $1");
        Ok(on_pool!(self, p => sqlx::query_as::<_, User>(&sql).bind(id).fetch_optional(p).await?))
    }

    /// Looks an account up by address (case-insensitive).
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let sql = format!("{USER_SELECT} WHERE email = $1");
        let email = email.trim().to_lowercase();
        Ok(
            on_pool!(self, p => sqlx::query_as::<_, User>(&sql).bind(email).fetch_optional(p).await?),
        )
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        let sql = format!("{USER_SELECT} ORDER BY email");
        Ok(on_pool!(self, p => sqlx::query_as::<_, User>(&sql).fetch_all(p).await?))
    }

    /// How many enabled admins there are (the last one may not be demoted
    /// or disabled).
    pub async fn enabled_admins(&self) -> Result<i64> {
        let sql = "SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled_at IS NULL";
        Ok(on_pool!(self, p => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await?))
    }

    /// Changes an account's role. Returns the updated account, or `None`
    /// when there is none.
    pub async fn set_user_role(&self, id: i64, role: Role, actor: &Actor) -> Result<Option<User>> {
        let Some(before) = self.user_by_id(id).await? else {
            return Ok(None);
        };
        let now = Utc::now();
        on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            sqlx::query("UPDATE users SET role = $1, updated_at = $2 WHERE id = $3")
                .bind(role.as_str()).bind(now).bind(id)
                .execute(&mut *tx).await?;
            record_audit!(&mut *tx, actor, "user.set_role", "user", id,
                serde_json::json!({"email": before.email, "role": [before.role, role.as_str()]}));
            tx.commit().await?;
        });
        self.user_by_id(id).await
    }

    /// Disables or enables an account. Disabling ends its sessions in the
    /// same transaction; its tokens stop working because every request
    /// checks the account.
    pub async fn set_user_disabled(
        &self,
        id: i64,
        disabled: bool,
        actor: &Actor,
    ) -> Result<Option<User>> {
        let Some(before) = self.user_by_id(id).await? else {
            return Ok(None);
        };
        let now = Utc::now();
        on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            sqlx::query("UPDATE users SET disabled_at = $1, updated_at = $2 WHERE id = $3")
                .bind(if disabled { Some(now) } else { None }).bind(now).bind(id)
                .execute(&mut *tx).await?;
            if disabled {
                sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(id)
                    .execute(&mut *tx).await?;
            }
            record_audit!(&mut *tx, actor, if disabled { "user.disable" } else { "user.enable" },
                "user", id, serde_json::json!({"email": before.email}));
            tx.commit().await?;
        });
        self.user_by_id(id).await
    }

    /// Sets an account's password hash and ends its sessions.
    pub async fn set_password_hash(&self, id: i64, hash: &str, actor: &Actor) -> Result<bool> {
        let now = Utc::now();
        on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            let n = sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
                .bind(hash).bind(now).bind(id)
                .execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Ok(false);
            }
            sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(id)
                .execute(&mut *tx).await?;
            record_audit!(&mut *tx, actor, "user.set_password", "user", id, serde_json::json!({}));
            tx.commit().await?;
            Ok(true)
        })
    }

    // ---- sessions ------------------------------------------------------

    /// Starts a session at login: ends the one the browser presented (if
    /// any), stores the new one, notes the login time and writes the
    /// `login` audit entry, in one transaction.
    pub async fn create_session(&self, s: &NewSession<'_>, actor: &Actor) -> Result<()> {
        let now = Utc::now();
        on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            if let Some(old) = s.replaces {
                sqlx::query("DELETE FROM sessions WHERE id_hash = $1").bind(old)
                    .execute(&mut *tx).await?;
            }
            sqlx::query(
                "INSERT INTO sessions (id_hash, user_id, csrf_token, password_tag, ip, user_agent, \
                 created_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(s.id_hash).bind(s.user_id).bind(s.csrf_token).bind(s.password_tag)
            .bind(s.ip.as_deref()).bind(s.user_agent).bind(now)
            .execute(&mut *tx).await?;
            sqlx::query("UPDATE users SET last_login_at = $1 WHERE id = $2")
                .bind(now).bind(s.user_id).execute(&mut *tx).await?;
            record_audit!(&mut *tx, actor, "login", "user", s.user_id,
                serde_json::json!({"method": "password"}));
            tx.commit().await?;
        });
        Ok(())
    }

    /// A session and its account, by the session id's hash.
    pub async fn session(&self, id_hash: &str) -> Result<Option<(Session, User)>> {
        let sql = format!("{SESSION_SELECT} WHERE id_hash = $1");
        let session = on_pool!(self, p => sqlx::query_as::<_, Session>(&sql)
            .bind(id_hash).fetch_optional(p).await?);
        let Some(session) = session else {
            return Ok(None);
        };
        Ok(self
            .user_by_id(session.user_id)
            .await?
            .map(|u| (session, u)))
    }

    /// Notes that a session was used now (for the idle timeout).
    pub async fn touch_session(&self, id_hash: &str) -> Result<()> {
        on_pool!(self, p => {
            sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2")
                .bind(Utc::now()).bind(id_hash).execute(p).await?;
        });
        Ok(())
    }

    /// Ends a session. With an actor (a logout) the audit trail notes it;
    /// an expired session is removed without one.
    pub async fn delete_session(&self, id_hash: &str, actor: Option<&Actor>) -> Result<bool> {
        on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            let user: Option<i64> = sqlx::query_scalar(
                "DELETE FROM sessions WHERE id_hash = $1 RETURNING user_id",
            )
            .bind(id_hash).fetch_optional(&mut *tx).await?;
            if let (Some(user), Some(actor)) = (user, actor) {
                record_audit!(&mut *tx, actor, "logout", "user", user, serde_json::json!({}));
            }
            tx.commit().await?;
            Ok(user.is_some())
        })
    }

    /// How many sessions an account has open.
    pub async fn session_count(&self, user_id: i64) -> Result<i64> {
        let sql = "SELECT COUNT(*) FROM sessions WHERE user_id = $1";
        Ok(on_pool!(self, p => sqlx::query_scalar::<_, i64>(sql).bind(user_id).fetch_one(p).await?))
    }

    // ---- API tokens ----------------------------------------------------

    /// Stores a token (by its hash) for an account.
    pub async fn create_token(
        &self,
        user_id: i64,
        name: &str,
        token_hash: &str,
        prefix: &str,
        actor: &Actor,
    ) -> Result<ApiToken> {
        let now = Utc::now();
        let id: i64 = on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO api_tokens (user_id, name, token_hash, prefix, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(user_id).bind(name).bind(token_hash).bind(prefix).bind(actor.label()).bind(now)
            .fetch_one(&mut *tx).await?;
            record_audit!(&mut *tx, actor, "token.create", "token", id,
                serde_json::json!({"name": name, "user_id": user_id, "prefix": prefix}));
            tx.commit().await?;
            id
        });
        self.token_by_id(id)
            .await?
            .ok_or_else(|| anyhow!("token {id} vanished"))
    }

    pub async fn token_by_id(&self, id: i64) -> Result<Option<ApiToken>> {
        let sql = format!("{TOKEN_SELECT} WHERE t.id = $1");
        Ok(
            on_pool!(self, p => sqlx::query_as::<_, ApiToken>(&sql).bind(id).fetch_optional(p).await?),
        )
    }

    /// A token and its account, by the token's hash (revoked ones too: the
    /// caller decides).
    pub async fn token_by_hash(&self, hash: &str) -> Result<Option<(ApiToken, User)>> {
        let sql = format!("{TOKEN_SELECT} WHERE t.token_hash = $1");
        let token = on_pool!(self, p => sqlx::query_as::<_, ApiToken>(&sql)
            .bind(hash).fetch_optional(p).await?);
        let Some(token) = token else {
            return Ok(None);
        };
        Ok(self.user_by_id(token.user_id).await?.map(|u| (token, u)))
    }

    /// Tokens, of one account or all, newest first.
    pub async fn list_tokens(&self, user_id: Option<i64>) -> Result<Vec<ApiToken>> {
        let sql = format!("{TOKEN_SELECT} WHERE ($1 IS NULL OR t.user_id = $1) ORDER BY t.id DESC");
        Ok(on_pool!(self, p => sqlx::query_as::<_, ApiToken>(&sql)
            .bind(user_id).fetch_all(p).await?))
    }

    /// Notes a token's use, at most once a minute (a write per request
    /// would make every read a write).
    pub async fn touch_token(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        let before = now - chrono::Duration::seconds(60);
        on_pool!(self, p => {
            sqlx::query(
                "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2 \
                 AND (last_used_at IS NULL OR last_used_at < $3)",
            )
            .bind(now).bind(id).bind(before).execute(p).await?;
        });
        Ok(())
    }

    /// Revokes a token. Returns false when there is none or it was revoked
    /// already.
    pub async fn revoke_token(&self, id: i64, actor: &Actor) -> Result<bool> {
        let now = Utc::now();
        on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            let name: Option<String> = sqlx::query_scalar(
                "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL \
                 RETURNING name",
            )
            .bind(now).bind(id).fetch_optional(&mut *tx).await?;
            let Some(name) = name else {
                return Ok(false);
            };
            record_audit!(&mut *tx, actor, "token.revoke", "token", id,
                serde_json::json!({"name": name}));
            tx.commit().await?;
            Ok(true)
        })
    }

    // ---- login throttling ------------------------------------------------

    /// Failures counted for a key: (failures, Unix ms of the latest).
    pub async fn login_failures(
        &self,
        scope: ThrottleScope,
        key: &str,
    ) -> Result<Option<(i64, i64)>> {
        let sql = "SELECT failures, last_ms FROM login_failures WHERE scope = $1 AND key = $2";
        Ok(on_pool!(self, p => sqlx::query_as::<_, (i64, i64)>(sql)
            .bind(scope.as_str()).bind(key).fetch_optional(p).await?))
    }

    /// Counts a failed login against each key, and writes the
    /// `login.failed` audit entry, in one transaction. A count whose latest
    /// failure is older than `forget_ms` starts again from one.
    pub async fn record_login_failure(
        &self,
        keys: &[(ThrottleScope, &str)],
        now_ms: i64,
        forget_ms: i64,
        actor: &Actor,
        email: &str,
    ) -> Result<()> {
        let upsert =
            "INSERT INTO login_failures (scope, key, failures, last_ms) VALUES ($1, $2, 1, $3) \
                 ON CONFLICT (scope, key) DO UPDATE SET \
                 failures = CASE WHEN login_failures.last_ms < $4 THEN 1 \
                 ELSE login_failures.failures + 1 END, last_ms = $3";
        on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            for (scope, key) in keys {
                sqlx::query(upsert)
                    .bind(scope.as_str()).bind(*key).bind(now_ms).bind(now_ms - forget_ms)
                    .execute(&mut *tx).await?;
            }
            record_audit!(&mut *tx, actor, "login.failed", "user", "",
                serde_json::json!({"email": email}));
            tx.commit().await?;
        });
        Ok(())
    }

    /// Forgets the failures of a key (after a successful login).
    pub async fn clear_login_failures(&self, scope: ThrottleScope, key: &str) -> Result<()> {
        on_pool!(self, p => {
            sqlx::query("DELETE FROM login_failures WHERE scope = $1 AND key = $2")
                .bind(scope.as_str()).bind(key).execute(p).await?;
        });
        Ok(())
    }
}
