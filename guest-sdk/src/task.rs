//! Work that goes on after the response (Cloudflare's `waitUntil`,
//! Tornado's `spawn_callback`).

use std::future::Future;

/// Run `work` beside the handler, and after it has answered: the client
/// gets its response at once, while the instance stays alive until `work`
/// is done — a log line, a fetch, a cache write after answering.
///
/// `work` runs under the request's limits: it ends with the request's
/// `timeout` and `cpu_time` if it has not finished by then, and the
/// instance counts against the app's instances and requests in flight
/// until it does. A panic in it is a trap of the request's instance.
///
/// ```no_run
/// use squall_sdk::{Request, http, spawn};
///
/// async fn signup(req: Request) -> &'static str {
///     let user = req.query_arguments().get_or("user", "anonymous").to_owned();
///     spawn(async move {
///         // The client does not wait for this.
///         let _ = http::post("https://analytics.example.com/events")
///             .body(format!("signup {user}"))
///             .send()
///             .await;
///     });
///     "welcome"
/// }
/// ```
pub fn spawn(work: impl Future<Output = ()> + 'static) {
    // Both backends are driven by wit-bindgen's async runtime, which keeps
    // the export's task alive until its spawned work is done.
    drop(wit_bindgen::spawn_local(work));
}
