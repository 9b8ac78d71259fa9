//! A TCP proxy that cuts connections at chosen bytes.

use super::*;

/// What the proxy does to one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Forward everything.
    Never,
    /// Forward this many bytes from the device to the hub, then close both sides.
    Up(usize),
    /// Forward this many bytes from the hub to the device, then close both sides.
    Down(usize),
}

#[derive(Debug, Default)]
pub struct ProxyStats {
    pub connections: AtomicUsize,
    pub cuts: AtomicUsize,
}

/// A proxy on 127.0.0.1 in front of a hub, which cuts each connection after a random number of
/// bytes in one direction (drawn from a seeded generator, one plan per connection).
pub struct CutProxy {
    pub url: String,
    pub stats: Arc<ProxyStats>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl CutProxy {
    /// `target` is the hub's `host:port`; `never` is the chance a connection is left whole.
    pub fn start(target: &str, seed: u64, never: f64) -> CutProxy {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        CutProxy::with_plans(target, move || {
            if rng.gen_bool(never) {
                Cut::Never
            } else {
                // Log-uniform: cuts in the headers as well as deep in the bodies.
                let scale = 1usize << rng.gen_range(0..17);
                let bytes = rng.gen_range(0..scale.max(1));
                if rng.gen_bool(0.5) {
                    Cut::Up(bytes)
                } else {
                    Cut::Down(bytes)
                }
            }
        })
    }

    /// A proxy that cuts every connection as `cut` says.
    pub fn cutting(target: &str, cut: Cut) -> CutProxy {
        CutProxy::with_plans(target, move || cut)
    }

    fn with_plans(target: &str, mut next_plan: impl FnMut() -> Cut + Send + 'static) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        listener.set_nonblocking(true).expect("nonblocking accept");
        let stats = Arc::new(ProxyStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let target = target.to_string();
        let accept = {
            let (stats, stop) = (stats.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let client = match listener.accept() {
                        Ok((client, _)) => client,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(2));
                            continue;
                        }
                        Err(_) => continue,
                    };
                    stats.connections.fetch_add(1, Ordering::Relaxed);
                    let plan = next_plan();
                    let _ = client.set_nonblocking(false);
                    let Ok(upstream) = TcpStream::connect(&target) else {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = upstream.set_nodelay(true);
                    let (up_limit, down_limit) = match plan {
                        Cut::Never => (None, None),
                        Cut::Up(n) => (Some(n), None),
                        Cut::Down(n) => (None, Some(n)),
                    };
                    for (from, to, limit) in [
                        (&client, &upstream, up_limit),
                        (&upstream, &client, down_limit),
                    ] {
                        let (Ok(from), Ok(to), Ok(a), Ok(b)) = (
                            from.try_clone(),
                            to.try_clone(),
                            client.try_clone(),
                            upstream.try_clone(),
                        ) else {
                            continue;
                        };
                        let stats = stats.clone();
                        std::thread::spawn(move || pump(from, to, limit, [a, b], &stats));
                    }
                }
            })
        };
        CutProxy {
            url,
            stats,
            stop,
            accept: Some(accept),
        }
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
    }
}

/// Copies `from` to `to`; after `limit` bytes, closes both connections in both directions.
pub fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    limit: Option<usize>,
    both: [TcpStream; 2],
    stats: &ProxyStats,
) {
    let cut = |stats: &ProxyStats| {
        stats.cuts.fetch_add(1, Ordering::Relaxed);
        for s in &both {
            let _ = s.shutdown(Shutdown::Both);
        }
    };
    if limit == Some(0) {
        return cut(stats);
    }
    let mut sent = 0usize;
    let mut buf = [0u8; 8192];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let allowed = limit.map_or(n, |l| n.min(l - sent));
        if to.write_all(&buf[..allowed]).is_err() {
            break;
        }
        sent += allowed;
        if limit == Some(sent) {
            return cut(stats);
        }
    }
    // The sender closed (or failed): pass the end on.
    let _ = to.shutdown(Shutdown::Write);
}

/// Polls `done` every 10 ms until it holds or `timeout` passes; returns its last answer.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done()
}
