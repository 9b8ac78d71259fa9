//! Attachments through the real hub binary over HTTP on 127.0.0.1 (the embedded store, or
//! PostgreSQL when `VIGIE_TEST_BACKEND=postgres`): records first, then chunks up and down;
//! what another area's device may fetch; limits answered 413; erasure; bytes at rest.

use crate::common;

use common::lifecycle::erase;
use common::surface::HubOptions;
use common::*;
use rand::RngCore;
use tempfile::TempDir;
use uuid::Uuid;
use vigie_core::sync::{
    AttachmentRequest, AttachmentResponse, AttachmentSyncOptions, TransferRefusal,
    decode_attachment_response, encode_attachment_request,
};
use vigie_core::*;

const MARKER: &[u8] = b"%PDF-PLAINTEXT-MARKER-OF-A-CONSENT-FORM";

fn document(caption: &str) -> NewAttachment {
    NewAttachment {
        kind: AttachmentKind::Document,
        media_type: "application/pdf".into(),
        caption: caption.into(),
    }
}

/// POSTs an attachment request as `d`; returns the status, the `X-Vigie-Refusal` header and
/// the decoded answer.
fn ask(
    url: &str,
    d: &Device,
    request: &AttachmentRequest,
) -> (u16, Option<String>, AttachmentResponse) {
    let mut response = agent()
        .post(format!("{url}/v1/attachments"))
        .header("Authorization", &format!("Bearer {}", d.token_text))
        .header("Content-Type", "application/octet-stream")
        .send(&encode_attachment_request(request)[..])
        .expect("the hub answers");
    let status = response.status().as_u16();
    let refusal = response
        .headers()
        .get("x-vigie-refusal")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = response.body_mut().read_to_vec().unwrap();
    (
        status,
        refusal,
        decode_attachment_response(&body, usize::MAX).expect("an attachment answer"),
    )
}

fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if std::fs::read(&path)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
        {
            found.push(path);
        }
    }
    found
}

fn attachment_files(store: &Store) -> usize {
    let mut name = store.path().as_os_str().to_owned();
    name.push(".attachments");
    std::fs::read_dir(std::path::PathBuf::from(name)).map_or(0, |d| d.count())
}

