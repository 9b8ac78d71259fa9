//! What the hub lets through over HTTP: partial replication by area and kind, credentials,
//! revocation, and hostile request bodies.

use crate::common;

use common::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use uuid::Uuid;
use vigie_core::sync::{Refusal, SyncOptions};
use vigie_core::*;
use vigie_server::auth::Token;
use vigie_server::client::HubClient;

/// Adds record ids to a device's list of records to fetch whole, as if their changes had
/// failed to apply: the device then asks the hub for them by id.
fn ask_for(store_path: &std::path::Path, key: u8, ids: &[Uuid]) {
    let conn = rusqlite::Connection::open(store_path).unwrap();
    let hex: String = std::iter::repeat_n(format!("{key:02x}"), 32).collect();
    conn.execute_batch(&format!(
        "PRAGMA key = \"x'{hex}'\"; PRAGMA busy_timeout = 5000;"
    ))
    .unwrap();
    for id in ids {
        conn.execute(
            "INSERT INTO sync_refetch (record_id) VALUES (?1) ON CONFLICT DO NOTHING",
            [id.as_bytes().as_slice()],
        )
        .unwrap();
    }
}

/// A token's text with one part replaced.
fn forge(device: Uuid, user: Uuid, secret_of: &str) -> Token {
    let secret = secret_of.rsplit('.').next().unwrap();
    Token::parse(&format!(
        "vgd1.{}.{}.{secret}",
        device.simple(),
        user.simple()
    ))
    .unwrap()
}

