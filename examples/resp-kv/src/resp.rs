//! RESP on the wire: frames and inline commands in, replies out. No store
//! and no SDK here, so the fuzz target in `fuzz/` reads this file as it is.

use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::encode::encode;
use redis_protocol::resp2::types::{OwnedFrame as Frame, Resp2Frame};

/// A RESP frame, or an inline command (a line of words, as `nc` or
/// `redis-cli --pipe` send them), and the bytes it took; `None` until a
/// whole one has arrived.
pub(crate) fn decode_frame(bytes: &[u8]) -> Result<Option<(Frame, usize)>, String> {
    if bytes.first() == Some(&b'*') {
        return decode(bytes).map_err(|err| err.to_string());
    }
    let Some(end) = bytes.iter().position(|byte| *byte == b'\n') else {
        return Ok(None);
    };
    let words = bytes[..end]
        .split(|byte| byte.is_ascii_whitespace())
        .filter(|word| !word.is_empty())
        .map(|word| Frame::BulkString(word.to_vec()))
        .collect();
    Ok(Some((Frame::Array(words), end + 1)))
}

/// A reply as bytes for the wire.
pub(crate) fn encoded(frame: &Frame) -> Vec<u8> {
    let mut bytes = vec![0; frame.encode_len(false)];
    match encode(&mut bytes, frame, false) {
        Ok(length) => bytes.truncate(length),
        Err(_) => bytes = b"-ERR cannot encode the reply\r\n".to_vec(),
    }
    bytes
}

/// A command as its words.
pub(crate) fn arguments(command: Frame) -> Option<Vec<Vec<u8>>> {
    let Frame::Array(words) = command else {
        return None;
    };
    words
        .into_iter()
        .map(|word| match word {
            Frame::BulkString(bytes) | Frame::SimpleString(bytes) => Some(bytes),
            _ => None,
        })
        .collect()
}

/// Whether the command is QUIT.
pub(crate) fn is_quit(command: &Frame) -> bool {
    matches!(command, Frame::Array(words)
        if matches!(words.first(), Some(Frame::BulkString(name)) if name.eq_ignore_ascii_case(b"quit")))
}
