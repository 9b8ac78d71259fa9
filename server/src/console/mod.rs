//! The supervisors' console: server-rendered pages (askama templates, `templates/`) with a
//! little htmx, served by `vigie serve` under `/console/` beside sync.
//!
//! - Every asset ships in the binary (`assets/`), and the Content-Security-Policy lets the page
//!   load nothing from anywhere else (`default-src 'self'`; map tiles only from the host the
//!   operator configured).
//! - Accounts are hub users (`session.rs`); a page is built on a thread of the console's own
//!   (`Hub::console_workers`), since storage calls block: pages and exports, however many and
//!   long, never hold a thread devices' syncs need.
//! - Records are read from the console's view (`view.rs`) with the core's queries, restricted
//!   to the signed-in user's scope by the core's own rule (`Store::scoped`); every change is an
//!   ordinary write on the hub's storage (`Backend::write`), so devices receive it at their next
//!   sync, and is written in the audit log (`storage.rs`).

mod charts;
pub mod i18n;
mod labels;
mod pages;
pub mod session;
pub mod storage;
pub mod view;

use crate::backend::Backend;
use crate::http::Hub;
use axum::Router;
use axum::extract::{ConnectInfo, Form, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use i18n::{Lang, Tr};
use std::net::SocketAddr;
use std::sync::Arc;
use storage::AuditEntry;
use tower_http::compression::Predicate;
use uuid::Uuid;
use vigie_core::sync::Principal;
use vigie_core::{Error, Role, User};

/// How the console is reached and what its map draws on.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The address people open (`https://…` behind a TLS proxy): links printed by the CLI
    /// start with it, and cookies are marked Secure when it is https.
    pub public_url: Option<String>,
    /// A tile URL template for the map's base layer (`https://tiles.example/{z}/{x}/{y}.png`);
    /// none by default: points are drawn over the area outlines.
    pub tile_url: Option<String>,
    /// The hub is reached through one reverse proxy that adds each client's address to
    /// `X-Forwarded-For` (`client_address`).
    pub behind_proxy: bool,
}

/// Where a request comes from, as the sign-in throttle counts it: the connection's address, or
/// behind a reverse proxy (`Settings::behind_proxy`) the address the proxy added last to
/// `X-Forwarded-For` (the entries before it are the client's to write, and prove nothing).
fn client_address(parts: &Parts, behind_proxy: bool) -> String {
    let forwarded = behind_proxy
        .then(|| {
            let all = parts.headers.get_all("x-forwarded-for");
            let last = all.iter().next_back()?.to_str().ok()?.rsplit(',').next()?;
            last.trim().parse::<std::net::IpAddr>().ok()
        })
        .flatten();
    forwarded
        .or_else(|| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
        })
        // `::ffff:1.2.3.4` is 1.2.3.4 reached over IPv6: one address, counted once.
        .map(|ip| ip.to_canonical().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The console's threads (`Hub::console_workers`).
pub const WORKERS: usize = 4;
/// Downloads (exports, attachments' files) built at once; the others wait their turn without
/// holding a thread, so that pages always find one.
const DOWNLOADS_AT_ONCE: usize = WORKERS / 2;

pub struct Console {
    pub settings: Settings,
    pub views: view::Views,
    downloads: Arc<tokio::sync::Semaphore>,
    /// One download of each supervisor built at a time: one person's many downloads wait
    /// behind one another, not in front of everyone else's.
    downloads_of: std::sync::Mutex<std::collections::HashMap<Uuid, Arc<tokio::sync::Semaphore>>>,
}

impl Default for Console {
    fn default() -> Console {
        Console::new(Settings::default())
    }
}

impl Console {
    pub fn new(settings: Settings) -> Console {
        Console {
            settings,
            views: Default::default(),
            downloads: Arc::new(tokio::sync::Semaphore::new(DOWNLOADS_AT_ONCE)),
            downloads_of: Default::default(),
        }
    }

    /// Waits, holding no thread, for `user`'s turn to build a download: after their own
    /// downloads asked before, then for one of the places all share. The semaphores are
    /// never closed.
    pub async fn download_turn(&self, user: Uuid) -> DownloadTurn {
        let own = {
            let mut of = self.downloads_of.lock().unwrap_or_else(|e| e.into_inner());
            // Users with nothing waiting are forgotten: the map holds who downloads now.
            of.retain(|_, s| Arc::strong_count(s) > 1);
            of.entry(user)
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(1)))
                .clone()
        };
        let own = own.acquire_owned().await.ok();
        let shared = self.downloads.clone().acquire_owned().await.ok();
        DownloadTurn {
            _own: own,
            _shared: shared,
        }
    }
}

/// A turn to build a download (`Console::download_turn`), given back when dropped.
pub struct DownloadTurn {
    _own: Option<tokio::sync::OwnedSemaphorePermit>,
    _shared: Option<tokio::sync::OwnedSemaphorePermit>,
}

const SESSION_COOKIE: &str = "vigie_session";
/// Before sign-in: the token the sign-in and invitation forms carry (double submit), one the
/// hub made (`session::form_token`).
const PRESESSION_COOKIE: &str = "vigie_presession";
const LANG_COOKIE: &str = "vigie_lang";
/// A browser that signed in before (`session::sign_in` spares it others' failures).
const KNOWN_COOKIE: &str = "vigie_known";

pub fn router(hub: Arc<Hub>) -> Router<Arc<Hub>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/assets/{name}", get(asset))
        .route("/console/lang/{code}", get(pages::auth::set_lang))
        .route(
            "/console/signin",
            get(pages::auth::sign_in_form).post(pages::auth::sign_in),
        )
        .route("/console/signout", post(pages::auth::sign_out))
        .route("/console/account", get(pages::auth::account_page))
        .route(
            "/console/account/password",
            post(pages::auth::change_password),
        )
        .route(
            "/console/account/sessions",
            post(pages::auth::end_other_sessions),
        )
        .route(
            "/console/welcome/{token}",
            get(pages::auth::welcome_form).post(pages::auth::welcome),
        )
        .merge(pages::records::routes())
        .merge(pages::admin::routes())
        .layer(axum::middleware::from_fn_with_state(
            hub.clone(),
            elsewhere_guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            hub,
            crate::http::body_in_time,
        ))
        .layer(axum::middleware::from_fn(html_errors))
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::from_fn(breach_guard))
        .layer(compression())
}