#[test]
fn scope_credentials_and_revocation_hold_over_http() {
    let seed = seed("scope_credentials_and_revocation_hold_over_http");
    let mut rng = rng(seed);
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut supervisor = Device::enrol(
        dir.path(),
        &data,
        "supervisor",
        Role::Supervisor,
        &[REGION],
        1,
    );
    let mut monitor_a = Device::enrol(
        dir.path(),
        &data,
        "monitor-a",
        Role::CommunityMonitor,
        &[C01],
        2,
    );
    let mut monitor_b = Device::enrol(
        dir.path(),
        &data,
        "monitor-b",
        Role::CommunityMonitor,
        &[C02],
        3,
    );
    let mut hub = Hub::start(&data);

    // The supervisor records every kind in area A (C01), area B (C02) and C07 (another district).
    let mut by_area: BTreeMap<&str, Vec<(Uuid, RecordKind)>> = BTreeMap::new();
    for community in [C01, C02, C07] {
        for kind in [
            RecordKind::Workplace,
            RecordKind::Visit,
            RecordKind::ChildCase,
        ] {
            for _ in 0..3 {
                let id = create_record(&mut rng, &mut supervisor.store, kind, area(community));
                by_area.entry(community).or_default().push((id, kind));
            }
        }
    }
    let summary = supervisor.sync(&hub.url).unwrap();
    assert_eq!(summary.accepted, 27, "{summary:?}");

    let check_scope = |m: &Device, own: &str| {
        for (community, records) in &by_area {
            for (id, kind) in records {
                // Monitors receive every kind of their communities (workplaces included).
                let _ = kind;
                let expected = *community == own;
                assert_eq!(
                    m.has(*id),
                    expected,
                    "{} holding {kind} {id} of {community}",
                    m.name
                );
            }
        }
    };
    monitor_a.sync(&hub.url).unwrap();
    monitor_b.sync(&hub.url).unwrap();
    check_scope(&monitor_a, C01);
    check_scope(&monitor_b, C02);

    // Edits of B's records by the supervisor, and monitor A asking for B's records by id.
    for (id, _) in &by_area[C02] {
        random_edit(&mut rng, &mut supervisor.store, *id);
    }
    supervisor.sync(&hub.url).unwrap();
    let foreign: Vec<Uuid> = by_area[C02]
        .iter()
        .chain(&by_area[C07])
        .map(|(id, _)| *id)
        .collect();
    ask_for(monitor_a.store.path(), 2, &foreign);
    let summary = monitor_a.sync(&hub.url).unwrap();
    assert_eq!(summary.received, 0, "{summary:?}");
    check_scope(&monitor_a, C01);

    // Monitor A records a case in B: refused, kept on its device, never stored or sent to B.
    let stray = create_record(
        &mut rng,
        &mut monitor_a.store,
        RecordKind::ChildCase,
        area(C02),
    );
    let summary = monitor_a.sync(&hub.url).unwrap();
    assert_eq!(summary.refused, vec![(stray, Refusal::OutOfScope)]);
    monitor_b.sync(&hub.url).unwrap();
    supervisor.sync(&hub.url).unwrap();
    assert!(!monitor_b.has(stray) && !supervisor.has(stray));
    check_scope(&monitor_b, C02);

    // Credentials: a wrong secret, another device's secret, an unknown device, another user.
    let request = monitor_a
        .store
        .hub_sync_request(&SyncOptions::default())
        .unwrap();
    let mut wrong_secret = monitor_a.token_text.clone();
    let last = wrong_secret.pop().unwrap();
    wrong_secret.push(if last == '0' { '1' } else { '0' });
    let forged = [
        Token::parse(&wrong_secret).unwrap(),
        forge(
            monitor_a.token.device,
            monitor_a.user(),
            &monitor_b.token_text,
        ),
        forge(Uuid::new_v4(), monitor_a.user(), &monitor_a.token_text),
        forge(
            monitor_a.token.device,
            monitor_b.user(),
            &monitor_a.token_text,
        ),
    ];
    for token in &forged {
        let err = HubClient::new(&hub.url, token)
            .exchange(&request)
            .unwrap_err();
        assert!(err.contains("401"), "{err}");
        let err = HubClient::new(&hub.url, token)
            .sync(&mut monitor_a.store, &SyncOptions::default(), |_| {})
            .unwrap_err();
        assert!(err.to_string().contains("401"), "{err}");
    }
    assert_eq!(
        monitor_a.store.hub_outbox_len().unwrap(),
        1,
        "only the stray case"
    );
    let client = agent();
    for authorization in [
        None,
        Some("Bearer".to_string()),
        Some("Bearer vgd1.x.y.z".to_string()),
        Some(format!("Basic {}", monitor_a.token_text)),
        Some(format!("Bearer: {}", monitor_a.token_text)),
    ] {
        let (status, _) = post_sync(&client, &hub.url, authorization.as_deref(), &request).unwrap();
        assert_eq!(status, 401, "{authorization:?}");
    }
    // A scheme's name is case-insensitive (RFC 9110 §11.1): a client library writing `bearer`
    // sends the same credentials.
    for scheme in ["bearer", "BEARER"] {
        let authorization = format!("{scheme} {}", monitor_a.token_text);
        let (status, _) = post_sync(&client, &hub.url, Some(&authorization), &request).unwrap();
        assert_eq!(status, 200, "{scheme}");
    }
    // Refused before its body is read, the connection is closed, and the answer says so: a
    // device's next request goes on a new one, not on one the hub is closing.
    let refused = client
        .post(format!("{}/v1/sync", hub.url))
        .header("Content-Type", "application/octet-stream")
        .send(&request[..])
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    assert_eq!(
        refused
            .headers()
            .get("connection")
            .and_then(|v| v.to_str().ok()),
        Some("close")
    );
    // A valid token with another device's request: the actor is not bound to it.
    let err = monitor_b.client(&hub.url).exchange(&request).unwrap_err();
    assert!(err.contains("403"), "{err}");

    // Revocation: monitor B records a case, is revoked, and can no longer sync.
    let late = create_record(
        &mut rng,
        &mut monitor_b.store,
        RecordKind::ChildCase,
        area(C02),
    );
    let edited = by_area[C02]
        .iter()
        .find(|(_, k)| *k == RecordKind::ChildCase)
        .unwrap()
        .0;
    random_edit(&mut rng, &mut monitor_b.store, edited);
    let edited_heads = heads(&monitor_b.store, edited);
    assert!(revoke(&data, monitor_b.token.device));
    assert!(
        !revoke(&data, monitor_b.token.device),
        "revoking twice is an error"
    );
    // Refused, and told to wipe (a lost or seized phone).
    let err = monitor_b.sync(&hub.url).unwrap_err();
    assert!(matches!(err, Error::WipeRequested), "{err}");
    let request_b = monitor_b
        .store
        .hub_sync_request(&SyncOptions::default())
        .unwrap();
    let err = monitor_b.client(&hub.url).exchange(&request_b).unwrap_err();
    assert!(err.contains("403"), "{err}");
    assert_eq!(monitor_b.store.hub_outbox_len().unwrap(), 2);
    let summary = supervisor.sync(&hub.url).unwrap();
    assert_eq!(summary.received, 0, "{summary:?}");
    assert!(!supervisor.has(late));
    assert_ne!(heads(&supervisor.store, edited), edited_heads);

    // Revocation is per device: the same user enrolled again syncs from a new store.
    let token = Token::parse(&enrol(&data, monitor_b.user())).unwrap();
    let config = StoreConfig::new(
        dir.path().join("monitor-b-new.db"),
        Encryption::Key([5; 32]),
        token.user,
    )
    .device(token.device);
    let mut fresh = Store::open(config).unwrap();
    HubClient::new(&hub.url, &token)
        .sync(&mut fresh, &SyncOptions::default(), |_| {})
        .unwrap();
    for (id, _) in &by_area[C02] {
        // A monitor receives every kind of their communities.
        assert!(fresh.kind_of(*id).is_ok());
    }
    assert!(fresh.kind_of(late).is_err());

    hub.stop();
    let hub_store = hub.open_store();
    assert!(hub_store.kind_of(late).is_err(), "a revoked device's push");
    assert!(hub_store.kind_of(stray).is_err(), "an out-of-scope push");
    assert_ne!(heads(&hub_store, edited), edited_heads);
    assert_eq!(heads(&hub_store, edited), heads(&supervisor.store, edited));
    assert!(hub.log_errors().is_empty(), "{:#?}", hub.log_errors());
}

