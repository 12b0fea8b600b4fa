//! Command-line interface: clap definitions and dispatch to one file per
//! command group. Commands print human-readable text by default and JSON with
//! `--json`; every failure returns a non-zero exit code. Times are shown in
//! `general.timezone` with the zone named (`--utc` for UTC); logs go to
//! stderr, in colour only on a terminal, or as JSON (`--log-format json`).

mod accounts;
mod audit;
mod bounces;
mod campaigns;
mod demo;
mod doctor;
mod issues;
mod media;
mod ops;
mod orgs;
mod output;
mod serve;
mod service;
mod shell;
mod signals;
mod subscribers;
mod timeline;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;

use std::io::IsTerminal as _;

use anyhow::Result;
use clap::{CommandFactory as _, Parser, Subcommand, ValueEnum};

use crate::config::{Config, Loaded, Secret};
use crate::domain::Actor;
use crate::store::Store;

/// whatsup: a self-hosted newsletter system.
#[derive(Debug, Parser)]
#[command(name = "whatsup", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file [default: config/whatsup.toml if it exists]
    #[arg(long, global = true, env = "WHATSUP_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database URL (sqlite://FILE or postgres://…); overrides the config
    #[arg(long, global = true, value_name = "URL", hide_env_values = true)]
    pub database: Option<String>,
    /// More logging (-v info, -vv debug)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Show times in UTC instead of general.timezone
    #[arg(long, global = true)]
    pub utc: bool,
    /// Tables: show every column and shorten nothing to fit the terminal
    #[arg(long, global = true)]
    pub wide: bool,
    /// Log lines as text for people or as JSON for machines [default: general.log_format]
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Act as this account (its role applies, and the audit trail names
    /// it); without it the CLI acts as cli:<unix user>
    #[arg(long = "as", global = true, value_name = "EMAIL", env = "WHATSUP_AS")]
    pub as_account: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// For people: colour only on a terminal, times in general.timezone
    Text,
    /// One JSON object a line (journald, Loki), times in RFC 3339 UTC
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade the database schema
    Migrate,
    /// The main job on embedded defaults: create the database, import the
    /// seed subscribers and print a summary
    Demo(demo::DemoArgs),
    /// Manage contacts (subscribers)
    #[command(subcommand)]
    Subscribers(subscribers::SubscribersCmd),
    /// Manage organisations
    #[command(subcommand)]
    Orgs(orgs::OrgsCmd),
    /// Write, store, check, preview and test-send newsletter issues
    #[command(subcommand)]
    Issues(issues::IssuesCmd),
    /// Create, schedule and control campaigns
    #[command(subcommand)]
    Campaigns(campaigns::CampaignsCmd),
    /// Send a campaign in the foreground with a progress bar (starts it if needed)
    Send(campaigns::SendArgs),
    /// Run scheduled and running campaigns until stopped (several may share
    /// one PostgreSQL database)
    Worker,
    /// The media library: images for issues, served at /media/HASH.EXT
    #[command(subcommand)]
    Media(media::MediaCmd),
    /// Bounces, complaints and auto-replies
    #[command(subcommand)]
    Bounces(bounces::BouncesCmd),
    /// Serve the recipients' pages (unsubscribe, preferences, view in
    /// browser, archive, metrics) and run the worker unless --no-worker
    Serve(serve::ServeArgs),
    /// Check the installation: DNS (SPF, DKIM, DMARC, MX, PTR), the relay,
    /// secrets, clock, templates, migrations, disk and bulk-sender rules
    Doctor(doctor::DoctorArgs),
    /// Copy the database while whatsup runs (SQLite), or print or run
    /// pg_dump (PostgreSQL)
    Backup(ops::BackupArgs),
    /// Check a backup and put it in place of the database
    Restore(ops::RestoreArgs),
    /// Move the store: copy SQLite into PostgreSQL
    #[command(subcommand)]
    Store(ops::StoreCmd),
    /// Accounts of the web admin and the API: add, list, roles, disable
    #[command(subcommand)]
    Users(accounts::UsersCmd),
    /// API tokens: create (shown once), list, revoke
    #[command(subcommand)]
    Tokens(accounts::TokensCmd),
    /// The audit trail: who changed what, when and from where
    #[command(subcommand)]
    Audit(audit::AuditCmd),
    /// Show the effective configuration (secrets redacted)
    Config {
        /// Print it as JSON
        #[arg(long)]
        json: bool,
        /// Check the configuration and the environment: exit 1 when a
        /// WHATSUP_* variable is no setting (a misspelling)
        #[arg(long)]
        check: bool,
    },
    /// Print a shell completion script (source it, or save it where your
    /// shell looks for completions)
    Completions(shell::CompletionsArgs),
    /// Write the man pages (one per command) into a directory
    Man(shell::ManArgs),
}

/// Exit code for an import that completed but rejected some rows.
pub const EXIT_REJECTED_ROWS: u8 = 3;

/// Parses the command line, runs the command and maps errors to exit codes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut loaded = match Config::load(cli.config.as_deref(), std::env::vars()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(1);
        }
    };
    // Variables read by flags (`env = …`) are known too.
    let flag_vars = flag_variables();
    loaded.unknown_env.retain(|v| !flag_vars.contains(&v.name));
    if !matches!(cli.command, Command::Config { check: true, .. }) {
        for v in &loaded.unknown_env {
            eprintln!("warning: {v}");
        }
    }
    output::init(&loaded.config, cli.utc, cli.wide);
    init_tracing(&loaded.config, &cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let url = cli
        .database
        .clone()
        .unwrap_or_else(|| loaded.config.database_url());
    match runtime.block_on(run(cli, loaded)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if let Some(hint) = crate::store::failure_hint(&e, &url) {
                eprintln!("hint: {hint}");
            }
            if e.downcast_ref::<crate::store::schema::SchemaRefused>()
                .is_some()
            {
                return ExitCode::from(service::EXIT_SCHEMA);
            }
            ExitCode::from(1)
        }
    }
}

