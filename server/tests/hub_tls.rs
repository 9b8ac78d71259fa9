//! Records in transit: a hub serving TLS itself (`--tls-cert`, `--tls-key`), a certificate
//! renewed while it serves, and the refusals that keep records off a network in clear (a hub
//! listening beyond loopback without TLS, `vigie sync` to an http:// hub elsewhere).

use crate::common;
use common::*;
use std::path::{Path, PathBuf};
use tempfile::TempDir;
use vigie_core::sync::{SyncOptions, SyncSummary};
use vigie_core::*;
use vigie_server::auth::Token;
use vigie_server::client::HubClient;

/// The test certificates (`tests/fixtures/tls/README.md`).
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

/// A hub serving the certificate and key at these paths.
fn tls_hub(data: &Path, certificate: &Path, key: &Path) -> Hub {
    let mut hub = Hub::new(data, None, true);
    hub.extra_args.extend([
        "--tls-cert".into(),
        certificate.to_str().unwrap().into(),
        "--tls-key".into(),
        key.to_str().unwrap().into(),
    ]);
    hub.restart();
    hub
}

/// `device` syncs with the hub at `url`, trusting only the authority `ca`.
fn sync_trusting(device: &mut Device, url: &str, ca: &str) -> Result<SyncSummary> {
    HubClient::new(url, &device.token)
        .trusting(&std::fs::read(fixture(ca)).unwrap())
        .unwrap()
        .sync(&mut device.store, &SyncOptions::default(), |_| {})
}