/// A page of another site or application a browser was on may send it to a console address
/// (a link, a redirect, an image, a frame): another site's requests carry no session
/// (`SameSite=Strict`), but a page of the same site — another port or subdomain of the hub's
/// host — sends the session along, and a GET needs no form token. Such a page made a
/// supervisor's browser download every child's file into her Downloads with no click, and
/// fill the audit journal with exports and case views in her name. So a GET the browser says
/// comes from elsewhere (`from_elsewhere`) does nothing: a page it navigates to shows a link to
/// the same address, which its person follows if she meant to; any other request (an image, a
/// frame, a script's) is refused. The doors into the console stay open from anywhere: its home,
/// signing in, an invitation's link, the language switch, its assets.
async fn elsewhere_guard(
    axum::extract::State(hub): axum::extract::State<Arc<Hub>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let get = matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    let path = request.uri().path();
    let door = matches!(path, "/" | "/console" | "/console/" | "/console/signin")
        || ["/console/assets/", "/console/lang/", "/console/welcome/"]
            .iter()
            .any(|prefix| path.starts_with(prefix));
    let headers = request.headers();
    if !get || door || !from_elsewhere(headers, hub.console.settings.public_url.as_deref()) {
        return next.run(request).await;
    }
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let navigating = text("sec-fetch-mode") == Some("navigate")
        && matches!(text("sec-fetch-dest"), None | Some("document"));
    if !navigating {
        return StatusCode::FORBIDDEN.into_response();
    }
    let target = request
        .uri()
        .path_and_query()
        .map_or(path, |p| p.as_str())
        .to_string();
    let page = pages::ElsewherePage {
        t: Tr(lang_of(headers)),
        nav: None,
        target,
    };
    html(&page)
}

/// Pages and assets compressed (gzip or Brotli, as the browser asks), but for what an answer
/// of the kind would gain little from (small, images) or is no text (a sync-like binary).
///
/// BREACH: a page compressed with text of the requester's choosing beside a secret (the
/// session's CSRF token, the sign-in form's token, children's names) lets whoever can make
/// the browser send requests (a page of the same host on another port: the same site, so
/// SameSite cookies go along) and watch their sizes guess the secret a character at a time.
/// So an answer that may carry what the request brought is not compressed (`breach_guard`):
/// every form's answer, and every page asked for with a query other than the few whose values
/// are never written back into the page. The rest holds no text the requester chose.
fn compression() -> tower_http::compression::CompressionLayer<impl Predicate> {
    use tower_http::compression::predicate::{NotForContentType, SizeAbove};
    let not_reflecting = |_: StatusCode,
                          _: axum::http::Version,
                          _: &HeaderMap,
                          extensions: &axum::http::Extensions| {
        extensions.get::<Uncompressed>().is_none()
    };
    tower_http::compression::CompressionLayer::new()
        .gzip(true)
        .br(true)
        .compress_when(
            SizeAbove::new(512)
                .and(NotForContentType::IMAGES)
                .and(NotForContentType::const_new("application/octet-stream"))
                .and(not_reflecting),
        )
}

/// An answer `compression` leaves as it is.
#[derive(Clone, Copy)]
struct Uncompressed;

/// The query parameters no page writes back as sent: a page number (parsed), a done message's
/// code (a fixed text is shown), an export's table, format and choice (chosen among fixed
/// ones), a shared report's switch, a period's dates (the overview's and the map's: parsed,
/// and written as the page writes any date, or the default period's instead; digits and
/// dashes beside a CSRF token masked anew on each page guess nothing).
const NOT_REFLECTED: [&str; 9] = [
    "page", "done", "table", "format", "personal", "shared", "from", "until", "list",
];

/// Whether an answer may carry text the request brought (`compression`).
fn reflects_input(method: &axum::http::Method, uri: &axum::http::Uri) -> bool {
    if !matches!(*method, axum::http::Method::GET | axum::http::Method::HEAD) {
        return true;
    }
    uri.query().is_some_and(|query| {
        query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .any(|pair| !NOT_REFLECTED.contains(&pair.split('=').next().unwrap_or(pair)))
    })
}

async fn breach_guard(request: Request, next: axum::middleware::Next) -> Response {
    let reflects = reflects_input(request.method(), request.uri());
    let mut response = next.run(request).await;
    if reflects {
        response.extensions_mut().insert(Uncompressed);
    }
    response
}

/// The largest form; a reference data file may be larger (`pages::admin`).
pub(crate) const MAX_FORM_BYTES: usize = 64 * 1024;
/// A form from a browser with no session (sign-in, invitation, password): a few hundred bytes.
pub(crate) const MAX_ANONYMOUS_FORM_BYTES: usize = 8 * 1024;
/// A reference data file, with the form around it.
pub(crate) const MAX_UPLOAD_BYTES: usize = vigie_core::reference::MAX_FILE_BYTES + MAX_FORM_BYTES;

pub(crate) async fn security_headers(response: Response) -> Response {
    let mut response = response;
    let headers = response.headers_mut();
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP_DEFAULT),
        );
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Invitation links carry their secret in the path: never sent to another site (map tiles)
    // as a referrer. The console itself uses it for the language switch.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

const CSP_DEFAULT: &str = "default-src 'self'; img-src 'self' data:; script-src 'self'; \
     style-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// The policy of a page whose map draws tiles from `tile_host` (scheme and host only).
