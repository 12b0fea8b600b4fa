//! Delivery: what outgoing mail needs beyond its content.
//!
//! - [`tokens`]: signed per-recipient tokens (HMAC-SHA256, rotatable keys)
//!   for unsubscribe, preferences and view-in-browser links, and for VERP.
//! - [`verp`]: per-message envelope senders (`bounces+TOKEN@domain`) that map
//!   a bounce back to its campaign and contact.
//! - [`dkim`]: DKIM signing (rsa-sha256, ed25519-sha256; relaxed/relaxed) of
//!   finished messages, and the DNS record to publish.
//!
//! The delivery queue and the worker that sends will live in other files of
//! this module.

pub mod dkim;
pub mod tokens;
pub mod verp;