// ---------------------------------------------------------------------------------------------
// Hostile bodies

const TAG_LEN: usize = 4;

/// The postcard bytes inside a request (tag, then a zstd frame).
fn plain_of(request: &[u8]) -> Vec<u8> {
    zstd::decode_all(&request[TAG_LEN..]).unwrap()
}

fn framed(tag: &[u8], plain: &[u8]) -> Vec<u8> {
    let mut out = tag.to_vec();
    out.extend(zstd::encode_all(plain, 3).unwrap());
    out
}

/// A few random damages: bits flipped, bytes set, inserted, deleted, duplicated, or the end cut.
fn damage(rng: &mut ChaCha8Rng, bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for _ in 0..rng.gen_range(1..=4) {
        if b.is_empty() {
            b.push(rng.r#gen());
            continue;
        }
        let at = rng.gen_range(0..b.len());
        match rng.gen_range(0..7) {
            0 | 1 => b[at] ^= 1 << rng.gen_range(0..8),
            2 => b[at] = rng.r#gen(),
            3 => {
                let n = rng.gen_range(1..=16);
                let junk: Vec<u8> = (0..n).map(|_| rng.r#gen()).collect();
                b.splice(at..at, junk);
            }
            4 => {
                let end = (at + rng.gen_range(1..=16)).min(b.len());
                b.drain(at..end);
            }
            5 => b.truncate(at),
            _ => {
                let end = (at + rng.gen_range(1..=64)).min(b.len());
                let copy = b[at..end].to_vec();
                let to = rng.gen_range(0..=b.len());
                b.splice(to..to, copy);
            }
        }
    }
    b
}

/// A 5-byte varint of about 4 billion: a length no message can back.
const HUGE_LEN: [u8; 5] = [0xff, 0xff, 0xff, 0xff, 0x0f];

/// Sends a body with chunked transfer encoding until the hub stops reading; returns the status
/// line if one came back.
fn post_chunked(addr: &str, authorization: &str, total: usize) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "POST /v1/sync HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {authorization}\r\n\
         Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).ok()?;
    let chunk = vec![0x5a_u8; 64 * 1024];
    let mut sent = 0;
    while sent < total {
        let frame = [
            format!("{:x}\r\n", chunk.len()).into_bytes(),
            chunk.clone(),
            b"\r\n".to_vec(),
        ]
        .concat();
        if stream.write_all(&frame).is_err() {
            break;
        }
        sent += chunk.len();
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&answer).to_string();
    text.lines().next().map(str::to_string)
}

#[test]
fn hostile_requests_get_a_4xx_and_leave_the_hub_working() {
    let started = Instant::now();
    let seed = seed("hostile_requests_get_a_4xx_and_leave_the_hub_working");
    let mut rng = rng(seed);
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut supervisor = Device::enrol(
        dir.path(),
        &data,
        "supervisor",
        Role::Supervisor,
        &[REGION],
        1,
    );
    let mut monitor = Device::enrol(
        dir.path(),
        &data,
        "monitor",
        Role::CommunityMonitor,
        &[C01],
        2,
    );
    let mut hub = Hub::start(&data);
    let bearer = |d: &Device| format!("Bearer {}", d.token_text);

    // Real requests of several shapes, each with the token of the device that made it.
    let mut samples: Vec<(Vec<u8>, String)> = Vec::new();
    let mut ids = Vec::new();
    for i in 0..9 {
        let kind = [
            RecordKind::Workplace,
            RecordKind::Visit,
            RecordKind::ChildCase,
        ][i % 3];
        ids.push(create_record(
            &mut rng,
            &mut supervisor.store,
            kind,
            area([C01, C02][i % 2]),
        ));
    }
    let options = SyncOptions::default();
    samples.push((
        supervisor.store.hub_sync_request(&options).unwrap(),
        bearer(&supervisor),
    ));
    supervisor.sync(&hub.url).unwrap();
    for id in &ids {
        random_edit(&mut rng, &mut supervisor.store, *id);
    }
    samples.push((
        supervisor.store.hub_sync_request(&options).unwrap(),
        bearer(&supervisor),
    ));
    monitor.sync(&hub.url).unwrap();
    samples.push((
        monitor.store.hub_sync_request(&options).unwrap(),
        bearer(&monitor),
    ));
    let case = create_record(
        &mut rng,
        &mut monitor.store,
        RecordKind::ChildCase,
        area(C01),
    );
    random_edit(&mut rng, &mut monitor.store, case);
    samples.push((
        monitor.store.hub_sync_request(&options).unwrap(),
        bearer(&monitor),
    ));
    // The case reaches the hub before the damaged requests: one whose damage falls on the
    // case's id carries its document under another, a copy the hub now refuses; come first,
    // the copy would be the record the hub holds, and the case's own push refused as its copy
    // (a device's damaged request can keep its own record out, a trade of the copy rule).
    let pushed = monitor.sync(&hub.url).unwrap();
    assert!(pushed.refused.is_empty(), "{pushed:?}");
    let plains: Vec<Vec<u8>> = samples.iter().map(|(r, _)| plain_of(r)).collect();

    let client = agent();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut send = |body: &[u8], authorization: &str, what: &str| match post_sync(
        &client,
        &hub.url,
        Some(authorization),
        body,
    ) {
        Ok((status, answer)) => {
            assert!(
                status == 200 || (400..500).contains(&status),
                "{what}: the hub answered {status}: {}",
                String::from_utf8_lossy(&answer)
            );
            if status == 200 {
                assert!(answer.starts_with(b"VGr1"), "{what}: a sync response");
            }
            *statuses.entry(status).or_default() += 1;
        }
        Err(e) => panic!("{what}: the connection failed: {e}"),
    };

    const MUTATED: usize = 2_400;
    for n in 0..MUTATED {
        let which = rng.gen_range(0..samples.len());
        let (request, authorization) = &samples[which];
        let (body, what) = match rng.gen_range(0..20) {
            // The bytes on the wire.
            0..=6 => (damage(&mut rng, request), "damaged request"),
            // The message inside the compression, which then decodes.
            7..=15 => (
                framed(b"VGq1", &damage(&mut rng, &plains[which])),
                "damaged message",
            ),
            // A length that no message can back, somewhere in the message.
            16 => {
                let mut plain = plains[which].clone();
                let at = rng.gen_range(0..=plain.len());
                plain.splice(at..at, HUGE_LEN);
                (framed(b"VGq1", &plain), "huge length")
            }
            // Two requests spliced together.
            17 => {
                let other = &plains[rng.gen_range(0..plains.len())];
                let (a, b) = (
                    rng.gen_range(0..=plains[which].len()),
                    rng.gen_range(0..=other.len()),
                );
                let plain = [&plains[which][..a], &other[b..]].concat();
                (framed(b"VGq1", &plain), "spliced requests")
            }
            // Garbage, with and without the tag and the compression.
            18 => {
                let len = rng.gen_range(0..4096);
                let junk: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
                match n % 3 {
                    0 => (junk, "garbage"),
                    1 => ([&b"VGq1"[..], &junk].concat(), "tagged garbage"),
                    _ => (framed(b"VGq1", &junk), "compressed garbage"),
                }
            }
            _ => (framed(b"VGr1", &plains[which]), "wrong tag"),
        };
        send(&body, authorization, what);
    }

    // A small frame that expands beyond the hub's limit, and a push with a length of billions.
    let bomb = framed(b"VGq1", &vec![0u8; 40 * 1024 * 1024]);
    assert!(bomb.len() < 64 * 1024);
    send(&bomb, &bearer(&supervisor), "decompression bomb");
    // Over a limit, said as such: 413, not "malformed".
    let (status, body) = post_sync(&agent(), &hub.url, Some(&bearer(&supervisor)), &bomb).unwrap();
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("decompressed bytes"), "{body}");
    // The same on the attachments' endpoint.
    let attachment_bomb = framed(b"VGa1", &vec![0u8; 40 * 1024 * 1024]);
    let mut response = agent()
        .post(format!("{}/v1/attachments", hub.url))
        .header("Content-Type", "application/octet-stream")
        .header("Authorization", &bearer(&supervisor))
        .send(&attachment_bomb[..])
        .unwrap();
    let said = response.body_mut().read_to_string().unwrap();
    assert_eq!(response.status().as_u16(), 413, "{said}");
    assert!(said.contains("exceeds a limit"), "{said}");
    let mut plain = plains[0].clone();
    assert_eq!(
        (plain[0], plain[25]),
        (24, 0),
        "actor of 24 bytes, no cursor"
    );
    plain.splice(26..27, HUGE_LEN);
    send(
        &framed(b"VGq1", &plain),
        &bearer(&supervisor),
        "huge push count",
    );
    let total: usize = statuses.values().sum();
    assert!(total >= 2_000);

    // A body over 8 MiB: refused (413), or the connection closed before it was all sent.
    let oversized: Vec<u8> = (0..8 * 1024 * 1024 + 1).map(|i| (i % 251) as u8).collect();
    match post_sync(&agent(), &hub.url, Some(&bearer(&supervisor)), &oversized) {
        Ok((status, _)) => assert_eq!(status, 413),
        Err(e) => println!("oversized body: connection closed ({e})"),
    }
    if let Some(line) = post_chunked(&hub.addr(), &bearer(&supervisor), 9 * 1024 * 1024) {
        assert!(line.contains(" 413 "), "chunked oversized body: {line}");
    }

    // The hub still works.
    assert!(hub.is_running());
    assert_eq!(health(&hub.url).unwrap(), "ok");
    for d in [&mut supervisor, &mut monitor] {
        let summary = d.sync(&hub.url).unwrap();
        assert!(
            summary.refused.is_empty() && summary.failed.is_empty(),
            "{}: {summary:?}",
            d.name
        );
        assert_eq!(summary.pending, 0);
    }
    supervisor.sync(&hub.url).unwrap();
    assert_eq!(heads(&supervisor.store, case), heads(&monitor.store, case));
    for id in &ids {
        if monitor.has(*id) {
            assert_eq!(heads(&supervisor.store, *id), heads(&monitor.store, *id));
        }
    }

    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:#?}", hub.log_errors());
    let hub_store = hub.open_store();
    assert!(hub_store.integrity_check().unwrap());
    for (_, id) in all_records(&supervisor.store) {
        assert_eq!(
            heads_opt(&hub_store, id),
            Some(heads(&supervisor.store, id))
        );
    }
    // Whatever the mutated requests got stored reads as records of the devices' areas.
    for (kind, id) in all_records(&hub_store) {
        let (_, record_area) = area_of(&hub_store, id);
        assert!(supervisor.may_see(kind, &record_area), "{kind} {id}");
        assert!(hub_store.history(id).is_ok());
    }
    println!(
        "{total} hostile requests: {statuses:?}; hub records {} (supervisor holds {}); {} lines \
         logged at ERROR by libraries; {:.1} s",
        all_records(&hub_store).len(),
        all_records(&supervisor.store).len(),
        hub.log_error_lines(),
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// Well-formed requests with forged content

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    let mut out = Vec::new();
    varint(v, &mut out);
    out.len()
}

fn read_varint(bytes: &[u8]) -> (u64, usize) {
    let mut v = 0u64;
    for (i, b) in bytes.iter().enumerate() {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return (v, i + 1);
        }
    }
    panic!("unterminated varint")
}