#[test]
fn attachments_travel_through_the_hub_and_stay_in_scope() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let hub = Hub::start(&data);
    let mut monitor = Device::enrol(
        dir.path(),
        &data,
        "monitor",
        Role::CommunityMonitor,
        &[C01],
        1,
    );
    let mut supervisor = Device::enrol(
        dir.path(),
        &data,
        "supervisor",
        Role::Supervisor,
        &[REGION],
        2,
    );
    let stranger = Device::enrol(
        dir.path(),
        &data,
        "stranger",
        Role::CommunityMonitor,
        &[C02],
        3,
    );
    monitor.sync(&hub.url).unwrap();
    supervisor.sync(&hub.url).unwrap();

    let case = monitor
        .store
        .create(&child(area(C01), "Adjoua Konan", monitor.user()))
        .unwrap();
    let mut bytes: Vec<u8> = MARKER.iter().copied().cycle().take(900_000).collect();
    let mut noise = vec![0u8; 700_000];
    rand::thread_rng().fill_bytes(&mut noise);
    bytes.extend(noise);
    let entry = monitor
        .store
        .add_attachment(case.id, &document("Consentement"), &bytes[..])
        .unwrap();
    // Records first: the attachment waits for its record's push.
    let options = AttachmentSyncOptions::default();
    let client = monitor.client(&hub.url);
    assert!(
        client
            .sync_attachments(&mut monitor.store, &options, |_| {})
            .unwrap()
            .uploaded
            .is_empty()
    );
    monitor.sync(&hub.url).unwrap();
    let up = client
        .sync_attachments(&mut monitor.store, &options, |_| {})
        .unwrap();
    assert_eq!(up.uploaded, vec![entry.id]);
    assert!(up.round_trips >= 7, "in chunks: {up:?}");
    assert!(monitor.store.record_sync_state(case.id).unwrap().synced());

    supervisor.sync(&hub.url).unwrap();
    let state = supervisor.store.record_sync_state(case.id).unwrap();
    assert_eq!(state.attachments_not_downloaded, 1);
    let down = supervisor
        .client(&hub.url)
        .sync_attachments(&mut supervisor.store, &options, |_| {})
        .unwrap();
    assert_eq!(down.downloaded, vec![entry.id]);
    assert_eq!(supervisor.store.read_attachment(entry.id).unwrap(), bytes);

    // Another community's monitor: the same answer as for an id that does not exist.
    let download = |id| AttachmentRequest::Download {
        record: case.id,
        id,
        offset: 0,
        max_bytes: 1 << 18,
    };
    let (status, _, answer) = ask(&hub.url, &stranger, &download(entry.id));
    assert_eq!(status, 200);
    let unknown = Uuid::now_v7();
    let (_, _, other) = ask(&hub.url, &stranger, &download(unknown));
    assert_eq!(
        (answer, other),
        (
            AttachmentResponse::Refused {
                id: entry.id,
                reason: TransferRefusal::NotFound
            },
            AttachmentResponse::Refused {
                id: unknown,
                reason: TransferRefusal::NotFound
            }
        )
    );

    // At rest, nowhere in plaintext: devices' stores and the hub's data.
    assert!(files_containing(dir.path(), MARKER).is_empty());
    if let Some(url) = hub_database(&data) {
        // Nor openable from the database alone (a dump, a backup): no bytes of the row open
        // the segments beside it, as the key kept in clear did.
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let row = client
            .query_one(
                "SELECT a.file_key, a.prefix, s.sealed FROM attachments a
                 JOIN attachment_segments s ON s.attachment_id = a.id AND s.idx = 0
                 WHERE a.id = $1",
                &[&entry.id],
            )
            .unwrap();
        let (stored, prefix, segment): (Vec<u8>, Vec<u8>, Vec<u8>) =
            (row.get(0), row.get(1), row.get(2));
        let prefix: [u8; 16] = prefix.try_into().unwrap();
        for candidate in stored.windows(32) {
            let key = codec::sealed::FileKey::new(candidate.try_into().unwrap());
            assert!(
                codec::sealed::open_segment(&key, &prefix, entry.id, 0, false, &segment).is_err(),
                "the attachment opens with bytes the database holds"
            );
        }
    }

    // Erased on the hub: gone from the hub and, at their next sync, from the devices.
    erase(&data, case.id, supervisor.user());
    monitor.sync(&hub.url).unwrap();
    supervisor.sync(&hub.url).unwrap();
    assert_eq!(attachment_files(&monitor.store), 0);
    assert_eq!(attachment_files(&supervisor.store), 0);
    let (_, _, answer) = ask(&hub.url, &supervisor, &download(entry.id));
    assert_eq!(
        answer,
        AttachmentResponse::Refused {
            id: entry.id,
            reason: TransferRefusal::NotFound
        }
    );
    if let Some(url) = hub_database(&data) {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        for table in ["attachments", "attachment_segments"] {
            let n: i64 = client
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .unwrap()
                .get(0);
            assert_eq!(n, 0, "{table} keeps rows of an erased record");
        }
    } else {
        let hub_files = std::fs::read_dir(&data)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".attachments"))
            .map(|e| std::fs::read_dir(e.path()).unwrap().count())
            .sum::<usize>();
        assert_eq!(hub_files, 0, "the hub's attachment files are gone");
    }
}

#[test]
fn limits_are_published_and_refused_with_413() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let hub = Hub::start_with_options(
        &data,
        HubOptions::args(&[
            "--max-attachment-bytes",
            "200000",
            "--photo-max-side",
            "640",
        ]),
    );
    let mut monitor = Device::enrol(
        dir.path(),
        &data,
        "monitor",
        Role::CommunityMonitor,
        &[C01],
        1,
    );
    monitor.sync(&hub.url).unwrap();
    // Published: the device checks captures against the hub's limits.
    let limits = monitor.store.attachment_limits().unwrap();
    assert_eq!(
        (limits.max_file_bytes, limits.photo_max_side),
        (200_000, 640)
    );
    let w = monitor
        .store
        .create(&workplace(area(C01), "Carrière"))
        .unwrap();
    match monitor.store.add_attachment(
        w.id,
        &document(""),
        &[b"%PDF-".as_slice(), &[1u8; 299_995]].concat()[..],
    ) {
        Err(Error::Attachment(AttachmentRefusal::FileTooLarge { size, limit })) => {
            // A stream is read no further than one byte past the limit.
            assert_eq!((size, limit), (200_001, 200_000))
        }
        other => panic!("{other:?}"),
    }
    // A device that ignores them (an old app, a hostile one): its record's manifest is
    // refused at the push, and a chunk of it answered 413 with the figures.
    monitor
        .store
        .set_attachment_limits(&AttachmentLimits::default())
        .unwrap();
    let entry = monitor
        .store
        .add_attachment(
            w.id,
            &document(""),
            &[b"%PDF-".as_slice(), &[1u8; 299_995]].concat()[..],
        )
        .unwrap();
    let summary = monitor.sync(&hub.url).unwrap();
    assert_eq!(summary.refused.len(), 1, "{summary:?}");
    let (status, refusal, answer) = ask(
        &hub.url,
        &monitor,
        &AttachmentRequest::Upload {
            record: w.id,
            id: entry.id,
            offset: 0,
            bytes: vec![1u8; 65_536],
        },
    );
    // The hub does not hold the record with that manifest: nothing to add to.
    assert_eq!(status, 200);
    assert_eq!(refusal, None);
    assert_eq!(
        answer,
        AttachmentResponse::Refused {
            id: entry.id,
            reason: TransferRefusal::NotFound
        }
    );
}

