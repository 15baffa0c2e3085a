//! A form body under a content type: URL-encoded, or multipart with the
//! boundary the first line gives.
#![no_main]

use futures::executor::block_on;
use squall_sdk::{Method, Request};

libfuzzer_sys::fuzz_target!(|input: (&str, &[u8])| {
    let (content_type, body) = input;
    let mut request = Request::new(Method::POST, "/?a=1&a=2")
        .with_header("content-type", content_type)
        .with_body(body.to_vec());
    let _ = block_on(request.arguments());
    let mut request = Request::new(Method::POST, "/")
        .with_header("content-type", content_type)
        .with_body(body.to_vec());
    if let Ok(mut form) = request.multipart() {
        block_on(async {
            while let Ok(Some(field)) = form.next_field().await {
                let _ = (field.name().map(str::len), field.file_name().map(str::len));
                if field.text().await.is_err() {
                    break;
                }
            }
        });
    }
});
