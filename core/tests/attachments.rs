//! Attachments on real stores: capture (photos re-encoded without their metadata, limits),
//! offline merges of manifests, chunked transfers cut at random and resumed, the hub's checks
//! (hash, scope), erasure, and bytes at rest.

use crate::common;

use chrono::{FixedOffset, TimeZone};
use common::Device;
use image::{ImageDecoder, ImageReader};
use rand::{Rng, SeedableRng};
use std::io::{Cursor, Read};
use std::path::Path;
use tempfile::TempDir;
use uuid::Uuid;
use vigie_core::sync::{
    AttachmentRequest, AttachmentResponse, AttachmentSyncOptions, HubLimits, HubStorage, Principal,
    TransferRefusal, decode_attachment_response, encode_attachment_request, erase_record,
    sync_attachments,
};
use vigie_core::*;

fn device(dir: &TempDir, name: &str, role: Role, areas: &[&str]) -> Device {
    common::device(dir.path(), name, role, areas)
}

/// A hub with the sample area tree, and devices of these roles and areas that synced once
/// (they know their role and the tree).
fn world(devices: &[(&str, Role, &[&str])]) -> (TempDir, Store, Vec<Device>) {
    let dir = TempDir::new().unwrap();
    let mut hub = common::hub_store(&dir.path().join("hub.db"));
    let devices = devices
        .iter()
        .map(|(name, role, areas)| {
            let mut d = device(&dir, name, *role, areas);
            sync(&mut d, &mut hub);
            d
        })
        .collect();
    (dir, hub, devices)
}

const MONITOR: (&str, Role, &[&str]) = ("a", Role::CommunityMonitor, &["CI-R1-D1-C01"]);
const SUPERVISOR: (&str, Role, &[&str]) = ("s", Role::Supervisor, &["CI-R1"]);

fn c1() -> Area {
    Area::new("CI", "CI-R1", "CI-R1-D1", "CI-R1-D1-C01")
}

fn sync(d: &mut Device, hub: &mut Store) {
    common::sync(&mut d.store, hub, &d.principal);
}

/// The hub's answer to one attachment request of `who`, in-process.
fn ask(hub: &mut Store, who: &Principal, request: AttachmentRequest) -> AttachmentResponse {
    let request = encode_attachment_request(&request);
    let answer = hub
        .hub_attachment(who, &request, &HubLimits::default())
        .unwrap();
    decode_attachment_response(&answer, usize::MAX).unwrap()
}

/// Transfers `d`'s attachments with the hub in-process, as `options` say.
fn transfer(
    d: &mut Device,
    hub: &mut Store,
    options: &AttachmentSyncOptions,
) -> vigie_core::sync::AttachmentSummary {
    let who = d.principal.clone();
    sync_attachments(
        &mut d.store,
        options,
        |request| {
            hub.hub_attachment(&who, request, &HubLimits::default())
                .map_err(|e| e.to_string())
        },
        |_| {},
    )
    .expect("attachment session")
}

/// A visit to a new workplace in C01, created on `d`.
fn new_visit(d: &mut Device) -> Visit {
    let w = d
        .store
        .create(&Workplace::new(
            "Plantation Aké",
            "cocoa",
            Formality::Informal,
            c1(),
        ))
        .unwrap();
    let start = FixedOffset::east_opt(0)
        .unwrap()
        .with_ymd_and_hms(2026, 4, 2, 9, 0, 0)
        .unwrap();
    d.store
        .create(&Visit::new(
            VisitKind::CommunityMonitoring,
            &w,
            d.principal.user,
            start,
        ))
        .unwrap()
}

const GPS_MARKER: &[u8] = b"VIGIE-SECRET-GPS-5.3167N";

/// A JPEG of `w` × `h` pixels carrying an EXIF block with a GPS position and a marker text.
fn jpeg_with_gps(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut plain = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut plain), image::ImageFormat::Jpeg)
        .unwrap();
    // TIFF (little-endian): IFD0 with ImageDescription (the marker) and a pointer to the GPS
    // IFD, which holds GPSLatitudeRef and GPSLatitude.
    let mut tiff: Vec<u8> = b"II*\0".to_vec();
    tiff.extend(8u32.to_le_bytes());
    let ifd0_entries = 2u16;
    let ifd0_len = 2 + 12 * ifd0_entries as u32 + 4;
    let marker_at = 8 + ifd0_len;
    let gps_at = marker_at + GPS_MARKER.len() as u32 + 1;
    tiff.extend(ifd0_entries.to_le_bytes());
    // ImageDescription, ASCII.
    tiff.extend(0x010Eu16.to_le_bytes());
    tiff.extend(2u16.to_le_bytes());
    tiff.extend((GPS_MARKER.len() as u32 + 1).to_le_bytes());
    tiff.extend(marker_at.to_le_bytes());
    // GPSInfo, LONG.
    tiff.extend(0x8825u16.to_le_bytes());
    tiff.extend(4u16.to_le_bytes());
    tiff.extend(1u32.to_le_bytes());
    tiff.extend(gps_at.to_le_bytes());
    tiff.extend(0u32.to_le_bytes());
    tiff.extend(GPS_MARKER);
    tiff.push(0);
    let gps_entries = 2u16;
    let rationals_at = gps_at + 2 + 12 * gps_entries as u32 + 4;
    tiff.extend(gps_entries.to_le_bytes());
    tiff.extend(1u16.to_le_bytes());
    tiff.extend(2u16.to_le_bytes());
    tiff.extend(2u32.to_le_bytes());
    tiff.extend(*b"N\0\0\0");
    tiff.extend(2u16.to_le_bytes());
    tiff.extend(5u16.to_le_bytes());
    tiff.extend(3u32.to_le_bytes());
    tiff.extend(rationals_at.to_le_bytes());
    tiff.extend(0u32.to_le_bytes());
    for (n, d) in [(5u32, 1u32), (19, 1), (0, 1)] {
        tiff.extend(n.to_le_bytes());
        tiff.extend(d.to_le_bytes());
    }
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(&tiff);
    let mut out = plain[..2].to_vec();
    out.extend([0xFF, 0xE1]);
    out.extend(((app1.len() + 2) as u16).to_be_bytes());
    out.extend(&app1);
    out.extend(&plain[2..]);
    out
}

fn exif_of(jpeg: &[u8]) -> Option<Vec<u8>> {
    let mut decoder = ImageReader::new(Cursor::new(jpeg))
        .with_guessed_format()
        .unwrap()
        .into_decoder()
        .unwrap();
    decoder.exif_metadata().unwrap()
}

fn photo(caption: &str) -> NewAttachment {
    NewAttachment {
        kind: AttachmentKind::Photo,
        media_type: "image/jpeg".into(),
        caption: caption.into(),
    }
}

/// `bytes` as a PDF's: the same size, beginning with the magic number a PDF has.
fn pdf(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let magic = b"%PDF-";
    let n = magic.len().min(out.len());
    out[..n].copy_from_slice(&magic[..n]);
    out
}

fn document() -> NewAttachment {
    NewAttachment {
        kind: AttachmentKind::Document,
        media_type: "application/pdf".into(),
        caption: "Formulaire de consentement".into(),
    }
}

/// Every byte of every file under `dir`.
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `n` documents of `size` bytes each (each of its own bytes), attached to `record` on `d`:
/// their contents and ids.
fn documents_on(d: &mut Device, record: Uuid, n: u8, size: usize) -> (Vec<Vec<u8>>, Vec<Uuid>) {
    let contents: Vec<Vec<u8>> = (1..=n).map(|b| pdf(&vec![b; size])).collect();
    let ids = contents
        .iter()
        .map(|data| {
            d.store
                .add_attachment(record, &document(), &data[..])
                .unwrap()
                .id
        })
        .collect();
    (contents, ids)
}

/// The sealed file of attachment `id` in `store`'s attachment directory.
fn sealed_file_of(store: &Store, id: Uuid) -> std::path::PathBuf {
    attachment_files(store)
        .into_iter()
        .find(|p| p.file_name().unwrap().to_string_lossy() == id.simple().to_string())
        .expect("the attachment's file")
}

/// A file captured on the phone and damaged on its storage (a flipped byte, a cut, a cleaner
/// app that deleted it) fails alone, named, and the session uploads the others: it stopped
/// every transfer of the phone, session after session, with no attachment marked.
#[test]
fn a_damaged_file_on_the_phone_fails_its_own_upload_only() {
    let (_dir, mut hub, mut devices) = world(&[MONITOR]);
    let mut a = devices.remove(0);
    let visit = new_visit(&mut a);
    let (_, ids) = documents_on(&mut a, visit.id, 4, 150_000);
    sync(&mut a, &mut hub);
    let file_of = |id: Uuid| sealed_file_of(&a.store, id);
    let mut bytes = std::fs::read(file_of(ids[0])).unwrap();
    bytes[70_000] ^= 1;
    std::fs::write(file_of(ids[0]), bytes).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(file_of(ids[1]))
        .unwrap()
        .set_len(1000)
        .unwrap();
    std::fs::remove_file(file_of(ids[2])).unwrap();

    // Tried again each session (storage put back may read again), failing alone each time.
    for session in 0..2 {
        let summary = transfer(&mut a, &mut hub, &AttachmentSyncOptions::default());
        let uploaded = if session == 0 { vec![ids[3]] } else { vec![] };
        assert_eq!(summary.uploaded, uploaded, "{summary:?}");
        let mut failed: Vec<Uuid> = summary.failed.iter().map(|(id, _)| *id).collect();
        failed.sort();
        let mut expected = ids[..3].to_vec();
        expected.sort();
        assert_eq!(failed, expected, "{summary:?}");
        assert!(
            summary
                .failed
                .iter()
                .all(|(_, why)| *why == TransferRefusal::CapturedFileUnreadable)
        );
    }
    let state = a.store.record_sync_state(visit.id).unwrap();
    assert_eq!(
        (state.attachments_failed, state.attachments_pending_upload),
        (3, 0)
    );
    for info in a.store.attachments(visit.id).unwrap() {
        if info.attachment.id == ids[3] {
            assert_eq!(info.state, AttachmentState::Uploaded);
        } else {
            assert_eq!(info.state, AttachmentState::Failed);
            assert!(info.failure.unwrap().contains("capture it again"));
        }
    }
}

