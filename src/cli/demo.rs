//! `whatsup demo`: the main job end to end on embedded defaults. Creates the
//! SQLite database in the data directory, imports the seed subscribers and
//! prints a summary by kind and region. Running it again changes nothing.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::Args;

use super::output::progress;
use crate::config::Config;
use crate::import::{import_file, ImportOptions};
use crate::store::Store;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory of seed CSV files
    #[arg(long, default_value = "subscribers")]
    pub seed_dir: PathBuf,
}

pub async fn run(config: &Config, args: DemoArgs) -> Result<ExitCode> {
    let url = config.database_url();
    println!("database: {}", crate::store::redact_url(&url));
    let store = Store::open(config).await?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.seed_dir)
        .map_err(|e| anyhow::anyhow!("reading seed directory {}: {e}", args.seed_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no .csv files in {}", args.seed_dir.display());
    }
    let mut rejected = 0;
    for file in &files {
        let opts = ImportOptions {
            batch_size: config.import.batch_size,
            actor: "demo".into(),
            consent_source: Some(format!("seed:{}", file.display())),
            ..Default::default()
        };
        let len = std::fs::metadata(file).ok().map(|m| m.len());
        let report = import_file(
            &store,
            file,
            &opts,
            progress(len, "importing"),
            Arc::new(AtomicBool::new(false)),
        )
        .await?;
        for e in &report.errors {
            eprintln!("{}:{e}", report.file);
        }
        rejected += report.rejected;
        println!("{}", report.summary_line());
    }
    println!();
    super::subscribers::summary(&store, false).await?;
    store.close().await;
    if rejected > 0 {
        bail!("{rejected} seed rows were rejected");
    }
    Ok(ExitCode::SUCCESS)
}
