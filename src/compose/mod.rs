//! Composition: an issue file and the templates become a [`CompiledIssue`],
//! which renders the exact bytes of a personalised message per recipient.
//!
//! - [`issue`]: the issue file format (Markdown with TOML front matter);
//! - [`markdown`]: Markdown to sanitised HTML and to plain text;
//! - [`merge`]: merge tags in the issue's own text (`{{ recipient.name }}`);
//! - [`templates`]: the minijinja environment, overrides and the date helper;
//! - [`compiled`]: compile once, render per recipient;
//! - [`mime`]: quoted-printable, RFC 2047 and header folding;
//! - [`preflight`]: `whatsup issues check`;
//! - [`preview`]: files and the live preview server;
//! - [`send`]: one test message over SMTP.
//!
//! This module knows nothing of SQL: issues reach it as text.

pub mod compiled;
pub mod error;
pub mod issue;
pub mod markdown;
pub mod merge;
pub mod mime;
pub mod preflight;
pub mod preview;
pub mod send;
pub mod source;
pub mod templates;

pub use compiled::{
    CompiledIssue, LinkTokens, PersonalLinks, Recipient, RenderedMessage, Slot, Tracking,
};
pub use error::SourceError;
pub use issue::{Issue, IssueRef};
pub use preflight::Report;
