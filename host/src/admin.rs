//! The admin listener, on its own address (`[server] admin_listen`):
//! `/metrics` for Prometheus, open to whoever can reach the address, and
//! the admin API behind a bearer token (`admin_token_env` or
//! `admin_token_file`; without one the API is off):
//!
//! - `GET /apps`: each app's version, component hash and what it holds now;
//! - `PUT /apps/NAME` with a component as the body: deploy it as the app's
//!   next version (swapped in as `--watch` swaps);
//! - `DELETE /apps/NAME`: take the app out of service, draining it;
//! - `POST /reload`: read the manifest again and apply it.
//!
//! A wrong or missing token gets 401 and nothing else; every change is
//! logged.

use crate::cargo_build::component_for;
use crate::config::Manifest;
use crate::deploy::{AdminChange, DeployReport, Deployment};
use anyhow::{Context, Result};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use std::path::PathBuf;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The largest component the admin API takes.
const MAX_UPLOAD: usize = 256 << 20;

/// What the admin API works on.
pub(crate) struct Admin {
    deployment: Arc<Deployment>,
    /// The bearer token; none: the admin API is off.
    token: Option<String>,
    /// Reads the manifest again, with the command line's overrides.
    reload: Box<dyn Fn() -> Result<Manifest> + Send + Sync>,
    /// Where uploaded components are kept.
    uploads: PathBuf,
}

impl Admin {
    /// The admin of `deployment`, its token read as the `[server]` table says.
    pub(crate) fn new(
        deployment: Arc<Deployment>,
        server: &crate::config::ServerConfig,
        reload: impl Fn() -> Result<Manifest> + Send + Sync + 'static,
    ) -> Result<Admin> {
        let token = match (&server.admin_token_env, &server.admin_token_file) {
            (Some(_), Some(_)) => {
                anyhow::bail!("give admin_token_env or admin_token_file, not both")
            }
            (Some(name), None) => Some(
                std::env::var(name)
                    .with_context(|| format!("admin_token_env: {name} is not set"))?,
            ),
            (None, Some(file)) => Some(
                std::fs::read_to_string(file)
                    .with_context(|| format!("admin_token_file: cannot read {}", file.display()))?,
            ),
            (None, None) => None,
        };
        let token = match token.map(|token| token.trim().to_owned()) {
            Some(token) if token.len() < 16 => {
                anyhow::bail!("the admin token is too short: use at least 16 characters")
            }
            token => token,
        };
        Ok(Admin {
            deployment,
            token,
            reload: Box::new(reload),
            uploads: server.data_dir.join("deployed"),
        })
    }

    /// Whether the admin API is on (a token is configured).
    pub(crate) fn api_on(&self) -> bool {
        self.token.is_some()
    }

