//! Running whatsup for real: checking an installation (`doctor`), backups
//! and restores, and moving an SQLite store to PostgreSQL. These sit above
//! the store, sending and web layers and below the CLI, which only parses
//! arguments and prints what these return.

pub mod backup;
pub mod doctor;