pub(crate) fn csp_with_tiles(tile_origin: &str) -> String {
    CSP_DEFAULT.replace(
        "img-src 'self' data:",
        &format!("img-src 'self' data: {tile_origin}"),
    )
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let (bytes, kind): (&'static [u8], &str) = match name.as_str() {
        "console.css" => (
            include_bytes!("assets/console.css"),
            "text/css; charset=utf-8",
        ),
        "htmx.min.js" => (
            include_bytes!("assets/htmx.min.js"),
            "text/javascript; charset=utf-8",
        ),
        "console.js" => (
            include_bytes!("assets/console.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    // An hour from the cache, then asked again with its tag: unchanged, the answer is a few
    // bytes (on 2G the three files cost three seconds every hour).
    let tag = format!("\"{:016x}\"", fnv1a(bytes));
    let cache = [
        (header::CACHE_CONTROL, "public, max-age=3600".to_string()),
        (header::ETAG, tag.clone()),
    ];
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|asked| asked.split(',').any(|t| t.trim() == tag));
    if unchanged {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (cache, [(header::CONTENT_TYPE, kind)], bytes).into_response()
}

/// A 64-bit FNV-1a hash: an asset's tag (`asset`).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What every request brings: cookies, language, where it comes from.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub lang: Lang,
    /// Every session cookie sent, in the browser's order: a page of the same host on another
    /// port may have planted one for a longer path, which the browser sends first
    /// (`session_id`).
    pub sessions: Vec<String>,
    /// Every pre-sign-in cookie sent: a page of the same host may have planted one beside
    /// the hub's (`pages::auth`).
    pub presession: Vec<String>,
    pub known: Option<String>,
    pub address: String,
    /// Whether the browser reached the hub over TLS (a proxy says so, or the public address is
    /// https): cookies are then Secure, and `__Host-` cookies (`Ctx::cookie`).
    pub secure: bool,
    /// Whether the browser says the request was sent from a page of another origin
    /// (`from_elsewhere`).
    pub from_elsewhere: bool,
    pub path: String,
    /// The origin the browser reached the hub at (`http://192.168.1.10:8470`), when it says
    /// one and it is this hub's own: what a link shown on a page is built from when no
    /// `--public-url` was given.
    pub own_origin: Option<String>,
    /// Where to come back after signing in: the page itself for a GET; for a form sent after
    /// the session ended, the page the form was on (its action answers only POST).
    pub return_to: String,
    /// Whether the request sends a form (a POST: the console's forms are all posted).
    pub form_sent: bool,
}

/// The name of one of the console's cookies: behind TLS with the `__Host-` prefix, which a
/// browser keeps only if it was set Secure, by https, for `Path=/` and without `Domain`: no
/// page of a subdomain or of plain http on another port of the host can set one.
fn cookie_name(name: &str, secure: bool) -> std::borrow::Cow<'_, str> {
    if secure {
        format!("__Host-{name}").into()
    } else {
        name.into()
    }
}

/// Whether the browser says this request was sent by a page of another origin: its
/// `Sec-Fetch-Site` (every current browser sends it; `same-site` is a page of another port or
/// subdomain of the host, which may set cookies for it), else an `Origin` that is neither the
/// address the request was sent to nor the console's public address. A request with neither
/// (not from a browser, or a very old one) is not refused here: the forms' tokens are.
fn from_elsewhere(headers: &HeaderMap, public_url: Option<&str>) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        return !matches!(site.trim(), "same-origin" | "none");
    }
    let Some(origin) = text("origin").map(str::trim) else {
        return false;
    };
    let authority = origin.split_once("://").map(|(_, rest)| rest);
    let host = text("x-forwarded-host").or_else(|| text("host"));
    let public = public_url.is_some_and(|u| {
        let u = u.trim_end_matches('/');
        u.eq_ignore_ascii_case(origin)
    });
    !(public || (authority.is_some() && authority == host))
}

/// The request's `Origin`, if it names this hub (`Ctx::own_origin`): the `Host` it was sent
/// to, or behind a proxy the one the proxy says it received (`X-Forwarded-Host`).
fn own_origin(headers: &HeaderMap, behind_proxy: bool) -> Option<String> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let origin = text("origin")?.trim();
    let (scheme, authority) = origin.split_once("://")?;
    let forwarded = behind_proxy.then(|| text("x-forwarded-host")).flatten();
    let host = forwarded.or_else(|| text("host"))?;
    (matches!(scheme, "http" | "https")
        && authority.eq_ignore_ascii_case(host)
        && authority
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c)))
    .then(|| origin.to_string())
}

/// Every value of cookie `name` the request carries (several with one name: their paths
/// differ, or one was planted).
fn cookies<'a>(headers: &'a HeaderMap, name: &str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .filter(move |(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    cookies(headers, name).next()
}

impl FromRequestParts<Arc<Hub>> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        hub: &Arc<Hub>,
    ) -> Result<Self, Self::Rejection> {
        let headers = &parts.headers;
        let lang = lang_of(headers);
        let forwarded_https = headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"));
        let public_https = hub
            .console
            .settings
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"));
        let address = client_address(parts, hub.console.settings.behind_proxy);
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        let return_to = if parts.method == axum::http::Method::GET {
            path.clone()
        } else {
            // The page the form was on, when the browser says it and it is this hub's (a
            // browser sends its Referer to the same origin only: `Referrer-Policy`); else the
            // page the form's address belongs to.
            headers
                .get(header::REFERER)
                .and_then(|v| v.to_str().ok())
                .filter(|referer| {
                    same_origin(
                        referer,
                        headers,
                        hub.console.settings.behind_proxy,
                        hub.console.settings.public_url.as_deref(),
                    )
                })
                .map(referer_path)
                .filter(|page| page.starts_with("/console/"))
                .unwrap_or_else(|| form_page(parts.uri.path()))
        };
        let secure = forwarded_https || public_https || hub.tls.is_some();
        let named = |name| cookie(headers, &cookie_name(name, secure)).map(str::to_string);
        Ok(Ctx {
            lang,
            sessions: cookies(headers, &cookie_name(SESSION_COOKIE, secure))
                .map(str::to_string)
                .collect(),
            presession: cookies(headers, &cookie_name(PRESESSION_COOKIE, secure))
                .map(str::to_string)
                .collect(),
            known: named(KNOWN_COOKIE),
            address,
            secure,
            from_elsewhere: from_elsewhere(headers, hub.console.settings.public_url.as_deref()),
            own_origin: own_origin(headers, hub.console.settings.behind_proxy),
            path,
            return_to,
            form_sent: parts.method == axum::http::Method::POST,
        })
    }
}

/// Whether `url` (a Referer) is of the hub's own origin: the host the request was sent to
/// (behind a proxy, the one it says it received), or the console's public address.
fn same_origin(url: &str, headers: &HeaderMap, behind_proxy: bool, public: Option<&str>) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let forwarded = behind_proxy.then(|| text("x-forwarded-host")).flatten();
    let host = forwarded.or_else(|| text("host"));
    let public = public.is_some_and(|p| {
        let p = p.trim_end_matches('/');
        url.get(..p.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(p))
            && matches!(url.as_bytes().get(p.len()), None | Some(b'/'))
    });
    matches!(scheme, "http" | "https")
        && (public || host.is_some_and(|h| authority.eq_ignore_ascii_case(h)))
}

