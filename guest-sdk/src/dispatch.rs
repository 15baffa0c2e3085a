//! Events as the router answers them, whatever the backend: each backend's
//! export glue converts its own types and calls these. Reached through
//! `__private` (the `export!` macro's namespace), not part of the API.

use crate::websocket::{Connection, Message};
use crate::{Error, IntoResponse, Request, Response, Router};

/// One request through `router`.
pub async fn handle(router: &Router, request: Request) -> Response {
    router.handle(request).await
}

/// An upgrade request for connection `id`, opened on `path`: the route's
/// `on_open` accepts it with a subprotocol (or none), or refuses it with a
/// response (`404` if no WebSocket route matches `path`).
pub async fn ws_open(
    router: &Router,
    id: u64,
    path: String,
    mut request: Request,
) -> Result<Option<String>, Response> {
    let Some((handler, params)) = router.websocket_for(&path) else {
        return Err(Error::not_found().into_response());
    };
    request.set_params(params.clone());
    let connection = Connection::from_id(id, path).with_params(params);
    match handler.open(connection, request).await {
        Ok(accept) => Ok(accept.into_protocol()),
        Err(error) => Err(error.into_response()),
    }
}

/// A message from the client of connection `id`, opened on `path`.
pub async fn ws_message(router: &Router, id: u64, path: String, message: Message) {
    if let Some((handler, params)) = router.websocket_for(&path) {
        let connection = Connection::from_id(id, path).with_params(params);
        handler.message(connection, message).await;
    }
}

/// Connection `id`, opened on `path`, closed with `code` and `reason`.
pub async fn ws_close(router: &Router, id: u64, path: String, code: u16, reason: String) {
    if let Some((handler, params)) = router.websocket_for(&path) {
        let connection = Connection::from_id(id, path).with_params(params);
        handler.close(connection, code, reason).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StatusCode;
    use crate::websocket::{Accept, WebSocket};
    use futures::FutureExt;
    use std::cell::RefCell;
    use std::rc::Rc;

    #[test]
    fn an_upgrade_without_a_route_is_refused_with_404() {
        let router = Router::new().websocket("/ws", WebSocket::new());
        let request = Request::new(crate::Method::GET, "/other");
        let refused = ws_open(&router, 1, "/other".into(), request)
            .now_or_never()
            .expect("ready")
            .expect_err("no route");
        assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn a_route_without_on_open_accepts() {
        let router = Router::new().websocket("/ws", WebSocket::new());
        let request = Request::new(crate::Method::GET, "/ws");
        let accepted = ws_open(&router, 1, "/ws".into(), request).now_or_never();
        assert_eq!(accepted.expect("ready").map_err(|r| r.status()), Ok(None));
    }

    #[test]
    fn on_open_sees_the_params_and_picks_the_answer() {
        let router = Router::new().websocket(
            "/rooms/{room}",
            WebSocket::new().on_open(|ws: Connection, req: Request| async move {
                assert_eq!(ws.param("room"), req.param("room"));
                match ws.param("room") {
                    Some("closed") => Err(Error::new(StatusCode::FORBIDDEN, "closed")),
                    _ => Ok(Accept::new().protocol(format!("room.{}", ws.id()))),
                }
            }),
        );
        // The protocol accepted, or the refusal's status and body.
        let open = |path: &str| {
            let request = Request::new(crate::Method::GET, path);
            ws_open(&router, 7, path.into(), request)
                .now_or_never()
                .expect("ready")
                .map_err(|refusal| (refusal.status(), refusal.body().map(<[u8]>::to_vec)))
        };
        assert_eq!(open("/rooms/kitchen"), Ok(Some("room.7".into())));
        assert_eq!(
            open("/rooms/closed"),
            Err((StatusCode::FORBIDDEN, Some(b"closed\n".to_vec())))
        );
    }

    #[test]
    fn messages_and_closes_reach_their_route() {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let (on_message, on_close) = (seen.clone(), seen.clone());
        let router = Router::new().websocket(
            "/ws/{name}",
            WebSocket::new()
                .on_message(move |ws: Connection, message: Message| {
                    let seen = on_message.clone();
                    async move {
                        let text = message.text().unwrap_or("binary").to_owned();
                        let name = ws.param("name").unwrap_or_default();
                        seen.borrow_mut()
                            .push(format!("{} {name}: {text}", ws.id()));
                    }
                })
                .on_close(move |ws: Connection, code: u16, reason: String| {
                    let seen = on_close.clone();
                    async move {
                        seen.borrow_mut()
                            .push(format!("{} closed {code} {reason}", ws.id()));
                    }
                }),
        );
        let message = Message::Text("hi".into());
        ws_message(&router, 3, "/ws/ann".into(), message)
            .now_or_never()
            .expect("ready");
        ws_message(&router, 4, "/nowhere".into(), Message::Binary(vec![]))
            .now_or_never()
            .expect("ready");
        ws_close(&router, 3, "/ws/ann".into(), 1000, "bye".into())
            .now_or_never()
            .expect("ready");
        assert_eq!(*seen.borrow(), ["3 ann: hi", "3 closed 1000 bye"]);
    }
}