#[test]
fn a_chunk_over_the_limit_of_a_stored_manifest_gets_413() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    // A hub that took a 300 KB attachment's manifest, restarted with a lower limit.
    let mut hub = Hub::start(&data);
    let mut monitor = Device::enrol(
        dir.path(),
        &data,
        "monitor",
        Role::CommunityMonitor,
        &[C01],
        1,
    );
    monitor.sync(&hub.url).unwrap();
    let w = monitor
        .store
        .create(&workplace(area(C01), "Carrière"))
        .unwrap();
    let entry = monitor
        .store
        .add_attachment(
            w.id,
            &document(""),
            &[b"%PDF-".as_slice(), &[1u8; 299_995]].concat()[..],
        )
        .unwrap();
    monitor.sync(&hub.url).unwrap();
    hub.restart_with_args(&["--max-attachment-bytes", "100000"]);
    let (status, refusal, answer) = ask(
        &hub.url,
        &monitor,
        &AttachmentRequest::Upload {
            record: w.id,
            id: entry.id,
            offset: 0,
            bytes: vec![1u8; 65_536],
        },
    );
    assert_eq!(status, 413);
    assert_eq!(refusal.as_deref(), Some("file_too_large"));
    assert_eq!(
        answer,
        AttachmentResponse::Refused {
            id: entry.id,
            reason: TransferRefusal::FileTooLarge {
                size: 300_000,
                limit: 100_000
            }
        }
    );
    // Through the client: the attachment fails with the reason, and does not block others.
    let summary = monitor
        .client(&hub.url)
        .sync_attachments(
            &mut monitor.store,
            &AttachmentSyncOptions::default(),
            |_| {},
        )
        .unwrap();
    assert_eq!(summary.failed.len(), 1);
    let info = &monitor.store.attachments(w.id).unwrap()[0];
    assert_eq!(info.state, AttachmentState::Failed);
    assert!(info.failure.is_some());
}