/// One pushed record, as the wire carries it.
struct Push {
    id: Uuid,
    heads: Vec<[u8; 32]>,
    changes: Vec<u8>,
}

impl Push {
    fn of(id: Uuid, doc: &automerge::Automerge) -> Push {
        Push {
            id,
            heads: doc.get_heads().iter().map(|h| h.0).collect(),
            changes: doc.save(),
        }
    }
}

/// A sync request without a cursor, encoded as devices encode theirs (checked against a real
/// one below).
fn request_bytes(actor: &[u8], push: &[Push], refetch: &[Uuid]) -> Vec<u8> {
    let mut p = Vec::new();
    varint(actor.len() as u64, &mut p);
    p.extend_from_slice(actor);
    p.push(0); // no cursor
    varint(push.len() as u64, &mut p);
    for e in push {
        varint(16, &mut p);
        p.extend_from_slice(e.id.as_bytes());
        varint(e.heads.len() as u64, &mut p);
        for h in &e.heads {
            p.extend_from_slice(h);
        }
        varint(e.changes.len() as u64, &mut p);
        p.extend_from_slice(&e.changes);
    }
    varint(refetch.len() as u64, &mut p);
    for id in refetch {
        varint(16, &mut p);
        p.extend_from_slice(id.as_bytes());
    }
    varint(256 * 1024, &mut p);
    framed(b"VGq1", &p)
}

