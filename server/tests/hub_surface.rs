//! The hub's HTTP face against what comes before and around authentication (issue 11, attack
//! 10): requests refused from their headers without their body being read, headers and
//! bodies that never finish, one device's requests at once, stalled unauthenticated uploads
//! and a flood of connections — while honest devices keep syncing and the hub's memory stays
//! bounded. Against the real `vigie` binary, on the backend `VIGIE_TEST_BACKEND` names.

use crate::common;

use common::surface::{HubOptions, Stalled};
use common::*;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use uuid::Uuid;
use vigie_core::*;

/// A supervisor and a monitor with a record each, synced once.
fn two_devices(dir: &TempDir, data: &std::path::Path) -> (Device, Device) {
    let supervisor = Device::enrol(
        dir.path(),
        data,
        "supervisor",
        Role::Supervisor,
        &[REGION],
        1,
    );
    let monitor = Device::enrol(
        dir.path(),
        data,
        "monitor",
        Role::CommunityMonitor,
        &[C01],
        2,
    );
    (supervisor, monitor)
}

/// Records a case on the device and syncs it; returns the case's id.
fn record_and_sync(device: &mut Device, url: &str, n: u32) -> Uuid {
    let user = device.user();
    let case = device
        .store
        .create(&child(area(C01), &format!("Enfant {n}"), user))
        .unwrap();
    let summary = device.sync(url).unwrap();
    assert_eq!(summary.pending, 0, "{summary:?}");
    case.id
}

const PROMPTLY: Duration = Duration::from_secs(5);

#[test]
fn credentials_and_length_are_checked_before_the_body_is_read() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let (mut supervisor, monitor) = two_devices(&dir, &data);
    let hub = Hub::start(&data);
    let addr = hub.addr();
    let bearer = |d: &Device| format!("Bearer {}", d.token_text);
    // Each request declares a body of 4 MiB and sends none of it: the hub must answer from
    // the headers alone.
    let forged = {
        let token = &monitor.token;
        format!(
            "Bearer vgd1.{}.{}.{}",
            token.device.simple(),
            token.user.simple(),
            "a".repeat(64)
        )
    };
    for (authorization, status) in [
        (None, 401),
        (Some("Bearer nonsense".to_string()), 401),
        (Some(format!("Bearer vgd1.{}.x.y", Uuid::new_v4())), 401),
        (Some(forged), 401),
    ] {
        let started = Instant::now();
        let mut stalled = Stalled::open(
            &addr,
            &Stalled::head(&addr, authorization.as_deref(), 4 << 20),
        )
        .expect("connect");
        let (got, body) = stalled.answer(PROMPTLY).unwrap();
        assert_eq!(got, status, "{authorization:?}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(json["error"].is_string(), "{body}");
        assert!(started.elapsed() < PROMPTLY);
    }
    // A body over the limit, declared: 413 without a byte read, from a valid device.
    let mut stalled = Stalled::open(
        &addr,
        &Stalled::head(&addr, Some(&bearer(&supervisor)), 9 << 20),
    )
    .unwrap();
    let (status, body) = stalled.answer(PROMPTLY).unwrap();
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("request bytes"), "{body}");
    // A revoked device: 403 and told to wipe, before its body.
    assert!(revoke(&data, monitor.token.device));
    let mut stalled = Stalled::open(
        &addr,
        &Stalled::head(&addr, Some(&bearer(&monitor)), 4 << 20),
    )
    .unwrap();
    let (status, body) = stalled.answer(PROMPTLY).unwrap();
    assert_eq!(status, 403, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["wipe"], true, "{body}");
    // The supervisor syncs as before.
    record_and_sync(&mut supervisor, &hub.url, 1);
    assert!(hub.log_errors().is_empty(), "{:#?}", hub.log_errors());
}

