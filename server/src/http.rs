//! The hub's HTTP face: one sync endpoint over the core's engine.
//!
//! `POST /v1/sync` with `Authorization: Bearer <enrolment token>` and a sync request as the body;
//! the response body is the sync response. `POST /v1/attachments` carries one chunk of an
//! attachment's upload or download the same way. Errors are JSON `{"error": "..."}` with a 4xx for
//! anything the device sent wrong and a 5xx for the hub's own failures. Storage work runs on
//! worker threads of its own: it never stalls the async runtime.
//!
//! Nothing of a body is read before the device is authenticated from its headers, has a free
//! place among its requests at once, and its declared length fits; the body must then keep
//! arriving (`HttpLimits`). Connections themselves are bounded in `listener.rs`.

use crate::auth::{AuthError, Token};
use crate::backend::Backend;
use crate::logging::LogBudget;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;
use vigie_core::sync::{
    AttachmentResponse, HubError, HubLimits, Principal, decode_attachment_response,
};

pub use crate::listener::serve;

pub struct Hub {
    pub backend: Box<dyn Backend>,
    pub limits: HubLimits,
    pub workers: Workers,
    /// The console's own threads: however long its pages and exports take, they never hold a
    /// thread devices' syncs need.
    pub console_workers: Workers,
    pub http: HttpLimits,
    guards: Arc<Guards>,
    /// The supervisors' console served beside sync (`console`).
    pub console: crate::console::Console,
    /// TLS on the hub's own listener (`tls`); none behind a proxy that terminates it, or on
    /// the machine's own loopback.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Hub {
    pub fn new(
        backend: Box<dyn Backend>,
        limits: HubLimits,
        workers: Workers,
        console_workers: Workers,
    ) -> Hub {
        Hub {
            backend,
            limits,
            workers,
            console_workers,
            guards: Arc::new(Guards::new(&HttpLimits::default())),
            http: HttpLimits::default(),
            console: Default::default(),
            tls: None,
        }
    }

    /// The same hub served over TLS (`tls::server_config`): its console's cookies are Secure.
    pub fn with_tls(mut self, tls: Arc<rustls::ServerConfig>) -> Hub {
        self.tls = Some(tls);
        self
    }

    /// The same hub with the console's settings (public address, map tiles).
    pub fn with_console(mut self, settings: crate::console::Settings) -> Hub {
        self.console = crate::console::Console::new(settings);
        self
    }

    /// The same hub with other bounds on connections and requests.
    pub fn with_http(mut self, http: HttpLimits) -> Hub {
        self.guards = Arc::new(Guards::new(&http));
        self.http = http;
        self
    }
}

/// Bounds on what connections and requests may hold of the hub before and while their body
/// arrives: what a device that sends slowly, or an attacker without a token, can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections open at once. Past it, the connection idle the longest (between requests,
    /// or still sending its headers) is closed for the new one; when every connection is in a
    /// request, the new one is answered 503 and closed.
    pub max_connections: usize,
    /// Requests of one device served at once (a phone sends one at a time; its retries after a
    /// timeout may overlap): more get 429.
    pub max_requests_per_device: usize,
    /// Requests of one user's devices served at once, together (a phone and a tablet): more
    /// wait their turn, at most `user_wait`, then get 429. Below the storage workers, so that
    /// one user's devices, whatever they send, always leave workers to everyone else.
    pub max_requests_per_user: usize,
    pub user_wait: Duration,
    /// A request's headers must arrive within this time (also how long an idle connection is
    /// kept between requests).
    pub header_timeout: Duration,
    /// A body must keep arriving: this long for the first bytes, then one more second for
    /// every `min_body_rate` bytes received (as Apache's `mod_reqtimeout`), and never this long
    /// without a byte; else 408.
    pub body_timeout: Duration,
    /// 256 bytes a second (2 kbit/s): below the poorest GPRS a field phone meets. At 1 KiB/s
    /// a phone on a 6 kbit/s uplink never moved a photo (its smallest chunk, one sealed
    /// segment of 64 KiB, needed 94 s and got 63) and spent 200 KB of data trying each
    /// session. A slow body holds only the bytes it sent, and one of its device's places.
    pub min_body_rate: usize,
    /// Bytes of request bodies held at once (being received or served), whatever the number of
    /// devices, counted as they arrive; a request waits for the share of bytes it has
    /// received at most `body_wait`, then gets 503.
    pub max_body_bytes_held: usize,
    pub body_wait: Duration,
    /// An answer must keep leaving: a connection whose client takes none of its bytes for this
    /// long is closed (a phone on a weak link takes some every few seconds; one that reads
    /// nothing would hold its answer, megabytes, for as long as it stays connected).
    pub send_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 1024,
            max_requests_per_device: 2,
            max_requests_per_user: 3,
            user_wait: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(20),
            min_body_rate: 256,
            max_body_bytes_held: 64 * 1024 * 1024,
            body_wait: Duration::from_secs(30),
            send_timeout: Duration::from_secs(60),
        }
    }
}

/// What requests hold of the hub at this moment.
struct Guards {
    /// Requests in progress, by device (those waiting for their user's turn included) and by
    /// user.
    in_progress: std::sync::Mutex<InProgress>,
    /// Told when a user's request ends, to the requests waiting for their user's turn.
    user_turn_freed: tokio::sync::Notify,
    /// Body bytes held, in KiB: each body's first `SMALL_BODY_KIB` from `small_body_kib`, the
    /// rest from `body_kib`. A sync message is 256 KiB unless the link is fast, so devices that
    /// fill the large share with big bodies never hold an ordinary sync back.
    body_kib: Arc<Semaphore>,
    small_body_kib: Arc<Semaphore>,
    /// The console's form bodies (which need no token), apart from the devices'.
    console_kib: Arc<Semaphore>,
    /// The console's file uploads (the reference data's, from a signed-in browser), apart
    /// from its forms: four slow uploads of 4 MiB held every form's share, sign-in's included.
    console_upload_kib: Arc<Semaphore>,
    /// Device requests given to the storage workers, by user (`storage_turn`).
    serving: std::sync::Mutex<HashMap<Uuid, usize>>,
    /// Told when a request's storage work ends.
    storage_freed: tokio::sync::Notify,
}

