//! Accepting connections: a bounded number of them, each served by hyper with a timeout on
//! reading headers, and closed at once when the hub stops.
//!
//! Past `HttpLimits::max_connections`, the connection idle the longest (still sending its
//! headers, or kept alive between requests) is closed for the new one: a flood of connections
//! that never send a request only replaces itself, while a device that connects and sends its
//! request at once gets through. A connection in the middle of a device's request is never
//! closed for another. One in the middle of a console request (which needs no token: slow
//! forms are the cheapest way to hold connections) is, the longest-running first, when none is
//! idle: a flood of forms cannot keep a device out. When every connection is in a device's
//! request, the newcomer is answered 503 and closed.

use crate::http::{Hub, router};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower::ServiceExt;

/// The largest request head (and read buffer) a connection may hold: a sync request's headers
/// are a few hundred bytes.
const MAX_BUFFER: usize = 16 * 1024;
/// How long in-flight requests may take to finish once the hub is asked to stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
content-length: 51\r\nretry-after: 5\r\nconnection: close\r\n\r\n\
{\"error\":\"too many connections: try again shortly\"}";

/// One open connection, as the registry sees it.
struct Connection {
    /// Requests in progress on it.
    busy: AtomicUsize,
    /// When it last became idle (accepted, or a request ended), in ns since `Connections::epoch`.
    idle_since: AtomicU64,
    /// When its console request began, in ns since `Connections::epoch` plus one; 0 when it is
    /// in no console request.
    console_since: AtomicU64,
    /// Told when the registry closes it for a newcomer.
    evicted: Notify,
}

struct Connections {
    max: usize,
    epoch: Instant,
    open: Mutex<(u64, HashMap<u64, Arc<Connection>>)>,
}

impl Connections {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// A place for a new connection, closing the one idle the longest if they are all taken;
    /// `None` if every connection is in a request.
    fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut guard = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let (next, open) = &mut *guard;
        if open.len() >= self.max {
            let idle = open
                .iter()
                .filter(|(_, c)| c.busy.load(Ordering::Acquire) == 0)
                .min_by_key(|(_, c)| c.idle_since.load(Ordering::Relaxed))
                .map(|(id, _)| *id);
            let in_console = || {
                open.iter()
                    .map(|(id, c)| (*id, c.console_since.load(Ordering::Relaxed)))
                    .filter(|(_, since)| *since != 0)
                    .min_by_key(|(_, since)| *since)
                    .map(|(id, _)| id)
            };
            let closed = idle.or_else(in_console)?;
            if let Some(evicted) = open.remove(&closed) {
                evicted.evicted.notify_one();
            }
        }
        let id = *next;
        *next += 1;
        let connection = Arc::new(Connection {
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(self.now()),
            console_since: AtomicU64::new(0),
            evicted: Notify::new(),
        });
        open.insert(id, connection.clone());
        Some(Slot {
            id,
            connection,
            registry: self.clone(),
        })
    }
}

/// A connection's place in the registry, given back when it ends.
struct Slot {
    id: u64,
    connection: Arc<Connection>,
    registry: Arc<Connections>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut guard = self.registry.open.lock().unwrap_or_else(|p| p.into_inner());
        guard.1.remove(&self.id);
    }
}

/// A request in progress on a connection: the connection may not be closed for another.
struct Busy {
    connection: Arc<Connection>,
    registry: Arc<Connections>,
}