/// The environment variables that flags read (`#[arg(env = …)]`), in
/// every command.
fn flag_variables() -> Vec<String> {
    fn walk(cmd: &clap::Command, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            if let Some(env) = arg.get_env() {
                out.push(env.to_string_lossy().into_owned());
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out = Vec::new();
    walk(&Cli::command(), &mut out);
    out
}

/// Whether a command reports what it does in log lines at info level by
/// default: the long-running worker and server, and `send` when there is no
/// terminal for its progress bar (cron, systemd). Other commands print their
/// own results; their logs are for diagnostics (warnings and errors).
fn reports_at_info(command: &Command) -> bool {
    match command {
        Command::Worker | Command::Serve(_) => true,
        Command::Send(_) => !std::io::stderr().is_terminal(),
        _ => false,
    }
}

fn init_tracing(config: &Config, cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let filter = match cli.verbose {
        0 => EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            // sqlx warns of every statement over a second; a long scan
            // (store copy, export) is not a problem to report.
            let level = if config.general.log != "info" {
                config.general.log.as_str()
            } else if reports_at_info(&cli.command) {
                "info,sqlx::query=error"
            } else {
                "warn,sqlx::query=error"
            };
            EnvFilter::new(level)
        }),
        1 => EnvFilter::new("info"),
        _ => EnvFilter::new("debug"),
    };
    let format = cli
        .log_format
        .unwrap_or(if config.general.log_format == "json" {
            LogFormat::Json
        } else {
            LogFormat::Text
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .with_timer(output::LogClock(output::clock()))
            .try_init(),
    };
}

async fn run(cli: Cli, mut loaded: Loaded) -> Result<ExitCode> {
    if let Some(url) = &cli.database {
        loaded.config.database.url = Secret::new(url.clone());
    }
    let _ = AS_ACCOUNT.set(cli.as_account.clone());
    let config = loaded.config.clone();
    match cli.command {
        Command::Config { json, check } => output::print_config(&loaded, json, check),
        Command::Completions(args) => shell::completions(&args),
        Command::Man(args) => shell::man(&args),
        Command::Migrate => {
            let store = Store::connect(&config.database_url(), &config).await?;
            store.migrate().await?;
            println!(
                "database {} is at schema version {}",
                crate::store::redact_url(&config.database_url()),
                store.schema_version().await?
            );
            store.close().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => demo::run(&config, args).await,
        Command::Doctor(args) => doctor::run(&config, args).await,
        Command::Backup(args) => ops::backup(&config, args).await,
        Command::Restore(args) => ops::restore(&config, args).await,
        Command::Store(cmd) => ops::store(&config, cmd).await,
        Command::Bounces(cmd) => bounces::run(&config, cmd).await,
        Command::Subscribers(cmd) => {
            let store = Store::open(&config).await?;
            let code = subscribers::run(&store, &config, cmd).await;
            store.close().await;
            code
        }
        Command::Issues(cmd) => {
            let store = Store::open(&config).await?;
            let actor = cli_actor(&store).await;
            store.close().await;
            require(&actor?, cmd.action())?;
            issues::run(&config, cmd).await
        }
        Command::Campaigns(cmd) => {
            let store = Store::open(&config).await?;
            let code = campaigns::run(&store, &config, cmd).await;
            store.close().await;
            code
        }
        Command::Send(args) => {
            let store = Store::open(&config).await?;
            let code = campaigns::send(&store, &config, args).await;
            store.close().await;
            code
        }
        Command::Worker => {
            let store = Store::open(&config).await?;
            let code = campaigns::worker(&store, &config).await;
            store.close().await;
            code
        }
        Command::Serve(args) => {
            let store = Store::open(&config).await?;
            let code = serve::run(&store, &config, args).await;
            store.close().await;
            code
        }
        Command::Media(cmd) => {
            let store = Store::open(&config).await?;
            let code = media::run(&store, &config, cmd).await;
            store.close().await;
            code
        }
        Command::Orgs(cmd) => {
            let store = Store::open(&config).await?;
            let code = orgs::run(&store, cmd).await;
            store.close().await;
            code
        }
        Command::Users(cmd) => {
            let store = Store::open(&config).await?;
            let code = accounts::users(&store, cmd).await;
            store.close().await;
            code
        }
        Command::Tokens(cmd) => {
            let store = Store::open(&config).await?;
            let code = accounts::tokens(&store, cmd).await;
            store.close().await;
            code
        }
        Command::Audit(cmd) => {
            let store = Store::open(&config).await?;
            let code = audit::run(&store, cmd).await;
            store.close().await;
            code
        }
    }
}

/// The account named by `--as`, if any (set once at start).
static AS_ACCOUNT: OnceLock<Option<String>> = OnceLock::new();

/// Who is acting: `cli:<unix user>`, as the account named by `--as` when
/// given (it must exist and be enabled).
pub async fn cli_actor(store: &Store) -> Result<Actor> {
    match AS_ACCOUNT.get().and_then(|a| a.as_deref()) {
        Some(email) => Ok(Actor::cli(Some(
            crate::app::accounts::cli_account(store, email)
                .await
                .map_err(|e| anyhow::anyhow!("--as {email}: {e}"))?,
        ))),
        None => Ok(Actor::cli(None)),
    }
}

/// Refuses what the permission table does not give the actor (an account
/// named by `--as`; the bare CLI may do everything).
pub fn require(actor: &Actor, action: crate::domain::Action) -> Result<()> {
    crate::app::require(actor, action).map_err(anyhow::Error::from)
}
