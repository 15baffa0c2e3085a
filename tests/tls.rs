//! HTTPS: certificates chosen by SNI, HTTP/2 agreed by ALPN, plain HTTP
//! redirected, certificates reloaded under `--watch`. Real TLS clients
//! (reqwest on rustls) trusting only the certificate they expect.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use support::{Server, hello_wasm};

/// A self-signed certificate for `name`, written as `name.pem` and
/// `name.key` in `dir`; its PEM.
fn certificate(dir: &Path, name: &str) -> String {
    let made = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
    let pem = made.cert.pem();
    // The key first: a watcher that sees the certificate sees a key that fits.
    let key = dir.join(format!("{name}.key"));
    std::fs::write(
        key.with_extension("key.new"),
        made.signing_key.serialize_pem(),
    )
    .unwrap();
    std::fs::rename(key.with_extension("key.new"), &key).unwrap();
    let cert = dir.join(format!("{name}.pem"));
    std::fs::write(cert.with_extension("pem.new"), &pem).unwrap();
    std::fs::rename(cert.with_extension("pem.new"), &cert).unwrap();
    pem
}

fn manifest(dir: &Path, names: &[&str]) -> std::path::PathBuf {
    let mut text =
        String::from("[server]\nhttps_listen = \"127.0.0.1:0\"\nhttps_redirect = true\n");
    for name in names {
        text.push_str(&format!(
            "\n[[server.certificates]]\nhosts = [\"{name}\"]\ncert = \"{name}.pem\"\nkey = \"{name}.key\"\n"
        ));
    }
    text.push_str(&format!(
        "\n[app.hello]\nsource = {:?}\n",
        hello_wasm().display().to_string()
    ));
    let path = dir.join("squall.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The HTTPS address, from what the server printed.
fn https_address(server: &Server) -> SocketAddr {
    let line = server
        .banner
        .lines()
        .find_map(|line| line.strip_prefix("squall: https on https://"))
        .unwrap_or_else(|| panic!("no https line in {}", server.banner));
    line.split('/').next().unwrap().parse().unwrap()
}

/// A client that trusts only `pem`, and finds `name` at `address`.
fn client_trusting(pem: &str, name: &str, address: SocketAddr, http1: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .resolve(name, address)
        .timeout(Duration::from_secs(10));
    if http1 {
        builder = builder.http1_only();
    }
    builder.build().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_name_gets_its_certificate_http2_by_alpn_and_plain_http_is_redirected() {
    let dir = tempfile::tempdir().unwrap();
    let a = certificate(dir.path(), "a.test");
    let b = certificate(dir.path(), "b.test");
    let manifest = manifest(dir.path(), &["a.test", "b.test"]);
    let data = dir.path().join("data");
    let server = Server::with_manifest_file(
        &manifest,
        &["--watch", "--data-dir", data.to_str().unwrap()],
    );
    let address = https_address(&server);
    let port = address.port();

    // Each client trusts one certificate only: it connects only if the
    // server chose that name's certificate.
    for (name, pem) in [("a.test", &a), ("b.test", &b)] {
        let url = format!("https://{name}:{port}/hello/you");
        let h2 = client_trusting(pem, name, address, false)
            .get(&url)
            .send()
            .await
            .unwrap();
        assert_eq!(h2.version(), reqwest::Version::HTTP_2, "ALPN picks h2");
        assert_eq!(h2.text().await.unwrap(), "Hello, you!");
        let h1 = client_trusting(pem, name, address, true)
            .get(&url)
            .send()
            .await
            .unwrap();
        assert_eq!(h1.version(), reqwest::Version::HTTP_11);
        assert_eq!(h1.text().await.unwrap(), "Hello, you!");
    }
    let wrong = client_trusting(&a, "b.test", address, false)
        .get(format!("https://b.test:{port}/"))
        .send()
        .await;
    assert!(wrong.is_err(), "b.test is not served a.test's certificate");

    // Plain HTTP answers with a redirect to the same place over HTTPS.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirected = plain
        .get(server.url("/hello/you?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(redirected.status(), 308);
    assert_eq!(
        redirected.headers()["location"],
        format!("https://127.0.0.1:{port}/hello/you?x=1").as_str()
    );

    // A new certificate for a.test is served to the connections that follow.
    let renewed = certificate(dir.path(), "a.test");
    let url = format!("https://a.test:{port}/hello/you");
    let started = Instant::now();
    loop {
        let fresh = client_trusting(&renewed, "a.test", address, false);
        if let Ok(response) = fresh.get(&url).send().await {
            assert_eq!(response.text().await.unwrap(), "Hello, you!");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never renewed:\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.logged("TLS certificates reloaded").await;
    let stale = client_trusting(&a, "a.test", address, false)
        .get(&url)
        .send()
        .await;
    assert!(stale.is_err(), "the old certificate is no longer served");
}

#[test]
fn a_key_that_does_not_fit_its_certificate_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    certificate(dir.path(), "a.test");
    certificate(dir.path(), "b.test");
    let manifest = manifest(dir.path(), &["a.test"]);
    std::fs::copy(dir.path().join("b.test.key"), dir.path().join("a.test.key")).unwrap();
    let stderr = support::refused_start(&manifest);
    assert!(stderr.contains("does not fit the certificate"), "{stderr}");
}
