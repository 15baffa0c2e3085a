//! A loaded app's component: compiled, pre-linked, and told apart by what
//! it exports (a squall-sdk app or a standard wasi:http component).

use super::cpu_share::CpuShare;
use super::engine::TickedEngine;
use super::pool_share::AppInstances;
use super::sockets::TcpConnectGrant;
use super::store::{State, StoreGrants, StoreRecipe, new_store};
use crate::bindings::AppPre;
use crate::config::Limits;
use crate::error::HostError;
use crate::fence::Fence;
use crate::limit_log::LimitHits;
use crate::policy::TcpPolicy;
use std::sync::Arc;
use wasmtime::component::Component;
use wasmtime::{Engine, Store};
use wasmtime_wasi_http::handler::ProxyPre;

/// An app's compiled, pre-linked component and its limits, ready to
/// instantiate once per request.
pub(crate) struct AppComponent<H: 'static> {
    /// The compiled code, shared with apps of the same bytes (held: the
    /// sharing lasts as long as an app does).
    _compiled: Arc<Component>,
    guest: Guest<H>,
    engine: TickedEngine,
    /// The app's share of the instance pool.
    instances: AppInstances,
    /// Its limits, secrets, CPU share and where WASI sockets may connect:
    /// what each of its stores is made with.
    recipe: StoreRecipe,
}

/// A loaded component's handler.
pub(crate) enum Guest<H: 'static> {
    /// A squall-sdk app (`squall:app/handler`).
    Squall(AppPre<State<H>>),
    /// A standard wasi:http component.
    Standard(ProxyPre<State<H>>),
}

impl<H: Send + 'static> AppComponent<H> {
    pub(super) fn new(
        compiled: Arc<Component>,
        guest: Guest<H>,
        limits: Limits,
        engine: TickedEngine,
        instances: AppInstances,
        hits: Arc<LimitHits>,
        redact: Arc<[String]>,
    ) -> Self {
        let cpu_share = limits
            .cpu_share
            .map(|percent| CpuShare::new(f64::from(percent) / 100.0));
        let p3_sockets = compiled
            .component_type()
            .imports(&engine.engine)
            .any(|(import, _)| import.starts_with("wasi:sockets/") && import.contains("@0.3"));
        AppComponent {
            _compiled: compiled,
            guest,
            engine,
            instances,
            recipe: StoreRecipe {
                limits,
                hits,
                redact,
                grants: StoreGrants {
                    cpu_share,
                    tcp_connect: None,
                    p3_sockets,
                },
            },
        }
    }

    /// Let its `wasi:sockets` connect where `policy` allows, each
    /// connection holding a place of `connections` until the store ends,
    /// names looked up within `lookups` (an empty policy grants nothing).
    pub(crate) fn allow_tcp_connect(
        &mut self,
        policy: &TcpPolicy,
        connections: &Arc<Fence>,
        lookups: &Arc<tokio::sync::Semaphore>,
    ) {
        if !policy.is_empty() {
            self.recipe.grants.tcp_connect = Some(TcpConnectGrant {
                policy: Arc::new(policy.clone()),
                connections: connections.clone(),
                lookups: lookups.clone(),
            });
        }
    }

    /// The app's limits.
    pub(crate) fn limits(&self) -> &Limits {
        &self.recipe.limits
    }

    /// Its handler, by kind.
    pub(crate) fn guest(&self) -> &Guest<H> {
        &self.guest
    }

    /// The pre-instance of a squall-sdk app; an error for a standard one.
    pub(crate) fn squall_pre(&self) -> wasmtime::Result<&AppPre<State<H>>> {
        match &self.guest {
            Guest::Squall(pre) => Ok(pre),
            Guest::Standard(_) => Err(wasmtime::Error::msg(
                "a standard wasi:http component has no squall:app exports",
            )),
        }
    }

    /// A fresh store with this app's limits, holding `host` for the
    /// capabilities and a slot of the pool (given back when the store is
    /// dropped); an error if the app's share of the pool is taken.
    pub(crate) fn new_store(&self, host: H) -> Result<Store<State<H>>, HostError> {
        let slot = self.instances.acquire()?;
        Ok(new_store(&self.engine, &self.recipe, host, slot))
    }

    /// Charge the host's work on one request or event to the app's CPU
    /// share: how long to wait first if the app is over it.
    pub(crate) fn charge_request(&self) -> Option<std::time::Duration> {
        self.recipe
            .grants
            .cpu_share
            .as_ref()
            .and_then(|share| share.charge_request(std::time::Instant::now()))
    }

    /// The app's account with the instance pool, which its next version
    /// takes over.
    pub(crate) fn instances(&self) -> &AppInstances {
        &self.instances
    }

    /// Instances of the pool the app holds now.
    pub(crate) fn instances_in_use(&self) -> u32 {
        self.instances.in_use()
    }
}

