//! Who is acting: the [`Actor`] every change carries into the audit trail.
//!
//! An actor is a logged-in user (a browser session), an API token (acting
//! with its user's role), a shell user running the CLI (optionally naming
//! an account with `--as`), a recipient on the public pages, or the system
//! itself (the worker, an import job, the bounce intake).
//!
//! Three views of an actor are used:
//! - [`Actor::label`], the text kept in history columns (`user:…`,
//!   `token:…`, `cli:…`, `web`, `system:…`);
//! - [`Actor::principal`], the person behind it, to tell whether the
//!   approver of a campaign is neither its creator nor the last editor of
//!   its issue: `user:ID` whenever an account is known;
//! - [`Actor::role`], which the permission table is asked about.

use std::fmt;
use std::net::IpAddr;

use super::permission::{allowed, Action, Role};

/// An account as an actor sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Account {
    pub id: i64,
    pub email: String,
    pub role: Role,
}

/// Who is acting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A user logged in through a browser session.
    User {
        account: Account,
        ip: Option<IpAddr>,
    },
    /// A script with an API token, acting with its user's role.
    Token {
        token_id: i64,
        name: String,
        account: Account,
        ip: Option<IpAddr>,
    },
    /// A shell user running the CLI, optionally as a named account (`--as`).
    Cli {
        unix_user: String,
        account: Option<Account>,
    },
    /// A recipient on the public pages (unsubscribe, preferences).
    Recipient { ip: Option<IpAddr> },
    /// Someone not (yet) known on the admin listener: a failed login.
    Anonymous { ip: Option<IpAddr> },
    /// whatsup itself: `worker`, `import`, `bounce`, `demo`…
    System(String),
}

impl Actor {
    /// The CLI's actor: `cli:<unix user>` (from `$USER`), with the account
    /// named by `--as` if any.
    pub fn cli(account: Option<Account>) -> Actor {
        let unix_user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "unknown".into());
        Actor::Cli { unix_user, account }
    }

    pub fn system(name: &str) -> Actor {
        Actor::System(name.to_string())
    }

    /// The text kept in history columns and shown in the audit list.
    pub fn label(&self) -> String {
        match self {
            Actor::User { account, .. } => format!("user:{}", account.email),
            Actor::Token { name, account, .. } => format!("token:{name} ({})", account.email),
            Actor::Cli {
                unix_user,
                account: Some(a),
            } => format!("cli:{unix_user} as {}", a.email),
            Actor::Cli { unix_user, .. } => format!("cli:{unix_user}"),
            Actor::Recipient { .. } => "web".into(),
            Actor::Anonymous { .. } => "anonymous".into(),
            Actor::System(name) => format!("system:{name}"),
        }
    }

    /// The kind of actor, one word: user, token, cli, web or system.
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::User { .. } => "user",
            Actor::Token { .. } => "token",
            Actor::Cli { .. } => "cli",
            Actor::Recipient { .. } | Actor::Anonymous { .. } => "web",
            Actor::System(_) => "system",
        }
    }

    /// The account acting, if any.
    pub fn account(&self) -> Option<&Account> {
        match self {
            Actor::User { account, .. } | Actor::Token { account, .. } => Some(account),
            Actor::Cli { account, .. } => account.as_ref(),
            Actor::Recipient { .. } | Actor::Anonymous { .. } | Actor::System(_) => None,
        }
    }

    /// The person behind the actor: `user:ID` when an account is known,
    /// else the label. Two actors with the same principal are one person.
    pub fn principal(&self) -> String {
        match self.account() {
            Some(a) => format!("user:{}", a.id),
            None => self.label(),
        }
    }

    /// The role the permission table is asked about. The CLI without an
    /// account acts as an admin: whoever runs it can open the database
    /// anyway. Recipients and the system have no role.
    pub fn role(&self) -> Option<Role> {
        match self {
            Actor::Cli { account: None, .. } => Some(Role::Admin),
            _ => self.account().map(|a| a.role),
        }
    }

    /// Whether the permission table lets this actor take `action`.
    pub fn may(&self, action: Action) -> bool {
        self.role().is_some_and(|r| allowed(r, action))
    }

    /// The client's IP for web and API requests.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Actor::User { ip, .. }
            | Actor::Token { ip, .. }
            | Actor::Recipient { ip }
            | Actor::Anonymous { ip } => *ip,
            Actor::Cli { .. } | Actor::System(_) => None,
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice(role: Role) -> Account {
        Account {
            id: 7,
            email: "alice@example.org".into(),
            role,
        }
    }

    #[test]
    fn a_token_and_a_session_of_one_account_are_one_person() {
        let session = Actor::User {
            account: alice(Role::Operator),
            ip: None,
        };
        let token = Actor::Token {
            token_id: 1,
            name: "deploy".into(),
            account: alice(Role::Operator),
            ip: Some("127.0.0.1".parse().unwrap()),
        };
        assert_eq!(session.principal(), token.principal());
        assert_eq!(token.label(), "token:deploy (alice@example.org)");
        assert_eq!(token.ip(), Some("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn the_cli_acts_as_admin_unless_it_names_an_account() {
        let bare = Actor::Cli {
            unix_user: "ops".into(),
            account: None,
        };
        assert_eq!(bare.label(), "cli:ops");
        assert!(bare.may(Action::UsersManage));
        let named = Actor::Cli {
            unix_user: "ops".into(),
            account: Some(alice(Role::Editor)),
        };
        assert_eq!(named.label(), "cli:ops as alice@example.org");
        assert_eq!(named.principal(), "user:7");
        assert!(!named.may(Action::CampaignsApprove));
        assert!(!Actor::system("worker").may(Action::ContactsRead));
    }
}
