//! `vigie-bench console`: the supervisors' console at the reference workload ×10 (150,000
//! records) on the real `vigie` binary: the server time of the overview (indicators and charts),
//! a case search, the first page of the review queue and the map, export downloads, the
//! overview's round trip while six downloads of the visits table run, and the hub's memory while
//! it serves them.
//!
//! The hub's store is written directly (as `sync` does: the workload in transactions of 5,000
//! records, the sample area tree published), then `vigie serve` runs on it and a supervisor of
//! the region signs in over HTTP. Each page is asked for `--samples` times after one warm-up;
//! the time is the hub's own (`Server-Timing`), and the client's round trip beside it.
//! Targets (issue 16): overview ≤ 300 ms, search and review queue ≤ 100 ms, map ≤ 500 ms.

use crate::real_hub::hub_bin;
use crate::workload::{AnyRecord, REGION, Workload};
use crate::{BoxResult, P50_P99, Report};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vigie_core::{ReferenceFile, Role, Store, User};
use vigie_server::console::storage::{Account, ConsoleStorage};

pub struct ConsoleArgs {
    pub scale: f64,
    pub seed: u64,
    pub samples: usize,
    pub hub_bin: Option<String>,
    pub dir: Option<String>,
}

const LOGIN: &str = "bench.superviseur";
const PASSWORD: &str = "bench password 2026";

