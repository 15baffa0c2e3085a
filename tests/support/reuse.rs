//! Shared by the reuse tests: the misbehaving guest beside the hello app,
//! and how many requests its instance has served.

use super::{Server, client, hello_wasm, misbehave_wasm};

/// The misbehaving guest as `app` with `settings`, beside the hello app.
pub fn serve(settings: &str) -> Server {
    Server::with_manifest(&format!(
        "[app.app]\nsource = {:?}\nroutes = [\"/\"]\n{settings}\n\n[app.hello]\nsource = {:?}\nroutes = [\"/hello\"]\n",
        misbehave_wasm().display().to_string(),
        hello_wasm().display().to_string(),
    ))
}

/// `GET path`: its status and body.
pub async fn get(server: &Server, path: &str) -> (u16, String) {
    let response = client()
        .get(server.url(path))
        .send()
        .await
        .expect("a response");
    (
        response.status().as_u16(),
        response.text().await.expect("a body"),
    )
}

/// Requests the instance that answers has served, this one included.
pub async fn served(server: &Server) -> String {
    let (status, body) = get(server, "/served").await;
    assert_eq!(status, 200, "{body}");
    body
}