impl Busy {
    /// A request begins on the connection (`console`: one of the console's, not a device's).
    fn new(slot: &Slot, console: bool) -> Busy {
        slot.connection.busy.fetch_add(1, Ordering::AcqRel);
        if console {
            let now = slot.registry.now() + 1;
            slot.connection.console_since.store(now, Ordering::Relaxed);
        }
        Busy {
            connection: slot.connection.clone(),
            registry: slot.registry.clone(),
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.connection.console_since.store(0, Ordering::Relaxed);
        self.connection
            .idle_since
            .store(self.registry.now(), Ordering::Relaxed);
        self.connection.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What the kernel holds of a connection's unsent answer, at most (it counts twice this with
/// its bookkeeping). Left to itself it grows a connection's buffer to 4 MiB whether or not the
/// client reads, so that a thousand clients that read nothing would hold gigabytes of the
/// machine's memory; a quarter of a MiB still fills a link of 1 MB/s at a 250 ms round trip.
const SEND_BUFFER: libc::c_int = 256 * 1024;

fn bound_send_buffer(stream: &tokio::net::TcpStream) {
    use std::os::fd::AsRawFd;
    // SAFETY: an option set on the connection's own socket, from a value that lives through
    // the call.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&SEND_BUFFER as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Raises the process's limit of open files to its hard limit, and returns how many
/// connections it leaves room for (files, sockets of PostgreSQL's pool and logs aside).
fn connection_room(wanted: usize) -> usize {
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    let soft = unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return wanted;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
        limit.rlim_cur
    };
    let room = usize::try_from(soft)
        .unwrap_or(usize::MAX)
        .saturating_sub(128);
    wanted.min(room.max(16))
}

/// A connection's stream, with when its sends stalled: since the first write the client's
/// window did not take, until one it does (`stalled_ns`, in ns since `epoch` plus one; 0 while
/// sends go).
struct Sends<S> {
    inner: S,
    epoch: Instant,
    stalled_ns: Arc<AtomicU64>,
}

impl<S> Sends<S> {
    fn timed(inner: S) -> TokioIo<Sends<S>> {
        TokioIo::new(Sends {
            inner,
            epoch: Instant::now(),
            stalled_ns: Arc::new(AtomicU64::new(0)),
        })
    }

    /// How long its sends have been stalled.
    fn stalled(epoch: Instant, stalled_ns: &AtomicU64) -> Duration {
        match stalled_ns.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => (epoch.elapsed()).saturating_sub(Duration::from_nanos(since - 1)),
        }
    }

    /// A write's outcome: bytes taken end a stall, none taken begin one (a flush that
    /// succeeds says nothing of the client: only bytes leaving do).
    fn note<T>(&self, poll: &std::task::Poll<std::io::Result<T>>, took: impl Fn(&T) -> bool) {
        match poll {
            std::task::Poll::Pending => {
                let now = self.epoch.elapsed().as_nanos() as u64 + 1;
                let _ =
                    self.stalled_ns
                        .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
            }
            std::task::Poll::Ready(Ok(done)) if took(done) => {
                self.stalled_ns.store(0, Ordering::Relaxed)
            }
            std::task::Poll::Ready(_) => {}
        }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Sends<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Sends<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let poll = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note(&poll, |n| *n > 0);
        poll
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let poll = std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note(&poll, |n| *n > 0);
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let poll = std::pin::Pin::new(&mut self.inner).poll_flush(cx);
        self.note(&poll, |()| false);
        poll
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serves one connection (in clear or over TLS) until it ends, the registry closes it for a
/// newcomer, or its client takes no byte of an answer for `send_timeout`.
async fn serve_until_closed<S, Svc, B>(
    io: TokioIo<Sends<S>>,
    (builder, watcher): (hyper::server::conn::http1::Builder, Watcher),
    service: Svc,
    (slot, send_timeout): (Arc<Slot>, Duration),
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    Svc: hyper::service::HttpService<Incoming, ResBody = B>,
    Svc::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (epoch, stalled_ns) = (io.inner().epoch, io.inner().stalled_ns.clone());
    let connection = watcher.watch(builder.serve_connection(io, service));
    let stalled = async {
        let every = (send_timeout / 4).max(Duration::from_millis(50));
        loop {
            tokio::time::sleep(every).await;
            if Sends::<S>::stalled(epoch, &stalled_ns) >= send_timeout {
                return;
            }
        }
    };
    tokio::select! {
        // A connection that fails (a client gone, a header timeout) just ends.
        _ = connection => {}
        () = slot.connection.evicted.notified() => {}
        () = stalled => {
            tracing::debug!("connection closed: its client took no byte of the answer in time");
        }
    }
}

/// Serves the hub on `listener` (over TLS when the hub has a certificate: `Hub::with_tls`)
/// until `shutdown` completes; requests in progress then have a few seconds to finish.
pub async fn serve(
    listener: TcpListener,
    hub: Arc<Hub>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let http = hub.http;
    let tls = hub.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let max = connection_room(http.max_connections);
    if max < http.max_connections {
        tracing::warn!(
            connections = max,
            "the limit of open files allows fewer connections than configured"
        );
    }
    let registry = Arc::new(Connections {
        max,
        epoch: Instant::now(),
        open: Mutex::new((0, HashMap::new())),
    });
    let app = router(hub);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(http.header_timeout)
        .max_buf_size(MAX_BUFFER)
        .max_headers(32);
    let graceful = GracefulShutdown::new();
    let (header_timeout, send_timeout) = (http.header_timeout, http.send_timeout);
    // Handshakes under way when the hub stops (not yet connections `graceful` waits for).
    let stopping = Arc::new(Notify::new());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, most likely: let connections end.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = stream;
        let Some(slot) = registry.admit() else {
            let _ = stream.try_write(REFUSED);
            continue;
        };
        let _ = stream.set_nodelay(true);
        bound_send_buffer(&stream);
        let slot = Arc::new(slot);
        let service = {
            let (app, slot) = (app.clone(), slot.clone());
            hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                // The console throttles failed sign-ins per client address.
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                // Devices speak only to `/v1/`; everything else is the console's.
                let console = !request.uri().path().starts_with("/v1/");
                let busy = Busy::new(&slot, console);
                let app = app.clone();
                async move {
                    let response = app.oneshot(request).await;
                    drop(busy);
                    response
                }
            })
        };
        let (builder, watcher) = (builder.clone(), graceful.watcher());
        let Some(tls) = tls.clone() else {
            tokio::spawn(serve_until_closed(
                Sends::timed(stream),
                (builder, watcher),
                service,
                (slot, send_timeout),
            ));
            continue;
        };
        // The handshake runs in the connection's own task, bounded as a request's headers are
        // (a client that opens and never speaks only holds an idle place, which a newcomer
        // takes); the hub stopping ends it at once, as an idle connection.
        let stopping = stopping.clone();
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(header_timeout, tls.accept(stream));
            let stream = tokio::select! {
                done = handshake => match done {
                    Ok(Ok(stream)) => stream,
                    // Not TLS (an app given http:// for an https hub), a certificate its
                    // client refused, or too slow: the connection ends.
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                },
                () = slot.connection.evicted.notified() => return,
                () = stopping.notified() => return,
            };
            let (stream, slot) = (Sends::timed(stream), (slot, send_timeout));
            serve_until_closed(stream, (builder, watcher), service, slot).await;
        });
    }
    stopping.notify_waiters();
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in progress at shutdown were cut");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(max: usize) -> Arc<Connections> {
        Arc::new(Connections {
            max,
            epoch: Instant::now(),
            open: Mutex::new((0, HashMap::new())),
        })
    }

    #[test]
    fn past_the_cap_the_longest_idle_connection_makes_room() {
        let registry = registry(2);
        let first = registry.admit().unwrap();
        let second = registry.admit().unwrap();
        let _busy = Busy::new(&second, false);
        let third = registry
            .admit()
            .expect("the idle first connection makes room");
        assert!(!registry.open.lock().unwrap().1.contains_key(&first.id));
        // `first` was told to close: its notification is stored.
        let notified = first.connection.evicted.notified();
        let waker = futures_waker();
        let mut notified = std::pin::pin!(notified);
        assert!(
            notified
                .as_mut()
                .poll(&mut std::task::Context::from_waker(&waker))
                .is_ready()
        );
        // Now one is busy and the other idle: the idle one goes again.
        let _busy_third = Busy::new(&third, false);
        assert!(
            registry.admit().is_none(),
            "every connection is in a request"
        );
        drop(_busy_third);
        assert!(registry.admit().is_some());
    }

    #[test]
    fn a_closed_connection_gives_its_place_back() {
        let registry = registry(1);
        let only = registry.admit().unwrap();
        let _busy = Busy::new(&only, false);
        assert!(registry.admit().is_none());
        drop(_busy);
        drop(only);
        assert!(registry.admit().is_some());
    }

    #[test]
    fn a_console_request_gives_way_the_longest_running_first_and_a_devices_never() {
        let registry = registry(3);
        let device = registry.admit().unwrap();
        let older_form = registry.admit().unwrap();
        let newer_form = registry.admit().unwrap();
        let _device = Busy::new(&device, false);
        let _older = Busy::new(&older_form, true);
        let _newer = Busy::new(&newer_form, true);
        let newcomer = registry.admit().expect("a console request gives way");
        let open = |id| registry.open.lock().unwrap().1.contains_key(&id);
        assert!(!open(older_form.id) && open(newer_form.id) && open(device.id));
        let _newcomer = Busy::new(&newcomer, false);
        registry
            .admit()
            .expect("the other console request gives way");
        assert!(!open(newer_form.id) && open(device.id));
    }

    fn futures_waker() -> std::task::Waker {
        struct Noop;
        impl std::task::Wake for Noop {
            fn wake(self: Arc<Self>) {}
        }
        Arc::new(Noop).into()
    }
}