fn build(data: &Path, scale: f64, seed: u64) -> BoxResult<usize> {
    // Encrypted as a new hub is: the key file beside the data directory, where the hub finds it.
    let encryption = vigie_server::hub_encryption(data, &crate::sync_bench::hub_key())?;
    let mut store = vigie_server::open_store(data, encryption.clone())?;
    let file = ReferenceFile::parse(include_str!("../../../reference/areas-CI.json"))
        .map_err(|e| e.to_string())?;
    store.publish_reference(&file.key, file.content)?;
    let (mut w, mut v, mut c) = (Vec::new(), Vec::new(), Vec::new());
    let mut count = 0;
    let flush =
        |store: &mut Store, w: &mut Vec<_>, v: &mut Vec<_>, c: &mut Vec<_>| -> BoxResult<()> {
            store.create_all(w)?;
            store.create_all(v)?;
            store.create_all(c)?;
            w.clear();
            v.clear();
            c.clear();
            Ok(())
        };
    let started = Instant::now();
    for record in Workload::new(seed, scale) {
        match record {
            AnyRecord::User(u) => {
                store.create(&u)?;
                continue;
            }
            AnyRecord::Workplace(r) => w.push(r),
            AnyRecord::Visit(r) => v.push(r),
            AnyRecord::ChildCase(r) => c.push(r),
        }
        count += 1;
        if count % 5_000 == 0 {
            flush(&mut store, &mut w, &mut v, &mut c)?;
            eprintln!(
                "console bench: {count} records written ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    flush(&mut store, &mut w, &mut v, &mut c)?;
    let supervisor = store.create(&User::new(
        "Superviseur (banc d'essai)",
        Role::Supervisor,
        &[REGION],
    ))?;
    store.close()?;
    let registry = std::sync::Mutex::new(vigie_server::open_registry(data, &encryption)?);
    registry
        .set_account(&Account {
            user: supervisor.id,
            login: LOGIN.into(),
            password_hash: vigie_server::console::session::hash_password(PASSWORD)?,
        })
        .map_err(|e| e.to_string())?;
    Ok(count)
}

/// Exports of the visits table downloaded at once beside the overview.
const EXPORTS_BESIDE: usize = 6;

/// A signed-in browser over plain HTTP: its cookies.
#[derive(Clone)]
struct Client {
    base: String,
    agent: ureq::Agent,
    cookies: BTreeMap<String, String>,
}

impl Client {
    /// GET `path`, or POST `form` to it.
    fn request(
        &mut self,
        path: &str,
        form: Option<String>,
    ) -> BoxResult<(u16, Option<f64>, String)> {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let url = format!("{}{path}", self.base);
        let mut response = match form {
            None => self.agent.get(&url).header("Cookie", &cookie).call()?,
            Some(body) => self
                .agent
                .post(&url)
                .header("Cookie", &cookie)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .send(body)?,
        };
        for value in response.headers().get_all("set-cookie") {
            if let Some((k, v)) = value
                .to_str()?
                .split(';')
                .next()
                .and_then(|p| p.split_once('='))
            {
                self.cookies.insert(k.into(), v.into());
            }
        }
        let server = response
            .headers()
            .get("server-timing")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split("dur=").nth(1))
            .and_then(|v| v.parse().ok());
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_string()?;
        Ok((status, server, body))
    }
}

fn hidden_csrf(body: &str) -> Option<String> {
    let marker = "name=\"csrf\" value=\"";
    let at = body.find(marker)? + marker.len();
    Some(body[at..].split('"').next()?.to_string())
}

fn rss_mb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

pub fn bench_console(args: &ConsoleArgs) -> BoxResult<()> {
    let bin = hub_bin(args.hub_bin.clone())?;
    let temp = tempfile::tempdir()?;
    let data = match &args.dir {
        Some(dir) => Path::new(dir).to_path_buf(),
        None => temp.path().join("hub"),
    };
    let report = Report {
        bench: "console",
        scale: Some(args.scale),
    };
    if !data.join("hub.db").exists() {
        let started = Instant::now();
        let count = build(&data, args.scale, args.seed)?;
        eprintln!(
            "console bench: {count} records in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        report.emit("records", count as f64, "records");
    }
    let mut child = Command::new(&bin)
        .args(["serve", "--data"])
        .arg(&data)
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
    let base = line
        .trim()
        .strip_prefix("vigie hub listening on ")
        .ok_or("unexpected hub output")?
        .to_string();
    let pid = child.id();
    let outcome = (|| -> BoxResult<()> {
        let mut client = Client {
            base,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_global(Some(Duration::from_secs(300)))
                .build()
                .into(),
            cookies: BTreeMap::new(),
        };
        let (_, _, form) = client.request("/console/signin", None)?;
        let csrf = hidden_csrf(&form).ok_or("no sign-in form")?;
        let body = format!(
            "csrf={csrf}&next=%2Fconsole%2F&login={LOGIN}&password={}",
            PASSWORD.replace(' ', "+")
        );
        let (status, _, _) = client.request("/console/signin", Some(body))?;
        if status != 303 {
            return Err(format!("sign-in answered {status}").into());
        }
        let pages = [
            ("overview", "/console/"),
            ("case_search", "/console/cases?q=kouame"),
            ("review_queue", "/console/review"),
            ("map", "/console/map?from=2025-01-01&until=2026-01-01"),
            // A number no code ends with: the search goes through every case of the region.
            ("case_code_search", "/console/cases?q=999999"),
            (
                "export_referrals",
                "/console/exports/download?table=referrals",
            ),
            (
                "export_workplaces",
                "/console/exports/download?table=workplaces",
            ),
        ];
        for (name, path) in pages {
            let started = Instant::now();
            let (status, server, body) = client.request(path, None)?;
            if status != 200 {
                return Err(format!("{path} answered {status}").into());
            }
            // The first request of the process opens the console's view.
            report.emit(
                &format!("{name}_first_ms"),
                server.unwrap_or_else(|| started.elapsed().as_secs_f64() * 1000.0),
                "ms",
            );
            report.emit(
                &format!("{name}_page_kib"),
                body.len() as f64 / 1024.0,
                "KiB",
            );
            let mut server_times = Vec::new();
            let mut round_trips = Vec::new();
            for _ in 0..args.samples {
                let started = Instant::now();
                let (_, server, _) = client.request(path, None)?;
                round_trips.push(started.elapsed());
                server_times.push(Duration::from_secs_f64(server.unwrap_or(0.0) / 1000.0));
            }
            report.emit_latencies(&format!("{name}_server"), &mut server_times, P50_P99);
            report.emit_latencies(&format!("{name}_round_trip"), &mut round_trips, P50_P99);
        }
        // Supervisors downloading the region's visits (the longest export) while another
        // opens the overview: the overview's wait beside them.
        let downloads: Vec<_> = (0..EXPORTS_BESIDE)
            .map(|_| {
                let mut client = client.clone();
                std::thread::spawn(move || {
                    client
                        .request("/console/exports/download?table=visits", None)
                        .map(|(status, _, _)| status)
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let mut beside = Vec::new();
        for _ in 0..args.samples {
            let started = Instant::now();
            client.request("/console/", None)?;
            beside.push(started.elapsed());
        }
        report.emit_latencies("overview_beside_exports_round_trip", &mut beside, P50_P99);
        let started = Instant::now();
        for download in downloads {
            let status = download.join().map_err(|_| "export thread panicked")??;
            if status != 200 {
                return Err(format!("visits export answered {status}").into());
            }
        }
        report.emit(
            "exports_beside_remaining",
            started.elapsed().as_secs_f64() * 1000.0,
            "ms",
        );
        report.emit("hub_rss", rss_mb(pid, "VmRSS:"), "MB");
        report.emit("hub_peak_rss", rss_mb(pid, "VmHWM:"), "MB");
        Ok(())
    })();
    let _ = child.kill();
    let _ = child.wait();
    outcome
}
