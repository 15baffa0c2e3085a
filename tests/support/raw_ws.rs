//! A deliberately minimal WebSocket client over a plain TcpStream, for the
//! frames a well-behaved client library refuses to send (invalid UTF-8,
//! unmasked frames) and for a client that never answers pings.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub struct RawSocket {
    stream: TcpStream,
}

/// A frame as read: opcode and payload.
#[derive(Debug)]
pub struct RawFrame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// The status code of a close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == 0x8 && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

impl RawSocket {
    /// Open `path` on `address` with the given extra request headers;
    /// returns the socket and the response head.
    pub fn handshake(address: &str, path: &str, headers: &[(&str, &str)]) -> (RawSocket, String) {
        let mut stream = TcpStream::connect(address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream
            .write_all(request.as_bytes())
            .expect("write handshake");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).expect("read handshake");
            head.push(byte[0]);
        }
        (
            RawSocket { stream },
            String::from_utf8_lossy(&head).into_owned(),
        )
    }

    /// Send one final frame; `masked` as clients must (the test may not).
    pub fn send(&mut self, opcode: u8, payload: &[u8], masked: bool) {
        let mut frame = vec![0x80 | opcode];
        let mask_bit = if masked { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => frame.push(mask_bit | n as u8),
            n if n < 65536 => {
                frame.push(mask_bit | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(mask_bit | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if masked {
            let key = [0x12, 0x34, 0x56, 0x78];
            frame.extend_from_slice(&key);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            frame.extend_from_slice(payload);
        }
        self.stream.write_all(&frame).expect("write frame");
    }

    /// Read one frame (server frames are unmasked); `None` at EOF.
    pub fn read(&mut self) -> Option<RawFrame> {
        let mut head = [0u8; 2];
        self.stream.read_exact(&mut head).ok()?;
        let opcode = head[0] & 0x0f;
        let length = match head[1] & 0x7f {
            126 => {
                let mut extended = [0u8; 2];
                self.stream.read_exact(&mut extended).ok()?;
                u64::from(u16::from_be_bytes(extended))
            }
            127 => {
                let mut extended = [0u8; 8];
                self.stream.read_exact(&mut extended).ok()?;
                u64::from_be_bytes(extended)
            }
            n => u64::from(n),
        };
        let mut payload = vec![0u8; length as usize];
        self.stream.read_exact(&mut payload).ok()?;
        Some(RawFrame { opcode, payload })
    }

    /// Read until a close frame arrives (skipping pings and data).
    pub fn read_close(&mut self) -> Option<RawFrame> {
        while let Some(frame) = self.read() {
            if frame.opcode == 0x8 {
                return Some(frame);
            }
        }
        None
    }
}