fn attachment_files(store: &Store) -> Vec<std::path::PathBuf> {
    let mut name = store.path().as_os_str().to_owned();
    name.push(".attachments");
    match std::fs::read_dir(std::path::PathBuf::from(name)) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn a_photo_loses_its_exif_and_gps_and_is_downscaled() {
    let (_dir, _hub, mut devices) = world(&[MONITOR]);
    let mut d = devices.remove(0);
    let visit = new_visit(&mut d);
    let original = jpeg_with_gps(2400, 1200);
    assert!(contains(&original, GPS_MARKER));
    assert!(exif_of(&original).is_some(), "the test photo carries EXIF");

    let entry = d
        .store
        .add_attachment(visit.id, &photo("Enfants au séchage"), &original[..])
        .unwrap();
    assert_eq!(entry.media_type, "image/jpeg");
    let stored = d.store.read_attachment(entry.id).unwrap();
    assert_eq!(stored.len() as u64, entry.size);
    assert!(!contains(&stored, GPS_MARKER));
    assert!(!contains(&stored, b"Exif"));
    assert!(exif_of(&stored).is_none());
    let img = image::load_from_memory(&stored).unwrap();
    assert_eq!((img.width(), img.height()), (1600, 800));
    // The hash names the stored bytes.
    use sha2::Digest;
    let sha: String = sha2::Sha256::digest(&stored)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(entry.sha256, sha);

    // The configured side is data: a smaller one applies to the next capture.
    let mut limits = d.store.attachment_limits().unwrap();
    limits.photo_max_side = 300;
    d.store.set_attachment_limits(&limits).unwrap();
    let small = d
        .store
        .add_attachment(visit.id, &photo(""), &original[..])
        .unwrap();
    let img = image::load_from_memory(&d.store.read_attachment(small.id).unwrap()).unwrap();
    assert_eq!(img.width().max(img.height()), 300);

    let listed = d.store.attachments(visit.id).unwrap();
    assert_eq!(listed.len(), 2);
    assert!(
        listed
            .iter()
            .all(|a| a.state == AttachmentState::PendingUpload)
    );
    // The record reads as before: the manifest is apart from its fields.
    let mut read = d.store.get::<Visit>(visit.id).unwrap();
    read.findings = "Séchage du cacao".into();
    d.store.update(&read).unwrap();
    assert_eq!(d.store.attachments(visit.id).unwrap().len(), 2);
    let state = d.store.record_sync_state(visit.id).unwrap();
    assert_eq!(state.attachments, 2);
    assert_eq!(state.attachments_pending_upload, 2);
    assert!(!state.synced());
}

#[test]
fn bad_input_gets_typed_errors_and_leaves_nothing() {
    let (_dir, _hub, mut devices) = world(&[MONITOR]);
    let mut d = devices.remove(0);
    let visit = new_visit(&mut d);
    let limits = AttachmentLimits {
        max_file_bytes: 1000,
        ..AttachmentLimits::default()
    };
    d.store.set_attachment_limits(&limits).unwrap();
    let heads = d.store.get::<Visit>(visit.id).unwrap().version;

    match d
        .store
        .add_attachment(visit.id, &document(), &pdf(&[7u8; 5000])[..])
    {
        Err(Error::Attachment(AttachmentRefusal::FileTooLarge { size, limit })) => {
            // Read no further than one byte past the limit.
            assert_eq!((size, limit), (1001, 1000));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        d.store.add_attachment(visit.id, &document(), &[][..]),
        Err(Error::Attachment(AttachmentRefusal::Empty))
    ));
    let unknown = NewAttachment {
        media_type: "application/x-msdownload".into(),
        ..document()
    };
    assert!(matches!(
        d.store.add_attachment(visit.id, &unknown, &[1u8; 10][..]),
        Err(Error::Attachment(
            AttachmentRefusal::UnsupportedMediaType { .. }
        ))
    ));
    assert!(matches!(
        d.store
            .add_attachment(visit.id, &photo(""), &b"not a picture at all"[..]),
        Err(Error::Attachment(AttachmentRefusal::NotAnImage))
    ));
    // A JPEG cut short decodes with its missing part grey: refused, as a photo or a document.
    let whole = jpeg_with_gps(400, 300);
    let cut = &whole[..whole.len() / 2];
    assert!(matches!(
        d.store.add_attachment(visit.id, &photo(""), cut),
        Err(Error::Attachment(AttachmentRefusal::NotAnImage))
    ));
    let scanned = NewAttachment {
        media_type: "image/jpeg".into(),
        ..document()
    };
    // (Within this test's byte limit on documents.)
    let refused = d.store.add_attachment(visit.id, &scanned, &whole[..900]);
    assert!(
        matches!(
            refused,
            Err(Error::Attachment(AttachmentRefusal::NotAnImage))
        ),
        "{refused:?}"
    );
    // A source that fails halfway (the app's file vanished, a crash of the reader).
    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("gone"));
            }
            let n = buf.len().min(self.0).min(100);
            buf[..n].fill(1);
            self.0 -= n;
            Ok(n)
        }
    }
    assert!(
        d.store
            .add_attachment(visit.id, &document(), Failing(500))
            .is_err()
    );
    assert!(d.store.attachments(visit.id).unwrap().is_empty());
    assert!(
        attachment_files(&d.store).is_empty(),
        "nothing half-written"
    );
    assert_eq!(d.store.get::<Visit>(visit.id).unwrap().version, heads);
    // A user and reference documents take no attachments.
    assert!(matches!(
        d.store
            .add_attachment(Uuid::now_v7(), &document(), &pdf(&[1u8; 10])[..]),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn a_file_left_by_a_crash_before_the_commit_is_collected() {
    let dir = TempDir::new().unwrap();
    let mut d = device(&dir, "monitor", Role::CommunityMonitor, &["CI-R1-D1-C01"]);
    let visit = new_visit(&mut d);
    d.store
        .add_attachment(visit.id, &document(), &pdf(&[3u8; 2000])[..])
        .unwrap();
    let files = attachment_files(&d.store);
    assert_eq!(files.len(), 1);
    // What a crash between the rename and the commit leaves: a sealed file no row names,
    // and a temporary file.
    let dir_of = files[0].parent().unwrap().to_path_buf();
    std::fs::write(dir_of.join(Uuid::now_v7().simple().to_string()), b"orphan").unwrap();
    std::fs::write(dir_of.join("tmp-123"), b"half").unwrap();
    let path = d.store.path().to_path_buf();
    let user = d.store.user_id();
    d.store.close().unwrap();
    let store = Store::open(StoreConfig::new(
        path,
        Encryption::Key(common::DEVICE_KEY),
        user,
    ))
    .unwrap();
    assert_eq!(attachment_files(&store), files);
}

#[test]
fn two_devices_attach_offline_and_both_survive_the_merge() {
    let (_dir, mut hub, mut devices) = world(&[MONITOR, ("b", Role::Inspector, &["CI-R1-D1"])]);
    let (mut a, mut b) = (devices.remove(0), devices.remove(0));
    let visit = new_visit(&mut a);
    sync(&mut a, &mut hub);
    sync(&mut b, &mut hub);
    // Offline, each adds a photo to the same visit.
    let pa = a
        .store
        .add_attachment(visit.id, &photo("A"), &jpeg_with_gps(64, 48)[..])
        .unwrap();
    let pb = b
        .store
        .add_attachment(visit.id, &photo("B"), &jpeg_with_gps(48, 64)[..])
        .unwrap();
    for _ in 0..2 {
        sync(&mut a, &mut hub);
        sync(&mut b, &mut hub);
    }
    let options = AttachmentSyncOptions::default();
    // A uploads its photo (B's is not on the hub yet), B uploads its own and fetches A's, then
    // A fetches B's.
    let first = transfer(&mut a, &mut hub, &options);
    assert_eq!((first.uploaded, first.downloaded), (vec![pa.id], vec![]));
    let second = transfer(&mut b, &mut hub, &options);
    assert_eq!(
        (second.uploaded, second.downloaded),
        (vec![pb.id], vec![pa.id])
    );
    assert_eq!(transfer(&mut a, &mut hub, &options).downloaded, vec![pb.id]);
    for d in [&a, &b] {
        let listed = d.store.attachments(visit.id).unwrap();
        let ids: Vec<Uuid> = listed.iter().map(|i| i.attachment.id).collect();
        assert_eq!(ids.len(), 2);
        assert!(ids.contains(&pa.id) && ids.contains(&pb.id));
        assert!(listed.iter().all(|i| i.state.has_bytes()), "{listed:?}");
        assert!(d.store.record_sync_state(visit.id).unwrap().synced());
    }
    assert_eq!(
        a.store.read_attachment(pb.id).unwrap(),
        b.store.read_attachment(pb.id).unwrap()
    );
}

/// A transport that loses requests or responses at random: a cut before the hub handled the
/// request, or after (the answer lost). Counts the chunk bytes the hub received.
#[test]
fn transfers_cut_at_random_resume_and_resend_at_most_a_chunk_per_cut() {
    let (_dir, mut hub, mut devices) = world(&[MONITOR, ("b", Role::Supervisor, &["CI-R1"])]);
    let (mut a, mut b) = (devices.remove(0), devices.remove(0));
    let visit = new_visit(&mut a);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(15);
    let size = 3 * 1024 * 1024 + 12_345;
    let bytes: Vec<u8> = pdf(&(0..size).map(|_| rng.r#gen::<u8>()).collect::<Vec<_>>());
    let entry = a
        .store
        .add_attachment(visit.id, &document(), &bytes[..])
        .unwrap();
    sync(&mut a, &mut hub);
    sync(&mut b, &mut hub);
    let options = AttachmentSyncOptions::default();
    let chunk = options.chunk_bytes;

    // Until the attachment is whole: a session may stop at a cut (the link down) or go on
    // past it (a chunk sent again smaller), so cuts are counted where they happen.
    let run = |d: &mut Device, hub: &mut Store, rng: &mut rand_chacha::ChaCha8Rng| {
        let (mut cuts, mut payload, mut sessions) = (0usize, 0usize, 0usize);
        loop {
            sessions += 1;
            assert!(sessions < 200, "the transfer makes no progress");
            let state = d.store.attachments(visit.id).unwrap()[0].state;
            if sessions > 1
                && matches!(
                    state,
                    AttachmentState::Uploaded | AttachmentState::Available
                )
            {
                return (cuts, payload);
            }
            let who = d.principal.clone();
            let result = sync_attachments(
                &mut d.store,
                &options,
                |request| {
                    let cut: f64 = rng.r#gen();
                    if cut < 0.15 {
                        cuts += 1;
                        return Err("link cut before the hub".into());
                    }
                    let response = hub
                        .hub_attachment(&who, request, &HubLimits::default())
                        .map_err(|e| e.to_string())?;
                    match decode_attachment_response(&response, usize::MAX).unwrap() {
                        AttachmentResponse::Held { .. } => payload += request.len(),
                        AttachmentResponse::Chunk { ref bytes, .. } => payload += bytes.len(),
                        AttachmentResponse::Refused { .. } => {}
                    }
                    if cut < 0.3 {
                        cuts += 1;
                        return Err("link cut after the hub".into());
                    }
                    Ok(response)
                },
                |_| {},
            );
            match result {
                Ok(_) | Err(Error::Transport { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
    };
    let (cuts, payload) = run(&mut a, &mut hub, &mut rng);
    assert!(cuts > 0, "the test cut the link");
    assert!(
        payload <= size + (cuts + 1) * (chunk + 1024),
        "upload: {payload} bytes for {size} with {cuts} cuts"
    );
    assert_eq!(
        a.store.attachments(visit.id).unwrap()[0].state,
        AttachmentState::Uploaded
    );
    let (cuts, payload) = run(&mut b, &mut hub, &mut rng);
    assert!(
        payload <= size + (cuts + 1) * chunk,
        "download: {payload} bytes for {size} with {cuts} cuts"
    );
    assert_eq!(b.store.read_attachment(entry.id).unwrap(), bytes);
    assert_eq!(
        b.store.attachments(visit.id).unwrap()[0].state,
        AttachmentState::Available
    );
}

/// A link that drops every connection past 160 KB (a weak rural signal): a 200 KB file goes
/// up and comes down in chunks sent again smaller, and a document queued behind another file
/// that cannot pass goes on. At 256 KiB a chunk, the file never moved, nor anything after it.
#[test]
fn a_link_that_cannot_carry_a_whole_chunk_moves_files_in_smaller_ones() {
    let (_dir, mut hub, mut devices) = world(&[MONITOR, ("b", Role::Supervisor, &["CI-R1"])]);
    let (mut a, mut b) = (devices.remove(0), devices.remove(0));
    let visit = new_visit(&mut a);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(16);
    let random = |n: usize, rng: &mut rand_chacha::ChaCha8Rng| -> Vec<u8> {
        pdf(&(0..n).map(|_| rng.r#gen::<u8>()).collect::<Vec<_>>())
    };
    let attach = |d: &mut Device, bytes: &[u8]| {
        let entry = d.store.add_attachment(visit.id, &document(), bytes);
        entry.unwrap().id
    };
    let big = random(200_000, &mut rng);
    let small = random(12_000, &mut rng);
    let big_id = attach(&mut a, &big);
    let small_id = attach(&mut a, &small);
    sync(&mut a, &mut hub);
    sync(&mut b, &mut hub);
    const CUT: usize = 160_000;
    let session = |d: &mut Device, hub: &mut Store| {
        let who = d.principal.clone();
        sync_attachments(
            &mut d.store,
            &AttachmentSyncOptions::default(),
            |request| {
                if request.len() > CUT {
                    return Err("cut on the way".into());
                }
                let response = hub
                    .hub_attachment(&who, request, &HubLimits::default())
                    .map_err(|e| e.to_string())?;
                if response.len() > CUT {
                    return Err("cut on the way back".into());
                }
                Ok(response)
            },
            |_| {},
        )
        .expect("the session goes on past the cuts")
    };
    let up = session(&mut a, &mut hub);
    assert_eq!(up.uploaded.len(), 2, "{up:?}");
    let down = session(&mut b, &mut hub);
    assert_eq!(down.downloaded.len(), 2, "{down:?}");
    assert_eq!(b.store.read_attachment(big_id).unwrap(), big);
    assert_eq!(b.store.read_attachment(small_id).unwrap(), small);

    // A file no chunk of which passes (a link cut past 16 KB) waits; the one after it goes.
    let stuck = random(100_000, &mut rng);
    let stuck_id = attach(&mut a, &stuck);
    let after = random(8_000, &mut rng);
    let after_id = attach(&mut a, &after);
    sync(&mut a, &mut hub);
    let who = a.principal.clone();
    let mut sent = 0;
    let summary = sync_attachments(
        &mut a.store,
        &AttachmentSyncOptions::default(),
        |request| {
            sent += 1;
            if request.len() > 16_000 {
                return Err("cut".into());
            }
            hub.hub_attachment(&who, request, &HubLimits::default())
                .map_err(|e| e.to_string())
        },
        |_| {},
    )
    .unwrap();
    assert_eq!(summary.uploaded, vec![after_id], "{summary:?}");
    assert!(sent < 12, "{sent} requests");
    let states: Vec<(Uuid, AttachmentState)> = a
        .store
        .attachments(visit.id)
        .unwrap()
        .into_iter()
        .map(|i| (i.attachment.id, i.state))
        .collect();
    assert!(
        states.contains(&(stuck_id, AttachmentState::PendingUpload)),
        "{states:?}"
    );
}

/// An upload in chunks that end inside the hub's segments (not an honest app's, which sends
/// whole ones): each answer says what the hub keeps, and the upload, resumed from there, ends
/// whole. The hub had answered 100 bytes held and kept none, then ignored the next chunk.
#[test]
fn an_upload_in_odd_chunks_is_told_what_the_hub_keeps() {
    let (_dir, mut hub, mut devices) = world(&[MONITOR]);
    let mut a = devices.remove(0);
    let visit = new_visit(&mut a);
    let data = pdf(&[7u8; 200_000]);
    let entry = a
        .store
        .add_attachment(visit.id, &document(), &data[..])
        .unwrap();
    sync(&mut a, &mut hub);
    let mut offset = 0u64;
    let mut answers = 0;
    loop {
        let end = (offset as usize + 100_000).min(data.len());
        let answer = ask(
            &mut hub,
            &a.principal,
            AttachmentRequest::Upload {
                record: visit.id,
                id: entry.id,
                offset,
                bytes: data[offset as usize..end].to_vec(),
            },
        );
        answers += 1;
        match answer {
            AttachmentResponse::Held {
                held,
                complete: false,
                ..
            } => {
                assert_eq!(held % (64 * 1024), 0, "whole segments: {held}");
                assert!(held > offset, "moves on from {offset}: {held}");
                offset = held;
            }
            AttachmentResponse::Held {
                complete: true,
                held,
                ..
            } => {
                assert_eq!(held, data.len() as u64);
                break;
            }
            other => panic!("{other:?}"),
        }
        assert!(answers < 10, "the upload moves on");
    }
}

#[test]
fn the_hub_refuses_a_flipped_byte_and_strangers() {
    let (_dir, mut hub, mut devices) = world(&[
        MONITOR,
        ("other", Role::CommunityMonitor, &["CI-R1-D2-C01"]),
    ]);
    let (mut a, other) = (devices.remove(0), devices.remove(0));
    let visit = new_visit(&mut a);
    let data = pdf(&[9u8; 100_000]);
    let entry = a
        .store
        .add_attachment(visit.id, &document(), &data[..])
        .unwrap();
    sync(&mut a, &mut hub);
    // A flipped byte: the whole arrives and does not match.
    let mut flipped = data.clone();
    flipped[500] ^= 1;
    let upload = |bytes: Vec<u8>| AttachmentRequest::Upload {
        record: visit.id,
        id: entry.id,
        offset: 0,
        bytes,
    };
    assert_eq!(
        ask(&mut hub, &a.principal, upload(flipped)),
        AttachmentResponse::Refused {
            id: entry.id,
            reason: TransferRefusal::HashMismatch
        }
    );
    // Bytes not of the declared type (what an app of an earlier version, which did not check
    // at capture, sends): refused as such, as the phone refuses the capture.
    let mut not_a_pdf = data.clone();
    not_a_pdf[..5].copy_from_slice(b"text ");
    assert_eq!(
        ask(&mut hub, &a.principal, upload(not_a_pdf)),
        AttachmentResponse::Refused {
            id: entry.id,
            reason: TransferRefusal::BadChunk
        }
    );
    // A document photographed, sent as taken (an app of an earlier version did not strip it):
    // its GPS position does not reach the phones of the area.
    let scanned = NewAttachment {
        media_type: "image/jpeg".into(),
        ..document()
    };
    let taken = jpeg_with_gps(64, 48);
    let stripped = a
        .store
        .add_attachment(visit.id, &scanned, &taken[..])
        .unwrap();
    sync(&mut a, &mut hub);
    let as_taken = AttachmentRequest::Upload {
        record: visit.id,
        id: stripped.id,
        offset: 0,
        // A first chunk that fits the entry (what a whole upload of its size would send).
        bytes: taken[..taken.len().min(stripped.size as usize)].to_vec(),
    };
    assert_eq!(
        ask(&mut hub, &a.principal, as_taken),
        AttachmentResponse::Refused {
            id: stripped.id,
            reason: TransferRefusal::BadChunk
        }
    );
    // A monitor of another area can neither send nor fetch it, and learns nothing.
    assert_eq!(
        ask(&mut hub, &other.principal, upload(data.clone())),
        AttachmentResponse::Refused {
            id: entry.id,
            reason: TransferRefusal::NotFound
        }
    );
    let upload_ok = ask(&mut hub, &a.principal, upload(data.clone()));
    assert_eq!(
        upload_ok,
        AttachmentResponse::Held {
            id: entry.id,
            held: data.len() as u64,
            complete: true
        }
    );
    // Idempotent: the same chunk again changes nothing.
    assert_eq!(ask(&mut hub, &a.principal, upload(data.clone())), upload_ok);
    let download = |id| AttachmentRequest::Download {
        record: visit.id,
        id,
        offset: 0,
        max_bytes: 1 << 20,
    };
    let refused = |id| AttachmentResponse::Refused {
        id,
        reason: TransferRefusal::NotFound,
    };
    assert_eq!(
        ask(&mut hub, &other.principal, download(entry.id)),
        refused(entry.id)
    );
    let unknown = Uuid::now_v7();
    assert_eq!(
        ask(&mut hub, &other.principal, download(unknown)),
        refused(unknown)
    );
    assert!(matches!(
        ask(&mut hub, &a.principal, download(entry.id)),
        AttachmentResponse::Chunk { ref bytes, .. } if *bytes == data
    ));
}

#[test]
fn only_the_capturing_device_uploads_the_bytes_and_the_manifest_keeps_its_capturer() {
    let (_dir, mut hub, mut devices) = world(&[
        MONITOR,
        ("neighbour", Role::CommunityMonitor, &["CI-R1-D1-C01"]),
    ]);
    let (mut a, mut neighbour) = (devices.remove(0), devices.remove(0));
    let visit = new_visit(&mut a);
    let data = pdf(&[7u8; 600_000]);
    let entry = a
        .store
        .add_attachment(visit.id, &document(), &data[..])
        .unwrap();
    sync(&mut a, &mut hub);
    sync(&mut neighbour, &mut hub);
    let limits = HubLimits::default();
    // A device of the same community, which may edit the visit, or another device of the
    // capturer's own user (a second phone, a stolen one not yet revoked), appends garbage
    // where the upload stands: refused, and the capturer's upload is untouched (the second
    // device's bytes were taken, failed the hash, and could hold the upload back for ever).
    let second_phone = Principal {
        device: Uuid::now_v7(),
        ..a.principal.clone()
    };
    for squatter in [&neighbour.principal, &second_phone] {
        for _ in 0..3 {
            let squat = AttachmentRequest::Upload {
                record: visit.id,
                id: entry.id,
                offset: 0,
                bytes: vec![0u8; 256 * 1024],
            };
            assert_eq!(
                ask(&mut hub, squatter, squat),
                AttachmentResponse::Refused {
                    id: entry.id,
                    reason: TransferRefusal::NotFound
                }
            );
        }
    }
    let summary = transfer(&mut a, &mut hub, &AttachmentSyncOptions::default());
    assert_eq!(summary.uploaded, vec![entry.id], "{summary:?}");

    // Nor can it make the manifest name it as the capturer (of this entry, or of a new one
    // naming someone else).
    // `at`: the version the forged change builds on (None: the device's latest).
    let push_at =
        |hub: &mut Store, d: &Device, forged: &Attachment, at: Option<&[automerge::ChangeHash]>| {
            let bytes = d.store.export_document(visit.id).unwrap();
            let whole = automerge::Automerge::load(&bytes).unwrap();
            let mut doc = match at {
                Some(heads) => whole.fork_at(heads).unwrap(),
                None => whole,
            }
            .with_actor(d.store.actor().clone());
            let before = doc.get_heads();
            let author = ChangeAuthor {
                user: d.principal.user,
                device: d.store.device_id(),
            };
            vigie_core::doc::put_attachment(&mut doc, forged, &author).unwrap();
            let request =
                vigie_core::sync::wire::encode_request(&vigie_core::sync::wire::SyncRequest {
                    actor: d.store.actor().to_bytes().to_vec(),
                    cursor: None,
                    push: vec![vigie_core::sync::wire::PushEntry {
                        id: visit.id,
                        heads: before.iter().map(|h| h.0).collect(),
                        changes: doc.save_after(&before),
                    }],
                    refetch: Vec::new(),
                    max_response_bytes: 256 * 1024,
                    receipt: 0,
                    identity: None,
                    headless_documents: false,
                    incarnation: None,
                    device_clock: None,
                });
            let response = hub.hub_handle(&d.principal, &request, &limits).unwrap();
            let response = vigie_core::sync::wire::decode_response(&response, 1 << 26).unwrap();
            response.acks[0].outcome.clone()
        };
    let push = |hub: &mut Store, d: &Device, forged: &Attachment| push_at(hub, d, forged, None);
    use vigie_core::sync::Refusal;
    use vigie_core::sync::wire::PushOutcome;
    let taken = Attachment {
        captured_by: neighbour.principal.user,
        ..entry.clone()
    };
    // Refused naming the entry, so that the app can say which attachment.
    let named = |outcome: PushOutcome, field: &str| match outcome {
        PushOutcome::Refused {
            reason: Refusal::BreaksValidation,
            detail: Some(detail),
        } => assert_eq!(detail.field, field, "{}", detail.rule),
        other => panic!("expected a refusal naming {field}, got {other:?}"),
    };
    named(
        push(&mut hub, &neighbour, &taken),
        &format!("attachments.{}", entry.id),
    );
    let planted = Attachment {
        id: Uuid::now_v7(),
        captured_by: a.principal.user,
        ..entry.clone()
    };
    assert_eq!(
        push(&mut hub, &neighbour, &planted),
        PushOutcome::Refused {
            reason: Refusal::WrongAuthor,
            detail: None,
        }
    );
    // Nor by an entry under the same id written beside the capturer's (built on the visit as
    // it was before the attachment), which would win the merge.
    let concurrent = Attachment {
        captured_by: neighbour.principal.user,
        sha256: "ab".repeat(32),
        size: 1000,
        ..entry.clone()
    };
    named(
        push_at(
            &mut hub,
            &neighbour,
            &concurrent,
            Some(visit.version.heads()),
        ),
        "attachments",
    );
    // A caption is the one field that changes, by its capturer (or the visit's visitor): a
    // neighbour's new caption would rewrite what the visit's file is said to show.
    let captioned = Attachment {
        caption: "Vue de l'atelier".into(),
        ..entry.clone()
    };
    match push(&mut hub, &neighbour, &captioned) {
        PushOutcome::Refused {
            reason: Refusal::StepNotAllowed,
            detail: Some(detail),
        } => {
            assert_eq!(detail.field, format!("attachments.{}", entry.id));
            assert!(
                detail
                    .rule
                    .contains("its visitor or the one who captured it")
            );
        }
        other => panic!("expected the neighbour's caption refused, got {other:?}"),
    }
    assert!(matches!(
        push(&mut hub, &a, &captioned),
        PushOutcome::Accepted { .. }
    ));
}

/// A colleague's file is not taken off a record, nor its caption changed, by someone who
/// neither captured it nor answers for the record (a visit's visitor, a supervisor for a case):
/// not on the phone, not by an altered app's push; and a submitted or validated visit keeps
/// the files it was reviewed with, whoever asks. An inspector's phone took a monitor's photo
/// off a validated visit, and the hub, then every phone, let the file go.
#[test]
fn a_file_is_taken_off_only_by_its_capturer_or_who_answers_for_the_record() {
    let (_dir, mut hub, mut devices) = world(&[
        MONITOR,
        ("inspector", Role::Inspector, &["CI-R1-D1"]),
        SUPERVISOR,
    ]);
    let (mut monitor, mut inspector, mut supervisor) =
        (devices.remove(0), devices.remove(0), devices.remove(0));
    let visit = new_visit(&mut monitor);
    let case = new_case(&mut monitor);
    let on_visit = monitor
        .store
        .add_attachment(visit.id, &document(), &pdf(&[1u8; 2_000])[..])
        .unwrap();
    let on_case = monitor
        .store
        .add_attachment(case.id, &document(), &pdf(&[2u8; 2_000])[..])
        .unwrap();
    sync(&mut monitor, &mut hub);
    transfer(&mut monitor, &mut hub, &AttachmentSyncOptions::default());
    for d in [&mut inspector, &mut supervisor] {
        sync(d, &mut hub);
    }
    use vigie_core::sync::Refusal;
    use vigie_core::sync::wire::PushOutcome;
    let refused_on = |outcome: PushOutcome, field: &str, rule: &str| match outcome {
        PushOutcome::Refused {
            reason: Refusal::StepNotAllowed,
            detail: Some(detail),
        } => {
            assert_eq!(detail.field, field, "{detail:?}");
            assert!(detail.rule.contains(rule), "{detail:?}");
        }
        other => panic!("expected a refusal naming {field}, got {other:?}"),
    };
    let take_off = |id: Uuid| {
        move |doc: &mut automerge::Automerge, author: &ChangeAuthor| {
            vigie_core::doc::remove_attachment(doc, id, author)
                .unwrap()
                .unwrap();
        }
    };

    // The inspector, on his phone and by an altered app's push: refused, naming the file.
    for (record, entry) in [(visit.id, &on_visit), (case.id, &on_case)] {
        match inspector.store.remove_attachment(record, entry.id) {
            Err(Error::NotAllowed { rule }) => assert!(rule.contains("captured it"), "{rule}"),
            other => panic!("expected the inspector's removal refused, got {other:?}"),
        }
        refused_on(
            push_manifest_change(&mut hub, &inspector, record, None, take_off(entry.id)),
            &format!("attachments.{}", entry.id),
            "captured it",
        );
    }
    assert_eq!(inspector.store.attachments(case.id).unwrap().len(), 1);

    // The monitor submits her visit, the supervisor validates it: neither takes its file off
    // now, on the phone or by a push, nor changes its caption.
    monitor.store.submit_visit(visit.id).unwrap();
    sync(&mut monitor, &mut hub);
    sync(&mut supervisor, &mut hub);
    supervisor
        .store
        .review_visit(visit.id, Review::Validate)
        .unwrap();
    sync(&mut supervisor, &mut hub);
    sync(&mut monitor, &mut hub);
    for d in [&mut monitor, &mut supervisor] {
        match d.store.remove_attachment(visit.id, on_visit.id) {
            Err(Error::NotAllowed { rule }) => {
                assert!(rule.contains("validated visit keeps the files"), "{rule}")
            }
            other => panic!("expected the removal refused, got {other:?}"),
        }
    }
    refused_on(
        push_manifest_change(&mut hub, &monitor, visit.id, None, take_off(on_visit.id)),
        "attachments",
        "validated visit keeps the files it was reviewed with",
    );
    let recaptioned = Attachment {
        caption: "Autre chose".into(),
        ..on_visit.clone()
    };
    refused_on(
        push_manifest_entry(&mut hub, &monitor, visit.id, &recaptioned),
        "attachments",
        "validated visit keeps the files",
    );
    // Taken off offline while the visit was still a draft, it arrives once it was validated:
    // not taken under a review that saw the file.
    let draft = {
        let bytes = monitor.store.export_document(visit.id).unwrap();
        let doc = automerge::Automerge::load(&bytes).unwrap();
        // The first version that holds the file (the visit a draft then).
        doc.get_changes(&[])
            .iter()
            .find(|c| {
                doc.fork_at(&[c.hash()])
                    .is_ok_and(|f| vigie_core::doc::attachments(&f).len() == 1)
            })
            .map(|c| vec![c.hash()])
            .unwrap()
    };
    refused_on(
        push_manifest_change(
            &mut hub,
            &monitor,
            visit.id,
            Some(&draft),
            take_off(on_visit.id),
        ),
        "visit",
        "validated meanwhile",
    );

    // A case's file: taken off by a supervisor (a photo that should not be there).
    supervisor
        .store
        .remove_attachment(case.id, on_case.id)
        .unwrap();
    let summary = common::sync(&mut supervisor.store, &mut hub, &supervisor.principal);
    assert!(summary.refused.is_empty(), "{summary:?}");

    // What stays: the visit's file on the hub and the monitor's phone, readable.
    sync(&mut monitor, &mut hub);
    assert_eq!(monitor.store.attachments(visit.id).unwrap().len(), 1);
    assert!(monitor.store.attachments(case.id).unwrap().is_empty());
    assert_eq!(
        monitor.store.read_attachment(on_visit.id).unwrap(),
        pdf(&[1u8; 2_000])
    );
    assert_eq!(hub.attachments(visit.id).unwrap().len(), 1);
}

#[test]
fn the_hub_refuses_uploads_over_its_limits_with_the_figures() {
    let (_dir, mut hub, mut devices) = world(&[MONITOR]);
    let mut a = devices.remove(0);
    let visit = new_visit(&mut a);
    let entry = a
        .store
        .add_attachment(visit.id, &document(), &pdf(&[4u8; 300_000])[..])
        .unwrap();
    sync(&mut a, &mut hub);
    let mut tight = HubLimits::default();
    tight.attachments.max_file_bytes = 100_000;
    let response = hub
        .hub_attachment(
            &a.principal,
            &encode_attachment_request(&AttachmentRequest::Upload {
                record: visit.id,
                id: entry.id,
                offset: 0,
                bytes: vec![4u8; 65_536],
            }),
            &tight,
        )
        .unwrap();
    assert_eq!(
        decode_attachment_response(&response, usize::MAX).unwrap(),
        AttachmentResponse::Refused {
            id: entry.id,
            reason: TransferRefusal::FileTooLarge {
                size: 300_000,
                limit: 100_000
            }
        }
    );
}

/// A hub restarted with a lower limit per file judges the files it is sent after, not those a
/// record holds: every later edit of a record holding a larger file was refused (a
/// colleague's hours, a follow-up), and the record stayed refused on every phone.
#[test]
fn a_lowered_limit_judges_new_files_not_those_a_record_holds() {
    let (_dir, mut hub, mut devices) = world(&[MONITOR]);
    let mut a = devices.remove(0);
    let visit = new_visit(&mut a);
    a.store
        .add_attachment(visit.id, &document(), &pdf(&[4u8; 300_000])[..])
        .unwrap();
    sync(&mut a, &mut hub);
    let mut tight = HubLimits::default();
    tight.attachments.max_file_bytes = 100_000;
    let push = |a: &mut Device, hub: &mut Store| {
        let options = vigie_core::sync::SyncOptions::default();
        let request = a.store.hub_sync_request(&options).unwrap();
        let answer = common::handle(hub, &a.principal, &request, &tight).unwrap();
        a.store.hub_sync_apply(&answer, &options).unwrap().refused
    };
    let mut edited: Visit = a.store.get(visit.id).unwrap();
    edited.findings = "Revu le lendemain.".into();
    a.store.update(&edited).unwrap();
    assert_eq!(push(&mut a, &mut hub), vec![]);
    assert_eq!(
        hub.get::<Visit>(visit.id).unwrap().findings,
        "Revu le lendemain."
    );
    // A file added over the lowered limit is refused, as ever: the phone holds the hub's
    // limits from its answer, and names the file added, not the one the record holds.
    match a
        .store
        .add_attachment(visit.id, &document(), &pdf(&[5u8; 150_000])[..])
    {
        Err(vigie_core::Error::Attachment(AttachmentRefusal::FileTooLarge { limit, .. })) => {
            assert_eq!(limit, 100_000)
        }
        other => panic!("{other:?}"),
    }
    // And a small one is taken beside the large one.
    a.store
        .add_attachment(visit.id, &document(), &pdf(&[6u8; 1_000])[..])
        .unwrap();
    assert_eq!(push(&mut a, &mut hub), vec![]);
}

#[test]
fn erasure_removes_every_byte_of_an_attachment_everywhere() {
    let (dir, mut hub, mut devices) = world(&[MONITOR, SUPERVISOR]);
    let (mut a, mut s) = (devices.remove(0), devices.remove(0));
    let case = new_case(&mut a);
    let marker = b"PLAINTEXT-MARKER-OF-A-CHILD-CERTIFICATE";
    let bytes: Vec<u8> = pdf(&marker
        .iter()
        .copied()
        .cycle()
        .take(400_000)
        .collect::<Vec<_>>());
    let entry = a
        .store
        .add_attachment(case.id, &document(), &bytes[..])
        .unwrap();
    sync(&mut a, &mut hub);
    transfer(&mut a, &mut hub, &AttachmentSyncOptions::default());
    sync(&mut s, &mut hub);
    transfer(&mut s, &mut hub, &AttachmentSyncOptions::default());
    assert_eq!(s.store.read_attachment(entry.id).unwrap(), bytes);
    // At rest, no store holds the plaintext.
    for (path, content) in files_under(dir.path()) {
        assert!(!contains(&content, marker), "plaintext in {path:?}");
    }
    let files_before = attachment_files(&hub).len();
    assert_eq!(files_before, 1);

    hub.in_transaction(&mut |tx| erase_record(tx, &s.principal, case.id))
        .unwrap();
    hub.purge_freed_content().unwrap();
    assert!(attachment_files(&hub).is_empty());
    sync(&mut a, &mut hub);
    sync(&mut s, &mut hub);
    assert!(attachment_files(&a.store).is_empty());
    assert!(attachment_files(&s.store).is_empty());
    // Said of the attachment, not of a record of its id.
    assert!(matches!(
        s.store.read_attachment(entry.id),
        Err(Error::AttachmentNotFound { id }) if id == entry.id
    ));
    assert!(matches!(
        s.store.request_attachment(entry.id),
        Err(Error::AttachmentNotFound { id }) if id == entry.id
    ));
}

/// A case merged into another takes no file from anyone who saw the merge: the case kept
/// stands for the child, and would never show it (on the phone, and on the hub from an app
/// that does not ask).
#[test]
fn a_merged_duplicate_takes_no_file() {
    let (_dir, mut hub, mut devices) = world(&[MONITOR, SUPERVISOR]);
    let (mut a, mut s) = (devices.remove(0), devices.remove(0));
    let kept = new_case(&mut a);
    let duplicate = new_case(&mut a);
    sync(&mut a, &mut hub);
    sync(&mut s, &mut hub);
    s.store.merge_cases(kept.id, duplicate.id).unwrap();
    sync(&mut s, &mut hub);
    sync(&mut a, &mut hub);
    let refused = a
        .store
        .add_attachment(duplicate.id, &document(), &pdf(&[7u8; 500])[..]);
    assert!(
        matches!(&refused, Err(Error::NotAllowed { rule }) if rule.contains("merged into another case")),
        "{refused:?}"
    );
    // The kept case takes it.
    a.store
        .add_attachment(kept.id, &document(), &pdf(&[7u8; 500])[..])
        .unwrap();
}

/// A file on the hub cut short (a restored copy that ran out of space) or altered refuses its
/// own download, never the session: every download failed on it, the others queued behind it
/// with it. The hub holds it as not uploaded, so its author's upload is taken again.
#[test]
fn a_damaged_file_on_the_hub_refuses_its_own_download_only() {
    let (_dir, mut hub, mut devices) = world(&[MONITOR, SUPERVISOR]);
    let (mut a, mut s) = (devices.remove(0), devices.remove(0));
    let visit = new_visit(&mut a);
    let (contents, ids) = documents_on(&mut a, visit.id, 3, 200_000);
    sync(&mut a, &mut hub);
    assert_eq!(
        transfer(&mut a, &mut hub, &AttachmentSyncOptions::default())
            .uploaded
            .len(),
        3
    );
    let (cut, altered) = (sealed_file_of(&hub, ids[0]), sealed_file_of(&hub, ids[1]));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&cut)
        .unwrap()
        .set_len(16 * 1024)
        .unwrap();
    let mut bytes = std::fs::read(&altered).unwrap();
    bytes[100_000] ^= 1;
    std::fs::write(&altered, bytes).unwrap();

    sync(&mut s, &mut hub);
    let summary = transfer(&mut s, &mut hub, &AttachmentSyncOptions::default());
    assert_eq!(summary.downloaded, vec![ids[2]], "{summary:?}");
    assert_eq!(s.store.read_attachment(ids[2]).unwrap(), contents[2]);
    assert!(!altered.exists(), "the altered file is removed");
    // Taken again from its author, then downloaded.
    for (id, data) in ids.iter().zip(&contents).take(2) {
        let upload = AttachmentRequest::Upload {
            record: visit.id,
            id: *id,
            offset: 0,
            bytes: data.clone(),
        };
        assert!(matches!(
            ask(&mut hub, &a.principal, upload),
            AttachmentResponse::Held { complete: true, .. }
        ));
    }
    let mut again = transfer(&mut s, &mut hub, &AttachmentSyncOptions::default()).downloaded;
    again.sort();
    let mut damaged = ids[..2].to_vec();
    damaged.sort();
    assert_eq!(again, damaged);
    assert_eq!(s.store.read_attachment(ids[0]).unwrap(), contents[0]);
}

#[test]
fn downloads_follow_the_policy() {
    let (_dir, mut hub, mut devices) = world(&[MONITOR, SUPERVISOR]);
    let (mut a, mut s) = (devices.remove(0), devices.remove(0));
    let visit = new_visit(&mut a);
    let one = a
        .store
        .add_attachment(visit.id, &document(), &pdf(&[1u8; 1000])[..])
        .unwrap();
    let two = a
        .store
        .add_attachment(visit.id, &document(), &pdf(&[2u8; 1000])[..])
        .unwrap();
    sync(&mut a, &mut hub);
    transfer(&mut a, &mut hub, &AttachmentSyncOptions::default());
    sync(&mut s, &mut hub);
    let metered = AttachmentSyncOptions {
        policy: DownloadPolicy::WifiOnly,
        unmetered: false,
        ..AttachmentSyncOptions::default()
    };
    assert!(transfer(&mut s, &mut hub, &metered).downloaded.is_empty());
    let on_demand = AttachmentSyncOptions {
        policy: DownloadPolicy::OnDemand,
        ..AttachmentSyncOptions::default()
    };
    assert!(transfer(&mut s, &mut hub, &on_demand).downloaded.is_empty());
    assert!(matches!(
        s.store.read_attachment(one.id),
        Err(Error::AttachmentNotHere {
            state: AttachmentState::NotDownloaded,
            ..
        })
    ));
    s.store.request_attachment(two.id).unwrap();
    assert_eq!(
        transfer(&mut s, &mut hub, &on_demand).downloaded,
        vec![two.id]
    );
    let state = s.store.record_sync_state(visit.id).unwrap();
    assert_eq!(state.attachments_not_downloaded, 1);
    let wifi = AttachmentSyncOptions {
        unmetered: true,
        ..metered
    };
    assert_eq!(transfer(&mut s, &mut hub, &wifi).downloaded, vec![one.id]);
}

#[test]
fn an_export_to_a_place_that_cannot_be_written_says_why_on_the_path_field() {
    let (dir, _hub, mut devices) = world(&[MONITOR]);
    let mut d = devices.remove(0);
    let visit = new_visit(&mut d);
    let form = d
        .store
        .add_attachment(visit.id, &document(), &pdf(&[7u8; 500])[..])
        .unwrap();
    let refusal = |to: &Path| match d.store.export_attachment(form.id, to) {
        Err(Error::Validation(v)) => {
            let text = Error::Validation(v.clone()).to_string();
            assert!(!text.contains("Aya"), "the path is not repeated: {text}");
            (v.field, v.rule)
        }
        other => panic!("expected a validation error, got {other:?}"),
    };
    let missing = dir.path().join("no-such-directory").join("consent-Aya.pdf");
    assert_eq!(
        refusal(&missing),
        ("path".into(), "the directory does not exist".into())
    );
    // A file where the path needs a directory.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    assert_eq!(
        refusal(&file.join("consent-Aya.pdf")),
        ("path".into(), "the directory does not exist".into())
    );
    let directory = dir.path().join("Aya");
    std::fs::create_dir(&directory).unwrap();
    assert_eq!(
        refusal(&directory),
        ("path".into(), "names a directory, not a file".into())
    );
    assert!(
        !dir.path().join("Aya.partial").exists(),
        "nothing left behind"
    );
    assert_eq!(
        refusal(Path::new("/")),
        ("path".into(), "must name a file".into())
    );
    // The store's own files (a path built from the wrong variable): each left as it was.
    let own = "is one of the store's own files (its database, a sealed attachment, its key): name another file";
    let store_path = d.store.path().to_path_buf();
    let sealed = vigie_core::store::attachments_dir(&store_path).join(form.id.simple().to_string());
    assert!(sealed.exists());
    let before = (
        std::fs::read(&store_path).unwrap().len(),
        std::fs::read(&sealed).unwrap(),
    );
    for to in [
        store_path.clone(),
        std::path::PathBuf::from(format!("{}-wal", store_path.display())),
        std::path::PathBuf::from(format!("{}-journal", store_path.display())),
        sealed.clone(),
        // By another way to the same directory.
        dir.path().join(".").join("a.db"),
        dir.path().join("key.json"),
    ] {
        assert_eq!(refusal(&to), ("path".into(), own.into()), "{to:?}");
    }
    #[cfg(unix)]
    {
        let link = dir.path().join("elsewhere");
        std::fs::create_dir(&link).unwrap();
        let hard = link.join("copy.db");
        std::fs::hard_link(&store_path, &hard).unwrap();
        assert_eq!(refusal(&hard), ("path".into(), own.into()));
        assert_eq!(
            refusal(Path::new("/dev/null")),
            (
                "path".into(),
                "names a device or another special file, not a file".into()
            )
        );
    }
    assert_eq!(std::fs::read(&sealed).unwrap(), before.1);
    assert!(std::fs::read(&store_path).unwrap().len() >= before.0);
    assert_eq!(d.store.read_attachment(form.id).unwrap(), pdf(&[7u8; 500]));
    let out = dir.path().join("consent.pdf");
    d.store.export_attachment(form.id, &out).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), pdf(&[7u8; 500]));
    // A file of that name, exported before, is replaced.
    d.store.export_attachment(form.id, &out).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the owner's only");
    }
}

/// A child case in C01, created on `d`.
fn new_case(d: &mut Device) -> ChildCase {
    let mut c = ChildCase::new(
        "CASE",
        "Kouassi Yao",
        Sex::Male,
        c1(),
        chrono::NaiveDate::from_ymd_opt(2026, 4, 1).unwrap(),
        d.principal.user,
    );
    c.estimated_age = Some(12);
    d.store.create(&c).unwrap()
}

#[test]
fn an_upload_cut_before_the_record_leaves_the_scope_still_reaches_the_hub() {
    for mode in ["moved", "deactivated", "moved_by_other"] {
        let (_dir, mut hub, mut devices) = world(&[MONITOR, SUPERVISOR]);
        let (mut a, mut s) = (devices.remove(0), devices.remove(0));
        let case = new_case(&mut a);
        let bytes = pdf(&[9u8; 200_000]);
        let entry = a
            .store
            .add_attachment(case.id, &document(), &bytes[..])
            .unwrap();
        // The record reaches the hub; its bytes do not (the link drops).
        sync(&mut a, &mut hub);
        sync(&mut s, &mut hub);
        match mode {
            "moved" => a.principal.areas = ["CI-R1-D1-C02".to_string()].into(),
            "deactivated" => a.principal.areas.clear(),
            _ => {
                let mut c: ChildCase = s.store.get(case.id).unwrap();
                c.area = Area::new("CI", "CI-R1", "CI-R1-D1", "CI-R1-D1-C02");
                s.store.update(&c).unwrap();
                sync(&mut s, &mut hub);
            }
        }
        let summary = common::sync(&mut a.store, &mut hub, &a.principal);
        assert!(summary.left_scope.contains(&case.id), "{mode}: {summary:?}");
        assert!(
            matches!(a.store.attachments(case.id), Err(Error::NotFound { .. })),
            "{mode}"
        );
        // Kept, out of every list, until its bytes are uploaded.
        assert_eq!(attachment_files(&a.store).len(), 1, "{mode}");
        let sent = transfer(&mut a, &mut hub, &AttachmentSyncOptions::default());
        assert_eq!(sent.uploaded, vec![entry.id], "{mode}: {sent:?}");
        assert!(sent.failed.is_empty(), "{mode}: {sent:?}");
        assert!(attachment_files(&a.store).is_empty(), "{mode}");
        sync(&mut s, &mut hub);
        transfer(&mut s, &mut hub, &AttachmentSyncOptions::default());
        assert_eq!(s.store.read_attachment(entry.id).unwrap(), bytes, "{mode}");
    }
}

#[test]
fn only_the_capturing_device_uploads_to_a_record_out_of_its_scope() {
    let (dir, mut hub, mut devices) = world(&[MONITOR]);
    let mut a = devices.remove(0);
    // Another device of the same user.
    let mut a2 = device(&dir, "a2", Role::CommunityMonitor, &["CI-R1-D1-C01"]);
    a2.principal.user = a.principal.user;
    let case = new_case(&mut a);
    let file = pdf(&[3u8; 70_000]);
    let entry = a
        .store
        .add_attachment(case.id, &document(), &file[..])
        .unwrap();
    sync(&mut a, &mut hub);
    let mut moved = a2.principal.clone();
    moved.areas = ["CI-R1-D1-C02".to_string()].into();
    let upload = AttachmentRequest::Upload {
        record: case.id,
        id: entry.id,
        offset: 0,
        bytes: file[..65_536].to_vec(),
    };
    assert_eq!(
        ask(&mut hub, &moved, upload.clone()),
        AttachmentResponse::Refused {
            id: entry.id,
            reason: TransferRefusal::NotFound
        }
    );
    let mut capturer = a.principal.clone();
    capturer.areas.clear();
    assert!(matches!(
        ask(&mut hub, &capturer, upload),
        AttachmentResponse::Held { held: 65_536, .. }
    ));
}

/// Syncs `d`'s records with a hub that applies (and publishes) `limits`.
fn sync_limited(d: &mut Device, hub: &mut Store, limits: &HubLimits) {
    let who = d.principal.clone();
    vigie_core::sync::sync_with_hub(
        &mut d.store,
        &vigie_core::sync::SyncOptions::default(),
        |request| common::handle(hub, &who, request, limits).map_err(|e| e.to_string()),
        |_| {},
    )
    .expect("sync");
}

/// Transfers `d`'s attachments with a hub that applies `limits`, every answer passed through
/// `tamper`.
fn transfer_through(
    d: &mut Device,
    hub: &mut Store,
    limits: &HubLimits,
    mut tamper: impl FnMut(AttachmentResponse) -> AttachmentResponse,
) -> vigie_core::sync::AttachmentSummary {
    let who = d.principal.clone();
    sync_attachments(
        &mut d.store,
        &AttachmentSyncOptions::default(),
        |request| {
            let answer = hub
                .hub_attachment(&who, request, limits)
                .map_err(|e| e.to_string())?;
            let answer = decode_attachment_response(&answer, usize::MAX).unwrap();
            Ok(vigie_core::sync::encode_attachment_response(&tamper(
                answer,
            )))
        },
        |_| {},
    )
    .expect("attachment session")
}

fn state_of(d: &Device, record: Uuid) -> AttachmentState {
    d.store.attachments(record).unwrap()[0].state
}

#[test]
fn an_upload_refused_on_a_limit_goes_again_once_the_limits_allow_it() {
    let (_dir, mut hub, mut devices) = world(&[MONITOR]);
    let mut a = devices.remove(0);
    let case = new_case(&mut a);
    let entry = a
        .store
        .add_attachment(case.id, &document(), &pdf(&[4u8; 300_000])[..])
        .unwrap();
    let mut tight = HubLimits::default();
    tight.attachments.max_file_bytes = 100_000;
    // The record reaches the hub; then the hub's limit is lowered.
    sync(&mut a, &mut hub);
    sync_limited(&mut a, &mut hub, &tight);
    let sent = transfer_through(&mut a, &mut hub, &tight, |r| r);
    let too_large = TransferRefusal::FileTooLarge {
        size: 300_000,
        limit: 100_000,
    };
    assert_eq!(sent.failed, vec![(entry.id, too_large)]);
    assert_eq!(state_of(&a, case.id), AttachmentState::Failed);
    // Asked again while the limits still refuse it: said why.
    assert!(matches!(
        a.store.request_attachment(entry.id),
        Err(Error::Attachment(AttachmentRefusal::FileTooLarge {
            size: 300_000,
            limit: 100_000
        }))
    ));
    let sent = transfer_through(&mut a, &mut hub, &tight, |r| r);
    assert_eq!(sent.round_trips, 0, "{sent:?}");
    // The operator undoes the mistake: the next sync publishes the limits, and it goes.
    sync(&mut a, &mut hub);
    let sent = transfer(&mut a, &mut hub, &AttachmentSyncOptions::default());
    assert_eq!(sent.uploaded, vec![entry.id], "{sent:?}");
    assert_eq!(state_of(&a, case.id), AttachmentState::Uploaded);
}

#[test]
fn a_download_that_failed_its_hash_goes_again_at_the_next_session_or_when_asked() {
    let (_dir, mut hub, mut devices) = world(&[MONITOR, SUPERVISOR]);
    let (mut a, mut s) = (devices.remove(0), devices.remove(0));
    let case = new_case(&mut a);
    let bytes: Vec<u8> = pdf(&(0..300_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    let asked = a
        .store
        .add_attachment(case.id, &document(), &bytes[..])
        .unwrap();
    let waited = a
        .store
        .add_attachment(case.id, &document(), &bytes[..1000])
        .unwrap();
    sync(&mut a, &mut hub);
    transfer(&mut a, &mut hub, &AttachmentSyncOptions::default());
    sync(&mut s, &mut hub);
    let flip = |r: AttachmentResponse| match r {
        AttachmentResponse::Chunk {
            id,
            size,
            offset,
            mut bytes,
        } => {
            bytes[0] ^= 1;
            AttachmentResponse::Chunk {
                id,
                size,
                offset,
                bytes,
            }
        }
        other => other,
    };
    let got = transfer_through(&mut s, &mut hub, &HubLimits::default(), flip);
    assert_eq!(
        got.failed,
        vec![
            (asked.id, TransferRefusal::HashMismatch),
            (waited.id, TransferRefusal::HashMismatch)
        ]
    );
    // Once per session: a bad copy does not loop (two chunks, then one).
    assert_eq!(got.round_trips, 3, "{got:?}");
    let states = |s: &Device| -> Vec<AttachmentState> {
        s.store
            .attachments(case.id)
            .unwrap()
            .iter()
            .map(|a| a.state)
            .collect()
    };
    assert_eq!(states(&s), vec![AttachmentState::Failed; 2]);
    // Asked for: queued again at once.
    s.store.request_attachment(asked.id).unwrap();
    assert_eq!(
        states(&s),
        vec![AttachmentState::NotDownloaded, AttachmentState::Failed]
    );
    // The next session takes both again.
    let got = transfer(&mut s, &mut hub, &AttachmentSyncOptions::default());
    assert_eq!(got.downloaded, vec![asked.id, waited.id], "{got:?}");
    assert_eq!(s.store.read_attachment(asked.id).unwrap(), bytes);
    assert_eq!(s.store.read_attachment(waited.id).unwrap(), &bytes[..1000]);
}

/// A source that counts the bytes read from it, endless.
struct Endless<'a>(&'a std::cell::Cell<u64>);

impl Read for Endless<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.set(self.0.get() + buf.len() as u64);
        buf.fill(0);
        Ok(buf.len())
    }
}

#[test]
fn a_capture_reads_no_more_than_the_limit_and_nothing_past_the_count() {
    let (dir, mut hub, mut devices) = world(&[MONITOR]);
    let mut a = devices.remove(0);
    let mut tight = HubLimits::default();
    tight.attachments.max_file_bytes = 200_000;
    tight.attachments.max_per_record = 1;
    sync_limited(&mut a, &mut hub, &tight);
    let case = new_case(&mut a);
    // An endless stream (a pipe, /dev/zero) is refused once past the limit.
    let read = std::cell::Cell::new(0);
    assert!(matches!(
        a.store
            .add_attachment(case.id, &document(), (&b"%PDF-"[..]).chain(Endless(&read))),
        Err(Error::Attachment(AttachmentRefusal::FileTooLarge {
            size: 200_001..,
            limit: 200_000
        }))
    ));
    assert!(read.get() <= 200_001 + 65_536, "{}", read.get());
    // A file over the limit is refused by its size, unread.
    let big = dir.path().join("big.pdf");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(3 << 30)
        .unwrap();
    assert!(matches!(
        a.store.add_attachment_file(case.id, &document(), &big),
        Err(Error::Attachment(AttachmentRefusal::FileTooLarge {
            size: 3221225472,
            limit: 200_000
        }))
    ));
    a.store
        .add_attachment(case.id, &document(), &pdf(&[1u8; 1000])[..])
        .unwrap();
    // The record holds as many as it may: nothing is read.
    let read = std::cell::Cell::new(0);
    assert!(matches!(
        a.store
            .add_attachment(case.id, &document(), (&b"%PDF-"[..]).chain(Endless(&read))),
        Err(Error::Attachment(AttachmentRefusal::TooManyForRecord {
            count: 2,
            limit: 1
        }))
    ));
    assert_eq!(read.get(), 0);
}

#[test]
fn an_image_captured_as_a_document_loses_its_metadata_but_not_its_size() {
    let (_dir, _hub, mut devices) = world(&[MONITOR]);
    let mut d = devices.remove(0);
    let case = new_case(&mut d);
    let original = jpeg_with_gps(2400, 1200);
    let as_document = |media_type: &str| NewAttachment {
        kind: AttachmentKind::Document,
        media_type: media_type.into(),
        caption: "Consentement".into(),
    };
    for (media_type, format) in [
        ("image/jpeg", image::ImageFormat::Jpeg),
        ("image/png", image::ImageFormat::Png),
    ] {
        let entry = d
            .store
            .add_attachment(case.id, &as_document(media_type), &original[..])
            .unwrap();
        assert_eq!(entry.media_type, media_type);
        let stored = d.store.read_attachment(entry.id).unwrap();
        assert!(!contains(&stored, GPS_MARKER), "{media_type}");
        assert!(!contains(&stored, b"Exif"), "{media_type}");
        assert_eq!(image::guess_format(&stored).unwrap(), format);
        let img = image::load_from_memory(&stored).unwrap();
        assert_eq!((img.width(), img.height()), (2400, 1200), "{media_type}");
    }
    assert!(matches!(
        d.store
            .add_attachment(case.id, &as_document("image/png"), &b"hello"[..]),
        Err(Error::Attachment(AttachmentRefusal::NotAnImage))
    ));
}

#[test]
fn a_caption_is_one_line_on_the_phone() {
    let (_dir, _hub, mut devices) = world(&[MONITOR]);
    let mut d = devices.remove(0);
    let case = new_case(&mut d);
    for caption in ["deux\nlignes", "nul\0", "\u{202E}fdp.exe"] {
        let new = NewAttachment {
            caption: caption.into(),
            ..document()
        };
        match d.store.add_attachment(case.id, &new, &pdf(&[1u8; 10])[..]) {
            Err(Error::Attachment(AttachmentRefusal::Invalid(e))) => {
                assert_eq!(e.field, "attachments.caption");
                assert!(!e.rule.contains(caption));
            }
            other => panic!("{caption:?}: {other:?}"),
        }
    }
    assert!(attachment_files(&d.store).is_empty());
}

#[test]
fn two_devices_over_the_count_together_are_told_the_field_and_the_limit() {
    let (_dir, mut hub, mut devices) = world(&[MONITOR, SUPERVISOR]);
    let (mut a, mut a2) = (devices.remove(0), devices.remove(0));
    let mut two = HubLimits::default();
    two.attachments.max_per_record = 2;
    let case = new_case(&mut a);
    sync_limited(&mut a, &mut hub, &two);
    sync_limited(&mut a2, &mut hub, &two);
    // Offline, each within the limit on its own.
    for n in 0..2u8 {
        a.store
            .add_attachment(case.id, &document(), &pdf(&[n + 1; 100])[..])
            .unwrap();
    }
    a2.store
        .add_attachment(case.id, &document(), &pdf(&[9u8; 100])[..])
        .unwrap();
    sync_limited(&mut a, &mut hub, &two);
    let who = a2.principal.clone();
    let summary = vigie_core::sync::sync_with_hub(
        &mut a2.store,
        &vigie_core::sync::SyncOptions::default(),
        |request| common::handle(&mut hub, &who, request, &two).map_err(|e| e.to_string()),
        |_| {},
    )
    .unwrap();
    assert_eq!(
        summary.refused,
        vec![(case.id, vigie_core::sync::Refusal::BreaksValidation)]
    );
    let (id, detail) = &summary.refusal_details[0];
    assert_eq!(*id, case.id);
    assert_eq!(detail.field, "attachments");
    assert!(
        detail.rule.contains("at most 2 attachments per record"),
        "{detail:?}"
    );
}

#[test]
fn a_capture_from_a_directory_is_refused_on_the_path() {
    let (dir, _hub, mut devices) = world(&[MONITOR]);
    let mut d = devices.remove(0);
    let case = new_case(&mut d);
    for path in [dir.path().to_path_buf(), dir.path().join("missing.pdf")] {
        match d.store.add_attachment_file(case.id, &document(), &path) {
            Err(Error::Validation(e)) => {
                assert_eq!(e.field, "path");
                assert!(!e.rule.contains(&*dir.path().to_string_lossy()));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_quarantined_entry_names_the_attachments_it_adds_never_their_caption() {
    let (_dir, mut hub, mut devices) = world(&[MONITOR]);
    let mut a = devices.remove(0);
    let case = new_case(&mut a);
    sync(&mut a, &mut hub);
    // Offline: a document added, then the monitor moves.
    let entry = a
        .store
        .add_attachment(case.id, &document(), &pdf(&[5u8; 4000])[..])
        .unwrap();
    a.principal.areas = ["CI-R1-D1-C02".to_string()].into();
    let summary = common::sync(&mut a.store, &mut hub, &a.principal);
    assert_eq!(summary.quarantined, vec![case.id], "{summary:?}");
    let views = hub
        .in_transaction(&mut |tx| {
            tx.quarantined()?
                .iter()
                .map(|q| vigie_core::sync::describe_quarantined(tx, q))
                .collect::<Result<Vec<_>>>()
        })
        .unwrap();
    assert_eq!(views.len(), 1);
    let view = &views[0];
    assert!(view.fields.is_empty(), "{view:?}");
    assert_eq!(
        view.attachments_added,
        vec![vigie_core::sync::QuarantinedAttachment {
            id: entry.id,
            kind: AttachmentKind::Document,
            media_type: "application/pdf".into(),
            size: 4000,
        }]
    );
    assert!(view.attachments_removed.is_empty());
    assert!(!format!("{view:?}").contains("Formulaire"));
}

#[test]
fn a_document_or_voice_note_must_be_of_its_declared_media_type() {
    let (_dir, _hub, mut devices) = world(&[MONITOR]);
    let mut d = devices.remove(0);
    let case = new_case(&mut d);
    let of = |kind, media_type: &str| NewAttachment {
        kind,
        media_type: media_type.into(),
        caption: String::new(),
    };
    use AttachmentKind::{Document, VoiceNote};
    for (kind, media_type, bytes) in [
        (
            Document,
            "application/pdf",
            &b"<html><script>alert(1)</script></html>"[..],
        ),
        (Document, "image/png", &b"hello"[..]),
        (VoiceNote, "audio/ogg", &b"RIFF\0\0\0\0WAVEfmt "[..]),
        (VoiceNote, "audio/wav", &b"OggS\0\0\0\0\0\0\0\0"[..]),
    ] {
        assert!(
            matches!(
                d.store
                    .add_attachment(case.id, &of(kind, media_type), bytes),
                Err(Error::Attachment(
                    AttachmentRefusal::NotTheMediaType | AttachmentRefusal::NotAnImage
                ))
            ),
            "{media_type}"
        );
    }
    for (kind, media_type, bytes) in [
        (Document, "application/pdf", &b"%PDF-1.7 rest"[..]),
        (VoiceNote, "audio/ogg", &b"OggS and the rest"[..]),
        (VoiceNote, "audio/wav", &b"RIFF\0\0\0\0WAVEfmt "[..]),
        (VoiceNote, "audio/mp4", &b"\0\0\0\x18ftypM4A \0"[..]),
        (VoiceNote, "audio/mpeg", &b"ID3\x04 rest"[..]),
        (VoiceNote, "audio/amr", &b"#!AMR\n..."[..]),
    ] {
        d.store
            .add_attachment(case.id, &of(kind, media_type), bytes)
            .unwrap_or_else(|e| panic!("{media_type}: {e:?}"));
    }
    assert_eq!(attachment_files(&d.store).len(), 6);
}

/// Pushes to the hub one change of `d` adding `entry` to the manifest of its record `record`,
/// as a device that writes its own documents would; the hub's answer.
fn push_manifest_entry(
    hub: &mut Store,
    d: &Device,
    record: Uuid,
    entry: &Attachment,
) -> vigie_core::sync::wire::PushOutcome {
    push_manifest_entries(hub, d, record, std::slice::from_ref(entry))
}

/// `push_manifest_entry` of several entries, in one change each, in one push.
fn push_manifest_entries(
    hub: &mut Store,
    d: &Device,
    record: Uuid,
    entries: &[Attachment],
) -> vigie_core::sync::wire::PushOutcome {
    push_manifest_change(hub, d, record, None, |doc, author| {
        for entry in entries {
            vigie_core::doc::put_attachment(doc, entry, author).unwrap();
        }
    })
}

/// What the hub answers `d`'s push of a change an altered app makes to `record`'s manifest
/// (`change`, as `d`'s user and device), on the version at `at` (`None`: the device's own).
fn push_manifest_change(
    hub: &mut Store,
    d: &Device,
    record: Uuid,
    at: Option<&[automerge::ChangeHash]>,
    change: impl FnOnce(&mut automerge::Automerge, &ChangeAuthor),
) -> vigie_core::sync::wire::PushOutcome {
    use vigie_core::sync::wire::PushEntry;
    let bytes = d.store.export_document(record).unwrap();
    let whole = automerge::Automerge::load(&bytes).unwrap();
    // On an older version, under another actor of the device (as a copy restored from a
    // backup writes): the device's own actor numbers its next change after its latest.
    let (mut doc, actor) = match at {
        Some(heads) => {
            let mut actor = d.store.device_id().as_bytes().to_vec();
            actor.extend_from_slice(&[9; 8]);
            (
                whole.fork_at(heads).unwrap(),
                automerge::ActorId::from(actor),
            )
        }
        None => (whole, d.store.actor().clone()),
    };
    doc.set_actor(actor.clone());
    let before = doc.get_heads();
    let author = ChangeAuthor {
        user: d.principal.user,
        device: d.store.device_id(),
    };
    change(&mut doc, &author);
    common::push_one(
        hub,
        &d.principal,
        &d.store,
        PushEntry {
            id: record,
            heads: before.iter().map(|h| h.0).collect(),
            changes: doc.save_after(&before),
        },
    )
}

/// The hub's refusal of a record naming an attachment id another record holds.
fn refused_on_attachments(outcome: vigie_core::sync::wire::PushOutcome) {
    match outcome {
        vigie_core::sync::wire::PushOutcome::Refused {
            reason: vigie_core::sync::Refusal::BreaksValidation,
            detail: Some(detail),
        } => assert_eq!(detail.field, "attachments"),
        outcome => panic!("{outcome:?}"),
    }
}

#[test]
fn an_attachment_id_another_record_holds_is_refused_and_stops_no_ones_sync() {
    use vigie_core::sync::Refusal;
    use vigie_core::sync::wire::PushOutcome;
    let (_dir, mut hub, mut devices) = world(&[
        MONITOR,
        ("neighbour", Role::CommunityMonitor, &["CI-R1-D1-C01"]),
        ("third", Role::CommunityMonitor, &["CI-R1-D1-C01"]),
    ]);
    let (mut a, mut neighbour, mut third) =
        (devices.remove(0), devices.remove(0), devices.remove(0));
    // `a` captures a document offline; its neighbour learns the attachment's id (a peer
    // session) and names it first in a visit of its own.
    let visit = new_visit(&mut a);
    let data = pdf(&[7u8; 50_000]);
    let entry = a
        .store
        .add_attachment(visit.id, &document(), &data[..])
        .unwrap();
    let squatting = new_visit(&mut neighbour);
    sync(&mut neighbour, &mut hub);
    let squat = Attachment {
        captured_by: neighbour.principal.user,
        ..entry.clone()
    };
    assert!(matches!(
        push_manifest_entry(&mut hub, &neighbour, squatting.id, &squat),
        PushOutcome::Accepted { .. }
    ));

    // The capturer's sync goes on: its visit is refused alone, saying what to do, its other
    // records are taken, and it receives the neighbour's visit (whose entry names an id its
    // own attachment holds) without failing.
    let summary = common::sync(&mut a.store, &mut hub, &a.principal);
    assert_eq!(summary.refused, vec![(visit.id, Refusal::BreaksValidation)]);
    let detail = &summary.refusal_details[0].1;
    assert_eq!(detail.field, "attachments", "{detail:?}");
    assert!(detail.rule.contains("attach the file again"), "{detail:?}");
    assert!(summary.failed.is_empty(), "{summary:?}");
    assert!(hub.get::<Workplace>(visit.workplace_id).is_ok());
    assert!(a.store.get::<Visit>(squatting.id).is_ok());
    assert_eq!(a.store.read_attachment(entry.id).unwrap(), data);
    // Removing the attachment and attaching the file again (a new id) lets the visit in.
    a.store.remove_attachment(visit.id, entry.id).unwrap();
    let again = a
        .store
        .add_attachment(visit.id, &document(), &data[..])
        .unwrap();
    let summary = common::sync(&mut a.store, &mut hub, &a.principal);
    assert!(summary.refused.is_empty(), "{summary:?}");
    transfer(&mut a, &mut hub, &AttachmentSyncOptions::default());
    sync(&mut third, &mut hub);
    let summary = transfer(&mut third, &mut hub, &AttachmentSyncOptions::default());
    assert!(summary.downloaded.contains(&again.id), "{summary:?}");
    assert_eq!(third.store.read_attachment(again.id).unwrap(), data);

    // Once the hub holds an attachment, a record of another that names its id is refused.
    let other = new_visit(&mut neighbour);
    sync(&mut neighbour, &mut hub);
    let squat = Attachment {
        captured_by: neighbour.principal.user,
        ..again.clone()
    };
    refused_on_attachments(push_manifest_entry(&mut hub, &neighbour, other.id, &squat));
    let summary = common::sync(&mut a.store, &mut hub, &a.principal);
    assert!(
        summary.refused.is_empty() && summary.failed.is_empty(),
        "{summary:?}"
    );
}

/// An attachment that changes kept for review add is the record's from the push that kept
/// them: another record naming its id is refused, though its bytes are not uploaded yet, and
/// its capturer still uploads it.
#[test]
fn an_attachment_under_review_keeps_its_id_from_another_record() {
    let (_dir, mut hub, mut devices) = world(&[
        MONITOR,
        ("neighbour", Role::CommunityMonitor, &["CI-R1-D1-C01"]),
    ]);
    let (mut a, mut neighbour) = (devices.remove(0), devices.remove(0));
    let case = new_case(&mut a);
    sync(&mut a, &mut hub);
    let entry = a
        .store
        .add_attachment(case.id, &document(), &pdf(&[5u8; 4000])[..])
        .unwrap();
    a.principal.areas = ["CI-R1-D1-C02".to_string()].into();
    let summary = common::sync(&mut a.store, &mut hub, &a.principal);
    assert_eq!(summary.quarantined, vec![case.id], "{summary:?}");

    let own = new_visit(&mut neighbour);
    sync(&mut neighbour, &mut hub);
    let squat = Attachment {
        captured_by: neighbour.principal.user,
        ..entry.clone()
    };
    refused_on_attachments(push_manifest_entry(&mut hub, &neighbour, own.id, &squat));
    let up = transfer(&mut a, &mut hub, &AttachmentSyncOptions::default());
    assert_eq!(up.uploaded, vec![entry.id], "{up:?}");
}

/// Changes kept for review reserve the ids of the attachments they add, no more than a record
/// may hold: a device out of its areas naming thousands takes no more rows than that.
#[test]
fn changes_kept_for_review_reserve_no_more_attachments_than_a_record_holds() {
    use vigie_core::sync::wire::PushOutcome;
    let (_dir, mut hub, mut devices) = world(&[MONITOR]);
    let mut a = devices.remove(0);
    let case = new_case(&mut a);
    sync(&mut a, &mut hub);
    a.principal.areas = ["CI-R1-D1-C02".to_string()].into();
    let most = AttachmentLimits::default().max_per_record as usize;
    let entries: Vec<Attachment> = (0..most + 10)
        .map(|i| Attachment {
            id: Uuid::now_v7(),
            sha256: format!("{i:064x}"),
            size: 1000,
            media_type: "application/pdf".into(),
            kind: AttachmentKind::Document,
            caption: String::new(),
            captured_by: a.principal.user,
            captured_at: chrono::Utc::now(),
        })
        .collect();
    assert_eq!(
        push_manifest_entries(&mut hub, &a, case.id, &entries),
        PushOutcome::Quarantined
    );
    let reserved = hub
        .in_transaction(&mut |tx| {
            let mut n = 0;
            for entry in &entries {
                n += usize::from(tx.attachment_held(entry.id)?.is_some());
            }
            Ok(n)
        })
        .unwrap();
    assert_eq!(reserved, most);
}