/// A record document written by `actor`, as a device would write it.
fn document<R: Record>(
    record: &R,
    actor: &automerge::ActorId,
    author: ChangeAuthor,
) -> automerge::Automerge {
    let mut doc = automerge::Automerge::new().with_actor(actor.clone());
    vigie_core::doc::write_record(&mut doc, record, &author).unwrap();
    doc
}

#[test]
fn forged_records_are_refused_one_by_one() {
    use automerge::transaction::Transactable;
    let seed = seed("forged_records_are_refused_one_by_one");
    let mut rng = rng(seed);
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut supervisor = Device::enrol(
        dir.path(),
        &data,
        "supervisor",
        Role::Supervisor,
        &[REGION],
        1,
    );
    let mut monitor = Device::enrol(
        dir.path(),
        &data,
        "monitor",
        Role::CommunityMonitor,
        &[C01],
        2,
    );
    let mut hub = Hub::start(&data);
    let target = create_record(
        &mut rng,
        &mut supervisor.store,
        RecordKind::ChildCase,
        area(C01),
    );
    let merged = create_record(
        &mut rng,
        &mut supervisor.store,
        RecordKind::ChildCase,
        area(C01),
    );
    let hidden = create_record(
        &mut rng,
        &mut supervisor.store,
        RecordKind::ChildCase,
        area(C02),
    );
    supervisor.sync(&hub.url).unwrap();
    monitor.sync(&hub.url).unwrap();
    assert!(monitor.has(target) && monitor.has(merged));
    let untouched = [
        (target, heads(&supervisor.store, target)),
        (merged, heads(&supervisor.store, merged)),
    ];

    // The encoding of requests built here is the devices' own: the same bytes around the
    // document (whose own encoding is automerge's affair), for a device yet without a cursor.
    let mut scribe = Device::enrol(
        dir.path(),
        &data,
        "scribe",
        Role::CommunityMonitor,
        &[C01],
        3,
    );
    let noted = create_record(&mut rng, &mut scribe.store, RecordKind::Visit, area(C01));
    // The hand-built requests are those of a device of the previous version: no identity, and
    // documents sent whole.
    let mut real = vigie_core::sync::wire::decode_request(
        &scribe
            .store
            .hub_sync_request(&SyncOptions::default())
            .unwrap(),
        1 << 26,
    )
    .unwrap();
    real.identity = None;
    real.headless_documents = false;
    real.device_clock = None;
    let real = plain_of(&vigie_core::sync::wire::encode_request(&real));
    let scribe_actor = scribe.store.actor().to_bytes().to_vec();
    let noted_doc =
        automerge::Automerge::load(&scribe.store.export_document(noted).unwrap()).unwrap();
    let mut entry = Push::of(noted, &noted_doc);
    let ours = plain_of(&request_bytes(
        &scribe_actor,
        std::slice::from_ref(&entry),
        &[],
    ));
    // After the document: no record asked for (1 byte), the response limit (3 bytes).
    let at = ours.len() - entry.changes.len() - varint_len(entry.changes.len() as u64) - 4;
    let (len, used) = read_varint(&real[at..]);
    entry.changes = real[at + used..at + used + len as usize].to_vec();
    assert_eq!(plain_of(&request_bytes(&scribe_actor, &[entry], &[])), real);

    let legit = create_record(
        &mut rng,
        &mut monitor.store,
        RecordKind::ChildCase,
        area(C01),
    );
    let actor = monitor.store.actor().to_bytes().to_vec();
    let legit_doc =
        automerge::Automerge::load(&monitor.store.export_document(legit).unwrap()).unwrap();
    let me = ChangeAuthor {
        user: monitor.user(),
        device: monitor.token.device,
    };
    let mine = monitor.store.actor().clone();
    let mut expected: BTreeMap<Uuid, Refusal> = BTreeMap::new();
    let mut push = vec![Push::of(legit, &legit_doc)];

    // A new user: a supervisor of the whole country.
    let mut intruder = User::new("Intrus", Role::Supervisor, &[COUNTRY]);
    intruder.id = uuid(&mut rng);
    push.push(Push::of(intruder.id, &document(&intruder, &mine, me)));
    expected.insert(intruder.id, Refusal::KindNotAllowed);
    // The monitor's own user record, made a supervisor of the whole country.
    let mut promoted = User::new("Moi", Role::Supervisor, &[COUNTRY]);
    promoted.id = monitor.user();
    push.push(Push::of(promoted.id, &document(&promoted, &mine, me)));
    expected.insert(promoted.id, Refusal::KindNotAllowed);
    // A case written under the supervisor's actor.
    let mut borrowed = child(area(C01), "Emprunt", monitor.user());
    borrowed.id = uuid(&mut rng);
    let doc = document(&borrowed, supervisor.store.actor(), me);
    push.push(Push::of(borrowed.id, &doc));
    // Refused as changes made on another device (`ForeignChanges`), which the device is told
    // wait for that device.
    // A case whose hours are text.
    let mut mistyped = child(area(C01), "Texte", monitor.user());
    mistyped.id = uuid(&mut rng);
    let mut doc = document(&mistyped, &mine, me);
    doc.transact::<_, _, automerge::AutomergeError>(|tx| {
        tx.put(automerge::ROOT, "hours_per_week", "beaucoup")?;
        Ok(())
    })
    .unwrap();
    push.push(Push::of(mistyped.id, &doc));
    expected.insert(mistyped.id, Refusal::Invalid);
    // A document naming no kind.
    let nameless = uuid(&mut rng);
    let mut doc = automerge::Automerge::new().with_actor(mine.clone());
    doc.transact::<_, _, automerge::AutomergeError>(|tx| {
        tx.put(automerge::ROOT, "name", "sans type")?;
        Ok(())
    })
    .unwrap();
    push.push(Push::of(nameless, &doc));
    expected.insert(nameless, Refusal::Invalid);
    // The supervisor's case turned into a visit, on top of its real history.
    let mut doc = automerge::Automerge::load(&monitor.store.export_document(target).unwrap())
        .unwrap()
        .with_actor(mine.clone());
    doc.transact::<_, _, automerge::AutomergeError>(|tx| {
        tx.put(automerge::ROOT, "$kind", "visit")?;
        Ok(())
    })
    .unwrap();
    push.push(Push::of(target, &doc));
    expected.insert(target, Refusal::WrongKind);
    // Another case with the history of a visit merged in: two kinds at once, and a history
    // that is not the case's own (a second root).
    let mut doc = automerge::Automerge::new().with_actor(mine.clone());
    let mut as_visit = visit(area(C01), uuid(&mut rng), monitor.user(), 3);
    as_visit.id = merged;
    vigie_core::doc::write_record(&mut doc, &as_visit, &me).unwrap();
    push.push(Push::of(merged, &doc));
    expected.insert(merged, Refusal::Damaged);
    // A case of another area, asked for whole.
    let request = request_bytes(&actor, &push, &[hidden]);

    let response = monitor.client(&hub.url).exchange(&request).unwrap();
    let mut scratch = Store::open(StoreConfig::new(
        dir.path().join("scratch.db"),
        Encryption::Unencrypted,
        monitor.user(),
    ))
    .unwrap();
    let report = scratch
        .hub_sync_apply(&response, &SyncOptions::default())
        .unwrap();
    let refused: BTreeMap<Uuid, Refusal> = report.refused.iter().copied().collect();
    assert_eq!(refused, expected, "{report:?}");
    assert_eq!(report.awaiting_author, vec![borrowed.id], "{report:?}");
    assert_eq!(report.accepted, 1, "the legitimate record, alongside");
    assert!(
        scratch.kind_of(hidden).is_err(),
        "a record outside the scope"
    );

    // Too many records pushed or asked for: the request is refused whole.
    let many: Vec<Push> = (0..5_001)
        .map(|_| Push {
            id: uuid(&mut rng),
            heads: Vec::new(),
            changes: Vec::new(),
        })
        .collect();
    let err = monitor
        .client(&hub.url)
        .exchange(&request_bytes(&actor, &many, &[]))
        .unwrap_err();
    assert!(err.contains("413"), "{err}");
    let ids: Vec<Uuid> = (0..1_001).map(|_| uuid(&mut rng)).collect();
    let err = monitor
        .client(&hub.url)
        .exchange(&request_bytes(&actor, &[], &ids))
        .unwrap_err();
    assert!(err.contains("413"), "{err}");

    // The monitor's scope is what it was; the hub's records are untouched.
    let summary = monitor.sync(&hub.url).unwrap();
    assert!(summary.refused.is_empty(), "{summary:?}");
    assert!(!monitor.has(hidden));
    for (id, before) in &untouched {
        assert_eq!(&heads(&monitor.store, *id), before);
    }
    hub.stop();
    let hub_store = hub.open_store();
    let user: User = hub_store.get(monitor.user()).unwrap();
    assert_eq!(user.role, Role::CommunityMonitor);
    assert_eq!(user.areas, [C01.to_string()].into());
    for id in [intruder.id, borrowed.id, mistyped.id, nameless] {
        assert!(hub_store.kind_of(id).is_err(), "{id} stored");
    }
    for (id, before) in &untouched {
        assert_eq!(hub_store.kind_of(*id).unwrap(), RecordKind::ChildCase);
        assert_eq!(&heads(&hub_store, *id), before);
    }
    assert!(hub_store.kind_of(legit).is_ok());
    assert!(hub.log_errors().is_empty(), "{:#?}", hub.log_errors());
}