/// A photo captured offline on a record whose changes the hub keeps for review (its user moved
/// to another community before the phone synced): the record leaves the phone, its photo goes
/// to the hub with the entry and then leaves too, and once a supervisor accepts the entry every
/// device of the area downloads it. Nothing of either stays on the phone.
#[test]
fn a_photo_of_a_record_kept_for_review_reaches_the_hub_before_it_leaves_the_phone() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let hub = Hub::start(&data);
    let mut monitor = Device::enrol(dir.path(), &data, "m", Role::CommunityMonitor, &[C01], 1);
    let mut supervisor = Device::enrol(dir.path(), &data, "s", Role::Supervisor, &[REGION], 2);
    monitor.sync(&hub.url).unwrap();
    let known = monitor
        .store
        .create(&child(area(C01), "Affoué Kouassi", monitor.user()))
        .unwrap();
    monitor.sync(&hub.url).unwrap();

    // Offline: a photo of a case the hub holds, and a new case with its own.
    let photo: Vec<u8> = MARKER.iter().copied().cycle().take(600_000).collect();
    let on_known = monitor
        .store
        .add_attachment(known.id, &document("Champ"), &photo[..])
        .unwrap();
    let new = monitor
        .store
        .create(&child(area(C01), "Yao Brou", monitor.user()))
        .unwrap();
    let on_new = monitor
        .store
        .add_attachment(new.id, &document("Atelier"), &photo[..300_000])
        .unwrap();
    common::lifecycle::set_areas(&data, monitor.user(), &[C02]);
    let mut summary = monitor.sync(&hub.url).unwrap();
    summary.quarantined.sort();
    let mut kept = vec![known.id, new.id];
    kept.sort();
    assert_eq!(summary.quarantined, kept, "{summary:?}");
    let options = AttachmentSyncOptions::default();
    let mut up = monitor
        .client(&hub.url)
        .sync_attachments(&mut monitor.store, &options, |_| {})
        .unwrap();
    up.uploaded.sort();
    let mut photos = vec![on_known.id, on_new.id];
    photos.sort();
    assert_eq!(up.uploaded, photos, "{up:?}");
    assert!(up.failed.is_empty(), "{up:?}");
    assert_eq!(attachment_files(&monitor.store), 0);
    assert!(monitor.store.read_attachment(on_new.id).is_err());

    // While the entries wait, a supervisor edits the case the hub holds: its photo waits too.
    supervisor.sync(&hub.url).unwrap();
    let mut edited: ChildCase = supervisor.store.get(known.id).unwrap();
    edited.guardian = "Tante".into();
    supervisor.store.update(&edited).unwrap();
    supervisor.sync(&hub.url).unwrap();

    // Accepted, the records arrive with their photos.
    let (_, entries) = common::lifecycle::quarantine_list(&data);
    for entry in &entries {
        let number = entry["entry"].as_i64().unwrap();
        let out = common::lifecycle::quarantine_accept(&data, number, Some(supervisor.user()));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    supervisor.sync(&hub.url).unwrap();
    let mut down = supervisor
        .client(&hub.url)
        .sync_attachments(&mut supervisor.store, &options, |_| {})
        .unwrap();
    down.downloaded.sort();
    assert_eq!(down.downloaded, photos, "{down:?}");
    assert_eq!(
        supervisor.store.read_attachment(on_known.id).unwrap(),
        photo
    );
    assert_eq!(
        supervisor.store.read_attachment(on_new.id).unwrap(),
        &photo[..300_000]
    );
    assert!(files_containing(dir.path(), MARKER).is_empty());
}

/// The photo uploaded with changes a supervisor rejects goes from the hub with them: nothing
/// will ever name it.
#[test]
fn a_rejected_entrys_photo_leaves_the_hub() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let hub = Hub::start(&data);
    let mut monitor = Device::enrol(dir.path(), &data, "m", Role::CommunityMonitor, &[C01], 1);
    monitor.sync(&hub.url).unwrap();
    let case = monitor
        .store
        .create(&child(area(C01), "Yao Brou", monitor.user()))
        .unwrap();
    let photo: Vec<u8> = MARKER.iter().copied().cycle().take(300_000).collect();
    monitor
        .store
        .add_attachment(case.id, &document("Atelier"), &photo[..])
        .unwrap();
    common::lifecycle::set_areas(&data, monitor.user(), &[C02]);
    assert_eq!(monitor.sync(&hub.url).unwrap().quarantined, vec![case.id]);
    let up = monitor
        .client(&hub.url)
        .sync_attachments(
            &mut monitor.store,
            &AttachmentSyncOptions::default(),
            |_| {},
        )
        .unwrap();
    assert_eq!(up.uploaded.len(), 1, "{up:?}");
    assert_eq!(hub_attachments_held(&data), 1);

    let (_, entries) = common::lifecycle::quarantine_list(&data);
    let number = entries[0]["entry"].as_i64().unwrap().to_string();
    let out = common::lifecycle::admin(&data, &["quarantine", "reject"], &["--entry", &number]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(hub_attachments_held(&data), 0, "the rejected photo stays");
}

/// The attachments the hub holds bytes of: rows with segments on PostgreSQL (a row is there
/// from the push that names it), files beside the embedded store.
fn hub_attachments_held(data: &std::path::Path) -> usize {
    if let Some(url) = hub_database(data) {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let n: i64 = client
            .query_one(
                "SELECT count(DISTINCT attachment_id) FROM attachment_segments",
                &[],
            )
            .unwrap()
            .get(0);
        return n as usize;
    }
    std::fs::read_dir(data)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".attachments"))
        .map(|e| std::fs::read_dir(e.path()).unwrap().count())
        .sum()
}