#[derive(Default)]
struct InProgress {
    per_device: HashMap<Uuid, usize>,
    per_user: HashMap<Uuid, usize>,
}

/// The part of each body counted in the small share (`Guards`).
const SMALL_BODY_KIB: usize = 256;

impl Guards {
    fn new(http: &HttpLimits) -> Guards {
        let kib = (http.max_body_bytes_held / 1024).max(1);
        Guards {
            in_progress: Default::default(),
            user_turn_freed: tokio::sync::Notify::new(),
            body_kib: Arc::new(Semaphore::new(kib)),
            small_body_kib: Arc::new(Semaphore::new((kib / 2).max(SMALL_BODY_KIB))),
            console_kib: Arc::new(Semaphore::new((kib / 4).max(1))),
            console_upload_kib: Arc::new(Semaphore::new((kib / 8).max(1))),
            serving: Default::default(),
            storage_freed: tokio::sync::Notify::new(),
        }
    }
}

/// Storage workers that a user's second and third requests leave to users with none being
/// served (`Guards::storage_turn`).
const WORKERS_KEPT_FOR_OTHERS: usize = 2;

/// A request's turn on the storage workers: released when dropped.
struct StorageTurn<'a> {
    guards: &'a Guards,
    user: Uuid,
}

/// Where a body's bytes are counted as they arrive (`read_body`).
struct Budget<'a> {
    /// The first `small_kib` KiB.
    small: &'a Arc<Semaphore>,
    small_kib: usize,
    /// The rest.
    large: &'a Arc<Semaphore>,
}

/// What a body holds of its budget until dropped.
#[derive(Default)]
struct Held {
    small: Option<OwnedSemaphorePermit>,
    small_kib: usize,
    large: Option<OwnedSemaphorePermit>,
    large_kib: usize,
}

/// A request of a device in progress, until its answer has left (`Answer`): released when
/// dropped.
struct DeviceSlot {
    guards: Arc<Guards>,
    device: Uuid,
    /// The device's user, once the request has its turn among the user's devices.
    user: Option<Uuid>,
}

impl Guards {
    /// A slot for a request of `device`; none while the device has as many requests in
    /// progress as `http` allows (a phone sends one at a time: more are retries, or abuse).
    fn device_slot(self: &Arc<Self>, http: &HttpLimits, device: Uuid) -> Option<DeviceSlot> {
        let mut in_progress = self.in_progress.lock().unwrap_or_else(|p| p.into_inner());
        let count = in_progress.per_device.entry(device).or_default();
        if *count >= http.max_requests_per_device {
            return None;
        }
        *count += 1;
        Some(DeviceSlot {
            guards: self.clone(),
            device,
            user: None,
        })
    }

    /// Gives `slot` its turn among the requests of `user`'s devices, if they hold fewer than
    /// `http` allows together.
    fn try_user_turn(&self, slot: &mut DeviceSlot, http: &HttpLimits, user: Uuid) -> bool {
        if slot.user.is_some() {
            return true;
        }
        let mut in_progress = self.in_progress.lock().unwrap_or_else(|p| p.into_inner());
        let count = in_progress.per_user.entry(user).or_default();
        if *count >= http.max_requests_per_user {
            return false;
        }
        *count += 1;
        slot.user = Some(user);
        true
    }

    /// Gives `slot` its turn among the requests of `user`'s devices, waiting for one of them
    /// to end at most `http.user_wait`: a user's phone and tablet syncing together are served
    /// one after the other, not refused.
    async fn user_turn(&self, slot: &mut DeviceSlot, http: &HttpLimits, user: Uuid) -> bool {
        wait_turn(&self.user_turn_freed, http.user_wait, || {
            self.try_user_turn(slot, http, user).then_some(())
        })
        .await
        .is_some()
    }
}

/// What `take` gives, trying again each time `freed` is told, at most `wait`.
async fn wait_turn<T>(
    freed: &tokio::sync::Notify,
    wait: Duration,
    mut take: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // Listening before looking, so that a turn freed in between is not missed.
        let told = freed.notified();
        tokio::pin!(told);
        told.as_mut().enable();
        if let Some(turn) = take() {
            return Some(turn);
        }
        if tokio::time::timeout_at(deadline, told).await.is_err() {
            return None;
        }
    }
}

/// One request fewer in `counts` for `key`.
fn release(counts: &mut HashMap<Uuid, usize>, key: Uuid) {
    if let Some(count) = counts.get_mut(&key) {
        *count -= 1;
        if *count == 0 {
            counts.remove(&key);
        }
    }
}

impl Guards {
    /// A turn on the storage workers for a request of `user`, if it may take one now: a user's
    /// first request always may (it queues with everyone's), their others only while more
    /// than `WORKERS_KEPT_FOR_OTHERS` of the `workers` are left. One user's devices already
    /// hold at most `max_requests_per_user`; without this, two accounts sending heavy pushes at
    /// once held every worker, and every other device's sync waited seconds behind them.
    fn try_storage_turn(&self, user: Uuid, workers: usize) -> Option<StorageTurn<'_>> {
        let mut serving = self.serving.lock().unwrap_or_else(|p| p.into_inner());
        let total: usize = serving.values().sum();
        let own = serving.entry(user).or_default();
        let shared = workers.saturating_sub(WORKERS_KEPT_FOR_OTHERS).max(1);
        if *own > 0 && total >= shared {
            return None;
        }
        *own += 1;
        Some(StorageTurn { guards: self, user })
    }

    /// `try_storage_turn`, waiting for another request's storage work to end at most `wait`.
    async fn storage_turn(
        &self,
        user: Uuid,
        workers: usize,
        wait: Duration,
    ) -> Option<StorageTurn<'_>> {
        wait_turn(&self.storage_freed, wait, || {
            self.try_storage_turn(user, workers)
        })
        .await
    }
}

impl Drop for StorageTurn<'_> {
    fn drop(&mut self) {
        let mut serving = self
            .guards
            .serving
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        release(&mut serving, self.user);
        drop(serving);
        self.guards.storage_freed.notify_waiters();
    }
}

