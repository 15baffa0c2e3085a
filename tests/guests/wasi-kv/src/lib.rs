//! A standard WASI 0.2 `wasi:http/proxy` component that imports
//! `wasi:keyvalue` (store, atomics, batch) and `wasi:config/store`, as a
//! component written for Spin or wasmCloud does: Squall serves it on the
//! app's own store and config.

use std::io::{Read as _, Write as _};
use wasi::config::store as config;
use wasi::keyvalue::{atomics, batch, store};
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wit_bindgen::generate!({
    inline: "
        package squall:wasi-kv-test;
        world imports {
            import wasi:keyvalue/store@0.2.0-draft;
            import wasi:keyvalue/atomics@0.2.0-draft;
            import wasi:keyvalue/batch@0.2.0-draft;
            import wasi:config/store@0.2.0-rc.1;
        }
    ",
    path: ["../../../wit-standard/keyvalue", "../../../wit-standard/config"],
    generate_all,
});

wasip2::http::proxy::export!(KvComponent);

struct KvComponent;

impl wasip2::exports::http::incoming_handler::Guest for KvComponent {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let method = request.method();
        let body = read_body(request);
        let (status, text) = match answer(&method, &path, body) {
            Ok(text) => (200, text),
            Err((status, why)) => (status, why),
        };
        let response = OutgoingResponse::new(Fields::new());
        let _ = response.set_status_code(status);
        let Ok(out_body) = response.body() else {
            return;
        };
        ResponseOutparam::set(out, Ok(response));
        if let Ok(mut stream) = out_body.write() {
            let _ = stream.write_all(text.as_bytes());
            let _ = stream.flush();
        }
        let _ = OutgoingBody::finish(out_body, None);
    }
}

fn failed(err: store::Error) -> (u16, String) {
    match err {
        store::Error::NoSuchStore => (404, "no such store".into()),
        store::Error::AccessDenied => (403, "access denied".into()),
        store::Error::Other(why) => (500, why),
    }
}

fn answer(method: &Method, path: &str, body: Vec<u8>) -> Result<String, (u16, String)> {
    if let Some(name) = path.strip_prefix("/open/") {
        return store::open(name).map(|_| "opened".into()).map_err(failed);
    }
    if let Some(key) = path.strip_prefix("/config/") {
        return match config::get(key) {
            Ok(Some(value)) => Ok(value),
            Ok(None) => Err((404, "unset".into())),
            Err(err) => Err((500, format!("{err:?}"))),
        };
    }
    let bucket = store::open("default").map_err(failed)?;
    if let Some(key) = path.strip_prefix("/kv/") {
        return match method {
            Method::Put => bucket
                .set(key, &body)
                .map(|()| "stored".into())
                .map_err(failed),
            Method::Delete => bucket
                .delete(key)
                .map(|()| "deleted".into())
                .map_err(failed),
            _ => match bucket.get(key).map_err(failed)? {
                Some(value) => Ok(String::from_utf8_lossy(&value).into_owned()),
                None => Err((404, "absent".into())),
            },
        };
    }
    if let Some(key) = path.strip_prefix("/incr/") {
        return atomics::increment(&bucket, key, 1)
            .map(|value| value.to_string())
            .map_err(failed);
    }
    if let Some(count) = path.strip_prefix("/fill/") {
        let count: usize = count.parse().map_err(|_| (400, "a count".to_owned()))?;
        let entries: Vec<(String, Vec<u8>)> = (0..count)
            .map(|n| (format!("item:{n:05}"), b"x".to_vec()))
            .collect();
        for chunk in entries.chunks(1000) {
            batch::set_many(&bucket, chunk).map_err(failed)?;
        }
        return Ok(count.to_string());
    }
    if path == "/count" {
        let (mut count, mut pages, mut cursor) = (0, 0, None);
        loop {
            let response = bucket.list_keys(cursor).map_err(failed)?;
            count += response.keys.len();
            pages += 1;
            match response.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(format!("{count} keys in {pages} pages")),
            }
        }
    }
    if path == "/many" {
        let keys = vec!["item:00000".to_owned(), "missing".to_owned()];
        let found = batch::get_many(&bucket, &keys).map_err(failed)?;
        return Ok(format!(
            "{:?}",
            found.iter().map(Option::is_some).collect::<Vec<_>>()
        ));
    }
    Err((404, "not found".into()))
}

fn read_body(request: IncomingRequest) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Ok(body) = request.consume()
        && let Ok(mut stream) = body.stream()
    {
        let _ = stream.read_to_end(&mut bytes);
    }
    bytes
}
