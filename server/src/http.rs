//! The hub's HTTP face: one sync endpoint over the core's engine.
//!
//! `POST /v1/sync` with `Authorization: Bearer <enrolment token>` and a sync request as the body;
//! the response body is the sync response. Errors are JSON `{"error": "..."}` with a 4xx for
//! anything the device sent wrong and a 5xx for the hub's own failures. Storage work runs on
//! worker threads of its own: it never stalls the async runtime.

use crate::auth::{AuthError, Token};
use crate::backend::Backend;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;
use vigie_core::sync::{HubError, HubLimits, Principal};

pub struct Hub {
    pub backend: Box<dyn Backend>,
    pub limits: HubLimits,
    pub workers: Workers,
}

type Job = Box<dyn FnOnce() + Send>;

/// Threads outside the async runtime that run storage work. Storage calls block, and
/// PostgreSQL's synchronous client drives a small runtime of its own, which it may not start
/// on one of tokio's threads (blocking ones included).
pub struct Workers {
    jobs: std::sync::mpsc::Sender<Job>,
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
        Ok(Workers { jobs })
    }

    /// Runs `work` on a worker thread; `None` if it panicked (its transaction rolled back).
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
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
    let limit = hub.limits.max_request_bytes;
    Router::new()
        .route("/v1/health", get(|| async { "ok" }))
        .route("/v1/sync", post(sync))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(hub)
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Why a request failed, mapped to HTTP in one place.
enum Failure {
    Auth(AuthError),
    UnknownUser,
    Hub(HubError),
    Internal,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Auth(AuthError::Revoked) => {
                // A lost or seized phone: it is told to destroy its profile's data.
                let body = serde_json::json!({ "error": "device revoked", "wipe": true });
                (
                    StatusCode::FORBIDDEN,
                    [(header::CONTENT_TYPE, "application/json")],
                    body.to_string(),
                )
                    .into_response()
            }
            Failure::Auth(AuthError::Storage(e)) => {
                tracing::error!(error = %e, "device registry failed");
                error(StatusCode::INTERNAL_SERVER_ERROR, "hub error")
            }
            Failure::Auth(e) => error(StatusCode::UNAUTHORIZED, &e.to_string()),
            Failure::UnknownUser => error(StatusCode::FORBIDDEN, "unknown user"),
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
            Failure::Hub(HubError::Store(e)) => {
                // Core errors carry no personal data, so they may be logged.
                tracing::error!(error = %e, "sync failed on the hub");
                error(StatusCode::INTERNAL_SERVER_ERROR, "hub error")
            }
            Failure::Internal => error(StatusCode::INTERNAL_SERVER_ERROR, "hub error"),
        }
    }
}

fn bearer(headers: &HeaderMap) -> Result<Token, Failure> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(Failure::Auth(AuthError::Malformed))?;
    Token::parse(value).map_err(|e| Failure::Auth(e.into()))
}

/// The principal behind a token: the device's user as the hub's records describe it now.
fn principal(hub: &Hub, token: &Token) -> Result<Principal, Failure> {
    let user_id = hub.backend.authenticate(token).map_err(Failure::Auth)?;
    let user = match hub.backend.user(user_id) {
        Ok(Some(user)) => user,
        Ok(None) => return Err(Failure::UnknownUser),
        Err(e) => return Err(Failure::Hub(HubError::Store(e))),
    };
    Ok(Principal {
        device: token.device,
        user: user_id,
        role: user.role,
        // A deactivated user's devices sync with an empty scope: what they hold leaves them,
        // after their pending changes are pushed (and kept for review).
        areas: if user.active {
            user.areas
        } else {
            Default::default()
        },
    })
}

async fn sync(State(hub): State<Arc<Hub>>, headers: HeaderMap, body: Bytes) -> Response {
    let token = match bearer(&headers) {
        Ok(t) => t,
        Err(f) => return f.into_response(),
    };
    let worker = hub.clone();
    let handled = worker
        .workers
        .run(move || -> Result<Vec<u8>, Failure> {
            let who = principal(&hub, &token)?;
            let started = std::time::Instant::now();
            let response = hub
                .backend
                .sync(&who, &body, &hub.limits)
                .map_err(Failure::Hub)?;
            tracing::info!(
                device = %who.device,
                request_bytes = body.len(),
                response_bytes = response.len(),
                ms = started.elapsed().as_millis() as u64,
                "sync"
            );
            Ok(response)
        })
        .await;
    match handled {
        Some(Ok(bytes)) => {
            ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
        }
        Some(Err(failure)) => failure.into_response(),
        None => Failure::Internal.into_response(),
    }
}