/// An app calling the API with the wrong method, or an endpoint this hub lacks (a newer app,
/// a typo), gets the API's JSON error and, for a method, the one to use; the console's paths
/// keep their own answers.
#[test]
fn a_wrong_method_or_path_gets_the_apis_json_error() {
    let dir = TempDir::new().unwrap();
    let hub = Hub::start_without_areas(&dir.path().join("hub"));
    let client = agent();
    for (method, path, status, allow) in [
        ("GET", "/v1/sync", 405, Some("POST")),
        ("PUT", "/v1/sync", 405, Some("POST")),
        ("GET", "/v1/attachments", 405, Some("POST")),
        ("POST", "/v1/health", 405, Some("GET")),
        ("GET", "/v1/records", 404, None),
        ("POST", "/v1/sync/", 404, None),
        ("GET", "/v1", 404, None),
    ] {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", hub.url))
            .body(())
            .unwrap();
        let mut response = client.run(request).unwrap();
        let what = format!("{method} {path}");
        assert_eq!(response.status().as_u16(), status, "{what}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
        };
        assert_eq!(header("allow").as_deref(), allow, "{what}");
        assert_eq!(
            header("content-type").as_deref(),
            Some("application/json"),
            "{what}"
        );
        let body = response.body_mut().read_to_string().unwrap();
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(json["error"].is_string(), "{what}: {body}");
    }
    // The endpoints themselves still answer, and the console's unknown pages are not the API's.
    assert_eq!(health(&hub.url).unwrap(), "ok");
    let response = client
        .get(format!("{}/console/nowhere", hub.url))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    assert_ne!(
        response.headers().get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
    assert!(
        response.headers().contains_key("content-security-policy"),
        "the console's headers on its 404"
    );
    assert!(hub.log_errors().is_empty(), "{:#?}", hub.log_errors());
}

#[test]
fn headers_and_bodies_that_never_finish_are_cut() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let (mut supervisor, _) = two_devices(&dir, &data);
    let hub = Hub::start_with_options(
        &data,
        HubOptions::args(&["--header-timeout-ms", "700", "--body-timeout-ms", "700"]),
    );
    let addr = hub.addr();
    // Headers that stop half-way: the connection is closed.
    let started = Instant::now();
    let mut half = Stalled::open(
        &addr,
        format!("POST /v1/sync HTTP/1.1\r\nHost: {addr}\r\nContent-Le").as_bytes(),
    )
    .unwrap();
    assert!(half.closed_within(Duration::from_secs(10)));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(5),
        "cut after {waited:?}"
    );
    // A connection that never sends anything either.
    let mut silent = Stalled::open(&addr, b"").unwrap();
    assert!(silent.closed_within(Duration::from_secs(10)));
    // A valid device's body that stops: 408.
    let mut head = Stalled::head(
        &addr,
        Some(&format!("Bearer {}", supervisor.token_text)),
        100_000,
    );
    head.extend_from_slice(&[0x5a; 1000]);
    let started = Instant::now();
    let mut stalled = Stalled::open(&addr, &head).unwrap();
    let (status, body) = stalled.answer(Duration::from_secs(10)).unwrap();
    assert_eq!(status, 408, "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Bytes sent at once earn no silence afterwards: a body that sent 60 KiB and stopped is
    // cut as soon as one that sent nothing (a minute of earned time kept its share held).
    let mut head = Stalled::head(
        &addr,
        Some(&format!("Bearer {}", supervisor.token_text)),
        1_000_000,
    );
    head.extend_from_slice(&[0x5a; 60 * 1024]);
    let started = Instant::now();
    let mut stalled = Stalled::open(&addr, &head).unwrap();
    let (status, body) = stalled.answer(Duration::from_secs(10)).unwrap();
    assert_eq!(status, 408, "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // A console form, which needs no token, is cut the same way: slow forms cannot hold the
    // connections that devices need. And a form is small: more is refused before it is read.
    let form = format!(
        "POST /console/signin HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000000\r\n\r\nlogin=a"
    );
    let mut large = Stalled::open(&addr, form.as_bytes()).unwrap();
    let (status, body) = large.answer(PROMPTLY).unwrap();
    assert_eq!(status, 413, "{body}");
    let form = format!(
        "POST /console/signin HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nlogin=a"
    );
    let started = Instant::now();
    let mut stalled = Stalled::open(&addr, form.as_bytes()).unwrap();
    let (status, body) = stalled.answer(Duration::from_secs(10)).unwrap();
    assert_eq!(status, 408, "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // A body that keeps arriving goes through, past the first timeout: each KiB received
    // earns it a second more (here 8 KiB at 4 KiB/s: 2 s in all, past the 0.7 s timeout).
    // Its bytes are no sync request: the hub read it all and says so (400, not 408).
    let body = vec![0x42u8; 8 * 1024];
    let mut slow = Stalled::open(
        &addr,
        &Stalled::head(
            &addr,
            Some(&format!("Bearer {}", supervisor.token_text)),
            body.len(),
        ),
    )
    .unwrap();
    let started = Instant::now();
    for chunk in body.chunks(1024) {
        std::thread::sleep(Duration::from_millis(250));
        use std::io::Write;
        slow.stream.write_all(chunk).unwrap();
    }
    let (status, answer) = slow.answer(Duration::from_secs(10)).unwrap();
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("malformed request"), "{answer}");
    assert!(started.elapsed() > Duration::from_millis(1500));
    record_and_sync(&mut supervisor, &hub.url, 2);
}

#[test]
fn one_device_gets_429_past_its_requests_at_once_and_others_are_served() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let (mut supervisor, mut monitor) = two_devices(&dir, &data);
    let hub = Hub::start_with_options(&data, HubOptions::args(&["--max-requests-per-device", "2"]));
    let addr = hub.addr();
    let bearer = format!("Bearer {}", monitor.token_text);
    // Two requests of the monitor in progress (their bodies still coming).
    let mut held: Vec<Stalled> = (0..2)
        .map(|_| {
            let mut head = Stalled::head(&addr, Some(&bearer), 10_000);
            head.extend_from_slice(&[1; 100]);
            Stalled::open(&addr, &head).unwrap()
        })
        .collect();
    // Give the hub the time to authenticate them.
    std::thread::sleep(Duration::from_millis(500));
    let err = monitor.sync(&hub.url).unwrap_err().to_string();
    assert!(err.contains("429"), "{err}");
    assert!(err.contains("too many requests"), "{err}");
    let mut third = Stalled::open(&addr, &Stalled::head(&addr, Some(&bearer), 10)).unwrap();
    let (status, body) = third.answer(PROMPTLY).unwrap();
    assert_eq!(status, 429, "{body}");
    // Another device is served meanwhile.
    record_and_sync(&mut supervisor, &hub.url, 3);
    // Once the held requests end, the monitor syncs again.
    held.clear();
    assert!(wait_until(Duration::from_secs(10), || monitor
        .sync(&hub.url)
        .is_ok()));
    record_and_sync(&mut monitor, &hub.url, 4);
}

