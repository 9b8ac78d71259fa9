//! The hub process: the real `vigie serve` on 127.0.0.1, restarted and killed at will.

use super::*;

/// A running `vigie serve`, killed when dropped.
pub struct Hub {
    pub(crate) child: Option<Child>,
    pub url: String,
    pub data: PathBuf,
    /// The PostgreSQL database given to `start_on`; else the suite's choice for `data`.
    pub database: Option<String>,
    pub(crate) log: PathBuf,
    pub starts: usize,
    /// More arguments of `vigie serve`, and environment variables that override the default
    /// ones (`surface::HubOptions`).
    pub(crate) extra_args: Vec<String>,
    pub(crate) extra_env: Vec<(String, String)>,
    /// Whether the sample area tree is published before the hub serves (a hub serves a
    /// country's records only once its area tree is published).
    pub(crate) sample_areas: bool,
    /// The hub's key given on the command line (hubs sharing one database share it); else the
    /// hub finds its key file beside `data`, as by default.
    pub(crate) key_hex: Option<String>,
}

/// The key of the hubs `Hub::start_on` starts on one database (as 64 hex digits).
pub const SHARED_HUB_KEY: &str = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";

impl Hub {
    /// Starts a hub on `data` (a directory), listening on a free port of 127.0.0.1, with the
    /// sample area tree published (`reference/areas-CI.json`).
    pub fn start(data: &Path) -> Hub {
        Hub::start_with(data, None)
    }

    /// Starts a hub on `data` without publishing any area tree.
    pub fn start_without_areas(data: &Path) -> Hub {
        let mut hub = Hub::new(data, None, false);
        hub.restart();
        hub
    }

    /// Starts a hub on the PostgreSQL database `database` (several hubs may share one), whatever
    /// `VIGIE_TEST_BACKEND` says; `data` only names its log (`<data>.hub.log`).
    pub fn start_on(data: &Path, database: &str) -> Hub {
        Hub::start_with(data, Some(database.to_string()))
    }

    pub(crate) fn start_with(data: &Path, database: Option<String>) -> Hub {
        let mut hub = Hub::new(data, database, true);
        if hub.database.is_some() {
            hub.key_hex = Some(SHARED_HUB_KEY.into());
        }
        hub.restart();
        hub
    }

    pub(crate) fn new(data: &Path, database: Option<String>, sample_areas: bool) -> Hub {
        Hub {
            child: None,
            url: String::new(),
            data: data.to_path_buf(),
            database,
            log: data.with_extension("hub.log"),
            starts: 0,
            extra_args: Vec::new(),
            extra_env: Vec::new(),
            sample_areas,
            key_hex: None,
        }
    }

    /// How this hub finds its key, for this process.
    pub fn key_options(&self) -> vigie_server::hub_key::KeyOptions {
        vigie_server::hub_key::KeyOptions {
            key_hex: self.key_hex.clone(),
            ..Default::default()
        }
    }

    /// `--key-hex <key>` when the hub's key is given on the command line.
    pub(crate) fn key_args(&self) -> Vec<String> {
        match &self.key_hex {
            Some(key) => vec!["--key-hex".into(), key.clone()],
            None => Vec::new(),
        }
    }

    /// The hub's `--database` arguments.
    pub(crate) fn database_args(&self) -> Vec<String> {
        match &self.database {
            Some(url) => vec!["--database".into(), url.clone()],
            None => database_args(&self.data),
        }
    }

