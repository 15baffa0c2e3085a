//! A Squall app with a WebSocket: `squall serve .`, then connect to
//! ws://127.0.0.1:8080/echo (e.g. `websocat`) and type.

use squall_sdk::websocket::{Connection, Message, WebSocket};
use squall_sdk::{Request, Router};

fn app() -> Router {
    Router::new()
        .get("/", |_req: Request| async { "Connect a WebSocket to /echo" })
        // Declared here only: the host learns the route when it loads the app.
        .websocket("/echo", WebSocket::new().on_message(echo))
}

/// Send each message back.
async fn echo(ws: Connection, message: Message) {
    let _ = ws.send(message);
}

squall_sdk::export!(app);

#[cfg(test)]
mod tests {
    use super::*;
    use squall_sdk::Method;
    use squall_sdk::futures::FutureExt;

    #[test]
    fn the_page_says_where_to_connect() {
        let response = app()
            .handle(Request::new(Method::GET, "/"))
            .now_or_never()
            .expect("answers at once");
        assert_eq!(response.body(), Some(&b"Connect a WebSocket to /echo"[..]));
    }
}
