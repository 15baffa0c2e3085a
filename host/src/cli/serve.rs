//! `squall serve APP`: load apps and serve them until SIGINT or SIGTERM.

use crate::admin::Admin;
use crate::app::App;
use crate::cargo_build::component_for;
use crate::config::Manifest;
use crate::deploy::Deployment;
use anyhow::{Context, Result};
use clap::Args;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Serve an app: a guest crate directory, a .wasm component, or a squall.toml manifest.
#[derive(Debug, Clone, Args)]
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
    /// Where compiled components are kept between starts [default: the
    /// manifest's `cache_dir`, else .squall/cache beside the manifest].
    #[arg(long)]
    cache_dir: Option<PathBuf>,
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
    /// Apply changes to the manifest, to components and to crate sources
    /// (rebuilt first) while serving: no request or socket is dropped.
    #[arg(long)]
    watch: bool,
    /// For local work: apps show error details (a capability's refusal, a
    /// Python traceback) to clients, as the config value `debug = "true"`
    /// does; an app whose manifest sets `debug` keeps its value. Otherwise
    /// clients get the status only and the detail goes to the log.
    #[arg(long)]
    dev: bool,
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
            if self.dev {
                app.settings = app.settings.with_default("debug", "true");
            }
        }
    }

    /// The manifest to serve, with the command line's overrides.
    fn manifest(&self) -> Result<Manifest> {
        let mut manifest = Manifest::for_app(&self.app)?;
        if let Some(listen) = self.listen {
            manifest.server.listen = listen;
        }
        if let Some(data_dir) = &self.data_dir {
            manifest.server.data_dir = data_dir.clone();
        }
        if let Some(cache_dir) = &self.cache_dir {
            manifest.server.cache_dir = cache_dir.clone();
        }
        self.apply_limits(&mut manifest);
        Ok(manifest)
    }

    /// The manifest file, if the host was started from one.
    fn manifest_file(&self) -> Option<PathBuf> {
        if self.app.is_dir() {
            Some(self.app.join("squall.toml")).filter(|file| file.is_file())
        } else {
            Some(self.app.clone()).filter(|app| app.extension().is_some_and(|ext| ext == "toml"))
        }
    }
}

pub(super) fn run(args: ServeArgs) -> Result<()> {
    let manifest = args.manifest()?;
    if args.dev {
        println!("squall: development mode (--dev): clients see error details");
    }
    let deployment = Arc::new(Deployment::load(&manifest, &|app| {
        component_for(&app.source)
    })?);

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    tokio.block_on(async {
        let listener = crate::server::bind(manifest.server.listen)
            .with_context(|| format!("cannot listen on {}", manifest.server.listen))?;
        let address = listener.local_addr()?;
        // Watching before the address is announced: a change made as soon
        // as the server answers is seen.
        if args.watch {
            let reload = args.clone();
            let applying = deployment.clone();
            super::watch::start(
                args.manifest_file(),
                &manifest,
                move || reload.manifest(),
                move |manifest| {
                    applying
                        .apply(manifest, &|app| component_for(&app.source))
                        .log();
                },
            )?;
            println!("squall: watching for changes");
        }
        if let Some(admin_address) = manifest.server.admin_listen {
            let reload = args.clone();
            let admin = Admin::new(deployment.clone(), &manifest.server, move || {
                reload.manifest()
            })?;
            // Counting starts before the first request.
            crate::stats::recorder();
            let admin_listener = crate::server::bind(admin_address)
                .with_context(|| format!("cannot listen on {admin_address} (admin_listen)"))?;
            println!(
                "squall: admin on http://{}/ (/metrics; the API {})",
                admin_listener.local_addr()?,
                if admin.api_on() {
                    "with its token"
                } else {
                    "is off: no token"
                }
            );
            tokio::spawn(Arc::new(admin).serve(admin_listener, manifest.server.clone()));
        }
        let https = match (manifest.server.https_listen, deployment.tls()) {
            (Some(https_address), Some(tls)) => {
                let https_listener = crate::server::bind(https_address)
                    .with_context(|| format!("cannot listen on {https_address} (https_listen)"))?;
                println!(
                    "squall: https on https://{}/ (HTTP/2 and HTTP/1.1{})",
                    https_listener.local_addr()?,
                    if manifest.server.https_redirect {
                        "; plain HTTP redirects here"
                    } else {
                        ""
                    }
                );
                Some((https_listener, tls.clone()))
            }
            _ => None,
        };
        let tcp = crate::server::bind_tcp(&deployment.handles())?;
        for listen in &tcp {
            println!(
                "squall: app {:?} accepts tcp on {} (listener {:?})",
                listen.app_name(),
                listen.local_addr()?,
                listen.name()
            );
        }
        announce(&deployment.apps(), address);
        let _scheduler = deployment.schedules().start();
        let _job_runner = deployment.job_runner().start();
        let listeners = crate::server::Listeners {
            http: listener,
            https,
            tcp,
        };
        crate::server::serve(
            listeners,
            deployment.router().clone(),
            deployment.hub().clone(),
            &manifest.server,
            shutdown_signal(),
        )
        .await;
        Ok::<_, anyhow::Error>(())
    })?;
    // Keep the engine alive until every connection task is gone.
    drop(tokio);
    drop(deployment);
    Ok(())
}

/// Print where each app is served; tests and scripts read the first URL.
fn announce(apps: &[Arc<App>], address: SocketAddr) {
    let mut stdout = std::io::stdout().lock();
    for app in apps {
        let config = app.config();
        let _ = writeln!(
            stdout,
            "squall: serving app {:?} at http://{address}{}",
            config.name,
            config.routes.join(&format!(", http://{address}"))
        );
        for line in describe(config, app.websockets()) {
            let _ = writeln!(stdout, "squall:   {line}");
        }
        let now = chrono::Utc::now();
        for schedule in &config.schedules {
            let next = schedule
                .when
                .next_after(now)
                .map_or_else(|| "never".to_owned(), |next| next.to_rfc3339());
            let _ = writeln!(
                stdout,
                "squall:   schedule {:?} runs {}; next at {next}",
                schedule.name,
                schedule.when.describe()
            );
        }
        for consumer in &config.consumers {
            let _ = writeln!(
                stdout,
                "squall:   consumer of queue {:?}: batches of {}, {} at once, {} retries {}ms apart",
                consumer.queue,
                consumer.batch,
                consumer.concurrency,
                consumer.max_retries,
                consumer.retry_delay.as_millis()
            );
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
    let tcp = app.tcp_outbound.patterns();
    if !tcp.is_empty() {
        grants.push(format!("tcp_outbound {}", tcp.join(" ")));
    }
    let topics = app.pubsub.patterns();
    if !topics.is_empty() {
        grants.push(format!("pubsub {}", topics.join(" ")));
    }
    if app.kv {
        grants.push("kv".to_owned());
    }
    if app.jobs {
        grants.push("jobs".to_owned());
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