impl Drop for DeviceSlot {
    fn drop(&mut self) {
        let mut in_progress = self
            .guards
            .in_progress
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let InProgress {
            per_device,
            per_user,
        } = &mut *in_progress;
        release(per_device, self.device);
        if let Some(user) = self.user {
            release(per_user, user);
        }
        drop(in_progress);
        if self.user.is_some() {
            self.guards.user_turn_freed.notify_waiters();
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Threads outside the async runtime that run storage work. Storage calls block, and
/// PostgreSQL's synchronous client drives a small runtime of its own, which it may not start
/// on one of tokio's threads (blocking ones included).
pub struct Workers {
    jobs: std::sync::mpsc::Sender<Job>,
    threads: usize,
}

impl Workers {
    pub fn start(threads: usize) -> std::io::Result<Workers> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("vigie-storage-{i}"))
                .spawn(move || {
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(poisoned) => poisoned.into_inner().recv(),
                        };
                        match job {
                            Ok(job) => job(),
                            // The hub is gone: nothing more will come.
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(Workers {
            jobs,
            threads: threads.max(1),
        })
    }

    /// Runs `work` on a worker thread; `None` if it panicked (its transaction rolled back).
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (reply, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
            let _ = reply.send(outcome.ok());
        });
        self.jobs.send(job).ok()?;
        result.await.ok().flatten()
    }
}

pub fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/v1/health", get(health).fallback(|| wrong_method("GET")))
        .route("/v1/sync", post(sync).fallback(|| wrong_method("POST")))
        .merge(crate::console::router(hub.clone()))
        .route(
            "/v1/attachments",
            post(attachment).fallback(|| wrong_method("POST")),
        )
        .fallback(not_found)
        .with_state(hub)
}

/// A device's app calling the API with another method gets the API's kind of error, and the
/// method to use.
async fn wrong_method(allowed: &'static str) -> Response {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("this endpoint takes {allowed} only"),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allowed));
    response
}