/// The page a form sent to `path` belongs to, where its person comes back after signing in
/// when the browser did not say which page the form was on: a record's page for its forms
/// (`/console/cases/<id>/status` gives `/console/cases/<id>`), a section's for the others
/// (`/console/users/<id>/areas` gives `/console/users`); none for signing in or out.
fn form_page(path: &str) -> String {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["console", "signin" | "signout" | "welcome", ..] => String::new(),
        [
            "console",
            kind @ ("cases" | "visits" | "workplaces"),
            id,
            ..,
        ] => {
            format!("/console/{kind}/{id}")
        }
        ["console", "account", ..] => "/console/account".to_string(),
        ["console", section, ..] => format!("/console/{section}"),
        _ => String::new(),
    }
}

/// The path and query of a Referer (`https://hub.example/console/x?y` gives `/console/x?y`);
/// `safe_next` decides later whether it may be followed.
pub fn referer_path(referer: &str) -> String {
    let rest = referer.split_once("://").map_or(referer, |(_, rest)| rest);
    rest.find('/')
        .map_or_else(String::new, |i| rest[i..].to_string())
}

impl Ctx {
    pub fn tr(&self) -> Tr {
        Tr(self.lang)
    }

    /// The cookie's secret of the request's live session, if one of the session cookies sent
    /// opens one: never simply the first, which may be one planted beside the hub's. A
    /// browser that sends two live sessions carries one planted by someone else's account
    /// (for a longer path, sent first): which is the person's own cannot be told, so both
    /// are ended and the browser is signed out, never signed in as the planter.
    /// Whether the browser sent a session cookie at all (whether it opens one is
    /// `session_id`'s to say).
    pub fn has_session_cookie(&self) -> bool {
        !self.sessions.is_empty()
    }

    pub fn session_id(&self, hub: &Hub) -> Result<Option<(String, storage::Session)>, Error> {
        let mut live = Vec::new();
        for id in &self.sessions {
            if live.iter().any(|(seen, _)| seen == id) {
                continue;
            }
            if let Some(found) = session::session(hub.backend.console(), id)? {
                live.push((id.clone(), found));
            }
        }
        if live.len() > 1 {
            for (id, _) in &live {
                session::sign_out(hub.backend.console(), id)?;
            }
            tracing::warn!(
                sessions = live.len(),
                "a browser sent several live console sessions (one planted beside the \
                 other?): all ended"
            );
            return Ok(None);
        }
        Ok(live.pop())
    }

    /// Set-Cookie values that expire every session cookie this browser may hold at the paths
    /// a console page sees (the browser does not say which path a cookie was set for): sent
    /// by the sign-in page when several came and none opens a session, so that one planted
    /// for a longer path does not hide the session the person is about to open.
    pub fn clear_sessions(&self) -> Vec<HeaderValue> {
        if self.sessions.len() < 2 {
            return Vec::new();
        }
        let name = cookie_name(SESSION_COOKIE, self.secure);
        let mut paths = vec!["/".to_string(), "/console".to_string()];
        let mut at = 0;
        let path = self.path.split('?').next().unwrap_or("");
        while let Some(i) = path[at..].find('/') {
            at += i + 1;
            paths.push(path[..at].to_string());
        }
        paths.push(path.to_string());
        paths.sort();
        paths.dedup();
        paths
            .iter()
            .filter_map(|p| {
                let secure = if self.secure { "; Secure" } else { "" };
                HeaderValue::from_str(&format!(
                    "{name}=; Path={p}; Max-Age=0; HttpOnly; SameSite=Strict{secure}"
                ))
                .ok()
            })
            .collect()
    }

    /// A cookie the console sets: HttpOnly, SameSite=Strict (which does not stop a page of
    /// the same host on another port, the same site); for the console's paths over plain
    /// HTTP, and behind TLS Secure with the `__Host-` prefix, which asks for `Path=/` (the
    /// sync API under `/v1/` ignores them).
    pub fn cookie(&self, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
        let name = cookie_name(name, self.secure);
        let path = if self.secure { "/" } else { "/console" };
        let mut text = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict");
        if let Some(age) = max_age {
            text.push_str(&format!("; Max-Age={age}"));
        }
        if self.secure {
            text.push_str("; Secure");
        }
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// The language a request asks for (the switch's cookie, else the browser's).
fn lang_of(headers: &HeaderMap) -> Lang {
    Lang::choose(
        // Either name: behind TLS or not, it only chooses the language.
        cookie(headers, &cookie_name(LANG_COOKIE, true)).or(cookie(headers, LANG_COOKIE)),
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    )
}

/// The console's error page, without a menu (no session was looked up).
pub fn error_page(headers: &HeaderMap, status: StatusCode, message: &str) -> Response {
    let t = Tr(lang_of(headers));
    let page = pages::ErrorPage {
        t,
        nav: None,
        title: t.get("error.title"),
        message: t.get(message).to_string(),
    };
    (status, html(&page)).into_response()
}

/// `error_page` for a form that names one of its fields twice (a browser never sends one):
/// the field's label in the person's language, or its name.
fn doubled_field_page(headers: &HeaderMap, field: &str) -> Response {
    let t = Tr(lang_of(headers));
    let label =
        vigie_core::messages::field_label(field, t.lang()).unwrap_or_else(|| field.to_string());
    let page = pages::ErrorPage {
        t,
        nav: None,
        title: t.get("error.title"),
        message: t.fmt("error.doubled_field", label),
    };
    (StatusCode::BAD_REQUEST, html(&page)).into_response()
}

/// What axum answers by itself on a console path (an address that does not parse, a method
/// the page does not take) becomes the console's page, in the person's language. A GET on
/// an address that only takes a form (the page a refused form was shown at, a link kept)
/// goes to the page above it.
async fn html_errors(request: Request, next: axum::middleware::Next) -> Response {
    let get = matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    let path = request.uri().path().to_string();
    let headers = request.headers().clone();
    let response = next.run(request).await;
    let status = response.status();
    let is_page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !status.is_client_error() || is_page {
        return response;
    }
    match status {
        StatusCode::METHOD_NOT_ALLOWED if get => {
            let above = path
                .trim_end_matches('/')
                .rsplit_once('/')
                .map_or("", |(above, _)| above);
            // safe_next keeps it in the console (`/console` itself is its home).
            Redirect::to(&safe_next(Some(above))).into_response()
        }
        StatusCode::METHOD_NOT_ALLOWED => error_page(&headers, status, "error.method"),
        StatusCode::NOT_FOUND => error_page(&headers, status, "error.not_found"),
        StatusCode::REQUEST_TIMEOUT => error_page(&headers, status, "error.too_slow"),
        StatusCode::PAYLOAD_TOO_LARGE => error_page(&headers, status, "error.too_large"),
        _ => error_page(&headers, status, "error.bad_address"),
    }
}

/// A console form's fields. A request that is not a form (no body, another content type, a
/// field that does not parse) gets the console's error page in the person's language, where
/// axum would answer a bare 415 or 422 in English.
pub struct Posted<T>(pub T);

impl<T, S> FromRequest<S> for Posted<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = request.headers().clone();
        let (method, uri) = (request.method().clone(), request.uri().clone());
        let bad_form = || error_page(&headers, StatusCode::BAD_REQUEST, "error.bad_form");
        let Ok(body) = axum::body::Bytes::from_request(request, state).await else {
            return Err(bad_form());
        };
        // A value whose bytes are not UTF-8 (no browser sends one) is refused, not read with
        // each bad byte replaced by "�" and saved so on the record.
        if !form_is_utf8(&body) || !form_is_utf8(uri.query().unwrap_or_default().as_bytes()) {
            return Err(bad_form());
        }
        let mut again = Request::new(axum::body::Body::from(body));
        *again.method_mut() = method;
        *again.uri_mut() = uri;
        *again.headers_mut() = headers.clone();
        match Form::<T>::from_request(again, state).await {
            Ok(Form(fields)) => Ok(Posted(fields)),
            // A field sent twice (a script, an altered page) is named: the form was neither
            // cut nor other than text.
            Err(e) => match doubled_field(&e.body_text()) {
                Some(field) => Err(doubled_field_page(&headers, field)),
                None => Err(bad_form()),
            },
        }
    }
}

