//! Helpers of the hub-surface tests: a hub started with more options, its memory, raw HTTP
//! exchanges that stop half-way, and the administration commands.

use super::{Hub, database_args, vigie_output};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How to start a hub beyond `Hub::start`.
#[derive(Default, Clone)]
pub struct HubOptions {
    /// More arguments of `vigie serve` (`--max-connections 50`, …).
    pub args: Vec<String>,
    /// Environment variables, `RUST_LOG` among them, over the default ones.
    pub env: Vec<(String, String)>,
    /// A PostgreSQL database, whatever `VIGIE_TEST_BACKEND` says.
    pub database: Option<String>,
}

impl HubOptions {
    pub fn args(args: &[&str]) -> HubOptions {
        HubOptions {
            args: args.iter().map(|a| a.to_string()).collect(),
            ..HubOptions::default()
        }
    }
}

impl Hub {
    /// Starts a hub on `data` with `options`.
    pub fn start_with_options(data: &Path, options: HubOptions) -> Hub {
        let mut hub = Hub {
            child: None,
            url: String::new(),
            data: data.to_path_buf(),
            database: options.database,
            log: data.with_extension("hub.log"),
            starts: 0,
            extra_args: options.args,
            extra_env: options.env,
            sample_areas: true,
            key_hex: None,
        };
        if hub.database.is_some() {
            hub.key_hex = Some(super::SHARED_HUB_KEY.into());
        }
        hub.restart();
        hub
    }

    /// Stops the hub and starts it again on the same data with other `vigie serve` arguments.
    pub fn restart_with_args(&mut self, args: &[&str]) {
        self.stop();
        self.extra_args = args.iter().map(|a| a.to_string()).collect();
        self.restart();
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the hub is running").id()
    }

