//! `whatsup users …` and `whatsup tokens …`: accounts of the web admin and
//! the API, and API tokens. Both go through `app::accounts`, the same
//! functions the API calls, with the CLI's actor (`cli:<unix user>`, or the
//! account named by `--as`).

use std::io::BufRead as _;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Subcommand;

use super::output::{self, print_json, print_table};
use crate::app::accounts;
use crate::domain::Role;
use crate::store::users::User;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum UsersCmd {
    /// Add an account
    Add {
        /// The account's email address (its login)
        email: String,
        /// viewer, editor, operator or admin
        #[arg(long)]
        role: String,
        /// The person's name, as shown in the admin and the audit trail
        #[arg(long, default_value = "")]
        name: String,
        /// Read the password from the first line of standard input (at
        /// least 12 characters, not a common one); without it the account
        /// has no password until `users reset-password`
        #[arg(long)]
        password_stdin: bool,
        /// Print the account as JSON
        #[arg(long)]
        json: bool,
    },
    /// List accounts
    List {
        /// Print them as JSON
        #[arg(long)]
        json: bool,
    },
    /// Show one account with its tokens
    Show {
        /// The account's email address
        email: String,
        /// Print it as JSON
        #[arg(long)]
        json: bool,
    },
    /// Change an account's role
    SetRole {
        /// The account's email address
        email: String,
        /// viewer, editor, operator or admin
        role: String,
    },
    /// Disable an account: its sessions end and its tokens stop at once
    Disable {
        /// The account's email address
        email: String,
    },
    /// Enable a disabled account
    Enable {
        /// The account's email address
        email: String,
    },
    /// Set a new password, read from the first line of standard input (its
    /// sessions end)
    ResetPassword {
        /// The account's email address
        email: String,
        /// Read the new password from the first line of standard input
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokensCmd {
    /// Create an API token for an account; it is printed once and only its
    /// hash is stored
    Create {
        /// The account the token acts as (with its role)
        #[arg(long)]
        user: String,
        /// What the token is for, e.g. "nightly export"
        #[arg(long)]
        name: String,
        /// Print the token and its id as JSON
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never their secret)
    List {
        /// Only this account's
        #[arg(long)]
        user: Option<String>,
        /// Print them as JSON
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: it stops working at once
    Revoke {
        /// The token's id (from `tokens list`)
        id: i64,
    },
}

fn read_password() -> Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!("no password on standard input");
    }
    Ok(password)
}

fn parse_role(role: &str) -> Result<Role> {
    Ok(Role::parse(role)?)
}

pub async fn users(store: &Store, cmd: UsersCmd) -> Result<ExitCode> {
    let actor = super::cli_actor(store).await?;
    match cmd {
        UsersCmd::Add {
            email,
            role,
            name,
            password_stdin,
            json,
        } => {
            let role = parse_role(&role)?;
            let password = password_stdin.then(read_password).transpose()?;
            let u =
                accounts::add_user(store, &actor, &email, &name, role, password.as_deref()).await?;
            if json {
                print_json(&u)?;
            } else {
                println!("account {} ({}) added as {}", u.id, u.email, u.role);
                if password.is_none() {
                    println!(
                        "it has no password yet: `whatsup users reset-password {} --password-stdin`",
                        u.email
                    );
                }
            }
        }
        UsersCmd::List { json } => {
            crate::app::require(&actor, crate::domain::Action::UsersManage)?;
            let list = store.list_users().await?;
            if json {
                print_json(&list)?;
            } else {
                print_users(&list);
            }
        }
        UsersCmd::Show { email, json } => {
            crate::app::require(&actor, crate::domain::Action::UsersManage)?;
            let u = accounts::user_by_email(store, &email).await?;
            let tokens = store.list_tokens(Some(u.id)).await?;
            let sessions = store.session_count(u.id).await?;
            if json {
                print_json(
                    &serde_json::json!({"user": u, "tokens": tokens, "sessions": sessions}),
                )?;
            } else {
                print_users(std::slice::from_ref(&u));
                println!("{sessions} open sessions; {} tokens", tokens.len());
                print_tokens(&tokens);
            }
        }
        UsersCmd::SetRole { email, role } => {
            let u = accounts::user_by_email(store, &email).await?;
            let u = accounts::set_role(store, &actor, u.id, parse_role(&role)?).await?;
            println!("{} is now {}", u.email, u.role);
        }
        UsersCmd::Disable { email } => {
            let u = accounts::user_by_email(store, &email).await?;
            let u = accounts::set_disabled(store, &actor, u.id, true).await?;
            println!(
                "{} disabled: its sessions ended and its tokens stopped",
                u.email
            );
        }
        UsersCmd::Enable { email } => {
            let u = accounts::user_by_email(store, &email).await?;
            let u = accounts::set_disabled(store, &actor, u.id, false).await?;
            println!("{} enabled", u.email);
        }
        UsersCmd::ResetPassword { email, .. } => {
            let u = accounts::user_by_email(store, &email).await?;
            let password = read_password()?;
            let u = accounts::reset_password(store, &actor, u.id, &password).await?;
            println!("{}: password set; its sessions ended", u.email);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn tokens(store: &Store, cmd: TokensCmd) -> Result<ExitCode> {
    let actor = super::cli_actor(store).await?;
    match cmd {
        TokensCmd::Create { user, name, json } => {
            let u = accounts::user_by_email(store, &user).await?;
            let (t, secret) = accounts::create_token(store, &actor, u.id, &name).await?;
            if json {
                print_json(&serde_json::json!({"token": t, "secret": secret}))?;
            } else {
                println!("{secret}");
                eprintln!(
                    "token {} {:?} for {} ({}): shown once, only its hash is stored",
                    t.id, t.name, t.user_email, u.role
                );
            }
        }
        TokensCmd::List { user, json } => {
            crate::app::require(&actor, crate::domain::Action::TokensManage)?;
            let user_id = match user {
                Some(e) => Some(accounts::user_by_email(store, &e).await?.id),
                None => None,
            };
            let list = store.list_tokens(user_id).await?;
            if json {
                print_json(&list)?;
            } else {
                print_tokens(&list);
            }
        }
        TokensCmd::Revoke { id } => {
            let t = accounts::revoke_token(store, &actor, id).await?;
            println!("token {} {:?} of {} revoked", t.id, t.name, t.user_email);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A time for people (`general.timezone`, or UTC with `--utc`), or `-`.
fn when(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(output::when).unwrap_or_else(|| "-".into())
}

fn print_users(list: &[User]) {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|u| {
            vec![
                u.id.to_string(),
                u.email.clone(),
                u.name.clone(),
                u.role.clone(),
                if u.disabled() { "disabled" } else { "enabled" }.into(),
                when(u.last_login_at),
            ]
        })
        .collect();
    print_table(
        &["ID", "EMAIL", "NAME", "ROLE", "STATE", "LAST LOGIN"],
        &rows,
    );
}

fn print_tokens(list: &[crate::store::users::ApiToken]) {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|t| {
            vec![
                t.id.to_string(),
                t.user_email.clone(),
                t.name.clone(),
                format!("{}…", t.prefix),
                when(t.last_used_at),
                if t.revoked_at.is_some() {
                    format!("revoked {}", when(t.revoked_at))
                } else {
                    "active".into()
                },
            ]
        })
        .collect();
    print_table(
        &["ID", "USER", "NAME", "TOKEN", "LAST USED", "STATE"],
        &rows,
    );
}
