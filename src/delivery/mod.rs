//! Delivery: what outgoing mail needs beyond its content.
//!
//! - [`tokens`]: signed per-recipient tokens (HMAC-SHA256, rotatable keys)
//!   for unsubscribe, preferences and view-in-browser links, for VERP and
//!   the `X-Whatsup-Delivery` header; form tags for the recipients' forms.
//! - [`verp`]: per-message envelope senders (`bounces+TOKEN@domain`) that map
//!   a bounce back to its campaign and contact.
//! - [`message_id`]: random Message-IDs (128 bits), which a bounce may be
//!   matched by because nobody can guess them.
//! - [`dkim`]: DKIM signing (rsa-sha256, ed25519-sha256; relaxed/relaxed) of
//!   finished messages, and the DNS record to publish.
//!
//! The delivery queue and the worker that sends will live in other files of
//! this module.

pub mod dkim;
pub mod message_id;
pub mod tokens;
pub mod verp;