/// A photo whose record reached the hub but whose upload was cut, then its user moved or
/// deactivated: the phone keeps it and uploads it after the record left; a supervisor gets
/// it. A revoked phone uploads nothing.
#[test]
fn a_cut_upload_reaches_the_hub_after_the_record_left_the_scope() {
    for mode in ["moved", "deactivated", "revoked"] {
        let dir = TempDir::new().unwrap();
        let data = dir.path().join("hub");
        let hub = Hub::start(&data);
        let mut monitor = Device::enrol(dir.path(), &data, "m", Role::CommunityMonitor, &[C01], 1);
        let mut supervisor = Device::enrol(dir.path(), &data, "s", Role::Supervisor, &[REGION], 2);
        monitor.sync(&hub.url).unwrap();
        let case = monitor
            .store
            .create(&child(area(C01), "Yao Brou", monitor.user()))
            .unwrap();
        let form: Vec<u8> = MARKER.iter().copied().cycle().take(300_000).collect();
        let entry = monitor
            .store
            .add_attachment(case.id, &document("Atelier"), &form[..])
            .unwrap();
        // The record goes; its bytes do not (the link dropped).
        monitor.sync(&hub.url).unwrap();
        let out = match mode {
            "moved" => {
                common::lifecycle::set_areas(&data, monitor.user(), &[C02]);
                None
            }
            "deactivated" => Some(common::surface::admin(
                &data,
                &["user", "deactivate", "--user", &monitor.user().to_string()],
            )),
            _ => Some(common::surface::admin(
                &data,
                &[
                    "device",
                    "revoke",
                    "--device",
                    &monitor.token.device.to_string(),
                ],
            )),
        };
        if let Some(out) = out {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let upload = |monitor: &mut Device| {
            monitor.client(&hub.url).sync_attachments(
                &mut monitor.store,
                &AttachmentSyncOptions::default(),
                |_| {},
            )
        };
        if mode == "revoked" {
            assert!(upload(&mut monitor).is_err(), "{mode}");
            assert_eq!(hub_attachments_held(&data), 0, "{mode}");
            continue;
        }
        let summary = monitor.sync(&hub.url).unwrap();
        assert!(summary.left_scope.contains(&case.id), "{mode}: {summary:?}");
        let up = upload(&mut monitor).unwrap();
        assert_eq!(up.uploaded, vec![entry.id], "{mode}: {up:?}");
        assert_eq!(hub_attachments_held(&data), 1, "{mode}");
        supervisor.sync(&hub.url).unwrap();
        let down = supervisor
            .client(&hub.url)
            .sync_attachments(
                &mut supervisor.store,
                &AttachmentSyncOptions::default(),
                |_| {},
            )
            .unwrap();
        assert_eq!(down.downloaded, vec![entry.id], "{mode}");
        assert_eq!(supervisor.store.read_attachment(entry.id).unwrap(), form);
    }
}

/// A document file of the embedded hub gone or cut short (a backup restored but for it, a
/// disk that failed) is found when the hub starts: it is held as never uploaded, and the
/// phone that captured it, told at its next sync, sends it again; the supervisor gets it
/// whole. Before, its downloads waited for ever: the phone had no reason to send it again.
#[test]
fn a_document_file_the_hub_lost_is_sent_again_by_its_phone() {
    if postgres_server().is_some() {
        return; // PostgreSQL holds attachments in rows: no file to lose.
    }
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut hub = Hub::start(&data);
    let mut monitor = Device::enrol(dir.path(), &data, "m", Role::CommunityMonitor, &[C01], 1);
    let mut supervisor = Device::enrol(dir.path(), &data, "s", Role::Supervisor, &[REGION], 2);
    monitor.sync(&hub.url).unwrap();
    let case = monitor
        .store
        .create(&child(area(C01), "Yao Brou", monitor.user()))
        .unwrap();
    let forms: Vec<Vec<u8>> = (0..2)
        .map(|n| {
            let mut form: Vec<u8> = MARKER.iter().copied().cycle().take(300_000).collect();
            form[100] = n;
            form
        })
        .collect();
    let ids: Vec<Uuid> = forms
        .iter()
        .map(|form| {
            monitor
                .store
                .add_attachment(case.id, &document("Consentement"), &form[..])
                .unwrap()
                .id
        })
        .collect();
    monitor.sync(&hub.url).unwrap();
    let transfer = |d: &mut Device, url: &str| {
        d.client(url)
            .sync_attachments(&mut d.store, &AttachmentSyncOptions::default(), |_| {})
            .unwrap()
    };
    assert_eq!(transfer(&mut monitor, &hub.url).uploaded.len(), 2);

    hub.stop();
    let cut = data
        .join("hub.db.attachments")
        .join(ids[0].simple().to_string());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&cut)
        .unwrap()
        .set_len(16 * 1024)
        .unwrap();
    hub.restart();
    monitor.sync(&hub.url).unwrap();
    let again = transfer(&mut monitor, &hub.url);
    // Both offered again (an empty chunk each), the lost one sent whole.
    assert!(again.uploaded.contains(&ids[0]), "{again:?}");
    supervisor.sync(&hub.url).unwrap();
    let fetched = transfer(&mut supervisor, &hub.url);
    assert_eq!(fetched.downloaded.len(), 2, "{fetched:?}");
    for (id, form) in ids.iter().zip(&forms) {
        assert_eq!(&supervisor.store.read_attachment(*id).unwrap(), form);
    }
    hub.stop();
    assert!(
        hub.log_tail(200).contains("gone or cut short"),
        "the hub says what it found"
    );
}

