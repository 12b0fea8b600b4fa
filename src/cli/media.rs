//! `whatsup media add|list`: the media library from the shell.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde::Serialize;

use super::output::{print_json, print_table};
use crate::config::Config;
use crate::store::media::Media;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum MediaCmd {
    /// Add a JPEG, PNG, WebP or GIF image: checked, stripped of metadata,
    /// scaled to media.max_width and stored under its content hash
    Add {
        /// The image file
        file: PathBuf,
        /// What the image shows, for people who cannot see it (required)
        #[arg(long)]
        alt: String,
        /// Print the stored image (with its URL) as JSON
        #[arg(long)]
        json: bool,
    },
    /// List the library, newest first
    List {
        /// At most this many images
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Skip this many first (with --limit: pages)
        #[arg(long, default_value_t = 0)]
        offset: i64,
        /// Print the list as JSON
        #[arg(long)]
        json: bool,
    },
}

/// An image as the CLI shows it: the row and its public URL.
#[derive(Debug, Serialize)]
struct Shown<'a> {
    #[serde(flatten)]
    media: &'a Media,
    url: String,
}

fn shown<'a>(config: &Config, media: &'a Media) -> Shown<'a> {
    Shown {
        media,
        url: format!(
            "{}{}",
            config.newsletter.base_url.trim_end_matches('/'),
            media.path()
        ),
    }
}

pub async fn run(store: &Store, config: &Config, cmd: MediaCmd) -> Result<ExitCode> {
    match cmd {
        MediaCmd::Add { file, alt, json } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let actor = super::cli_actor(store).await?;
            super::require(&actor, crate::domain::Action::IssuesWrite)?;
            let media = crate::media::add(store, config, &actor.label(), bytes, &name, &alt)
                .await
                .with_context(|| file.display().to_string())?;
            let s = shown(config, &media);
            if json {
                print_json(&s)?;
            } else {
                println!(
                    "media {}: {} × {} {}, {} bytes, {}",
                    media.id, media.width, media.height, media.ext, media.bytes, s.url
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        MediaCmd::List {
            limit,
            offset,
            json,
        } => {
            let list = store
                .list_media(limit.clamp(1, 10_000), offset.max(0))
                .await?;
            if json {
                let all: Vec<Shown> = list.iter().map(|m| shown(config, m)).collect();
                print_json(&all)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|m| {
                        vec![
                            m.id.to_string(),
                            m.file_name(),
                            format!("{}×{}", m.width, m.height),
                            m.bytes.to_string(),
                            m.alt.clone(),
                            m.original_name.clone(),
                            m.uploaded_by.clone(),
                        ]
                    })
                    .collect();
                print_table(
                    &["id", "file", "size", "bytes", "alt", "uploaded as", "by"],
                    &rows,
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