/// Two community monitors of one community, a busy one and another, enrolled with a hub served
/// with `args`.
fn two_monitors_on_a_hub_with(dir: &TempDir, args: &[&str]) -> (Device, Device, Hub) {
    let data = dir.path().join("hub");
    let busy = Device::enrol(dir.path(), &data, "busy", Role::CommunityMonitor, &[C01], 1);
    let other = Device::enrol(
        dir.path(),
        &data,
        "other",
        Role::CommunityMonitor,
        &[C01],
        2,
    );
    let mut hub = Hub::new(&data, None, true);
    hub.extra_args.extend(args.iter().map(|a| a.to_string()));
    hub.restart();
    (busy, other, hub)
}

/// Another device of the community records a case and pushes it, taken at once however the
/// busy one fares: the case's id, and its sync's summary.
fn another_device_pushes_as_before(
    other: &mut Device,
    hub: &Hub,
) -> (Uuid, vigie_core::sync::SyncSummary) {
    let theirs = other
        .store
        .create(&child(area(C01), "Awa", other.user()))
        .unwrap()
        .id;
    let told = other.sync(&hub.url).unwrap();
    assert_eq!((told.accepted, told.pending), (1, 0), "{told:?}");
    (theirs, told)
}

/// A device's pushes are taken up to the changes the hub takes from one device in an hour
/// (`--max-device-changes-per-hour`): past that, its records wait in its outbox (nothing
/// refused, nothing lost), it still receives what others send, and another device's pushes are
/// taken as before. An altered app that pushed records of thousands of one-operation changes
/// grew the hub's store by 90 MiB in 40 s.
#[test]
fn a_device_s_changes_past_its_hour_wait_and_others_push_as_before() {
    let dir = TempDir::new().unwrap();
    let (mut busy, mut other, hub) =
        two_monitors_on_a_hub_with(&dir, &["--max-device-changes-per-hour", "10"]);
    let by = busy.user();
    for i in 0..25 {
        busy.store
            .create(&child(area(C01), &format!("Enfant {i}"), by))
            .unwrap();
    }
    let summary = busy.sync(&hub.url).unwrap();
    assert!(
        (10..=11).contains(&summary.accepted),
        "about its hour's worth: {summary:?}"
    );
    assert!(summary.refused.is_empty(), "{summary:?}");
    assert_eq!(summary.pending, 25 - summary.accepted, "{summary:?}");
    // Told when pushing again is worth it: at 10 an hour, one change is back in six minutes,
    // twelve if the last record went a change past the allowance.
    let wait = summary.push_retry_in_seconds.expect("told to wait");
    assert!((300..=721).contains(&wait), "{summary:?}");

    // Another device pushes as before, and the busy one receives its record.
    let (theirs, told) = another_device_pushes_as_before(&mut other, &hub);
    assert_eq!(told.push_retry_in_seconds, None, "{told:?}");
    busy.sync(&hub.url).unwrap();
    assert!(busy.store.kind_of(theirs).is_ok());
    // Said once, as the allowance ran out: not again at each request that finds it empty.
    for _ in 0..3 {
        busy.sync(&hub.url).unwrap();
    }
    let said = hub
        .log_tail(200)
        .matches("than the hub takes from one device in an hour")
        .count();
    assert_eq!(said, 1, "{}", hub.log_tail(20));
}

