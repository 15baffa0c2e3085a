//! A Squall app: `squall serve .` then `curl http://127.0.0.1:8080/hello/you`.

use squall_sdk::{Request, Router};

fn app() -> Router {
    Router::new()
        .get("/", |_req| async { "Hello from Squall!" })
        .get("/hello/{name}", hello)
}

async fn hello(req: Request) -> String {
    format!("Hello, {}!", req.param("name").unwrap_or("stranger"))
}

squall_sdk::export!(app);

#[cfg(test)]
mod tests {
    use super::*;
    use squall_sdk::Method;
    use squall_sdk::futures::FutureExt;

    #[test]
    fn hello_greets_by_name() {
        let response = app()
            .handle(Request::new(Method::GET, "/hello/you"))
            .now_or_never()
            .expect("answers at once");
        assert_eq!(response.body(), Some(&b"Hello, you!"[..]));
    }
}
