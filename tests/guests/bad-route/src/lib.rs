//! An app with a malformed route pattern: the host must refuse to load it,
//! naming the pattern, instead of failing on its first request.

use squall_sdk::Router;

fn app() -> Router {
    Router::new()
        .get("/", |_req| async { "fine" })
        .get("/items/{id", |_req| async { "never" })
}

squall_sdk::export!(app);