/// Pushes the hub refuses are paid from the device's hour of bytes as stored ones are: an
/// altered app sent the same heavy push again and again, each judged (and refused) at the
/// hub's cost and at none of its own. Past its hour, its refused records wait like any others,
/// and another device pushes as before.
#[test]
fn a_device_s_refused_pushes_are_paid_from_its_hour() {
    let dir = TempDir::new().unwrap();
    let (busy, mut other, hub) =
        two_monitors_on_a_hub_with(&dir, &["--max-device-bytes-per-hour", "65536"]);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    // Twenty cases of 800 characters, each refused (a week of 200 hours), each paying what
    // Automerge builds to judge it (some 16 bytes an operation: 13 KB), more than its bytes.
    let refused: Vec<vigie_core::sync::wire::PushEntry> = (0..20)
        .map(|i| {
            let mut case = child(area(C01), &format!("Enfant {i}"), busy.user());
            case.hours_per_week = 200;
            case.notes = incompressible_text(&mut seed, 800);
            common::rules::new_record(&busy, &case, common::rules::author(&busy))
        })
        .collect();
    let answered = common::rules::push(&busy, &hub.url, refused.clone());
    assert!(
        (3..=7).contains(&answered.len()),
        "about its hour's worth of bytes judged: {answered:?}"
    );
    assert!(
        answered
            .values()
            .all(|outcome| common::rules::refusal(outcome).is_some()),
        "{answered:?}"
    );
    // Sent again, nothing more is judged within the hour.
    let again = common::rules::push(&busy, &hub.url, refused);
    assert!(again.is_empty(), "{again:?}");
    let (theirs, _) = another_device_pushes_as_before(&mut other, &hub);
    assert!(other.store.kind_of(theirs).is_ok());
}

