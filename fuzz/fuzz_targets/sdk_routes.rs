//! Route patterns in the SDK's router, and a request's path against them
//! (the first line holds the patterns, `|`-separated; the second the path).
#![no_main]

use futures::executor::block_on;
use squall_sdk::{Method, Request, Router};

libfuzzer_sys::fuzz_target!(|text: &str| {
    let (patterns, path) = text.split_once('\n').unwrap_or((text, "/"));
    let mut router = Router::new();
    for pattern in patterns.split('|') {
        router = router.get(pattern, |req: Request| async move {
            format!("{:?}", req.param("id"))
        });
    }
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let _ = block_on(router.handle(Request::new(Method::GET, &path)));
});