/// A path the hub does not serve: under `/v1/`, the API's kind of error (an app of a newer
/// version calling an endpoint this hub lacks); elsewhere, the console's 404 page, with the
/// console's headers.
async fn not_found(uri: axum::http::Uri, headers: HeaderMap) -> Response {
    if uri.path() == "/v1" || uri.path().starts_with("/v1/") {
        error(StatusCode::NOT_FOUND, "no such endpoint on this hub")
    } else {
        let page = crate::console::error_page(&headers, StatusCode::NOT_FOUND, "error.not_found");
        crate::console::security_headers(page).await
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `error`, saying in how many seconds asking again is worth it.
fn error_retry_after(status: StatusCode, message: &str, seconds: &'static str) -> Response {
    let mut response = error(status, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static(seconds));
    response
}

/// Why a request failed, mapped to HTTP in one place.
enum Failure {
    Auth(AuthError),
    /// A revoked device, with the hub's signed order to wipe itself (`Backend::wipe_order`).
    Revoked {
        order: String,
    },
    UnknownUser,
    Hub(HubError),
    /// The device already has as many requests in progress as it may.
    TooManyRequests,
    /// The body is larger than a request may be.
    BodyTooLarge,
    /// The body stopped arriving, or arrives too slowly.
    BodyTooSlow,
    /// The connection failed while the body was arriving.
    BodyCut,
    /// Too many bodies are held at once: the hub is busy.
    Busy,
    /// The device's user's role or areas changed while the hub judged the request: its answer,
    /// made for the rights before, is not sent (what was stored stays).
    AccessChanged,
    Internal,
}

impl Failure {
    /// The log budget of this refusal's kind: credentials no device holds, or a device's.
    fn log_budget(&self) -> &'static LogBudget {
        match self {
            Failure::Auth(AuthError::Malformed | AuthError::Unknown) => &STRANGERS_REFUSALS_LOGGED,
            _ => &DEVICES_REFUSALS_LOGGED,
        }
    }

    /// A refusal the device caused, for the log: what it was, and whether it may be an attack
    /// or a phone that must be looked at (warning) rather than a link's or a busy hub's
    /// ordinary trouble (information). `None`: a fault of the hub, which logs itself.
    fn refusal(&self) -> Option<(std::borrow::Cow<'static, str>, bool)> {
        let (reason, suspect) = match self {
            Failure::Auth(AuthError::Malformed) => ("missing or malformed credentials", true),
            Failure::Auth(AuthError::Unknown) => ("unknown device or wrong secret", true),
            Failure::Revoked { .. } => ("the device is revoked", true),
            Failure::UnknownUser => ("the device's user is unknown", true),
            Failure::Hub(HubError::Malformed(_)) => ("malformed request", true),
            Failure::Hub(HubError::TooLarge(what)) => {
                return Some((format!("request exceeds a limit: {what}").into(), true));
            }
            Failure::Hub(HubError::ActorNotBound) => ("actor not bound to the device", true),
            Failure::Hub(HubError::KeysNotBound) => (
                "keys not those certified: another store took this device's token first (an \
                 app set up again, or a copied token: revoke the device if its owner did not)",
                true,
            ),
            Failure::Hub(HubError::UserNotBound) => ("store of another user", true),
            Failure::BodyTooLarge => ("request bytes over the limit", true),
            Failure::TooManyRequests => ("too many requests at once", false),
            Failure::BodyTooSlow => ("the body arrived too slowly", false),
            Failure::BodyCut => ("the body was cut", false),
            Failure::Auth(_) | Failure::Hub(HubError::Store(_)) | Failure::Busy => return None,
            // Said, so that an operator sees why a device is told to sync again.
            Failure::AccessChanged => (
                "the device's user's role or areas changed during the request: its answer was not sent",
                false,
            ),
            Failure::Internal => return None,
        };
        Some((reason.into(), suspect))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        // Refused before its body was read (or while it arrived), a request leaves bytes on the
        // connection: the hub closes it, and says so, so that the device does not send its
        // next request on a connection the hub is closing ("peer disconnected" instead of the
        // answer it must act on).
        let body_unread = !matches!(self, Failure::Hub(_));
        let mut response = match self {
            Failure::Revoked { order } => {
                // A lost or seized phone: it is told to destroy its profile's data, by an order
                // the hub signed for it, which nothing in the hub's place can make (an app of
                // an earlier version reads `wipe` alone).
                let body =
                    serde_json::json!({ "error": "device revoked", "wipe": true, "order": order });
                (
                    StatusCode::FORBIDDEN,
                    [(header::CONTENT_TYPE, "application/json")],
                    body.to_string(),
                )
                    .into_response()
            }
            Failure::Auth(AuthError::DiskFull) => hub_full(&AuthError::DiskFull),
            Failure::Auth(e @ AuthError::Unreachable(_)) => store_unreachable(&e),
            Failure::Auth(AuthError::Storage(e)) => {
                tracing::error!(error = %e, "device registry failed");
                error(StatusCode::INTERNAL_SERVER_ERROR, "hub error")
            }
            Failure::Auth(e) => error(StatusCode::UNAUTHORIZED, &e.to_string()),
            Failure::UnknownUser => error(StatusCode::FORBIDDEN, "unknown user"),
            // A body that inflates past the limit (a compression bomb) is over a limit, on
            // every endpoint.
            Failure::Hub(HubError::Malformed(
                e @ vigie_core::sync::wire::DecodeError::TooLarge { .. },
            )) => error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request exceeds a limit: {e}"),
            ),
            Failure::Hub(HubError::Malformed(e)) => {
                error(StatusCode::BAD_REQUEST, &format!("malformed request: {e}"))
            }
            Failure::Hub(HubError::TooLarge(what)) => error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request exceeds a limit: {what}"),
            ),
            Failure::Hub(HubError::ActorNotBound) => error(
                StatusCode::FORBIDDEN,
                "the request's actor is not bound to this device",
            ),
            Failure::Hub(HubError::KeysNotBound) => error(
                StatusCode::FORBIDDEN,
                "this device's token was used first by another store, whose keys the hub \
                 certified: if this app was not set up again, the token may have been copied — \
                 tell the administrator, who revokes the device (the other store is wiped at its \
                 next contact) and enrols this phone anew; after a reinstall, the administrator \
                 reissues the device's token",
            ),
            Failure::Hub(HubError::UserNotBound) => error(
                StatusCode::FORBIDDEN,
                "the store was opened for another user than the one this device's token names: \
                 open the device's store with the user id of its enrolment token",
            ),
            Failure::Hub(HubError::Store(e)) if disk_full(&e) => hub_full(&e),
            Failure::Hub(HubError::Store(e)) if crate::postgres::is_unreachable(&e) => {
                store_unreachable(&e)
            }
            Failure::Hub(HubError::Store(e)) if store_busy(&e) => {
                tracing::warn!(error = %e, "a sync waited too long for the hub's store: answered 503");
                error_retry_after(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the hub is busy: try again shortly",
                    "5",
                )
            }
            Failure::Hub(HubError::Store(e)) => {
                // Core errors carry no personal data, so they may be logged.
                tracing::error!(error = %e, "sync failed on the hub");
                error(StatusCode::INTERNAL_SERVER_ERROR, "hub error")
            }
            Failure::TooManyRequests => error_retry_after(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests from this device, or its user's devices, at once: wait for the first to finish",
                "5",
            ),
            Failure::BodyTooLarge => error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request exceeds a limit: request bytes",
            ),
            Failure::BodyTooSlow => error(
                StatusCode::REQUEST_TIMEOUT,
                "the request body arrived too slowly",
            ),
            Failure::BodyCut => error(StatusCode::BAD_REQUEST, "the request body was cut"),
            Failure::Busy => error_retry_after(
                StatusCode::SERVICE_UNAVAILABLE,
                "the hub is busy: try again shortly",
                "10",
            ),
            Failure::AccessChanged => error_retry_after(
                StatusCode::SERVICE_UNAVAILABLE,
                "this user's role or areas changed during the sync: sync again",
                "1",
            ),
            Failure::Internal => error(StatusCode::INTERNAL_SERVER_ERROR, "hub error"),
        };
        if body_unread {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// Whether the embedded store stayed locked past its wait (a command line tool writing many
/// records, `vigie reference refile`): a moment's business, not a hub error.
pub(crate) fn store_busy(e: &vigie_core::Error) -> bool {
    use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
    matches!(e, vigie_core::Error::Storage(rusqlite::Error::SqliteFailure(f, _))
        if matches!(f.code, DatabaseBusy | DatabaseLocked))
}

/// The answer while the hub's database cannot be reached (PostgreSQL down or restarting):
/// not a fault of the hub's, and nothing was written; the device comes back later. (The hub
/// takes the database back by itself once it answers.)
fn store_unreachable(cause: &dyn std::fmt::Display) -> Response {
    static SAID: LogBudget = LogBudget::lasting();
    lasting_fault(
        &SAID,
        cause,
        "the hub's database cannot be reached: requests are answered 503 until it is back",
        "the hub's database cannot be reached: try again later",
        "30",
    )
}

/// A 503 with `Retry-After` for a fault that lasts, said in the log once a period with how
/// many requests it answered since (`LogBudget::lasting`).
fn lasting_fault(
    said: &LogBudget,
    cause: &dyn std::fmt::Display,
    logged: &str,
    answer: &'static str,
    retry_after: &'static str,
) -> Response {
    if let Some(unsaid) = said.take() {
        tracing::error!(error = %cause, answered_so_since = unsaid, "{logged}");
    }
    error_retry_after(StatusCode::SERVICE_UNAVAILABLE, answer, retry_after)
}

/// The answer while the hub's disk is full (the store's or the registry's, said in the log):
/// come back later.
fn hub_full(cause: &dyn std::fmt::Display) -> Response {
    static SAID: LogBudget = LogBudget::lasting();
    lasting_fault(
        &SAID,
        cause,
        "the hub's disk is full, or its writes are past the process's file-size limit \
         (ulimit -f, systemd's LimitFSIZE): requests that write are refused (503) until space \
         is freed or the limit raised",
        "the hub is full: try again later",
        "300",
    )
}

/// Whether a storage error is the hub's disk being full: the embedded store's
/// (`Error::is_disk_full`) or PostgreSQL's `disk_full`.
fn disk_full(e: &vigie_core::Error) -> bool {
    e.is_disk_full() || crate::postgres::is_disk_full(e)
}

fn bearer(headers: &HeaderMap) -> Result<Token, Failure> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme's name is case-insensitive (RFC 9110 §11.1): a proxy or client library
        // writing `bearer` sends the same credentials.
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
        .map(|(_, token)| token.trim_start_matches(' '))
        .ok_or(Failure::Auth(AuthError::Malformed))?;
    Token::parse(value).map_err(|e| Failure::Auth(e.into()))
}