/// An attachment's id is one record's, from the push that names it: a record of another
/// device naming it (an id learnt from a peer) is refused at the push, on either store and
/// before any byte is uploaded, and the capturer's sync, upload and others' downloads go on.
/// (Before, the capturer's every sync failed with a 500.)
#[test]
fn a_record_naming_another_records_attachment_id_is_refused_and_stops_no_one() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut hub = Hub::start(&data);
    let mut monitor = Device::enrol(
        dir.path(),
        &data,
        "monitor",
        Role::CommunityMonitor,
        &[C01],
        1,
    );
    let mut neighbour = Device::enrol(
        dir.path(),
        &data,
        "neighbour",
        Role::CommunityMonitor,
        &[C01],
        2,
    );
    monitor.sync(&hub.url).unwrap();
    neighbour.sync(&hub.url).unwrap();
    let case = monitor
        .store
        .create(&child(area(C01), "Adjoua Konan", monitor.user()))
        .unwrap();
    let bytes = MARKER.repeat(2_000);
    let entry = monitor
        .store
        .add_attachment(case.id, &document("Consentement"), &bytes[..])
        .unwrap();
    monitor.sync(&hub.url).unwrap();

    // The neighbour names the id in a case of its own, before the upload began.
    let own = neighbour
        .store
        .create(&child(area(C01), "Awa Koné", neighbour.user()))
        .unwrap();
    neighbour.sync(&hub.url).unwrap();
    let mut doc = automerge::Automerge::load(&neighbour.store.export_document(own.id).unwrap())
        .unwrap()
        .with_actor(neighbour.store.actor().clone());
    let before = doc.get_heads();
    let squat = Attachment {
        captured_by: neighbour.user(),
        ..entry.clone()
    };
    vigie_core::doc::put_attachment(&mut doc, &squat, &rules::author(&neighbour)).unwrap();
    let push = vigie_core::sync::wire::PushEntry {
        id: own.id,
        heads: doc.get_heads().iter().map(|h| h.0).collect(),
        changes: doc.save_after(&before),
    };
    match &rules::push(&neighbour, &hub.url, vec![push])[&own.id] {
        vigie_core::sync::wire::PushOutcome::Refused {
            reason: vigie_core::sync::Refusal::BreaksValidation,
            detail: Some(detail),
        } => assert_eq!(detail.field, "attachments"),
        outcome => panic!("{outcome:?}"),
    }

    let options = AttachmentSyncOptions::default();
    let summary = monitor.sync(&hub.url).unwrap();
    assert!(
        summary.refused.is_empty() && summary.failed.is_empty(),
        "{summary:?}"
    );
    let up = monitor
        .client(&hub.url)
        .sync_attachments(&mut monitor.store, &options, |_| {})
        .unwrap();
    assert_eq!(up.uploaded, vec![entry.id]);
    neighbour.sync(&hub.url).unwrap();
    let down = neighbour
        .client(&hub.url)
        .sync_attachments(&mut neighbour.store, &options, |_| {})
        .unwrap();
    assert_eq!(down.downloaded, vec![entry.id]);
    assert_eq!(neighbour.store.read_attachment(entry.id).unwrap(), bytes);
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// An attachment its capturer removes from the record (a consent form withdrawn) leaves the hub
/// with its key and its bytes, on either store: none of it stays at rest.
#[test]
fn an_attachment_removed_from_its_record_leaves_the_hub() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut hub = Hub::start(&data);
    let mut monitor = Device::enrol(
        dir.path(),
        &data,
        "monitor",
        Role::CommunityMonitor,
        &[C01],
        1,
    );
    monitor.sync(&hub.url).unwrap();
    let case = monitor
        .store
        .create(&child(area(C01), "Adjoua Konan", monitor.user()))
        .unwrap();
    let bytes = MARKER.repeat(2_000);
    let entry = monitor
        .store
        .add_attachment(case.id, &document("Consentement"), &bytes[..])
        .unwrap();
    monitor.sync(&hub.url).unwrap();
    let up = monitor
        .client(&hub.url)
        .sync_attachments(
            &mut monitor.store,
            &AttachmentSyncOptions::default(),
            |_| {},
        )
        .unwrap();
    assert_eq!(up.uploaded, vec![entry.id]);
    assert_eq!(hub_attachments_held(&data), 1);

    // A colleague's edit of the case waits for review (she moved) while the form is removed:
    // its row stays while the entry waits, and goes once the entry is accepted.
    let mut colleague = Device::enrol(
        dir.path(),
        &data,
        "colleague",
        Role::CommunityMonitor,
        &[C01],
        2,
    );
    colleague.sync(&hub.url).unwrap();
    let mut edited: ChildCase = colleague.store.get(case.id).unwrap();
    edited.notes = "Vue au marché.".into();
    colleague.store.update(&edited).unwrap();
    common::lifecycle::set_areas(&data, colleague.user(), &[C02]);
    assert_eq!(colleague.sync(&hub.url).unwrap().quarantined, vec![case.id]);

    monitor.store.remove_attachment(case.id, entry.id).unwrap();
    monitor.sync(&hub.url).unwrap();
    let (_, entries) = common::lifecycle::quarantine_list(&data);
    let number = entries[0]["entry"].as_i64().unwrap();
    let accepted = common::lifecycle::quarantine_accept(&data, number, None);
    assert!(
        accepted.status.success(),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
    if let Some(url) = hub_database(&data) {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let rows: i64 = client
            .query_one(
                "SELECT count(*) FROM attachments WHERE id = $1",
                &[&entry.id],
            )
            .unwrap()
            .get(0);
        assert_eq!(rows, 0, "the row, its key and its segments stay");
    } else {
        // The embedded hub collects the file whose row went when it next opens.
        hub.stop();
        hub.restart();
    }
    assert_eq!(hub_attachments_held(&data), 0);
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// A link that sends each request twice (a middlebox, an HTTP stack retrying a POST): the
/// chunk the hub holds already costs the device nothing of its hour. Each was charged again,
/// and a 3 MiB document stuck at 2 MiB taken for a 4 MiB hour, session after session.
#[test]
fn a_chunk_sent_twice_is_charged_once() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut monitor = Device::enrol(
        dir.path(),
        &data,
        "monitor",
        Role::CommunityMonitor,
        &[C01],
        1,
    );
    let hub = Hub::start_with_options(
        &data,
        HubOptions::args(&["--max-device-attachment-bytes-per-hour", "4194304"]),
    );
    monitor.sync(&hub.url).unwrap();
    let case = monitor
        .store
        .create(&child(area(C01), "Adjoua Konan", monitor.user()))
        .unwrap();
    let mut bytes = MARKER.to_vec();
    let mut noise = vec![0u8; 3 * 1024 * 1024];
    rand::thread_rng().fill_bytes(&mut noise);
    bytes.extend(noise);
    monitor
        .store
        .add_attachment(case.id, &document("Pièce"), &bytes[..])
        .unwrap();
    monitor.sync(&hub.url).unwrap();
    let client = monitor.client(&hub.url);
    let sent = vigie_core::sync::sync_attachments(
        &mut monitor.store,
        &AttachmentSyncOptions::default(),
        |request| {
            client.exchange_attachment(request)?;
            client.exchange_attachment(request)
        },
        |_| {},
    )
    .unwrap();
    assert_eq!(sent.uploaded.len(), 1, "{sent:?}");
    assert!(
        !hub.log_tail(200)
            .contains("more attachments' bytes than the hub takes"),
        "{}",
        hub.log_tail(20)
    );
}

