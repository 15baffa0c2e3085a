//! `squall serve APP`: load apps and serve them until SIGINT or SIGTERM.

use crate::app::Apps;
use crate::cargo_build::component_for;
use crate::config::Manifest;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Serve an app: a guest crate directory, a .wasm component, or a squall.toml manifest.
#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    /// A guest crate directory (built on the spot), a .wasm component, or a squall.toml.
    app: PathBuf,
    /// Address to listen on [default: the manifest's, else 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Where durable state (the key-value store) is kept [default: the
    /// manifest's `data_dir`, else .squall/data beside the manifest].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Every app's wall-clock time per request (`5s`, `500ms`), as the
    /// manifest's `timeout`.
    #[arg(long, value_parser = crate::config::parse_duration)]
    timeout: Option<std::time::Duration>,
    /// Every app's CPU time per request, as the manifest's `cpu_time`.
    #[arg(long, value_parser = crate::config::parse_duration)]
    cpu_time: Option<std::time::Duration>,
    /// Every app's linear memory (`16MiB`), as the manifest's `memory`.
    #[arg(long, value_parser = crate::config::parse_size)]
    memory: Option<u64>,
    /// A destination fetch may reach (`https://api.example.com`,
    /// `http://127.0.0.1:*`), added to every app's `outbound`; repeat it
    /// for more.
    #[arg(long = "outbound", value_parser = crate::policy::OutboundRule::parse)]
    outbound: Vec<crate::policy::OutboundRule>,
}

impl ServeArgs {
    /// The manifest's keys given on the command line, for every app.
    fn apply_limits(&self, manifest: &mut Manifest) {
        for app in &mut manifest.apps {
            if let Some(timeout) = self.timeout {
                app.limits.timeout = timeout;
            }
            if let Some(cpu_time) = self.cpu_time {
                app.limits.cpu_time = cpu_time;
            }
            if let Some(memory) = self.memory {
                app.limits.memory = memory;
            }
            if !self.outbound.is_empty() {
                app.outbound = app.outbound.with(&self.outbound);
            }
        }
    }
}

pub(super) fn run(args: ServeArgs) -> Result<()> {
    let mut manifest = manifest_for(&args.app)?;
    if let Some(listen) = args.listen {
        manifest.server.listen = listen;
    }
    if let Some(data_dir) = &args.data_dir {
        manifest.server.data_dir = data_dir.clone();
    }
    args.apply_limits(&mut manifest);
    let apps = Apps::load(&manifest, |app| component_for(&app.source))?;
    let router = Arc::new(apps.router()?);

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    tokio.block_on(async {
        let listener = crate::server::bind(manifest.server.listen)
            .with_context(|| format!("cannot listen on {}", manifest.server.listen))?;
        let address = listener.local_addr()?;
        announce(&manifest, &apps, address);
        crate::server::serve(
            listener,
            router,
            apps.hub().clone(),
            &manifest.server,
            shutdown_signal(),
        )
        .await;
        Ok::<_, anyhow::Error>(())
    })?;
    // Keep the engine alive until every connection task is gone.
    drop(tokio);
    drop(apps);
    Ok(())
}

/// Print where each app is served; tests and scripts read the first URL.
fn announce(manifest: &Manifest, apps: &Apps, address: SocketAddr) {
    let mut stdout = std::io::stdout().lock();
    for app in &manifest.apps {
        let _ = writeln!(
            stdout,
            "squall: serving app {:?} at http://{address}{}",
            app.name,
            app.routes.join(&format!(", http://{address}"))
        );
        let sockets = apps
            .iter()
            .find(|loaded| loaded.name() == app.name)
            .map(|loaded| loaded.websockets().to_vec())
            .unwrap_or_default();
        for line in describe(app, &sockets) {
            let _ = writeln!(stdout, "squall:   {line}");
        }
    }
    let _ = writeln!(
        stdout,
        "squall: listening on http://{address}/ (Ctrl-C to stop)"
    );
    let _ = stdout.flush();
}

/// What an app is reached by and granted, a line each, for the start-up
/// summary; secrets' values are never shown.
fn describe(
    app: &crate::config::AppConfig,
    sockets: &[crate::config::WebSocketRoute],
) -> Vec<String> {
    let mut lines = Vec::new();
    if !app.hosts.is_empty() {
        lines.push(format!("hosts: {}", app.hosts.join(", ")));
    }
    for socket in sockets {
        lines.push(format!(
            "websocket: {} ({})",
            socket.routes.join(", "),
            match socket.mode {
                crate::config::WebSocketMode::Live => "live",
                crate::config::WebSocketMode::Hibernate => "hibernate",
            }
        ));
    }
    let mut grants = Vec::new();
    let outbound = app.outbound.patterns();
    if !outbound.is_empty() {
        grants.push(format!("outbound {}", outbound.join(" ")));
    }
    let topics = app.pubsub.patterns();
    if !topics.is_empty() {
        grants.push(format!("pubsub {}", topics.join(" ")));
    }
    if app.kv {
        grants.push("kv".to_owned());
    }
    if app.settings.len() > 0 {
        grants.push(format!("config ({} values)", app.settings.len()));
    }
    lines.push(if grants.is_empty() {
        "grants: none (compute only)".to_owned()
    } else {
        format!("grants: {}", grants.join("; "))
    });
    lines
}

/// The manifest `app` names: itself if it is a `.toml`, else one app.
pub(crate) fn manifest_for(app: &Path) -> Result<Manifest> {
    if app.is_dir() {
        let manifest = app.join("squall.toml");
        if manifest.is_file() {
            return Manifest::load(&manifest);
        }
    } else if app.extension().is_some_and(|ext| ext == "toml") {
        return Manifest::load(app);
    } else if !app.exists() {
        bail!("{} does not exist", app.display());
    }
    let name = app
        .canonicalize()
        .ok()
        .and_then(|path| Some(path.file_stem()?.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "app".to_owned());
    Ok(Manifest::single(&name, app.to_path_buf()))
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!("cannot listen for SIGTERM: {err}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