/// The principal behind a token: the device's user as the hub's records describe it now.
fn principal(hub: &Hub, token: &Token) -> Result<Principal, Failure> {
    // The one place a revoked device's refusal is made, with its signed order.
    let user_id = hub.backend.authenticate(token).map_err(|e| match e {
        AuthError::Revoked => Failure::Revoked {
            order: hub.backend.wipe_order(token.device),
        },
        e => Failure::Auth(e),
    })?;
    let user = match hub.backend.user(user_id) {
        Ok(Some(user)) => user,
        Ok(None) => return Err(Failure::UnknownUser),
        Err(e) => return Err(Failure::Hub(HubError::Store(e))),
    };
    Ok(Principal {
        device: token.device,
        user: user_id,
        role: user.role,
        areas: crate::backend::areas_in_force(&user),
    })
}

/// The declared body length, if the request has one.
fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Reads a body of at most `limit` bytes, as long as it keeps arriving (`HttpLimits`): within
/// `body_timeout` of its start, then one more second for every `min_body_rate` bytes received,
/// and never more than `body_timeout` without a byte (bytes sent early earn no silence later).
/// Its bytes are counted in `budget` as they arrive, held until the returned `Held` is
/// dropped: a body that arrives slowly holds only what it sent, and a small request never
/// queues behind a large one's declared length.
async fn read_body(
    mut body: Body,
    limit: usize,
    http: &HttpLimits,
    budget: &Budget<'_>,
) -> Result<(Vec<u8>, Held), Failure> {
    let started = tokio::time::Instant::now();
    let mut bytes = Vec::new();
    let mut held = Held::default();
    let mut last = started;
    loop {
        let earned = Duration::from_secs_f64(bytes.len() as f64 / http.min_body_rate.max(1) as f64);
        let deadline = (started + http.body_timeout + earned).min(last + http.body_timeout);
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(Failure::BodyTooSlow),
            Ok(None) => return Ok((bytes, held)),
            Ok(Some(Err(_))) => return Err(Failure::BodyCut),
            Ok(Some(Ok(frame))) => frame,
        };
        last = tokio::time::Instant::now();
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if bytes.len() + data.len() > limit {
            return Err(Failure::BodyTooLarge);
        }
        bytes.extend_from_slice(&data);
        let needed = bytes.len().div_ceil(1024);
        let small = needed.min(budget.small_kib);
        if small > held.small_kib {
            take(budget.small, small - held.small_kib, &mut held.small, http).await?;
            held.small_kib = small;
        }
        let large = needed - small;
        if large > held.large_kib {
            take(budget.large, large - held.large_kib, &mut held.large, http).await?;
            held.large_kib = large;
        }
    }
}

/// Takes `kib` more of `pool` into `held`, waiting at most `body_wait`.
async fn take(
    pool: &Arc<Semaphore>,
    kib: usize,
    held: &mut Option<OwnedSemaphorePermit>,
    http: &HttpLimits,
) -> Result<(), Failure> {
    let more = tokio::time::timeout(http.body_wait, pool.clone().acquire_many_owned(kib as u32))
        .await
        .map_err(|_| Failure::Busy)?
        .map_err(|_| Failure::Internal)?;
    match held {
        Some(permit) => permit.merge(more),
        None => *held = Some(more),
    }
    Ok(())
}