/// A hub given its certificate speaks TLS only: a device trusting the hub's authority syncs, a
/// client trusting another refuses the hub, and a request in clear gets nothing (no answer, no
/// record). The console's cookies are Secure, and `vigie sync --ca` syncs a store.
#[test]
fn a_hub_with_its_certificate_serves_over_tls_only() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut monitor = Device::enrol(dir.path(), &data, "mon", Role::CommunityMonitor, &[C01], 1);
    let mut hub = tls_hub(&data, &fixture("hub.pem"), &fixture("hub.key"));
    assert!(hub.url.starts_with("https://127.0.0.1:"), "{}", hub.url);
    let case = monitor
        .store
        .create(&child(area(C01), "Aya Bamba-Koffi", monitor.user()))
        .unwrap()
        .id;
    let summary = sync_trusting(&mut monitor, &hub.url, "ca.pem").unwrap();
    assert_eq!(summary.accepted, 1, "{summary:?}");

    let distrusted = sync_trusting(&mut monitor, &hub.url, "other-ca.pem");
    match distrusted {
        Err(Error::Transport { reason }) => assert!(
            reason.contains("certificate was refused") && reason.contains("--ca"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    // Without the authority, the public ones do not vouch for a test hub either.
    assert!(monitor.sync(&hub.url).is_err());
    let in_clear = hub.url.replacen("https://", "http://", 1);
    assert!(monitor.sync(&in_clear).is_err());
    let raw = raw_request(&hub.addr(), "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(!raw.contains("HTTP/1.1 200"), "{raw:?}");

    let store = dir.path().join("cli.db");
    let second = Token::parse(&enrol(&data, monitor.user())).unwrap();
    let out = vigie_output(&[
        "sync",
        "--hub",
        &hub.url,
        "--store",
        store.to_str().unwrap(),
        "--token",
        &second.to_text(),
        "--ca",
        fixture("ca.pem").to_str().unwrap(),
        "--key-hex",
        &"07".repeat(32),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let opened = Store::open(
        StoreConfig::new(&store, Encryption::Key([7; 32]), second.user).device(second.device),
    )
    .unwrap();
    assert!(opened.kind_of(case).is_ok());
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// What a plain TCP client reads back after sending `request` to `addr` (within 3 s).
fn raw_request(addr: &str, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .unwrap();
    let _ = stream.write_all(request.as_bytes());
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).to_string()
}

/// A certificate renewed in place (an ACME client's, every few weeks) is served from the next
/// connection, without a restart; files caught half-written keep the certificate that loaded.
#[test]
fn a_renewed_certificate_is_served_without_a_restart() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut monitor = Device::enrol(dir.path(), &data, "mon", Role::CommunityMonitor, &[C01], 1);
    let (certificate, key) = (dir.path().join("hub.pem"), dir.path().join("hub.key"));
    std::fs::copy(fixture("hub.pem"), &certificate).unwrap();
    std::fs::copy(fixture("hub.key"), &key).unwrap();
    let mut hub = tls_hub(&data, &certificate, &key);
    sync_trusting(&mut monitor, &hub.url, "ca.pem").unwrap();

    // Half a renewal: the new certificate beside the old key.
    std::fs::copy(fixture("other-hub.pem"), &certificate).unwrap();
    sync_trusting(&mut monitor, &hub.url, "ca.pem").unwrap();
    std::fs::copy(fixture("other-hub.key"), &key).unwrap();
    sync_trusting(&mut monitor, &hub.url, "other-ca.pem").unwrap();
    assert!(sync_trusting(&mut monitor, &hub.url, "ca.pem").is_err());
    hub.stop();
    let log = hub.log_tail(200);
    assert!(log.contains("do not load"), "{log}");
    assert!(log.contains("the new certificate is served"), "{log}");
}

/// Files the hub cannot use stop it at start, naming the file; nothing of a hub is made.
#[test]
fn certificate_files_the_hub_cannot_use_are_refused_at_start() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let missing = dir.path().join("missing.pem");
    for (certificate, key, said) in [
        (missing.clone(), fixture("hub.key"), "missing.pem"),
        (garbage.clone(), fixture("hub.key"), "no PEM certificate"),
        (fixture("hub.pem"), fixture("other-hub.key"), "do not make"),
    ] {
        let out = vigie_output(&[
            "serve",
            "--data",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            certificate.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ]);
        assert!(!out.status.success());
        let told = stderr(&out);
        assert!(told.contains(said), "{told}");
        assert!(!told.contains("BEGIN"), "{told}");
        assert!(!data.exists());
    }
}

/// A hub asked to listen beyond loopback with neither TLS nor a proxy in front is refused
/// before anything is made; `vigie sync` refuses an http:// hub elsewhere before making a
/// store. Each names the way out.
#[test]
fn records_are_not_carried_in_clear_beyond_loopback() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let out = vigie_output(&[
        "serve",
        "--data",
        data.to_str().unwrap(),
        "--listen",
        "0.0.0.0:0",
    ]);
    assert!(!out.status.success());
    let told = stderr(&out);
    assert!(
        told.contains("in clear") && told.contains("--tls-cert"),
        "{told}"
    );
    assert!(!data.exists());

    let mut monitor = Device::enrol(dir.path(), &data, "mon", Role::CommunityMonitor, &[C01], 1);
    let store = dir.path().join("cli.db");
    for hub in [
        "http://192.0.2.10:8470",
        "http://vigie.example.org",
        "HTTP://192.0.2.10:8470",
        "Http://vigie.example.org",
        "http://127.0.0.1.example.org",
    ] {
        let out = vigie_output(&[
            "sync",
            "--hub",
            hub,
            "--store",
            store.to_str().unwrap(),
            "--token",
            &monitor.token_text,
        ]);
        assert!(!out.status.success());
        let told = stderr(&out);
        assert!(
            told.contains("https://") && told.contains("in clear"),
            "{told}"
        );
        assert!(!store.exists());
    }
    // Read as the HTTP client reads it: the host after any userinfo.
    assert!(vigie_server::client::in_clear("http://127.0.0.1@192.0.2.10").is_some());
    // The machine's own hub (or a TLS proxy's back end) is reached over http:// as before.
    let mut hub = Hub::start(&data);
    for local in [
        hub.url.clone(),
        hub.url.replacen("127.0.0.1", "localhost", 1),
        hub.url.replacen("http://", "HTTP://", 1),
        "http://[::1]:8470".to_string(),
    ] {
        assert!(vigie_server::client::in_clear(&local).is_none(), "{local}");
    }
    monitor.sync(&hub.url).unwrap();
    hub.stop();
}

/// A self-signed certificate made as `openssl req -x509` makes it by default is a certificate
/// authority's, which TLS clients refuse as a server's even when told to trust it: the device
/// is told so, and how to make one, not only to pass the authority it passed.
#[test]
fn a_self_signed_authoritys_certificate_is_named_as_such() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut monitor = Device::enrol(dir.path(), &data, "mon", Role::CommunityMonitor, &[C01], 1);
    let hub = tls_hub(
        &data,
        &fixture("self-signed-ca.pem"),
        &fixture("self-signed-ca.key"),
    );
    match sync_trusting(&mut monitor, &hub.url, "self-signed-ca.pem") {
        Err(Error::Transport { reason }) => assert!(
            reason.contains("a certificate authority's") && reason.contains("CA:FALSE"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
}