#[test]
fn a_device_revoked_while_its_body_arrives_is_answered_as_revoked() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let (_, monitor) = two_devices(&dir, &data);
    let hub = Hub::start(&data);
    let addr = hub.addr();
    let body = vec![0x42u8; 4 * 1024];
    let mut slow = Stalled::open(
        &addr,
        &Stalled::head(
            &addr,
            Some(&format!("Bearer {}", monitor.token_text)),
            body.len(),
        ),
    )
    .unwrap();
    use std::io::Write;
    slow.stream.write_all(&body[..1024]).unwrap();
    // Authenticated from its headers; revoked before the rest arrives.
    std::thread::sleep(Duration::from_millis(300));
    assert!(common::revoke(&data, monitor.token.device));
    std::thread::sleep(Duration::from_millis(1200));
    slow.stream.write_all(&body[1024..]).unwrap();
    let (status, answer) = slow.answer(Duration::from_secs(10)).unwrap();
    assert_eq!(status, 403, "{answer}");
    assert!(answer.contains("\"wipe\":true"), "{answer}");
}

#[test]
fn bodies_declared_large_and_sent_slowly_do_not_hold_the_others_back() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let (mut supervisor, _) = two_devices(&dir, &data);
    let hub = Hub::start(&data);
    let addr = hub.addr();
    // Four devices, each with its two requests declaring 8 MiB (together the 64 MiB that
    // bodies may hold at once) and trickling: a hub that counted declared lengths made every
    // other device wait 30 s, then answered 503.
    let _held: Vec<Stalled> = (0..4u8)
        .flat_map(|i| {
            let slow = Device::enrol(
                dir.path(),
                &data,
                &format!("slow-{i}"),
                Role::CommunityMonitor,
                &[C01],
                10 + i,
            );
            let bearer = format!("Bearer {}", slow.token_text);
            (0..2)
                .map(|_| {
                    let mut head = Stalled::head(&addr, Some(&bearer), 8 * 1024 * 1024);
                    head.extend_from_slice(&[1; 1000]);
                    Stalled::open(&addr, &head).unwrap()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    record_and_sync(&mut supervisor, &hub.url, 7);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "waited {:?}",
        started.elapsed()
    );
}

/// A phone on the poorest uplink (512 bytes a second, 4 kbit/s) keeps sending: its body is
/// read to the end, not cut as too slow (at one second per KiB, a phone below 8 kbit/s never
/// moved a photo). The first bytes' allowance shortened to 2 s to keep the test short.
#[test]
fn a_body_sent_at_a_poor_gprs_rate_is_read_to_its_end() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let (_, monitor) = two_devices(&dir, &data);
    let hub = Hub::start_with_options(&data, HubOptions::args(&["--body-timeout-ms", "2000"]));
    let bearer = format!("Bearer {}", monitor.token_text);
    let length = 3 * 1024;
    let mut slow = Stalled::open(
        &hub.addr(),
        &Stalled::head(&hub.addr(), Some(&bearer), length),
    )
    .unwrap();
    for _ in 0..length / 256 {
        std::thread::sleep(Duration::from_millis(500));
        std::io::Write::write_all(&mut slow.stream, &[7; 256]).unwrap();
    }
    let (status, answer) = slow.answer(Duration::from_secs(10)).unwrap();
    assert!(
        status != 408 && !answer.contains("too slowly"),
        "{status}: {answer}"
    );
}

#[test]
fn a_service_managers_sigterm_stops_the_hub_and_leaves_no_temporary_file() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let (mut supervisor, _) = two_devices(&dir, &data);
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let mut hub = Hub::start_with_options(
        &data,
        HubOptions {
            env: vec![("TMPDIR".into(), tmp.to_str().unwrap().into())],
            ..HubOptions::default()
        },
    );
    record_and_sync(&mut supervisor, &hub.url, 8);
    // The console's view of the records (a temporary copy on PostgreSQL) is made.
    let page = common::console::Browser::new(&hub.url).get("/console/signin");
    assert_eq!(page.status, 200);
    // systemd, Docker and `kill` stop a service with SIGTERM: a graceful stop, as Ctrl-C.
    assert!(
        hub.stop_with(libc::SIGTERM),
        "the hub did not stop by itself"
    );
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn console_forms_holding_every_connection_give_way_to_a_device() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let (mut supervisor, _) = two_devices(&dir, &data);
    let hub = Hub::start_with_options(&data, HubOptions::args(&["--max-connections", "20"]));
    let addr = hub.addr();
    // Every connection in a console form that trickles (no token needed): a hub that never
    // closed a connection in a request answered devices 503 until the forms ended.
    let form = format!(
        "POST /console/signin HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nlogin=a"
    );
    let _held: Vec<Stalled> = (0..20)
        .map(|_| Stalled::open(&addr, form.as_bytes()).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    record_and_sync(&mut supervisor, &hub.url, 9);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn slow_console_uploads_and_forms_from_no_one_hold_no_form_back() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let hub = Hub::start(&data);
    let addr = hub.addr();
    // Four uploads of the reference data's 4 MiB, trickling, from no one signed in: they held
    // every console form's share, and sign-in answered 400 after 30 s, for an hour.
    let upload = format!(
        "POST /console/reference HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {}\r\n\r\n--x",
        4 * 1024 * 1024 - 64
    );
    let mut held: Vec<Stalled> = (0..6)
        .map(|_| {
            let mut bytes = upload.clone().into_bytes();
            bytes.extend_from_slice(&[b'a'; 1000]);
            Stalled::open(&addr, &bytes).unwrap()
        })
        .collect();
    // Not read: answered as any request without a session is, at once.
    for stalled in &mut held {
        let (status, _) = stalled.answer(Duration::from_secs(5)).unwrap();
        assert!(status < 400, "{status}");
    }
    // Nor do forms of 64 KiB from no one (300 of them, trickling, filled the forms' share):
    // a form without a session is a few KiB at most.
    let form = format!(
        "POST /console/signin HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 65536\r\n\r\nlogin="
    );
    let mut forms: Vec<Stalled> = (0..20)
        .map(|_| Stalled::open(&addr, form.as_bytes()).unwrap())
        .collect();
    for stalled in &mut forms {
        let (status, _) = stalled.answer(Duration::from_secs(5)).unwrap();
        assert_eq!(status, 413);
    }
    let started = Instant::now();
    let mut browser = common::console::Browser::new(&hub.url);
    let page = browser.sign_in("nobody", "not a password");
    assert!(
        page.status != 400 && page.status != 503,
        "{}: {}",
        page.status,
        page.body
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn stalled_uploads_and_a_connection_flood_leave_the_hub_bounded_and_serving() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let (mut supervisor, mut monitor) = two_devices(&dir, &data);
    let hub = Hub::start_with_options(
        &data,
        HubOptions::args(&["--max-connections", "300", "--header-timeout-ms", "3000"]),
    );
    let addr = hub.addr();
    record_and_sync(&mut supervisor, &hub.url, 5);
    record_and_sync(&mut monitor, &hub.url, 6);
    let (rss_before, _) = hub.memory_mib();
    let files_before = hub.open_files();
    let connections_before = hub.client_connections();
    let started = Instant::now();

    // 100 unauthenticated uploads declaring 8 MiB, each with 1 MiB sent (when the hub reads
    // it), then stalled: each is answered 401 from its headers and nothing of it is kept (a hub
    // that read bodies first held 100 MiB).
    let mut uploads = Vec::new();
    for i in 0..100 {
        let authorization = match i % 3 {
            0 => None,
            1 => Some("Bearer vgd1.not.a.token".to_string()),
            _ => Some(format!(
                "Bearer vgd1.{}.{}.{}",
                Uuid::new_v4().simple(),
                Uuid::new_v4().simple(),
                "b".repeat(64)
            )),
        };
        let mut bytes = Stalled::head(&addr, authorization.as_deref(), 8 << 20);
        bytes.extend_from_slice(&vec![0x77; 1 << 20]);
        if let Some(s) = Stalled::open(&addr, &bytes) {
            uploads.push(s);
        }
    }
    for upload in &mut uploads {
        if let Ok((status, _)) = upload.answer(Duration::from_secs(10)) {
            assert_eq!(status, 401);
        }
    }
    // A flood of connections that send part of a head and stall: three times the cap.
    let mut flood = Vec::new();
    for _ in 0..900 {
        if let Some(s) = Stalled::open(&addr, b"POST /v1/sync HTTP/1.1\r\nHost: x\r\n") {
            flood.push(s);
        }
    }
    // Honest devices sync during the flood (each sync opens new connections).
    for n in 0..3 {
        record_and_sync(&mut supervisor, &hub.url, 10 + n);
        record_and_sync(&mut monitor, &hub.url, 20 + n);
        for _ in 0..100 {
            if let Some(s) = Stalled::open(&addr, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n") {
                flood.push(s);
            }
        }
    }
    let (_, peak) = hub.memory_mib();
    let held_in_flood = hub.client_connections();
    assert!(
        peak - rss_before < 48.0,
        "the hub grew from {rss_before:.1} MiB to a peak of {peak:.1} MiB"
    );
    // The hub holds at most its cap of connections (those it closed for newcomers end within
    // moments), and the stalled ones end.
    assert!(
        wait_until(Duration::from_secs(3), || hub.client_connections()
            <= connections_before + 300 + 8),
        "{} connections held",
        hub.client_connections()
    );
    assert!(
        wait_until(Duration::from_secs(15), || hub.client_connections()
            <= connections_before + 8),
        "{} connections held after the flood, {connections_before} before",
        hub.client_connections()
    );
    // Nothing else was left open by them (PostgreSQL's pool may have grown meanwhile).
    let files_after = hub.open_files();
    assert!(
        files_after <= files_before + 32 + hub.database_pool_files(),
        "{files_after} files open after the flood, {files_before} before"
    );
    drop(flood);
    drop(uploads);
    println!(
        "flood: hub RSS {rss_before:.1} MiB before, peak {peak:.1} MiB, {:?}; \
         {held_in_flood} connections held in the flood; files {files_before} before, \
         {files_after} after",
        started.elapsed()
    );
    assert!(health(&hub.url).is_ok());
    assert!(hub.log_errors().is_empty(), "{:#?}", hub.log_errors());
}

/// A client that asks for answers and reads none (one stolen token, hundreds of connections
/// each holding a first sync's megabytes) holds its device's places among requests in
/// progress until each answer has left, not the hub's memory: a third request of the device
/// is answered 429 while two answers wait unread; a connection whose client takes nothing of
/// its answer for `--send-timeout-ms` is closed, and its place given back.
#[test]
fn answers_no_one_reads_hold_their_devices_places_not_the_hubs_memory() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let (mut supervisor, monitor) = two_devices(&dir, &data);
    let hub = Hub::start_with_options(&data, HubOptions::args(&["--send-timeout-ms", "3000"]));
    let addr = hub.addr();
    // 1 MB of notes that do not compress, in the monitor's community: an answer larger than
    // a connection's send buffer.
    for seed in 1..=8u64 {
        record_incompressible_workplaces(&mut supervisor, seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    }
    supervisor.sync(&hub.url).unwrap();
    let options = vigie_core::sync::SyncOptions {
        max_message_bytes: 4 * 1024 * 1024,
        ..Default::default()
    };
    let request = monitor.store.hub_sync_request(&options).unwrap();
    let authorization = format!("Bearer {}", monitor.token_text);
    let mut sent = Stalled::head(&addr, Some(&authorization), request.len());
    sent.extend_from_slice(&request);
    // The monitor's first sync, twice, each answer's first bytes read and no more.
    let unread: Vec<Stalled> = (0..2)
        .map(|_| {
            let mut stalled = Stalled::open_with_a_small_window(&addr, &sent).unwrap();
            let mut first = [0u8; 12];
            stalled
                .stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            std::io::Read::read_exact(&mut stalled.stream, &mut first).unwrap();
            assert_eq!(&first, b"HTTP/1.1 200");
            stalled
        })
        .collect();
    let mut third = Stalled::open(&addr, &sent).unwrap();
    let mut status = [0u8; 12];
    third
        .stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    std::io::Read::read_exact(&mut third.stream, &mut status).unwrap();
    assert_eq!(
        &status, b"HTTP/1.1 429",
        "the device's two places are held by its unread answers"
    );
    // Past the send timeout, the unread connections are closed and their places free.
    std::thread::sleep(Duration::from_millis(5000));
    let mut again = Stalled::open(&addr, &sent).unwrap();
    let mut first = [0u8; 12];
    again
        .stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    std::io::Read::read_exact(&mut again.stream, &mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    drop(unread);
}