/// A console request's body, read under the rule every body follows (`HttpLimits`) before a
/// page sees it: a form that stops arriving is cut as a sync's body is, so that slow forms,
/// which need no token, cannot hold the hub's connections.
pub(crate) async fn body_in_time(
    State(hub): State<Arc<Hub>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    // Forms are small; only the reference data upload is a file. A browser with no session
    // sends a sign-in's, an invitation's or a password's form, a few hundred bytes: held to
    // a few KiB, slow forms from anyone (300 of 64 KiB, each reopened as it was closed) no
    // longer fill the forms' share and keep supervisors from signing in.
    let upload = parts.uri.path() == "/console/reference" && parts.method == Method::POST;
    let posted = !matches!(parts.method, Method::GET | Method::HEAD);
    // A session cookie sent with a form (a GET carries no body to bound).
    let cookie = match posted {
        true => {
            use axum::extract::FromRequestParts as _;
            let Ok(ctx) = crate::console::Ctx::from_request_parts(&mut parts, &hub).await;
            Some(ctx).filter(crate::console::Ctx::has_session_cookie)
        }
        false => None,
    };
    let has_cookie = cookie.is_some();
    let session = match cookie {
        Some(ctx) => live_session(&hub, ctx).await,
        None => false,
    };
    let (limit, pool) = match (upload, session) {
        (true, _) => (
            crate::console::MAX_UPLOAD_BYTES,
            &hub.guards.console_upload_kib,
        ),
        (false, true) => (crate::console::MAX_FORM_BYTES, &hub.guards.console_kib),
        (false, false) => (
            crate::console::MAX_ANONYMOUS_FORM_BYTES,
            &hub.guards.console_kib,
        ),
    };
    let over = declared_length(&parts.headers).is_some_and(|n| n > limit);
    // A file is read for a signed-in browser only, and so is a long form of a session that has
    // ended (a note typed while it expired): the page answers as it answers a request without
    // a session, sign-in first, with none of the body read.
    let session_ended = !session && has_cookie && over;
    if (upload && !session) || session_ended {
        return next.run(Request::from_parts(parts, Body::empty())).await;
    }
    if over {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    let budget = Budget {
        small: pool,
        small_kib: usize::MAX,
        large: pool,
    };
    match read_body(body, limit, &hub.http, &budget).await {
        // The form's bytes stay counted until its page is answered.
        Ok((bytes, _held)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(Failure::BodyTooLarge) => StatusCode::PAYLOAD_TOO_LARGE.into_response(),
        Err(Failure::BodyTooSlow) => StatusCode::REQUEST_TIMEOUT.into_response(),
        // Other forms fill the share (a burst, or someone holding it): try again shortly.
        Err(Failure::Busy) => {
            let mut response = StatusCode::SERVICE_UNAVAILABLE.into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            response
        }
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// Whether the session cookies of `ctx` open a live console session.
async fn live_session(hub: &Arc<Hub>, ctx: crate::console::Ctx) -> bool {
    let hub = hub.clone();
    tokio::task::spawn_blocking(move || ctx.session_id(&hub).is_ok_and(|s| s.is_some()))
        .await
        .unwrap_or(false)
}

/// `POST /v1/sync`. The device is authenticated from its headers before a byte of its body is
/// read: without a valid token, a request costs the hub its headers and one registry lookup.
async fn sync(State(hub): State<Arc<Hub>>, request: Request) -> Response {
    match serve_sync(hub, request).await {
        Ok(answer) => answer.into_response(),
        Err(failure) => {
            let response = failure.into_response();
            tracing::debug!(status = response.status().as_u16(), "sync refused");
            response
        }
    }
}

/// `GET /v1/health`: `ok` while the hub can serve; 503 while its database cannot be reached
/// (a load balancer sends devices to another machine meanwhile). No credentials, no record
/// read.
async fn health(State(hub): State<Arc<Hub>>) -> Response {
    // A database that takes the question and never answers (a frozen machine, a storage stall)
    // held the check as long as it hung, then said ok: a load balancer's check gives up after
    // a few seconds, and the answer comes before.
    let reached = tokio::time::timeout(
        HEALTH_ANSWER,
        tokio::task::spawn_blocking(move || hub.backend.reachable()),
    )
    .await;
    match reached {
        Ok(Ok(Ok(()))) => "ok".into_response(),
        Ok(Ok(Err(e))) => store_unreachable(&e),
        Ok(Err(_)) => error(StatusCode::INTERNAL_SERVER_ERROR, "hub error"),
        Err(_) => store_unreachable(&"the database did not answer the health check in time"),
    }
}

/// How long `GET /v1/health` waits for the database's answer (README: within 3 seconds).
const HEALTH_ANSWER: std::time::Duration = std::time::Duration::from_secs(3);

/// `POST /v1/attachments`: one chunk of an attachment's upload or download
/// (`vigie_core::sync::handle_attachment`), authenticated and bounded as a sync. A refusal on a
/// limit is answered 413, with the refusal (its figures) in the body as for any answer and its
/// code in `X-Vigie-Refusal`.
async fn attachment(State(hub): State<Arc<Hub>>, request: Request) -> Response {
    match serve_device(hub, request, Endpoint::Attachment).await {
        Ok(answer) => {
            let refusal = match decode_attachment_response(&answer.bytes, usize::MAX) {
                Ok(AttachmentResponse::Refused { reason, .. }) if reason.is_limit() => Some(reason),
                _ => None,
            };
            let mut response = answer.into_response();
            if let Some(reason) = refusal {
                *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
                response
                    .headers_mut()
                    .insert("x-vigie-refusal", HeaderValue::from_static(reason.code()));
            }
            response
        }
        Err(failure) => failure.into_response(),
    }
}

/// What a device's request asks of the hub.
#[derive(Clone, Copy)]
enum Endpoint {
    Sync,
    Attachment,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::Sync => "sync",
            Endpoint::Attachment => "attachment",
        }
    }
}

async fn serve_sync(hub: Arc<Hub>, request: Request) -> Result<Answer, Failure> {
    serve_device(hub, request, Endpoint::Sync).await
}

/// A device's request, answered; a refusal the device caused is said in the log with the
/// device it claimed (a revoked phone still trying, a token guessed, a hostile body), so an
/// operator sees it without the hub's faults, which log themselves.
async fn serve_device(
    hub: Arc<Hub>,
    request: Request,
    endpoint: Endpoint,
) -> Result<Answer, Failure> {
    let (parts, body) = request.into_parts();
    let token = bearer(&parts.headers);
    let device = token.as_ref().ok().map(|token| token.device.to_string());
    let result = match token {
        Ok(token) => serve_authenticated(hub, parts, body, token, endpoint).await,
        Err(failure) => Err(failure),
    };
    if let Err(failure) = &result
        && let Some((reason, worrying)) = failure.refusal()
        && let Some(unsaid) = failure.log_budget().take()
    {
        let device = device.as_deref().unwrap_or("none");
        let what = endpoint.name();
        if unsaid > 0 {
            tracing::warn!(
                "{unsaid} more refusals were not logged (over {REFUSAL_LINES_PER_SECOND} a second)"
            );
        }
        if worrying {
            tracing::warn!(device, "{what} refused: {reason}");
        } else {
            tracing::info!(device, "{what} refused: {reason}");
        }
    }
    result
}

/// Refusals logged a second at most: anyone who reaches the hub, without a token, could
/// otherwise write its log without bound (140,000 lines in ten seconds from one client). Each
/// of two kinds of refusal has its own: credentials no device holds, which anyone can send,
/// and requests of devices the hub enrolled (a revoked phone still trying, an enrolled one's
/// hostile body), which a flood of the first kind would otherwise hide from the operator.
const REFUSAL_LINES_PER_SECOND: u32 = 20;
static STRANGERS_REFUSALS_LOGGED: LogBudget = refusals_budget();
static DEVICES_REFUSALS_LOGGED: LogBudget = refusals_budget();

const fn refusals_budget() -> LogBudget {
    LogBudget::new(REFUSAL_LINES_PER_SECOND, std::time::Duration::from_secs(1))
}

async fn serve_authenticated(
    hub: Arc<Hub>,
    parts: axum::http::request::Parts,
    body: Body,
    token: Token,
    endpoint: Endpoint,
) -> Result<Answer, Failure> {
    let who = {
        let (hub, token) = (hub.clone(), token.clone());
        hub.clone()
            .workers
            .run(move || principal(&hub, &token))
            .await
            .ok_or(Failure::Internal)??
    };
    let mut slot = hub
        .guards
        .device_slot(&hub.http, who.device)
        .ok_or(Failure::TooManyRequests)?;
    if !hub.guards.user_turn(&mut slot, &hub.http, who.user).await {
        return Err(Failure::TooManyRequests);
    }
    let limit = hub.limits.max_request_bytes;
    let declared = declared_length(&parts.headers);
    tracing::debug!(device = %who.device, declared_bytes = ?declared, "device authenticated");
    if declared.is_some_and(|n| n > limit) {
        return Err(Failure::BodyTooLarge);
    }
    let budget = Budget {
        small: &hub.guards.small_body_kib,
        small_kib: SMALL_BODY_KIB,
        large: &hub.guards.body_kib,
    };
    let (body, _held) = read_body(body, limit, &hub.http, &budget).await?;
    let _turn = hub
        .guards
        .storage_turn(who.user, hub.workers.threads, hub.http.user_wait)
        .await
        .ok_or(Failure::TooManyRequests)?;
    let job = hub.clone();
    let bytes = hub
        .workers
        .run(move || -> Result<Vec<u8>, Failure> {
            let hub = job;
            // As the registry says now: the device may have been revoked, or its user's role
            // or areas changed, while its body arrived or it waited for its turn.
            let who = principal(&hub, &token)?;
            let started = std::time::Instant::now();
            let response = match endpoint {
                Endpoint::Sync => hub.backend.sync(&who, &body, &hub.limits),
                Endpoint::Attachment => hub.backend.attachment(&who, &body, &hub.limits),
            };
            let response = response.map_err(Failure::Hub)?;
            // And once the answer is made: revoked meanwhile, or moved out of an area, the
            // device gets no answer made for its rights before (the records of an area it
            // left, a colleague's cases for a revoked phone). What its pushes stored stays,
            // judged as they arrived, as if before the change; sent again, they change
            // nothing, and are judged by the new rights.
            if principal(&hub, &token)? != who {
                return Err(Failure::AccessChanged);
            }
            tracing::info!(
                device = %who.device,
                request_bytes = body.len(),
                response_bytes = response.len(),
                ms = started.elapsed().as_millis() as u64,
                "{}",
                endpoint.name()
            );
            Ok(response)
        })
        .await
        .ok_or(Failure::Internal)??;
    Ok(Answer { bytes, slot })
}

/// A device's answer, with its request's place among the device's requests (`DeviceSlot`),
/// held until the answer has left: a client that reads no answer (one stolen token, 400
/// connections each holding a first sync's 3 MB) holds its own requests' places, not the hub's
/// memory without bound. The connection's sends are timed (`listener`).
struct Answer {
    bytes: Vec<u8>,
    slot: DeviceSlot,
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let body = Sending {
            rest: self.bytes.into(),
            slot: Some(self.slot),
        };
        (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            Body::new(body),
        )
            .into_response()
    }
}

/// An answer's bytes, handed to the connection a piece at a time as it sends them (the
/// connection buffers one piece), its request's place given back with the last.
struct Sending {
    rest: axum::body::Bytes,
    slot: Option<DeviceSlot>,
}

/// The size of the pieces `Sending` hands over.
const SENT_PIECE: usize = 64 * 1024;

impl hyper::body::Body for Sending {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let piece = self.rest.len().min(SENT_PIECE);
        let frame = self.rest.split_to(piece);
        if self.rest.is_empty() {
            self.slot = None;
        }
        std::task::Poll::Ready((!frame.is_empty()).then(|| Ok(hyper::body::Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.rest.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded store locked past its wait (another process writing many records) is a
    /// moment's business, answered 503 with a time to come back; other store errors are not.
    #[test]
    fn a_store_locked_past_its_wait_is_busy() {
        let failure = |code| {
            vigie_core::Error::Storage(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                Some("database is locked".into()),
            ))
        };
        assert!(store_busy(&failure(rusqlite::ffi::SQLITE_BUSY)));
        assert!(store_busy(&failure(rusqlite::ffi::SQLITE_LOCKED)));
        assert!(!store_busy(&failure(rusqlite::ffi::SQLITE_CORRUPT)));
        assert!(!store_busy(&vigie_core::Error::HubStorage {
            reason: "x".into(),
            retryable: false
        }));
    }

    /// A request of `device`, a device of `user`, that has its turn at once, or none.
    fn served_now(
        guards: &Arc<Guards>,
        http: &HttpLimits,
        device: Uuid,
        user: Uuid,
    ) -> Option<DeviceSlot> {
        let mut slot = guards.device_slot(http, device)?;
        guards.try_user_turn(&mut slot, http, user).then_some(slot)
    }

    #[test]
    fn a_flood_of_strangers_credentials_leaves_enrolled_devices_refusals_in_the_log() {
        let stranger = Failure::Auth(AuthError::Unknown);
        while stranger.log_budget().take().is_some() {}
        assert!(
            Failure::Auth(AuthError::Malformed)
                .log_budget()
                .take()
                .is_none()
        );
        assert!(
            Failure::Revoked {
                order: String::new()
            }
            .log_budget()
            .take()
            .is_some()
        );
    }

    #[test]
    fn refusals_are_logged_a_few_a_second_and_the_rest_counted() {
        let budget = refusals_budget();
        for _ in 0..REFUSAL_LINES_PER_SECOND {
            assert_eq!(budget.take(), Some(0));
        }
        for _ in 0..1000 {
            assert_eq!(budget.take(), None);
        }
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(budget.take(), Some(1000), "the next window says how many");
        assert_eq!(budget.take(), Some(0));
    }

    #[test]
    fn a_users_devices_together_hold_no_more_requests_than_the_user_may() {
        let http = HttpLimits::default();
        let guards = Arc::new(Guards::new(&http));
        let (user, other) = (Uuid::now_v7(), Uuid::now_v7());
        let devices: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        // A device: two at once.
        let first = served_now(&guards, &http, devices[0], user).unwrap();
        let second = served_now(&guards, &http, devices[0], user).unwrap();
        assert!(guards.device_slot(&http, devices[0]).is_none());
        // The user's devices: three at once, whichever sends.
        let third = served_now(&guards, &http, devices[1], user).unwrap();
        assert!(served_now(&guards, &http, devices[2], user).is_none());
        // Another user is served all the same.
        let _others = served_now(&guards, &http, Uuid::now_v7(), other).unwrap();
        // A request that ends frees its turn, for any of the user's devices.
        drop(first);
        let _again = served_now(&guards, &http, devices[2], user).unwrap();
        assert!(served_now(&guards, &http, devices[1], user).is_none());
        drop((second, third));
        assert!(served_now(&guards, &http, devices[1], user).is_some());
    }

    #[test]
    fn a_users_further_requests_leave_storage_workers_to_the_others() {
        let guards = Arc::new(Guards::new(&HttpLimits::default()));
        let (a, b, c, d) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );
        const WORKERS: usize = 6;
        // Two users' heavy pushes take four of the six workers...
        let mut held: Vec<StorageTurn<'_>> = [a, a, b, b]
            .iter()
            .map(|u| guards.try_storage_turn(*u, WORKERS).unwrap())
            .collect();
        // ...their third ones wait: the last two are kept for users with none served.
        assert!(guards.try_storage_turn(a, WORKERS).is_none());
        assert!(guards.try_storage_turn(b, WORKERS).is_none());
        let c_first = guards.try_storage_turn(c, WORKERS).unwrap();
        let d_first = guards.try_storage_turn(d, WORKERS).unwrap();
        // A user's first request always queues with everyone's.
        let _e = guards.try_storage_turn(Uuid::now_v7(), WORKERS).unwrap();
        assert!(guards.try_storage_turn(c, WORKERS).is_none());
        drop((c_first, d_first));
        held.pop();
        assert!(
            guards.try_storage_turn(b, WORKERS).is_none(),
            "4 still served"
        );
        held.pop();
        assert!(guards.try_storage_turn(b, WORKERS).is_some(), "3 served");
        // With few workers, a user's further requests still take one when it is free.
        let alone = Arc::new(Guards::new(&HttpLimits::default()));
        let first = alone.try_storage_turn(a, 1).unwrap();
        assert!(alone.try_storage_turn(a, 1).is_none());
        drop(first);
        assert!(alone.try_storage_turn(a, 1).is_some());
    }

    /// Every answer the hub gives a device that an app passes on to its user (a `TransportError`
    /// of its status and words) reads in French: a monitor waiting on a busy hub was told
    /// "le hub a répondu 429 : too many requests from this device…".
    #[tokio::test]
    async fn every_answer_a_device_may_show_its_user_reads_in_french() {
        use vigie_core::sync::wire::DecodeError;
        let failures = [
            Failure::Auth(AuthError::Malformed),
            Failure::Auth(AuthError::Unknown),
            Failure::Auth(AuthError::Revoked),
            Failure::Auth(AuthError::Expired),
            Failure::Auth(AuthError::DiskFull),
            Failure::Auth(AuthError::Unreachable("connection refused".into())),
            Failure::UnknownUser,
            Failure::Hub(HubError::Malformed(DecodeError::Structure)),
            Failure::Hub(HubError::Malformed(DecodeError::Compression)),
            Failure::Hub(HubError::Malformed(DecodeError::Checksum)),
            Failure::Hub(HubError::Malformed(DecodeError::TooLarge {
                limit: 1 << 20,
            })),
            Failure::Hub(HubError::TooLarge("request bytes")),
            Failure::Hub(HubError::TooLarge("decompressed bytes")),
            Failure::Hub(HubError::TooLarge("records pushed")),
            Failure::Hub(HubError::TooLarge("records asked for")),
            Failure::Hub(HubError::ActorNotBound),
            Failure::Hub(HubError::KeysNotBound),
            Failure::Hub(HubError::UserNotBound),
            Failure::TooManyRequests,
            Failure::BodyTooLarge,
            Failure::BodyTooSlow,
            Failure::BodyCut,
            Failure::Busy,
            Failure::Internal,
        ];
        let mut answers = Vec::new();
        for failure in failures {
            answers.push(failure.into_response());
        }
        answers.push(hub_full(&"disk full"));
        answers.push(store_unreachable(&"connection refused"));
        answers.push(not_found("/v1/newer".parse().unwrap(), HeaderMap::new()).await);
        for answer in answers {
            let status = answer.status().as_u16();
            let body = answer.into_body().collect().await.unwrap().to_bytes();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let said = body["error"].as_str().unwrap();
            // As an app's transport passes it on (`foreign_text`: one line, bounded).
            let passed = vigie_core::error::foreign_text(&format!("hub answered {status}: {said}"));
            let french = vigie_core::messages::rule_text(&passed, "fr");
            // No three words of the answer are left in English (a command's name may stay).
            let words: Vec<&str> = said.split_whitespace().collect();
            let english: Vec<String> = words
                .windows(3)
                .map(|three| three.join(" "))
                .filter(|three| !three.contains("vigie") && french.contains(three.as_str()))
                .collect();
            assert!(
                english.is_empty(),
                "{status} {said}: {french} ({english:?})"
            );
            assert!(french.starts_with(&format!("le hub a répondu {status} : ")));
        }
    }

    #[tokio::test]
    async fn a_request_past_its_users_share_waits_for_a_turn_then_is_refused() {
        let http = HttpLimits {
            max_requests_per_user: 1,
            user_wait: Duration::from_millis(400),
            ..HttpLimits::default()
        };
        let guards = Arc::new(Guards::new(&http));
        let (user, phone, tablet) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let on_phone = served_now(&guards, &http, phone, user).unwrap();
        // The tablet's request waits while the phone's is served, and is served when it ends.
        let waiting = {
            let guards = guards.clone();
            tokio::spawn(async move {
                let mut slot = guards.device_slot(&http, tablet).unwrap();
                guards.user_turn(&mut slot, &http, user).await
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "the tablet waits its turn");
        // Waiting, it counts as one of the tablet's requests in progress.
        let _retry = guards.device_slot(&http, tablet).unwrap();
        assert!(guards.device_slot(&http, tablet).is_none());
        drop(on_phone);
        assert!(
            waiting.await.unwrap(),
            "served once the phone's request ended"
        );
        // Past `user_wait`, a request is refused.
        let _on_tablet = served_now(&guards, &http, tablet, user).unwrap();
        let mut slot = guards.device_slot(&http, phone).unwrap();
        let started = std::time::Instant::now();
        assert!(!guards.user_turn(&mut slot, &http, user).await);
        assert!(started.elapsed() >= http.user_wait);
    }
}
