//! Every integration test in one binary: one link instead of one per file,
//! and `common` compiled once. Each file under tests/ is a module here, so a
//! test's name starts with its file's (`cargo test --test suite bounce_intake`).

#[macro_use]
mod common;

mod api_gate;
mod api_operators;
mod api_permissions;
mod api_sessions;
mod api_workflow;
mod bounce_corpus;
mod bounce_intake;
mod bounce_labels;
mod bounce_mailbox;
mod bounce_postfix;
mod bounce_webhooks;
mod cli;
mod cli_operator;
mod compose_browser;
mod compose_check;
mod compose_render;
mod compose_send;
mod compose_store;
mod deploy;
mod import_corpus;
mod media_library;
mod ops_backup;
mod ops_doctor;
mod ops_service;
mod readme;
mod send_conversation;
mod send_crash;
mod send_dkim;
mod send_gate;
mod send_reliability;
mod send_restart;
mod send_smtp;
mod store_admin_views;
mod store_conformance;
mod store_copy;
mod store_stats;
mod store_workspace;
mod web_admin_accounts;
mod web_admin_bounces;
mod web_admin_browser;
mod web_admin_campaigns;
mod web_admin_contacts;
mod web_admin_crawl;
mod web_admin_dashboard;
mod web_admin_imports;
mod web_admin_issues;
mod web_admin_operators_browser;
mod web_admin_shell;
mod web_assets;
mod web_browser;
mod web_pages;