    /// Starts the hub again on the same data (it must be stopped); the port changes.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the hub is already running");
        if self.sample_areas && self.starts == 0 {
            let mut args = vec![
                "reference".to_string(),
                "publish".into(),
                "--data".into(),
                self.data.to_str().expect("utf-8 path").into(),
            ];
            args.extend(self.database_args());
            args.extend(self.key_args());
            args.push(reference::SAMPLE_AREAS.into());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            vigie(&args);
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("hub log file");
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--data")
            .arg(&self.data)
            .args(self.database_args())
            .args(self.key_args())
            .args(["--listen", "127.0.0.1:0"])
            // Debug for Vigie's own crates: the log scan of scripts/test.sh reads all of it.
            .env(
                "RUST_LOG",
                "info,vigie=debug,vigie_server=debug,vigie_core=debug,automerge=off",
            )
            .env_remove("VIGIE_HUB_KEY")
            .args(&self.extra_args)
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn vigie serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = channel();
        // Reads the first line, then drains stdout until the hub exits.
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the hub did not report its address within 30 s");
            }
        };
        let url = line
            .trim()
            .strip_prefix("vigie hub listening on ")
            .unwrap_or_else(|| {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "unexpected first line from the hub: {line:?}; log:\n{}",
                    self.log_tail(20)
                )
            })
            .to_string();
        assert!(
            url.starts_with("http://127.0.0.1:") || url.starts_with("https://127.0.0.1:"),
            "the hub listens on {url}, not on 127.0.0.1"
        );
        self.url = url;
        self.child = Some(child);
        self.starts += 1;
    }

    /// The hub process's peak resident memory so far, in MiB (Linux's `VmHWM`).
    pub fn peak_rss_mib(&self) -> Option<f64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb / 1024.0)
    }

    /// `host:port` of the hub.
    pub fn addr(&self) -> String {
        let url = self.url.as_str();
        url.strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .unwrap_or(url)
            .to_string()
    }

    /// Kills the hub with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill the hub");
            child.wait().expect("reap the hub");
        }
    }

    /// Stops the hub as Ctrl-C would (graceful shutdown); SIGKILL if it takes over 10 s.
    pub fn stop(&mut self) {
        self.stop_with(libc::SIGINT);
    }

    /// Stops the hub with `signal` (SIGINT, or a service manager's SIGTERM); SIGKILL if it
    /// takes over 10 s. Returns whether it stopped by itself, with success.
    pub fn stop_with(&mut self, signal: libc::c_int) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        // SAFETY: sends a signal to our own child, whose pid we hold and have not reaped.
        unsafe {
            libc::kill(child.id() as libc::pid_t, signal);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match child.try_wait().expect("wait for the hub") {
                Some(status) => return status.success(),
                None if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// Whether the hub process is still alive (it never exits on its own).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => child.try_wait().expect("poll the hub").is_none(),
            None => false,
        }
    }

    /// The hub's store, opened by this process: only while the hub is stopped.
    pub fn open_store(&self) -> Store {
        assert!(
            self.child.is_none(),
            "open the hub's store only while it is stopped"
        );
        let Some(url) = self.database.clone().or_else(|| hub_database(&self.data)) else {
            let encryption = vigie_server::hub_encryption(&self.data, &self.key_options())
                .expect("the hub's key");
            return vigie_server::open_store(&self.data, encryption).expect("open the hub store");
        };
        // On PostgreSQL: a copy of its records in an embedded store, made now.
        static COPIES: AtomicUsize = AtomicUsize::new(0);
        let copy = self
            .data
            .with_extension(format!("copy-{}", COPIES.fetch_add(1, Ordering::Relaxed)));
        let mut store =
            vigie_server::open_store(&copy, Encryption::Unencrypted).expect("open a copy store");
        vigie_server::postgres::Postgres::connect(&url, 1, &self.key_options(), &self.data)
            .expect("connect to the hub's database")
            .copy_into(&mut store)
            .expect("copy the hub's records");
        store
    }

    /// The last lines the hub logged (its stderr), for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Lines of the hub's log that report one of its own errors (a 5xx) or a panic. Errors that
    /// libraries log about bytes they refused (automerge's "bad checksum") are not counted.
    pub fn log_errors(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| (l.contains("ERROR") && l.contains("vigie")) || l.contains("panicked"))
            .map(str::to_string)
            .collect()
    }

    /// How many lines of the hub's log are at level ERROR, whoever logged them.
    pub fn log_error_lines(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("ERROR"))
            .count()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("hub log (last lines):\n{}", self.log_tail(30));
        }
        self.kill();
        // scripts/test.sh keeps every hub's log, to scan them for personal data.
        if let Ok(dir) = std::env::var("VIGIE_TEST_LOG_DIR") {
            static KEPT: AtomicUsize = AtomicUsize::new(0);
            let name = format!(
                "{}-{}.hub.log",
                std::process::id(),
                KEPT.fetch_add(1, Ordering::Relaxed)
            );
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::copy(&self.log, Path::new(&dir).join(name));
        }
    }
}
