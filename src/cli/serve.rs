//! `whatsup serve`: the recipients' web pages, the admin listener with the
//! REST API (`admin.bind`, a separate address), and (unless `--no-worker`)
//! the worker loop that starts scheduled campaigns and sends running ones,
//! in one process. SIGINT or SIGTERM stops both: the server finishes the
//! requests in flight, the worker the messages in flight, within
//! `general.stop_timeout_secs` (see `cli::service`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

use super::service::{self, StopReason};
use crate::config::Config;
use crate::send::worker::Worker;
use crate::store::Store;
use crate::web::api::AdminServer;
use crate::web::Server;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on [default: web.bind]
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<SocketAddr>,
    /// Serve the pages only; do not send campaigns from this process
    #[arg(long)]
    pub no_worker: bool,
    /// Address and port of the admin listener (the API) [default:
    /// admin.bind; empty there: none]
    #[arg(long, value_name = "ADDR")]
    pub admin_bind: Option<SocketAddr>,
}

pub async fn run(store: &Store, config: &Config, args: ServeArgs) -> Result<ExitCode> {
    const NAME: &str = "whatsup serve";
    let bind = match args.bind {
        Some(b) => b,
        None => config
            .web
            .bind
            .parse()
            .with_context(|| format!("web.bind {:?}", config.web.bind))?,
    };
    // Check the worker's settings before opening the port.
    let worker = if args.no_worker {
        None
    } else {
        Some(Worker::new(store.clone(), config.clone())?)
    };
    // Caught before the address is printed: whoever reads that line may
    // send SIGTERM at once.
    let mut signals = super::signals::StopSignals::install()?;
    let admin_bind = match args.admin_bind {
        Some(b) => Some(b),
        None if config.admin.bind.is_empty() => None,
        None => Some(
            config
                .admin
                .bind
                .parse()
                .with_context(|| format!("admin.bind {:?}", config.admin.bind))?,
        ),
    };
    if admin_bind == Some(bind) && bind.port() != 0 {
        anyhow::bail!("the admin listener cannot share the recipients' address {bind}");
    }
    let server = Server::start(store.clone(), config.clone(), bind).await?;
    let admin = match admin_bind {
        Some(b) => Some(AdminServer::start(store.clone(), config.clone(), b).await?),
        None => None,
    };
    println!(
        "whatsup serve: listening on http://{} (public base URL {}){}",
        server.addr,
        config.newsletter.base_url,
        if worker.is_some() {
            ", worker running"
        } else {
            ", no worker"
        }
    );
    if let Some(a) = &admin {
        println!(
            "whatsup serve: admin API on http://{}/api/v1 (OpenAPI document at /api/v1/openapi.json)",
            a.addr
        );
    }
    match (server.metrics_addr, config.web.metrics_bind.as_str()) {
        (Some(at), _) => println!("whatsup serve: metrics at http://{at}/metrics"),
        (None, "public") => println!("whatsup serve: metrics at /metrics (bearer token)"),
        _ => {}
    }
    let hooks = server.state.webhooks.paths();
    if !hooks.is_empty() {
        println!("whatsup serve: webhooks at {}", hooks.join(", "));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let has_worker = worker.is_some();
    let worker_task = worker.map(|mut w| {
        let stop = stop.clone();
        tokio::spawn(async move { w.run(&stop).await })
    });
    // The worker loop ends by itself only on an error; without a worker
    // only a signal or a newer schema stops the server.
    let work = async move {
        match worker_task {
            Some(t) => t.await.context("worker task")?,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(work);
    let reason = service::wait_for_stop(&mut signals, store, config, &mut work).await;
    service::announce(NAME, config, &reason);
    stop.store(true, Ordering::SeqCst);
    let wait_worker = has_worker && !matches!(reason, StopReason::Ended(_));
    let finishing = async move {
        server.stop().await?;
        if let Some(a) = admin {
            a.stop().await?;
        }
        if wait_worker {
            work.await?;
        }
        Ok(())
    };
    let drained = service::drain(NAME, config, &mut signals, finishing).await?;
    let code = service::exit_code(&reason, drained);
    if let StopReason::Ended(result) = reason {
        result?;
    }
    Ok(code)
}
