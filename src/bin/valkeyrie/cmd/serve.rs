//! `serve`: the KV Connect server (feature `server`), so Deno and `@deno/kv` clients use
//! the database over HTTP.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use valkeyrie::kvconnect::Server;

use super::{Access, Ctx};
use crate::exit::{Outcome, bad_input};

/// `serve` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (loopback by default; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:4512")]
    addr: SocketAddr,
    /// The token clients must present (12 characters or more).
    #[arg(long, env = "DENO_KV_ACCESS_TOKEN", hide_env_values = true)]
    access_token: String,
    /// Log one line per request on stderr.
    #[arg(long)]
    log: bool,
}

/// Serves until SIGTERM or Ctrl-C, then finishes in-flight requests.
pub fn run(ctx: &Ctx, args: &Args) -> Result<Outcome> {
    let db = ctx.open(Access::Create)?;
    let server = Server::new(db.clone(), &args.access_token)
        .map_err(|e| bad_input(format!("--access-token: {e}")))?
        .log_requests(args.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("cannot listen on {}", args.addr))?;
        let bound = listener
            .local_addr()
            .context("cannot read the bound address")?;
        eprintln!("Listening on http://{bound}");
        server.serve(listener, shutdown_signal()).await?;
        anyhow::Ok(())
    })?;
    super::close(&db)?;
    Ok(Outcome::Success)
}

/// Completes on SIGTERM or Ctrl-C (SIGINT).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
