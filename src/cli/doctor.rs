//! `whatsup doctor [--json] [--online]`: prints every check of
//! `ops::doctor` as pass, warn, fail or skip with what to do about it;
//! exits 1 when any check fails.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::output::print_json;
use crate::config::Config;
use crate::ops::doctor::{self, Options};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Also check that `whatsup serve` answers at newsletter.base_url
    #[arg(long)]
    pub online: bool,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config: &Config, args: DoctorArgs) -> Result<ExitCode> {
    let report = doctor::run(
        config,
        &Options {
            online: args.online,
        },
    )
    .await;
    if args.json {
        print_json(&report)?;
    } else {
        print!("{}", report.to_text());
    }
    Ok(if report.failures > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
