//! `vigie-bench attachments`: photos captured on a phone and synced with a real hub (`vigie
//! serve` on 127.0.0.1) over a link that drops every `--drop-every` bytes, then fetched by a
//! supervisor's phone; and one large attachment synced while the phone's peak memory is
//! watched.
//!
//! Figures: capture time per photo and the stored size; upload and download throughput on
//! loopback (no drops); bytes sent ÷ bytes stored over the dropping link (target ≤ 1.05) and
//! the bytes re-sent per cut; the phone's peak resident memory while it uploads and downloads
//! a `--large-mb` attachment (target ≤ 64 MB whatever the size).

use crate::real_hub::{Backend, HubData, device_store, hub_bin};
use crate::{BoxResult, Report};
use chrono::{FixedOffset, TimeZone};
use rand::{Rng, RngCore, SeedableRng};
use std::io::Read;
use std::time::Instant;
use vigie_core::sync::{AttachmentSyncOptions, SyncOptions, sync_attachments};
use vigie_core::{
    Area, AttachmentKind, Formality, NewAttachment, Store, Visit, VisitKind, Workplace,
};
use vigie_server::client::HubClient;

pub struct AttachmentArgs {
    pub backend: Backend,
    pub photos: usize,
    pub drop_every: usize,
    pub large_mb: usize,
    pub chunk_kib: usize,
    pub hub_bin: Option<String>,
    pub postgres: Option<String>,
    pub seed: u64,
}

const C01: &str = "CI-R1-D1-C01";
const SAMPLE_AREAS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../reference/areas-CI.json");

/// A camera's photo of about 2 to 4 MB: 8 megapixels of gradients under sensor noise, as
/// JPEG.
fn camera_photo(rng: &mut impl RngCore) -> Vec<u8> {
    let (w, h) = (3264u32, 2448u32);
    let mut state = u64::from(rng.next_u32()) | 1;
    let amplitude = 16 + rng.gen_range(0..16u32);
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        // xorshift: sensor noise, cheap enough for 8 million pixels.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let noise = (state % u64::from(amplitude)) as u8;
        image::Rgb([
            ((x / 16) as u8).wrapping_add(noise),
            ((y / 12) as u8).wrapping_add(noise / 2),
            (((x + y) / 20) as u8).wrapping_add(noise),
        ])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
            &mut out, 88,
        ))
        .expect("a JPEG encodes");
    out
}

/// Runs `vigie-bench attachment-phone` on a device's store: one attachment session with the
/// hub. Returns its time in seconds and the process's peak resident memory in MB.
fn phone_process(
    hub: &str,
    token: &vigie_server::auth::Token,
    store: &std::path::Path,
    options: &AttachmentSyncOptions,
) -> BoxResult<(f64, f64)> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .args([
            "attachment-phone",
            "--hub",
            hub,
            "--token",
            &token.to_text(),
        ])
        .args(["--store", &store.to_string_lossy()])
        .args(["--chunk", &options.chunk_bytes.to_string()])
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "attachment-phone: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    let text = String::from_utf8(out.stdout)?;
    let mut figures = text.split_whitespace().map(str::parse::<f64>);
    match (figures.next(), figures.next()) {
        (Some(Ok(seconds)), Some(Ok(peak))) => Ok((seconds, peak)),
        _ => Err(format!("attachment-phone printed {text:?}").into()),
    }
}

/// `vigie-bench attachment-phone`: a phone's attachment session, in a process of its own;
/// prints its time in seconds and its peak resident memory in MB.
pub fn phone_main(hub: &str, token: &str, store: &std::path::Path, chunk: usize) -> BoxResult<()> {
    let token = vigie_server::auth::Token::parse(token)?;
    let name = store
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or("a store path")?;
    let dir = store.parent().ok_or("a store path")?;
    let mut phone = device_store(dir, name, &token)?;
    let options = AttachmentSyncOptions {
        chunk_bytes: chunk,
        ..AttachmentSyncOptions::default()
    };
    let started = Instant::now();
    HubClient::new(hub, &token).sync_attachments(&mut phone, &options, |_| {})?;
    let seconds = started.elapsed().as_secs_f64();
    let peak = crate::peak_rss_mb().unwrap_or(0.0);
    println!("{seconds} {peak}");
    Ok(())
}

/// A link that fails the exchange in flight each time `drop_every` more bytes went through
/// it: half the time before the hub sees the request, half after (the answer lost).
struct DroppingLink<'a> {
    client: &'a HubClient,
    drop_every: usize,
    since_drop: usize,
    sent: usize,
    cuts: usize,
    rng: rand_chacha::ChaCha8Rng,
}