/// The field a form's refusal says it holds twice (serde's words: "duplicate field `name`"),
/// if it is one the console's forms name (letters, digits and `_`).
fn doubled_field(refusal: &str) -> Option<&str> {
    let (_, rest) = refusal.split_once("duplicate field `")?;
    let (field, _) = rest.split_once('`')?;
    let named = !field.is_empty()
        && field.len() <= 64
        && field
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    named.then_some(field)
}

/// Whether every name and value of a URL-encoded form decodes to UTF-8.
fn form_is_utf8(body: &[u8]) -> bool {
    body.split(|b| *b == b'&').all(|pair| {
        let mut decoded = Vec::with_capacity(pair.len());
        let mut i = 0;
        while i < pair.len() {
            match pair[i] {
                b'%' => {
                    let hex = pair
                        .get(i + 1..i + 3)
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .and_then(|h| u8::from_str_radix(h, 16).ok());
                    match hex {
                        Some(byte) => {
                            decoded.push(byte);
                            i += 3;
                            continue;
                        }
                        None => decoded.push(b'%'),
                    }
                }
                other => decoded.push(other),
            }
            i += 1;
        }
        std::str::from_utf8(&decoded).is_ok()
    })
}

/// What a signed-in user may do in the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Records of their areas: review, cases, indicators, map, exports, erasure, quarantine.
    Supervisor,
    /// Users, devices, reference data and the audit log; no field record.
    Administrator,
}

/// Who may sign in to the console, and as what. Field roles use their phones.
pub fn access_of(role: Role) -> Option<Access> {
    match role {
        Role::Supervisor => Some(Access::Supervisor),
        Role::Administrator => Some(Access::Administrator),
        Role::Inspector | Role::CommunityMonitor => None,
    }
}

/// The signed-in user of a request.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub user: User,
    pub login: String,
    pub access: Access,
    /// The session's CSRF token masked for this page (`session::masked`): what forms carry.
    pub csrf: String,
    /// The session's token itself, which a form's unmasked token must equal.
    session_csrf: String,
}

impl Viewer {
    /// The user as the core's rules see them: the scope their devices sync with. The console
    /// acts through the hub's own device.
    pub fn principal(&self) -> Principal {
        crate::acting_as(&self.user)
    }
}

/// Why a page could not be shown.
#[derive(Debug)]
pub enum Problem {
    SignedOut,
    /// A POST whose CSRF token is missing or wrong.
    Csrf,
    /// A page of the other kind of account (the error page keeps the viewer's menu).
    Forbidden(Box<Viewer>),
    NotFound,
    /// Nothing to show yet, and why (an i18n key): a file the hub has not received.
    NotHere(&'static str),
    Storage(Error),
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound { .. } => Problem::NotFound,
            e => Problem::Storage(e),
        }
    }
}

impl From<crate::auth::AuthError> for Problem {
    fn from(e: crate::auth::AuthError) -> Self {
        Problem::Storage(Error::Io(std::io::Error::other(e.to_string())))
    }
}

pub type PageResult = Result<Response, Problem>;

/// The signed-in user, or `SignedOut`.
pub fn viewer(hub: &Hub, ctx: &Ctx) -> Result<Viewer, Problem> {
    let Some((_, session)) = ctx.session_id(hub)? else {
        return Err(Problem::SignedOut);
    };
    let storage = hub.backend.console();
    let user = hub.backend.user(session.user)?;
    let account = storage.account_of(session.user)?;
    let (Some(user), Some(account)) = (user, account) else {
        return Err(Problem::SignedOut);
    };
    let Some(access) = access_of(user.role).filter(|_| user.active) else {
        // Deactivated, or moved to a field role, since signing in.
        storage.end_console_access_of(user.id)?;
        return Err(Problem::SignedOut);
    };
    Ok(Viewer {
        user,
        login: account.login,
        access,
        csrf: session::masked(&session.csrf),
        session_csrf: session.csrf,
    })
}

/// The signed-in user, who must have `access`.
pub fn viewer_with(hub: &Hub, ctx: &Ctx, access: Access) -> Result<Viewer, Problem> {
    let viewer = viewer(hub, ctx)?;
    if viewer.access != access {
        return Err(Problem::Forbidden(Box::new(viewer)));
    }
    Ok(viewer)
}

/// The signed-in user behind a form, who must have `access`, and whose form carries the
/// session's CSRF token.
pub fn posted(hub: &Hub, ctx: &Ctx, access: Access, csrf: &str) -> Result<Viewer, Problem> {
    let viewer = viewer_with(hub, ctx, access)?;
    check_csrf(&viewer, csrf)?;
    Ok(viewer)
}

