//! `whatsup backup`, `whatsup restore` and `whatsup store copy`: argument
//! parsing and output; the work is in `ops::backup` and `store::copy`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use super::output::{print_json, print_table};
use crate::config::Config;
use crate::ops::backup::{self, FileReport, PgTarget};
use crate::store::copy::{self, CopyReport};
use crate::store::{redact_url, Store};

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the copy (SQLite: a database file; PostgreSQL: a
    /// pg_dump custom-format archive)
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Replace FILE if it exists
    #[arg(long)]
    pub force: bool,
    /// PostgreSQL: run pg_dump instead of printing the command
    #[arg(long)]
    pub run: bool,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A copy made by `whatsup backup`
    pub file: PathBuf,
    /// PostgreSQL: run pg_restore instead of printing the command
    #[arg(long)]
    pub run: bool,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum StoreCmd {
    /// Copy this SQLite store into an empty PostgreSQL database: every
    /// table, ids kept, verified by row counts and checksums; run it again
    /// to resume an interrupted copy
    Copy(CopyArgs),
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The PostgreSQL database to copy into (postgres://user:pass@host/db)
    #[arg(long, value_name = "URL", hide_env_values = true)]
    pub to: String,
    /// Rows per chunk (each chunk commits with its position)
    #[arg(long, default_value_t = copy::CHUNK_ROWS)]
    pub chunk_rows: usize,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

pub async fn backup(config: &Config, args: BackupArgs) -> Result<ExitCode> {
    let url = config.database_url();
    if url.starts_with("sqlite:") {
        let store = Store::open(config).await?;
        let report = backup::backup_sqlite(&store, &args.out, args.force).await;
        store.close().await;
        let report = report?;
        print_file_report(&report, args.json, "backup")?;
        return Ok(ExitCode::SUCCESS);
    }
    let target = PgTarget::parse(&url)?;
    let cmd = target.dump_args(&args.out);
    if !args.run {
        println!("{}", backup::shell_line(&cmd));
        eprintln!(
            "(run it with the password in PGPASSWORD or ~/.pgpass, or add --run; restore with \
             `whatsup restore {}`)",
            args.out.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if args.out.exists() && !args.force {
        bail!(
            "{} exists already: choose another name, or add --force to replace it",
            args.out.display()
        );
    }
    target.run(&cmd)?;
    let entries = PgTarget::archive_entries(&args.out)?;
    if args.json {
        print_json(&serde_json::json!({
            "path": args.out,
            "command": backup::shell_line(&cmd),
            "entries": entries,
        }))?;
    } else {
        println!(
            "backup written to {} ({} archive entries, checked with pg_restore --list)",
            args.out.display(),
            entries
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn restore(config: &Config, args: RestoreArgs) -> Result<ExitCode> {
    let url = config.database_url();
    if let Some(live) = backup::sqlite_path(&url) {
        let report = backup::restore_sqlite(&args.file, &live, config).await?;
        print_file_report(&report, args.json, "restore")?;
        return Ok(ExitCode::SUCCESS);
    }
    let target = PgTarget::parse(&url)?;
    let entries = PgTarget::archive_entries(&args.file)?;
    let cmd = target.restore_args(&args.file);
    if !args.run {
        println!("{}", backup::shell_line(&cmd));
        eprintln!(
            "({} is a pg_dump archive with {entries} entries; restore it into an empty \
             database, then point database.url at it; or add --run)",
            args.file.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    target.run(&cmd).context(
        "restoring (in one transaction: on an error nothing was restored; the target must be empty)",
    )?;
    let store = Store::connect(&url, config).await?;
    let status = store.check_schema(&url, config.database.auto_migrate).await;
    store.close().await;
    let status = status?;
    println!(
        "restored {} into {} (schema version {})",
        args.file.display(),
        redact_url(&url),
        status.applied
    );
    Ok(ExitCode::SUCCESS)
}

fn print_file_report(report: &FileReport, json: bool, what: &str) -> Result<()> {
    if json {
        return print_json(report);
    }
    let rows: i64 = report.tables.iter().map(|t| t.1).sum();
    println!(
        "{what}: {} ({} bytes, schema version {}, integrity {}, {} tables, {rows} rows, {:.1} s)",
        report.path.display(),
        report.bytes,
        report.schema_version,
        report.integrity,
        report.tables.len(),
        report.seconds
    );
    if let Some(prev) = &report.previous {
        println!("the database it replaced is kept as {}", prev.display());
    }
    if !report.unfinished_campaigns.is_empty() {
        println!(
            "note: campaigns {:?} are scheduled, running or paused in the restored copy; a \
             worker goes on from the state the backup holds, so messages sent after the backup \
             was made go out again. Pause them first (whatsup campaigns pause ID) if that \
             matters.",
            report.unfinished_campaigns
        );
    }
    Ok(())
}

pub async fn store(config: &Config, cmd: StoreCmd) -> Result<ExitCode> {
    match cmd {
        StoreCmd::Copy(args) => copy_store(config, args).await,
    }
}

async fn copy_store(config: &Config, args: CopyArgs) -> Result<ExitCode> {
    let from = config.database_url();
    let Some(path) = backup::sqlite_path(&from) else {
        bail!(
            "store copy reads an SQLite store; database.url is {}",
            redact_url(&from)
        );
    };
    if !args.to.starts_with("postgres:") && !args.to.starts_with("postgresql:") {
        bail!(
            "--to must be a postgres:// URL, got {}",
            redact_url(&args.to)
        );
    }
    if args.chunk_rows == 0 {
        bail!("--chunk-rows must be at least 1");
    }
    if !path.exists() {
        bail!("{}: no such database", path.display());
    }
    let source = Store::open(config).await?;
    let target = Store::connect(&args.to, config).await?;
    target.check_schema(&args.to, true).await?;
    target.migrate().await?;
    if !args.json {
        println!("copying {} into {}", path.display(), redact_url(&args.to));
    }
    let result = run_copy(&source, &target, &path, args.chunk_rows).await;
    source.close().await;
    target.close().await;
    let report = result?;
    if args.json {
        print_json(&report)?;
    } else {
        print_copy_report(&report);
    }
    Ok(if report.verified() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn run_copy(
    source: &Store,
    target: &Store,
    path: &std::path::Path,
    chunk_rows: usize,
) -> Result<CopyReport> {
    let (Store::Sqlite(sp), Store::Postgres(tp)) = (source, target) else {
        bail!("store copy goes from SQLite to PostgreSQL");
    };
    let mut s = sp.acquire().await?;
    let mut t = tp.acquire().await?;
    let bar = super::output::progress(None, "copying");
    let mut progress = |table: &str, done: i64, _total: i64| {
        if let Some(b) = &bar {
            b.set_message(format!("copying {table}"));
            b.set_position(done as u64);
        }
    };
    let name = copy::source_name(path);
    let report = copy::copy(&mut s, &name, &mut t, chunk_rows, &mut progress).await;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    report
}

fn print_copy_report(report: &CopyReport) {
    if report.resumed {
        println!("resumed an interrupted copy");
    }
    let rows: Vec<Vec<String>> = report
        .tables
        .iter()
        .map(|t| {
            vec![
                t.table.clone(),
                t.source_rows.to_string(),
                t.target_rows.to_string(),
                if t.resumed_after > 0 {
                    format!("{} (+{} earlier)", t.copied_now, t.resumed_after)
                } else {
                    t.copied_now.to_string()
                },
                if t.matches() { "ok" } else { "MISMATCH" }.to_string(),
            ]
        })
        .collect();
    print_table(
        &[
            "TABLE",
            "SOURCE ROWS",
            "TARGET ROWS",
            "COPIED",
            "COUNT+CHECKSUM",
        ],
        &rows,
    );
    for s in &report.sequences {
        println!(
            "sequence of {}.{} set to continue at {}",
            s.table, s.column, s.next
        );
    }
    let total: i64 = report.tables.iter().map(|t| t.source_rows).sum();
    if report.verified() {
        println!(
            "verified: {} tables, {total} rows, every count and checksum matches. Point \
             database.url at the PostgreSQL database, then start serve and the workers.",
            report.tables.len()
        );
    } else {
        let bad: Vec<&str> = report
            .tables
            .iter()
            .filter(|t| !t.matches())
            .map(|t| t.table.as_str())
            .collect();
        println!(
            "NOT verified: {bad:?} differ. Was whatsup still writing to the SQLite store? Stop \
             it, drop and recreate the PostgreSQL database, and copy again."
        );
    }
}