/// A device's attachments are taken up to an hour's bytes (`--max-device-attachment-bytes-per-
/// hour`): an altered app uploaded 130 MiB of documents in 80 s, which phones of the area then
/// downloaded. Past it, the hub takes no chunk, the device leaves its other uploads for a
/// later session (a session ends well, in a few exchanges, nothing lost), and other devices
/// upload as before.
#[test]
fn a_device_s_attachments_past_its_hour_wait_for_a_later_session() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut monitor = Device::enrol(
        dir.path(),
        &data,
        "monitor",
        Role::CommunityMonitor,
        &[C01],
        1,
    );
    let mut other = Device::enrol(
        dir.path(),
        &data,
        "other",
        Role::CommunityMonitor,
        &[C01],
        2,
    );
    let hub = Hub::start_with_options(
        &data,
        HubOptions::args(&["--max-device-attachment-bytes-per-hour", "4194304"]),
    );
    monitor.sync(&hub.url).unwrap();
    other.sync(&hub.url).unwrap();
    let case = monitor
        .store
        .create(&child(area(C01), "Adjoua Konan", monitor.user()))
        .unwrap();
    let document_of = |n: usize| {
        let mut bytes = MARKER.to_vec();
        let mut noise = vec![0u8; n];
        rand::thread_rng().fill_bytes(&mut noise);
        bytes.extend(noise);
        bytes
    };
    for i in 0..5 {
        monitor
            .store
            .add_attachment(
                case.id,
                &document(&format!("Pièce {i}")),
                &document_of(1_500_000)[..],
            )
            .unwrap();
    }
    monitor.sync(&hub.url).unwrap();
    let options = AttachmentSyncOptions::default();
    let sent = monitor
        .client(&hub.url)
        .sync_attachments(&mut monitor.store, &options, |_| {})
        .unwrap();
    assert_eq!(sent.uploaded.len(), 2, "{sent:?}");
    assert!(sent.failed.is_empty(), "{sent:?}");
    // Some 6 MB for 4 MiB taken: the chunks, and one that found the hour spent.
    assert!(sent.round_trips <= 20, "{sent:?}");
    let again = monitor
        .client(&hub.url)
        .sync_attachments(&mut monitor.store, &options, |_| {})
        .unwrap();
    assert!(
        again.uploaded.is_empty() && again.round_trips <= 2,
        "{again:?}"
    );
    // Another device's upload goes as before.
    let theirs = other
        .store
        .create(&child(area(C01), "Awa", other.user()))
        .unwrap();
    other
        .store
        .add_attachment(
            theirs.id,
            &document("Consentement"),
            &document_of(300_000)[..],
        )
        .unwrap();
    other.sync(&hub.url).unwrap();
    let theirs_sent = other
        .client(&hub.url)
        .sync_attachments(&mut other.store, &options, |_| {})
        .unwrap();
    assert_eq!(theirs_sent.uploaded.len(), 1, "{theirs_sent:?}");
    assert_eq!(
        hub.log_tail(200)
            .matches("more attachments' bytes than the hub takes")
            .count(),
        1,
        "{}",
        hub.log_tail(20)
    );
}

