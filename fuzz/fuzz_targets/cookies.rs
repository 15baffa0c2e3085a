//! A `Cookie` header, and its values as signed cookies.
#![no_main]

use squall_sdk::cookie::Signer;
use squall_sdk::{Method, Request};
use std::time::Duration;

libfuzzer_sys::fuzz_target!(|header: &str| {
    let request = Request::new(Method::GET, "/").with_header("cookie", header);
    let signer = Signer::new(1, "a secret of sixteen bytes or more");
    for name in ["user", "_xsrf", "", "a=b"] {
        if let Some(value) = request.cookie(name) {
            let _ = signer.verify(name, value, Duration::from_secs(3600));
        }
    }
    let _ = signer.verify("user", header, Duration::from_secs(3600));
});