    /// Serve on `listener` for as long as the process runs, under the
    /// `[server]` table's header and idle limits.
    pub(crate) async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        server: crate::config::ServerConfig,
    ) {
        crate::server::serve_admin(listener, &server, move |request| {
            let admin = self.clone();
            async move { admin.answer(request).await }
        })
        .await;
    }

    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path().to_owned();
        if request.method() == Method::GET && path == "/metrics" {
            return self.metrics().await;
        }
        let Some(token) = &self.token else {
            return text(
                StatusCode::NOT_FOUND,
                "the admin API is off: set admin_token_env or admin_token_file\n",
            );
        };
        if !authorized(&request, token) {
            let mut response = text(StatusCode::UNAUTHORIZED, "");
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
            return response;
        }
        let app = path.strip_prefix("/apps/").map(str::to_owned);
        match (request.method().clone(), path.as_str(), app) {
            (Method::GET, "/apps", _) => self.list(),
            (Method::POST, "/reload", _) => self.reload().await,
            (Method::PUT, _, Some(app)) => self.deploy(&app, request).await,
            (Method::DELETE, _, Some(app)) => self.remove(&app).await,
            _ => text(StatusCode::NOT_FOUND, "no such admin endpoint\n"),
        }
    }

    /// `/metrics`: what each app holds now, then everything counted.
    async fn metrics(&self) -> Response<Full<Bytes>> {
        for app in self.deployment.apps() {
            crate::stats::snapshot(&app.snapshot());
            for queue in app.queues() {
                let depth = (queue.messages.pending().await, queue.dead.count().await);
                if let (Ok(messages), Ok(dead)) = depth {
                    let name = &queue.consumer.queue;
                    crate::stats::queue_depth(app.name_label(), name, messages, dead);
                }
            }
            if let Some(jobs) = app.jobs() {
                match jobs.store.pending().await {
                    Ok(pending) => crate::stats::jobs_pending(app.name_label(), pending),
                    Err(failure) => tracing::debug!("jobs pending unknown: {failure}"),
                }
            }
        }
        crate::stats::call_bytes_held(self.deployment.call_bytes_held());
        let mut response = text(StatusCode::OK, &crate::stats::recorder().render());
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        response
    }

    fn list(&self) -> Response<Full<Bytes>> {
        let apps: Vec<_> = self
            .deployment
            .apps()
            .iter()
            .map(|app| {
                let now = app.snapshot();
                serde_json::json!({
                    "name": app.name(),
                    "version": app.version(),
                    "sha256": app.source_hash(),
                    "source": app.config().source,
                    "routes": app.config().routes,
                    "instances": now.instances,
                    "requests_in_flight": now.requests,
                    "websockets_open": now.websockets,
                })
            })
            .collect();
        json(StatusCode::OK, &serde_json::Value::from(apps))
    }

    async fn reload(&self) -> Response<Full<Bytes>> {
        let manifest = match (self.reload)() {
            Ok(manifest) => manifest,
            Err(err) => {
                tracing::error!("admin: reload refused: {err:#}");
                return text(StatusCode::UNPROCESSABLE_ENTITY, &format!("{err:#}\n"));
            }
        };
        tracing::info!("admin: reloading the manifest");
        self.applied(manifest).await
    }

    async fn deploy(&self, name: &str, request: Request<Incoming>) -> Response<Full<Bytes>> {
        if !self.deployment.apps().iter().any(|app| app.name() == name) {
            return text(StatusCode::NOT_FOUND, "no app of that name\n");
        }
        let body = match Limited::new(request.into_body(), MAX_UPLOAD)
            .collect()
            .await
        {
            Ok(body) => body.to_bytes(),
            Err(_) => {
                return text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("a component may be {MAX_UPLOAD} bytes at most\n"),
                );
            }
        };
        let hash = crate::runtime::sha256_hex(&body);
        let stored = self.uploads.join(format!("{name}-{hash}.wasm"));
        let saved =
            std::fs::create_dir_all(&self.uploads).and_then(|()| std::fs::write(&stored, &body));
        if let Err(err) = saved {
            tracing::error!("admin: cannot store the upload: {err}");
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot store the component\n",
            );
        }
        tracing::info!(
            app = name,
            sha256 = hash,
            "admin: deploying an uploaded component"
        );
        self.changed(name, AdminChange::Deploy(stored)).await
    }

    async fn remove(&self, name: &str) -> Response<Full<Bytes>> {
        tracing::info!(app = name, "admin: removing");
        self.changed(name, AdminChange::Remove).await
    }

    /// Make `change` to the app `name` (404 if there is none), as
    /// [`Admin::applied`] says.
    async fn changed(&self, name: &str, change: AdminChange) -> Response<Full<Bytes>> {
        let changed = tokio::task::block_in_place(|| {
            self.deployment
                .change(name, change, &|app| component_for(&app.source))
        });
        match changed {
            Some(applied) => answer_applied(&applied),
            None => text(StatusCode::NOT_FOUND, "no app of that name\n"),
        }
    }

    /// Apply `manifest` (building crates, compiling components) on this
    /// thread, telling the runtime to move other tasks off it, and say
    /// what it did.
    async fn applied(&self, manifest: Manifest) -> Response<Full<Bytes>> {
        let applied = tokio::task::block_in_place(|| {
            self.deployment
                .apply(&manifest, &|app| component_for(&app.source))
        });
        answer_applied(&applied)
    }
}

/// What a change did, logged, as its answer: 200, or 422 if anything was
/// refused.
fn answer_applied(applied: &DeployReport) -> Response<Full<Bytes>> {
    applied.log();
    let status = if applied.refused.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    json(
        status,
        &serde_json::json!({
            "added": applied.added,
            "updated": applied.updated,
            "removed": applied.removed,
            "refused": applied.refused.iter().map(|(app, why)| {
                serde_json::json!({"app": app, "why": why})
            }).collect::<Vec<_>>(),
        }),
    )
}

/// Whether `request` carries `token` as its bearer token (compared in
/// constant time).
fn authorized<B>(request: &Request<B>, token: &str) -> bool {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "))
        .is_some_and(|given| bool::from(given.ct_eq(token.as_bytes())))
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = text(status, &format!("{value}\n"));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::authorized;

    #[test]
    fn only_the_exact_bearer_token_is_authorized() {
        let with = |value: &str| {
            http::Request::get("/apps")
                .header("authorization", value)
                .body(())
                .expect("request")
        };
        let token = "0123456789abcdef";
        assert!(authorized(&with("Bearer 0123456789abcdef"), token));
        assert!(!authorized(&with("Bearer 0123456789abcdeF"), token));
        assert!(!authorized(&with("Bearer 0123456789abcde"), token));
        assert!(!authorized(&with("Basic 0123456789abcdef"), token));
        assert!(!authorized(
            &http::Request::get("/").body(()).expect("request"),
            token
        ));
    }
}