/// The same for the bytes of a device's changes (`--max-device-bytes-per-hour`): a hostile
/// phone's thousand cases of one change each, each holding 32,000 characters of a note, were
/// 24 MB in 44 s, which every phone of the area then downloaded.
#[test]
fn a_device_s_bytes_past_its_hour_wait_and_others_push_as_before() {
    let dir = TempDir::new().unwrap();
    let (mut busy, mut other, hub) =
        two_monitors_on_a_hub_with(&dir, &["--max-device-bytes-per-hour", "65536"]);
    // 150 workplaces of 2,000 characters that do not compress: some 300 KB.
    record_incompressible_workplaces(&mut busy, 0x2545_f491_4f6c_dd1d);
    let summary = busy.sync(&hub.url).unwrap();
    assert!(
        (20..=40).contains(&summary.accepted),
        "about its hour's worth of bytes: {summary:?}"
    );
    assert!(summary.refused.is_empty(), "{summary:?}");
    assert_eq!(summary.pending, 150 - summary.accepted, "{summary:?}");
    assert!(summary.push_retry_in_seconds.is_some(), "{summary:?}");
    let (theirs, _) = another_device_pushes_as_before(&mut other, &hub);
    busy.sync(&hub.url).unwrap();
    assert!(busy.store.kind_of(theirs).is_ok());
    assert!(
        hub.log_tail(200)
            .contains("more bytes of them, than the hub takes from one device in an hour"),
        "{}",
        hub.log_tail(20)
    );
}