impl DroppingLink<'_> {
    fn exchange(&mut self, request: &[u8]) -> Result<Vec<u8>, String> {
        self.since_drop += request.len();
        let cut = self.since_drop >= self.drop_every;
        if cut && self.rng.gen_bool(0.5) {
            self.since_drop = 0;
            self.cuts += 1;
            self.sent += self.rng.gen_range(0..request.len().max(1));
            return Err("link dropped before the hub".into());
        }
        self.sent += request.len();
        let response = self.client.exchange_attachment(request)?;
        self.since_drop += response.len();
        if cut {
            self.since_drop = 0;
            self.cuts += 1;
            return Err("link dropped after the hub".into());
        }
        Ok(response)
    }
}

pub fn bench_attachments(args: &AttachmentArgs) -> BoxResult<()> {
    let report = Report {
        bench: "attachments",
        scale: None,
    };
    let bin = hub_bin(args.hub_bin.clone())?;
    let hub_data = HubData::new(&bin, args.backend, args.postgres.as_deref())?;
    hub_data.admin(&["reference", "publish", SAMPLE_AREAS])?;
    let monitor_token = hub_data.user_with_device("Moniteur", "community-monitor", C01)?;
    let supervisor_token = hub_data.user_with_device("Superviseur", "supervisor", "CI-R1")?;
    let dir = hub_data.dir.path().to_path_buf();
    let max_file = (args.large_mb * 1024 * 1024 + 1)
        .max(10 * 1024 * 1024)
        .to_string();
    let max_record = (2 * args.large_mb * 1024 * 1024)
        .max(100 * 1024 * 1024)
        .to_string();
    let hub = hub_data.serve_with(&[
        "--max-attachment-bytes",
        &max_file,
        "--max-record-attachment-bytes",
        &max_record,
    ])?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);

    let mut phone = device_store(&dir, "phone", &monitor_token)?;
    let client = HubClient::new(&hub.url, &monitor_token);
    client.sync(&mut phone, &SyncOptions::default(), |_| {})?;
    let area = Area::new("CI", "CI-R1", "CI-R1-D1", C01);
    let workplace = phone.create(&Workplace::new(
        "Plantation",
        "cocoa",
        Formality::Informal,
        area,
    ))?;
    let start = FixedOffset::east_opt(0)
        .expect("utc")
        .with_ymd_and_hms(2026, 4, 2, 9, 0, 0)
        .single()
        .expect("a date");
    // One visit per ten photos (a record holds at most 50 by default).
    let visits: Vec<Visit> = (0..args.photos.div_ceil(10).max(1))
        .map(|_| {
            phone.create(&Visit::new(
                VisitKind::CommunityMonitoring,
                &workplace,
                monitor_token.user,
                start,
            ))
        })
        .collect::<Result<_, _>>()?;

    // Capture.
    let (mut capture_s, mut original_bytes, mut stored_bytes) = (0.0, 0usize, 0u64);
    for n in 0..args.photos {
        let photo = camera_photo(&mut rng);
        original_bytes += photo.len();
        let started = Instant::now();
        let entry = phone.add_attachment(
            visits[n / 10].id,
            &NewAttachment {
                kind: AttachmentKind::Photo,
                media_type: "image/jpeg".into(),
                caption: format!("Photo {n}"),
            },
            &photo[..],
        )?;
        capture_s += started.elapsed().as_secs_f64();
        stored_bytes += entry.size;
        if n % 20 == 19 {
            eprintln!("attachments: {} photos captured", n + 1);
        }
    }
    let photos = args.photos.max(1) as f64;
    report.emit("capture_per_photo", capture_s * 1000.0 / photos, "ms");
    report.emit(
        "camera_photo_mean",
        original_bytes as f64 / photos / 1e6,
        "MB",
    );
    report.emit(
        "stored_photo_mean",
        stored_bytes as f64 / photos / 1e6,
        "MB",
    );
    client.sync(&mut phone, &SyncOptions::default(), |_| {})?;

    // Upload over a link that drops every `drop_every` bytes.
    let options = AttachmentSyncOptions {
        chunk_bytes: args.chunk_kib * 1024,
        ..AttachmentSyncOptions::default()
    };
    report.emit("chunk", args.chunk_kib as f64, "KiB");
    let mut link = DroppingLink {
        client: &client,
        drop_every: args.drop_every,
        since_drop: 0,
        sent: 0,
        cuts: 0,
        rng: rand_chacha::ChaCha8Rng::seed_from_u64(args.seed + 1),
    };
    let started = Instant::now();
    let mut uploaded = 0;
    for _ in 0..100_000 {
        match sync_attachments(&mut phone, &options, |r| link.exchange(r), |_| {}) {
            Ok(summary) => {
                uploaded += summary.uploaded.len();
                break;
            }
            Err(vigie_core::Error::Transport { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        uploaded = count_uploaded(&phone, &visits)?;
    }
    let upload_s = started.elapsed().as_secs_f64();
    let uploaded = uploaded.max(count_uploaded(&phone, &visits)?);
    eprintln!(
        "attachments: {uploaded} uploaded with {} cuts in {upload_s:.1} s",
        link.cuts
    );
    report.emit(
        "dropping_link_bytes_sent_per_byte_stored",
        link.sent as f64 / stored_bytes.max(1) as f64,
        "ratio",
    );
    report.emit("dropping_link_cuts", link.cuts as f64, "count");
    report.emit(
        "resent_per_cut",
        (link.sent as f64 - stored_bytes as f64).max(0.0) / link.cuts.max(1) as f64 / 1024.0,
        "KiB",
    );

    // Download on loopback, no drops: the supervisor's phone fetches every photo.
    let mut supervisor = device_store(&dir, "supervisor", &supervisor_token)?;
    let supervisor_client = HubClient::new(&hub.url, &supervisor_token);
    supervisor_client.sync(&mut supervisor, &SyncOptions::default(), |_| {})?;
    let started = Instant::now();
    let down = supervisor_client.sync_attachments(&mut supervisor, &options, |_| {})?;
    let download_s = started.elapsed().as_secs_f64();
    report.emit(
        "download_throughput",
        stored_bytes as f64 / 1e6 / download_s.max(1e-9),
        "MB/s",
    );
    eprintln!("attachments: {} downloaded", down.downloaded.len());

    // One large attachment: upload throughput on loopback and the phone's peak memory.
    let large = args.large_mb * 1024 * 1024;
    let holder = phone.create(&Visit::new(
        VisitKind::CommunityMonitoring,
        &workplace,
        monitor_token.user,
        start,
    ))?;
    let mut limits = phone.attachment_limits()?;
    limits.max_file_bytes = limits.max_file_bytes.max(large as u64);
    phone.set_attachment_limits(&limits)?;
    let entry = phone.add_attachment(
        holder.id,
        &NewAttachment {
            kind: AttachmentKind::VoiceNote,
            media_type: "audio/ogg".into(),
            caption: String::new(),
        },
        // An Ogg file's magic number, then noise.
        std::io::Read::chain(
            &b"OggS"[..],
            Noise {
                left: large - 4,
                rng: rand_chacha::ChaCha8Rng::seed_from_u64(args.seed + 2),
            },
        ),
    )?;
    client.sync(&mut phone, &SyncOptions::default(), |_| {})?;
    let phone_path = phone.path().to_path_buf();
    drop(phone);
    // The phone's side runs in a process of its own, whose peak memory is the phone's.
    let (upload_s, upload_peak) = phone_process(&hub.url, &monitor_token, &phone_path, &options)?;
    report.emit(
        "upload_throughput",
        large as f64 / 1e6 / upload_s.max(1e-9),
        "MB/s",
    );
    report.emit("phone_peak_rss_uploading_large", upload_peak, "MB");
    supervisor_client.sync(&mut supervisor, &SyncOptions::default(), |_| {})?;
    let supervisor_path = supervisor.path().to_path_buf();
    drop(supervisor);
    let (download_s, download_peak) =
        phone_process(&hub.url, &supervisor_token, &supervisor_path, &options)?;
    report.emit(
        "download_throughput_large",
        large as f64 / 1e6 / download_s.max(1e-9),
        "MB/s",
    );
    report.emit("phone_peak_rss_downloading_large", download_peak, "MB");
    report.emit("large_attachment", large as f64 / 1e6, "MB");
    let held = device_store(&dir, "supervisor", &supervisor_token)?
        .attachments(holder.id)?
        .first()
        .map(|a| a.state);
    if held != Some(vigie_core::AttachmentState::Available) {
        return Err(format!("the large attachment did not arrive whole: {held:?}").into());
    }
    let _ = entry;
    drop(hub);
    hub_data.finish()
}

fn count_uploaded(phone: &Store, visits: &[Visit]) -> BoxResult<usize> {
    let mut n = 0;
    for v in visits {
        n += phone
            .attachments(v.id)?
            .iter()
            .filter(|a| a.state == vigie_core::AttachmentState::Uploaded)
            .count();
    }
    Ok(n)
}

/// `left` random bytes, produced as they are read (the phone's recorder streaming a file).
struct Noise {
    left: usize,
    rng: rand_chacha::ChaCha8Rng,
}

impl Read for Noise {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.left);
        self.rng.fill_bytes(&mut buf[..n]);
        self.left -= n;
        Ok(n)
    }
}