/// The signed-in user behind a form of their own (their account, signing out), whatever their
/// access, whose form carries the session's CSRF token.
pub fn posted_by_self(hub: &Hub, ctx: &Ctx, csrf: &str) -> Result<Viewer, Problem> {
    let viewer = viewer(hub, ctx)?;
    check_csrf(&viewer, csrf)?;
    Ok(viewer)
}

/// Checks a form's CSRF token against the session's.
pub fn check_csrf(viewer: &Viewer, token: &str) -> Result<(), Problem> {
    if session::unmasked(token).is_some_and(|token| session::same(&viewer.session_csrf, &token)) {
        Ok(())
    } else {
        Err(Problem::Csrf)
    }
}

/// Writes one console action in the audit log.
pub fn audit(hub: &Hub, who: Option<Uuid>, action: &str, record: Option<Uuid>, detail: &str) {
    journal(&*hub.backend, who, action, record, detail);
}

/// Writes one action in the hub's audit log, the console's or the command line's (`who` is
/// `None` for an operator at the machine, or an attempt with no account). Whether the entry
/// was written: the command line fails when it was not (`vigie` ends with an error once the
/// action is done and said), so that a script sees it.
pub fn journal(
    backend: &dyn Backend,
    who: Option<Uuid>,
    action: &str,
    record: Option<Uuid>,
    detail: &str,
) -> bool {
    let entry = AuditEntry {
        at_ms: session::now_ms(),
        user: who,
        action: action.to_string(),
        record,
        detail: detail.to_string(),
    };
    if let Err(e) = backend.console().audit(&entry) {
        // The action is done; its trace is lost, which the hub's log says (ids only).
        tracing::error!(error = %e, action, "console audit entry not written");
        return false;
    }
    true
}

/// Held from an irreversible action to its journal entry, and while the journal is searched
/// for an action found done: a request sent twice at once (a double tap, a retry) would
/// otherwise find the first one's action done before its entry is written, and journal it a
/// second time as found. Within one process; these actions are rare and short.
static IRREVERSIBLE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `action` (an irreversible action and its journal entry, or the search for one found
/// done) with no other such action of this process between them.
pub fn one_irreversible_at_a_time<T>(action: impl FnOnce() -> T) -> T {
    let _held = irreversible_held();
    action()
}

fn irreversible_held() -> std::sync::MutexGuard<'static, ()> {
    // A panic while held leaves nothing half-done that the lock protects: taken again.
    IRREVERSIBLE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the journal says of an irreversible action found done with no entry about it (the
/// command, or the hub, stopped between the action and its entry): written when someone asks
/// for it again, in that person's name, as found — not as done by them.
pub const FOUND_DONE: &str = "found_done_unjournaled";

/// What an entry found in the journal must be to stand for an action asked again.
#[derive(Clone, Copy)]
pub enum Held<'a> {
    /// Any entry of the action, or of one of these, about the record (an erasure is done once
    /// whatever its reason).
    AnyOf(&'a [&'a str]),
    /// An entry of the action with the same detail (a quarantine review names its entry, and
    /// a record may have had others).
    SameDetail,
}

/// How many times (a tenth of a second apart) `journal_found_done` looks again for the entry
/// of an action another process may have just done.
const FOUND_DONE_WAITS: usize = 20;

/// Journals `action` on `record` as found done (`FOUND_DONE` after the action's `detail`, if
/// any, marked as the command line's when `command_line`) unless the log holds an entry of it
/// (`held`): a revocation, an erasure or a review whose process stopped before its entry is in
/// the log once it is asked again. False if the log could not be read or written.
pub fn journal_found_done(
    backend: &dyn Backend,
    who: Option<Uuid>,
    (action, detail): (&str, &str),
    held: Held<'_>,
    record: Uuid,
    command_line: bool,
) -> bool {
    let storage = backend.console();
    let is_held = || match held {
        Held::SameDetail => storage.audited(action, record, Some(detail)),
        Held::AnyOf(also) => std::iter::once(action)
            .chain(also.iter().copied())
            .try_fold(false, |held, a| {
                Ok::<_, Error>(held || storage.audited(a, record, None)?)
            }),
    };
    // Another process (a second `vigie erase` of the same case, run at once) may have done it
    // a moment ago and be writing its entry after its commit: given a moment, it is found
    // there rather than journaled twice, the second in the wrong person's name.
    let mut held = is_held();
    for _ in 0..FOUND_DONE_WAITS {
        if !matches!(held, Ok(false)) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        held = is_held();
    }
    match held {
        Ok(true) => true,
        Ok(false) => {
            tracing::warn!(
                action,
                record = %record,
                "an irreversible action found done had no entry in the audit log: journaled now"
            );
            let found = match detail {
                "" => FOUND_DONE.to_string(),
                detail => format!("{detail} ({FOUND_DONE})"),
            };
            journal(
                backend,
                who,
                action,
                Some(record),
                &erasure_detail(&found, command_line),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, action, "the audit log could not be read");
            false
        }
    }
}

/// Why a case may be erased: the console's choices and `vigie erase --reason`, journaled with
/// the erasure.
pub const ERASE_REASONS: [&str; 4] = [
    "entered_in_error",
    "duplicate_of_another_case",
    "consent_withdrawn",
    "legal_request",
];

/// What `erase_journaled` erased.
pub struct Erased {
    /// The ids erased, the case's first (empty: the hub held nothing under that id, or
    /// another request erased it meanwhile).
    pub cases: Vec<Uuid>,
    /// The entries kept for review that went with them (`ErasedRecords::reviews`).
    pub reviews: usize,
    /// Whether the audit log took every entry (the hub's log says which it did not).
    pub journaled: bool,
}

