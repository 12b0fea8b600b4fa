//! whatsup: a self-hosted email newsletter system.
//!
//! The library holds everything; `main.rs` only calls [`cli::main`]. See
//! ARCHITECTURE.md for the map of modules and the invariants between them.

pub mod app;
pub mod bounce;
pub mod cli;
pub mod compose;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod export;
pub mod import;
pub mod media;
pub mod ops;
pub mod send;
pub mod store;
pub mod web;