/// What kind of handler a component exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ComponentKind {
    Squall,
    WasiHttp2,
    WasiHttp3,
    Unknown,
}

impl ComponentKind {
    pub(super) fn of(component: &Component, engine: &Engine) -> Self {
        let exports: Vec<String> = component
            .component_type()
            .exports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        ComponentKind::from_exports(&exports)
    }

    fn from_exports(exports: &[String]) -> Self {
        let has = |prefix: &str| exports.iter().any(|name| name.starts_with(prefix));
        if has("squall:app/handler@0.1") {
            ComponentKind::Squall
        } else if has("wasi:http/handler@0.3") {
            ComponentKind::WasiHttp3
        } else if has("wasi:http/incoming-handler@0.2") {
            ComponentKind::WasiHttp2
        } else {
            ComponentKind::Unknown
        }
    }

    pub(super) fn describe(self) -> &'static str {
        match self {
            ComponentKind::Squall => "squall:app component",
            ComponentKind::WasiHttp2 => "standard wasi:http 0.2 proxy component",
            ComponentKind::WasiHttp3 => "standard wasi:http 0.3 service component",
            ComponentKind::Unknown => "unknown component",
        }
    }
}

/// The component binary starts with the wasm magic and a component layer.
pub(super) fn is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[6..8] == [0x01, 0x00]
}

/// The WASI interfaces a component may import that Squall links but never
/// grants: its calls will be denied.
pub(super) fn denied_import(import: &str) -> Option<&'static str> {
    ["wasi:filesystem/", "wasi:sockets/"]
        .into_iter()
        .find(|prefix| import.starts_with(prefix))
        .map(|prefix| prefix.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(exports: &[&str]) -> ComponentKind {
        let exports: Vec<String> = exports.iter().map(|e| (*e).to_owned()).collect();
        ComponentKind::from_exports(&exports)
    }

    #[test]
    fn kinds_are_told_apart_by_their_exports() {
        assert_eq!(
            kind(&[
                "squall:app/handler@0.1.0",
                "squall:app/websocket-handler@0.1.0"
            ]),
            ComponentKind::Squall
        );
        assert_eq!(kind(&["wasi:http/handler@0.3.0"]), ComponentKind::WasiHttp3);
        assert_eq!(
            kind(&["wasi:http/incoming-handler@0.2.6"]),
            ComponentKind::WasiHttp2
        );
        assert_eq!(kind(&["wasi:cli/run@0.2.0"]), ComponentKind::Unknown);
    }

    #[test]
    fn only_components_pass_the_header_check() {
        assert!(is_component(b"\0asm\x0d\x00\x01\x00rest"));
        assert!(!is_component(b"\0asm\x01\x00\x00\x00core module"));
        assert!(!is_component(b"\0asm"));
        assert!(!is_component(b"#!/bin/sh\n"));
    }

    #[test]
    fn files_and_sockets_are_named_as_denied() {
        assert_eq!(
            denied_import("wasi:filesystem/types@0.2.0"),
            Some("wasi:filesystem")
        );
        assert_eq!(
            denied_import("wasi:sockets/tcp@0.2.0"),
            Some("wasi:sockets")
        );
        assert_eq!(denied_import("wasi:clocks/monotonic-clock@0.2.0"), None);
    }
}
