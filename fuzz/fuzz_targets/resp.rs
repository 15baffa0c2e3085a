//! What a client sends `examples/resp-kv`: RESP frames or inline commands,
//! decoded into a command's words as the example does (its `resp.rs`).
#![no_main]

#[path = "../../examples/resp-kv/src/resp.rs"]
#[allow(dead_code)]
mod resp;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let mut rest = bytes;
    while let Ok(Some((frame, used))) = resp::decode_frame(rest) {
        let quit = resp::is_quit(&frame);
        if let Some(words) = resp::arguments(frame.clone()) {
            let _ = resp::encoded(&redis_protocol::resp2::types::OwnedFrame::Array(
                words
                    .into_iter()
                    .map(redis_protocol::resp2::types::OwnedFrame::BulkString)
                    .collect(),
            ));
        }
        if quit || used == 0 || used > rest.len() {
            break;
        }
        rest = &rest[used..];
    }
});