/// Each file counts at least 64 KiB against its device's hour (`FILE_CHARGE_BYTES`): an
/// altered app's 5,000 files of 5 bytes each passed as 25 KB of the hour, and cost the hub
/// 20 MiB of disk and every phone of the area 5,000 round trips. Past the files an hour holds,
/// the rest wait for a later session, said once in the log.
#[test]
fn many_tiny_files_count_as_files_against_the_hour() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut monitor = Device::enrol(
        dir.path(),
        &data,
        "monitor",
        Role::CommunityMonitor,
        &[C01],
        1,
    );
    let hub = Hub::start_with_options(
        &data,
        HubOptions::args(&["--max-device-attachment-bytes-per-hour", "4194304"]),
    );
    monitor.sync(&hub.url).unwrap();
    let per_hour = 4_194_304 / vigie_core::sync::FILE_CHARGE_BYTES as usize;
    for c in 0..4 {
        let case = monitor
            .store
            .create(&child(area(C01), &format!("Enfant {c}"), monitor.user()))
            .unwrap();
        for i in 0..20 {
            monitor
                .store
                .add_attachment(case.id, &document(&format!("Pièce {i}")), MARKER)
                .unwrap();
        }
    }
    monitor.sync(&hub.url).unwrap();
    let sent = monitor
        .client(&hub.url)
        .sync_attachments(
            &mut monitor.store,
            &AttachmentSyncOptions::default(),
            |_| {},
        )
        .unwrap();
    assert_eq!(sent.uploaded.len(), per_hour, "{sent:?}");
    assert!(sent.failed.is_empty(), "{sent:?}");
    assert_eq!(
        hub.log_tail(400)
            .matches("more attachments' bytes than the hub takes")
            .count(),
        1,
        "{}",
        hub.log_tail(20)
    );
}