    /// The hub's resident memory now and at its peak (VmRSS, VmHWM), in MiB.
    pub fn memory_mib(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the hub's /proc status");
        let field = |name: &str| -> f64 {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("{name} in /proc status"));
            let kib: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
            kib / 1024.0
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// How many sockets and files the hub holds open.
    pub fn open_files(&self) -> usize {
        self.open_file_targets().len()
    }

    /// How many files a hub on PostgreSQL may open beyond a hub on SQLite: its pool opens
    /// connections as requests need them, up to 16, and each holds a socket and the event
    /// file and poll of the runtime the `postgres` client runs on.
    pub fn database_pool_files(&self) -> usize {
        if self.database_args().is_empty() {
            0
        } else {
            16 * 3
        }
    }

    /// How many connections from clients the hub holds: its sockets that are connections on
    /// its own port, whatever its database opened.
    pub fn client_connections(&self) -> usize {
        let port: u16 = self
            .addr()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the hub's port");
        let port = format!(":{port:04X}");
        let mut on_port = std::collections::HashSet::new();
        for table in ["tcp", "tcp6"] {
            let path = format!("/proc/{}/net/{table}", self.pid());
            for line in std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .skip(1)
            {
                // sl, local address, remote address, state, …, inode (the tenth field).
                let fields: Vec<&str> = line.split_whitespace().collect();
                let listening = fields.get(3) == Some(&"0A");
                if !listening
                    && fields.get(1).is_some_and(|local| local.ends_with(&port))
                    && let Some(inode) = fields.get(9)
                {
                    on_port.insert(format!("socket:[{inode}]"));
                }
            }
        }
        self.open_file_targets()
            .iter()
            .filter(|target| on_port.contains(*target))
            .count()
    }

    fn open_file_targets(&self) -> Vec<String> {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .filter_map(|entry| std::fs::read_link(entry.path()).ok())
                    .map(|target| target.to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The whole log the hub wrote (its stderr).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A connection to the hub that sends `head` (and maybe part of a body) and then stalls.
pub struct Stalled {
    pub stream: TcpStream,
}

impl Stalled {
    /// Connects and writes `bytes`; `None` if the hub refused or closed the connection at once.
    pub fn open(addr: &str, bytes: &[u8]) -> Option<Stalled> {
        let mut stream = TcpStream::connect(addr).ok()?;
        // A hub that neither reads nor closes must not hang the test.
        stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .ok()?;
        stream.write_all(bytes).ok()?;
        Some(Stalled { stream })
    }

    /// `open`, with a receive window of 16 KiB at most (no tuning by the kernel): a client
    /// that takes a few bytes of what it is sent and no more holds the rest on the hub's side.
    pub fn open_with_a_small_window(addr: &str, bytes: &[u8]) -> Option<Stalled> {
        use std::os::fd::FromRawFd;
        let addr: std::net::SocketAddrV4 = addr.parse().ok()?;
        let size: libc::c_int = 16 * 1024;
        let address = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: addr.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*addr.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: a socket of this process, configured and connected with values that live
        // through each call; on success it is owned by the `TcpStream` and closed with it.
        let stream = unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            if fd < 0 {
                return None;
            }
            let stream = TcpStream::from_raw_fd(fd);
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
            let connected = libc::connect(
                fd,
                (&address as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            );
            if connected != 0 {
                return None;
            }
            stream
        };
        let mut stream = stream;
        stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .ok()?;
        stream.write_all(bytes).ok()?;
        Some(Stalled { stream })
    }

    /// A sync request's head with this authorization and declared length.
    pub fn head(addr: &str, authorization: Option<&str>, length: usize) -> Vec<u8> {
        let authorization = authorization
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        format!(
            "POST /v1/sync HTTP/1.1\r\nHost: {addr}\r\n{authorization}\
             Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n"
        )
        .into_bytes()
    }

    /// What the hub answers within `timeout`: the status and the body (as text), `Err` with
    /// what happened if the connection was closed without an answer or nothing came.
    pub fn answer(&mut self, timeout: Duration) -> Result<(u16, String), String> {
        let deadline = Instant::now() + timeout;
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("no answer in time".into());
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err("no answer in time".into());
                }
                Err(e) => {
                    if received.is_empty() {
                        return Err(format!("connection failed: {e}"));
                    }
                    break;
                }
            }
            if let Some(answer) = parse_answer(&received) {
                return Ok(answer);
            }
        }
        parse_answer(&received).ok_or_else(|| {
            if received.is_empty() {
                "closed without an answer".to_string()
            } else {
                format!("a partial answer: {}", String::from_utf8_lossy(&received))
            }
        })
    }

    /// Whether the hub closed the connection within `timeout` (without answering anything).
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        matches!(self.answer(timeout), Err(e) if e != "no answer in time")
    }
}

/// The status and body of a whole HTTP/1.1 answer with a `content-length`, if it is all there.
fn parse_answer(bytes: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    (body.len() >= length).then(|| (status, body[..length].to_string()))
}

/// `vigie <args> --data <data> [--database …]`: the output, whether it succeeded or not.
pub fn admin(data: &Path, args: &[&str]) -> std::process::Output {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.extend(["--data".to_string(), data.to_str().unwrap().to_string()]);
    all.extend(database_args(data));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    vigie_output(&all)
}

/// `admin`, which must succeed: its JSON lines.
pub fn admin_lines(data: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    let out = admin(data, args);
    assert!(
        out.status.success(),
        "vigie {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// `admin`, which must fail: its error message.
pub fn admin_error(data: &Path, args: &[&str]) -> String {
    let out = admin(data, args);
    assert!(!out.status.success(), "vigie {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// The line of a listing whose `key` is `id`.
pub fn line_of<'a>(lines: &'a [serde_json::Value], key: &str, id: Uuid) -> &'a serde_json::Value {
    lines
        .iter()
        .find(|l| l[key] == id.to_string())
        .unwrap_or_else(|| panic!("{id} listed"))
}