/// Erases a case and the duplicates merged into it, as the supervisor `by` asks for `reason`
/// (one of `ERASE_REASONS`), and journals each record erased; `command_line` marks the entries
/// as the other commands' are.
pub fn erase_journaled(
    backend: &dyn Backend,
    by: Uuid,
    record: Uuid,
    reason: &str,
    command_line: bool,
) -> Result<Erased, Error> {
    debug_assert!(ERASE_REASONS.contains(&reason));
    let _held = irreversible_held();
    let erased = match backend.erase(by, record) {
        Err(Error::NotAllowed { rule }) if rule == crate::backend::ERASED_ALREADY => {
            // Journaled in the name of a supervisor only (one who may erase), with the reason
            // given again.
            let supervisor = backend
                .users()?
                .iter()
                .any(|u| u.id == by && u.active && u.role == vigie_core::Role::Supervisor);
            if supervisor {
                journal_found_done(
                    backend,
                    Some(by),
                    ("case_erase", reason),
                    Held::AnyOf(&["erase_unheld"]),
                    record,
                    command_line,
                );
            }
            return Err(Error::NotAllowed { rule });
        }
        other => other?,
    };
    let detail = erasure_detail(reason, command_line);
    let mut journaled = true;
    // A case the hub held only in changes kept for review is erased all the same.
    let journaled_ids = match erased.records.is_empty() && erased.reviews > 0 {
        true => vec![record],
        false => erased.records.clone(),
    };
    for id in journaled_ids {
        journaled &= journal(backend, Some(by), "case_erase", Some(id), &detail);
    }
    // Journaled, then completed (`Backend::purge_erased`).
    backend.purge_erased()?;
    Ok(Erased {
        cases: erased.records,
        reviews: erased.reviews,
        journaled,
    })
}

/// What the journal says of an action taken on the command line (the operator at the machine
/// has no user of the hub): the whole detail, or after it in brackets (`from_command_line`).
pub const COMMAND_LINE: &str = "command line";

/// `detail`, marked as the command line's.
pub fn from_command_line(detail: &str) -> String {
    format!("{detail} ({COMMAND_LINE})")
}

/// An erasure's journal detail: its reason, marked when `vigie erase` made it.
pub fn erasure_detail(reason: &str, command_line: bool) -> String {
    match command_line {
        true => from_command_line(reason),
        false => reason.to_string(),
    }
}

/// Runs a page's work on a storage worker, and turns problems into responses.
pub async fn run(
    hub: Arc<Hub>,
    ctx: Ctx,
    work: impl FnOnce(&Hub, &Ctx) -> PageResult + Send + 'static,
) -> Response {
    let job_hub = hub.clone();
    let job_ctx = ctx.clone();
    let outcome = hub
        .console_workers
        .run(move || {
            let started = std::time::Instant::now();
            let mut outcome = work(&job_hub, &job_ctx);
            // The page's time on the hub (`vigie-bench console` reads it).
            if let Ok(response) = &mut outcome
                && let Ok(value) =
                    format!("app;dur={:.1}", started.elapsed().as_secs_f64() * 1000.0).parse()
            {
                response.headers_mut().insert("server-timing", value);
            }
            outcome
        })
        .await
        .unwrap_or_else(|| {
            Err(Problem::Storage(Error::Io(std::io::Error::other(
                "console worker failed",
            ))))
        });
    match outcome {
        Ok(response) => response,
        Err(problem) => problem_response(&ctx, problem),
    }
}

fn problem_response(ctx: &Ctx, problem: Problem) -> Response {
    let t = ctx.tr();
    let mut nav = None;
    let (status, message) = match problem {
        Problem::SignedOut => {
            let next = urlencode(&ctx.return_to);
            // A form sent after the session ended was not saved: the sign-in page says so (its
            // page comes back after sign-in, empty).
            let unsent = match ctx.form_sent && ctx.path != "/console/signout" {
                true => "&done=unsent",
                false => "",
            };
            return Redirect::to(&format!("/console/signin?next={next}{unsent}")).into_response();
        }
        Problem::Csrf => (StatusCode::FORBIDDEN, t.get("error.csrf")),
        Problem::Forbidden(viewer) => {
            nav = pages::Nav::of(&viewer, "");
            (StatusCode::FORBIDDEN, t.get("error.forbidden"))
        }
        Problem::NotFound => (StatusCode::NOT_FOUND, t.get("error.not_found")),
        Problem::NotHere(key) => (StatusCode::NOT_FOUND, t.get(key)),
        // The database out of reach (PostgreSQL down or restarting): no fault of the page's.
        Problem::Storage(e) if crate::postgres::is_unreachable(&e) => {
            tracing::error!(error = %e, "console page: the hub's database cannot be reached");
            (StatusCode::SERVICE_UNAVAILABLE, t.get("error.unavailable"))
        }
        // The embedded store locked past its wait (a command line tool writing many records).
        Problem::Storage(e) if crate::http::store_busy(&e) => {
            tracing::warn!(error = %e, "console page: the hub's store stayed locked: answered 503");
            (StatusCode::SERVICE_UNAVAILABLE, t.get("error.unavailable"))
        }
        Problem::Storage(e) => {
            // Core errors carry no personal data.
            tracing::error!(error = %e, "console page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, t.get("error.internal"))
        }
    };
    let page = pages::ErrorPage {
        t,
        nav,
        title: t.get("error.title"),
        message: message.to_string(),
    };
    let mut response = (status, html(&page)).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        // Come back once the database is: as the devices are told (`http::store_unreachable`).
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("30"));
    }
    response
}

/// A rendered template as an HTML response body.
pub fn html(template: &impl askama::Template) -> Response {
    match template.render() {
        Ok(body) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console template failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Percent-encodes a query value.
pub fn urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Where to go after signing in: a console path, never another site.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        // A control character cannot go into the Location header: it was a 500 after a correct
        // password.
        Some(n)
            if n.starts_with("/console/")
                && !n.contains('\\')
                && !n.chars().any(|c| c.is_control())
                && path_as_written(n) =>
        {
            page_of_download(n)
        }
        _ => "/console/".to_string(),
    }
}

/// Whether a browser follows `next`'s path as it is written: it removes `.` and `..` segments
/// (`%2e` is a dot to it) and the blanks around an address before it asks, so
/// `/console/./exports/download` and `/console/cases/<id>/file.json ` were downloads that
/// `page_of_download` did not recognise, and `/console/../x` a page outside the console. A
/// console page's path holds letters, digits, `-`, `_`, `.` and `/` only (ids, words,
/// `file.json`), and no dot segment or empty one inside it.
fn path_as_written(next: &str) -> bool {
    let path = next.split(['?', '#']).next().unwrap_or(next);
    let inner = path.strip_suffix('/').unwrap_or(path);
    path.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.'))
        && inner
            .split('/')
            .skip(1)
            .all(|segment| !matches!(segment, "" | "." | ".."))
}

/// A return page that is a download (an export, a child's file, an attachment) becomes the
/// page that offers it: a link from another site to the sign-in page with such a `next`
/// downloaded every child's personal file into the supervisor's Downloads as she signed in,
/// journaled in her name.
fn page_of_download(next: &str) -> String {
    let path = next.split(['?', '#']).next().unwrap_or(next);
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["console", "exports", "download", ..] => "/console/exports".to_string(),
        ["console", "cases", id, "file.json"] => format!("/console/cases/{id}"),
        ["console", "records", _, "attachments", ..] => "/console/".to_string(),
        _ => next.to_string(),
    }
}

/// The link printed by `vigie console invite`: the console's public address, else the address
/// the hub listens on.
pub fn invite_link(base: &str, token: &str) -> String {
    format!("{}/console/welcome/{token}", base.trim_end_matches('/'))
}

/// The user with `id`, its name for a list ("?" for none).
pub fn user_names(users: &[User]) -> std::collections::HashMap<Uuid, String> {
    users.iter().map(|u| (u.id, u.name.clone())).collect()
}

#[cfg(test)]
mod next_tests {
    use super::safe_next;

    #[test]
    fn only_a_console_path_without_control_characters_is_followed() {
        assert_eq!(safe_next(Some("/console/cases?q=a")), "/console/cases?q=a");
        for hostile in [
            "https://evil.example/",
            "//evil.example",
            "/console/\\evil",
            "/console/\r\nX: y",
            "/console/\u{7f}",
            // Dot segments, as the browser removes them: a download, or outside the console.
            "/console/./exports/download?table=child_cases&format=csv&personal=1",
            "/console/cases/../exports/download?table=child_cases",
            "/console/%2e/exports/download?table=child_cases",
            "/console/%2E%2E/evil",
            "/console/cases/.%2e/exports/download",
            "/console/../../evil",
            "/console//exports/download",
            "/console/cases/019b3637-6a40-7b08-8022-000000000001/./file.json",
            "/console/cases/019b3637-6a40-7b08-8022-000000000001/file.json/.",
            // Blanks the browser strips from an address's ends, or any other character no
            // console path holds.
            "/console/cases/019b3637-6a40-7b08-8022-000000000001/file.json ",
            "/console/cases/019b3637-6a40-7b08-8022-000000000001/file.json  ",
            "/console/cases/019b3637-6a40-7b08-8022-000000000001/file.json\u{a0}",
            "/console/cases/019b3637-6a40-7b08-8022-000000000001/file.json;x",
            "/console/cases/019b3637-6a40-7b08-8022-000000000001/file\u{2024}json",
        ] {
            assert_eq!(safe_next(Some(hostile)), "/console/", "{hostile:?}");
        }
        assert_eq!(safe_next(None), "/console/");
        // A search's words may hold anything escaped in the query; a page may end in a slash.
        assert_eq!(
            safe_next(Some("/console/cases?q=Kon%C3%A9+..%2F")),
            "/console/cases?q=Kon%C3%A9+..%2F"
        );
        assert_eq!(safe_next(Some("/console/")), "/console/");
        // A download is never where signing in lands: the page that offers it is.
        let id = "019b3637-6a40-7b08-8022-000000000001";
        for (download, page) in [
            (
                "/console/exports/download?table=child_cases&format=csv&personal=1".to_string(),
                "/console/exports".to_string(),
            ),
            (
                format!("/console/cases/{id}/file.json"),
                format!("/console/cases/{id}"),
            ),
            (
                format!("/console/records/{id}/attachments/{id}"),
                "/console/".to_string(),
            ),
        ] {
            assert_eq!(safe_next(Some(&download)), page, "{download}");
        }
    }

    #[test]
    fn a_forms_page_is_its_records_or_its_sections() {
        use super::form_page;
        let id = "019b3637-6a40-7b08-8022-000000000001";
        for (action, page) in [
            (
                format!("/console/cases/{id}/status"),
                format!("/console/cases/{id}"),
            ),
            (
                format!("/console/visits/{id}"),
                format!("/console/visits/{id}"),
            ),
            (
                format!("/console/workplaces/{id}/resolve"),
                format!("/console/workplaces/{id}"),
            ),
            (
                format!("/console/users/{id}/areas"),
                "/console/users".into(),
            ),
            (
                format!("/console/devices/{id}/revoke"),
                "/console/devices".into(),
            ),
            (
                "/console/quarantine/12".into(),
                "/console/quarantine".into(),
            ),
            (
                "/console/account/password".into(),
                "/console/account".into(),
            ),
            ("/console/cases".into(), "/console/cases".into()),
            ("/console/signout".into(), String::new()),
        ] {
            assert_eq!(form_page(&action), page, "{action}");
        }
    }
}

#[cfg(test)]
mod download_turn_tests {
    use super::{Console, Settings};
    use std::time::Duration;
    use uuid::Uuid;

    /// One supervisor's downloads wait behind one another; another's starts beside them.
    #[tokio::test]
    async fn one_persons_downloads_queue_behind_their_own() {
        let console = std::sync::Arc::new(Console::new(Settings::default()));
        let (busy, other) = (Uuid::now_v7(), Uuid::now_v7());
        let first = console.download_turn(busy).await;
        let queued: Vec<_> = (0..5)
            .map(|_| {
                let console = console.clone();
                tokio::spawn(async move { console.download_turn(busy).await })
            })
            .collect();
        let theirs = tokio::time::timeout(Duration::from_secs(30), console.download_turn(other))
            .await
            .expect("another supervisor's download is not held");
        tokio::task::yield_now().await;
        assert!(queued.iter().all(|q| !q.is_finished()));
        drop((first, theirs));
        for turn in queued {
            drop(turn.await.expect("each in turn"));
        }
    }
}

#[cfg(test)]
mod form_tests {
    use super::form_is_utf8;

    #[test]
    fn a_form_whose_bytes_are_not_utf8_is_told_apart() {
        for good in [
            &b"provider=%C3%89cole+de+Bouak%C3%A9&csrf=abc"[..],
            b"name=A%C3%AFcha&notes=",
            b"q=100%25",
            b"q=%zz",
            b"",
        ] {
            assert!(form_is_utf8(good), "{}", String::from_utf8_lossy(good));
        }
        // A lone surrogate in UTF-8, a cut sequence, a Latin-1 byte.
        for bad in [&b"provider=%ED%A0%80x"[..], b"name=A%C3", b"name=%E9cole"] {
            assert!(!form_is_utf8(bad), "{}", String::from_utf8_lossy(bad));
        }
    }
}
