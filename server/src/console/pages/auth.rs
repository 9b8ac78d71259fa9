//! Signing in and out, the first password (from an invitation link), the language switch.

use super::Nav;
use crate::console::i18n::{Lang, Tr};
use crate::console::session::{self, AccountChange, Refused, SignIn};
use crate::console::{
    Ctx, KNOWN_COOKIE, LANG_COOKIE, PRESESSION_COOKIE, Posted, Problem, SESSION_COOKIE, access_of,
    audit, html, posted_by_self, referer_path, run, safe_next, viewer,
};
use crate::http::Hub;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage {
    t: Tr,
    nav: Option<Nav>,
    csrf: String,
    next: String,
    login: String,
    error: Option<String>,
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
    done: Option<String>,
}

/// A form shown before sign-in (the session's CSRF token does not exist yet): a fresh token
/// the hub made (`session::form_token`), in a cookie that the form repeats.
fn with_form_token(hub: &Hub, ctx: &Ctx, page: impl FnOnce(String) -> Response) -> Response {
    let token = session::form_token(&hub.backend.console_form_key(), session::now_ms());
    with_cookie(ctx, token, page)
}

/// A form shown again after one was refused: with the token of the browser's cookie if the
/// hub made it and it has ten minutes left (the browser's other tabs keep theirs), else a
/// fresh one.
fn again_with_form_token(hub: &Hub, ctx: &Ctx, page: impl FnOnce(String) -> Response) -> Response {
    let key = hub.backend.console_form_key();
    let later = session::now_ms() + 10 * 60 * 1000;
    match ctx
        .presession
        .iter()
        .find(|c| session::form_token_valid(&key, c, later))
    {
        Some(token) => page(token.clone()),
        None => with_form_token(hub, ctx, page),
    }
}

fn with_cookie(ctx: &Ctx, token: String, page: impl FnOnce(String) -> Response) -> Response {
    let mut response = page(token.clone());
    response.headers_mut().append(
        header::SET_COOKIE,
        ctx.cookie(
            PRESESSION_COOKIE,
            &token,
            Some(session::FORM_TOKEN_MS / 1000),
        ),
    );
    response
}

/// Whether a form shown before sign-in came back as the hub gave it: sent from a page of the
/// console's own origin, with a token the hub made within the hour, which a cookie of the
/// browser repeats. A double submit alone is not enough there: a page on another port of the
/// same host can plant the cookie (cookies are not kept apart by port, and SameSite=Strict
/// lets it through: same site), and signing a person's browser in to the planter's account
/// is what it would do. A token it took from the hub for itself still needs the browser's
/// request to come from the console's origin.
fn form_from_hub(hub: &Hub, ctx: &Ctx, token: &str) -> bool {
    let issued =
        session::form_token_valid(&hub.backend.console_form_key(), token, session::now_ms());
    if !issued || ctx.from_elsewhere {
        tracing::info!(
            issued,
            from_elsewhere = ctx.from_elsewhere,
            "console form before sign-in refused"
        );
        return false;
    }
    ctx.presession.iter().any(|c| session::same(c, token))
}

/// The sign-in form, with a fresh token in a cookie that the form repeats.
pub async fn sign_in_form(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Query(q): Query<NextQuery>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let t = ctx.tr();
        // Several session cookies and none live (one planted for a longer path, which the
        // browser sends before the hub's): all go, or the session about to be opened would
        // stay hidden behind it, and every page would send the person back here.
        let stale = match ctx.session_id(hub)? {
            Some(_) => Vec::new(),
            None => ctx.clear_sessions(),
        };
        let mut response = sign_in_page(hub, ctx, t, &q);
        for cookie in stale {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        Ok(response)
    })
    .await
}

fn sign_in_page(hub: &Hub, ctx: &Ctx, t: Tr, q: &NextQuery) -> Response {
    with_form_token(hub, ctx, |csrf| {
        html(&SignInPage {
            t,
            nav: None,
            csrf,
            next: safe_next(q.next.as_deref()),
            login: String::new(),
            error: None,
            notice: match q.done.as_deref() {
                Some("welcome") => Some(t.get("signin.welcome_done")),
                Some("out") => Some(t.get("signin.signed_out")),
                Some("unsent") => Some(t.get("signin.unsent")),
                _ => None,
            },
        })
    })
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
}

pub async fn sign_in(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Posted(form): Posted<SignInForm>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let t = ctx.tr();
        if !form_from_hub(hub, ctx, &form.csrf) {
            // A fresh form (nothing typed is kept: it may not be the person's), which says why.
            return Ok(again_with_form_token(hub, ctx, |csrf| {
                let page = SignInPage {
                    t,
                    nav: None,
                    csrf,
                    next: safe_next(Some(&form.next)),
                    login: String::new(),
                    error: Some(t.get("form.expired").to_string()),
                    notice: None,
                };
                (StatusCode::FORBIDDEN, html(&page)).into_response()
            }));
        }
        let storage = hub.backend.console();
        let active = |user| may_sign_in(hub, user);
        let attempt = session::Attempt {
            login: &form.login,
            password: &form.password,
            address: &ctx.address,
            known: ctx.known.as_deref(),
        };
        let (status, error) = match session::sign_in(storage, &attempt, &active)? {
            SignIn::Opened { id, session, known } => {
                audit(hub, Some(session.user), "sign_in", None, "");
                let mut response = Redirect::to(&safe_next(Some(&form.next))).into_response();
                let headers = response.headers_mut();
                headers.append(header::SET_COOKIE, ctx.cookie(SESSION_COOKIE, &id, None));
                headers.append(
                    header::SET_COOKIE,
                    ctx.cookie(KNOWN_COOKIE, &known, Some(session::KNOWN_BROWSER_MS / 1000)),
                );
                headers.append(
                    header::SET_COOKIE,
                    ctx.cookie(PRESESSION_COOKIE, "", Some(0)),
                );
                return Ok(response);
            }
            SignIn::Wrong { account } => {
                // Journaled under the account whose name was typed: an administrator sees
                // which one someone is guessing.
                audit(hub, account, "sign_in_failed", None, "");
                (StatusCode::UNAUTHORIZED, t.get("signin.wrong").to_string())
            }
            SignIn::Throttled { seconds, account } => {
                // Not journaled: refused unchecked, as often as anyone cares to send them, they
                // would fill the journal (each was, before; old entries still read). The log
                // names the account by its id, never by a name.
                tracing::info!(
                    account = account.map(|a| a.to_string()).unwrap_or_default(),
                    "console sign-in refused during a wait"
                );
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    t.fmt("signin.throttled", seconds),
                )
            }
        };
        let page = SignInPage {
            t,
            nav: None,
            csrf: form.csrf.clone(),
            next: safe_next(Some(&form.next)),
            login: form.login.clone(),
            error: Some(error),
            notice: None,
        };
        Ok((status, html(&page)).into_response())
    })
    .await
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn sign_out(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Posted(form): Posted<CsrfForm>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let viewer = posted_by_self(hub, ctx, &form.csrf)?;
        if let Some((id, _)) = ctx.session_id(hub)? {
            session::sign_out(hub.backend.console(), &id)?;
        }
        audit(hub, Some(viewer.user.id), "sign_out", None, "");
        let mut response = Redirect::to("/console/signin?done=out").into_response();
        response
            .headers_mut()
            .append(header::SET_COOKIE, ctx.cookie(SESSION_COOKIE, "", Some(0)));
        Ok(response)
    })
    .await
}

#[derive(Template)]
#[template(path = "welcome.html")]
struct WelcomePage {
    t: Tr,
    nav: Option<Nav>,
    valid: bool,
    name: String,
    csrf: String,
    login: String,
    error: Option<&'static str>,
}

/// Whether a user may sign in to the console: active, with a console role.
fn can_sign_in(user: &vigie_core::User) -> bool {
    user.active && access_of(user.role).is_some()
}

fn may_sign_in(hub: &Hub, user: uuid::Uuid) -> Result<bool, vigie_core::Error> {
    Ok(hub.backend.user(user)?.is_some_and(|u| can_sign_in(&u)))
}

/// The page an invitation link opens: choose a sign-in name and a password.
pub async fn welcome_form(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Path(token): Path<String>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let user = hub
            .backend
            .console()
            .invite(&session::hash_secret(&token), session::now_ms())?;
        let user = match user {
            Some(id) => hub.backend.user(id)?.filter(can_sign_in),
            None => None,
        };
        let status = if user.is_some() {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
        Ok(with_form_token(hub, ctx, |csrf| {
            let page = WelcomePage {
                t: ctx.tr(),
                nav: None,
                valid: user.is_some(),
                name: user.as_ref().map(|u| u.name.clone()).unwrap_or_default(),
                csrf,
                login: String::new(),
                error: None,
            };
            (status, html(&page)).into_response()
        }))
    })
    .await
}

#[derive(Deserialize)]
pub struct WelcomeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    again: String,
}

pub async fn welcome(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Path(token): Path<String>,
    Posted(form): Posted<WelcomeForm>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let t = ctx.tr();
        let storage = hub.backend.console();
        let invited = || -> Result<Option<vigie_core::User>, Problem> {
            Ok(storage
                .invite(&session::hash_secret(&token), session::now_ms())?
                .map(|id| hub.backend.user(id))
                .transpose()?
                .flatten()
                .filter(can_sign_in))
        };
        if !form_from_hub(hub, ctx, &form.csrf) {
            // The page again, with a fresh token (nothing typed is kept), which says why.
            let user = invited()?;
            return Ok(again_with_form_token(hub, ctx, |csrf| {
                let page = WelcomePage {
                    t,
                    nav: None,
                    valid: user.is_some(),
                    name: user.as_ref().map(|u| u.name.clone()).unwrap_or_default(),
                    csrf,
                    login: String::new(),
                    error: Some(t.get("form.expired")),
                };
                (StatusCode::FORBIDDEN, html(&page)).into_response()
            }));
        }
        let login = form.login.trim().to_ascii_lowercase();
        let active = |user| may_sign_in(hub, user);
        let typed = session::Typed {
            login: &login,
            password: &form.password,
            again: &form.again,
        };
        match session::accept_invite(storage, &token, &typed, &active)? {
            Ok(user) => {
                audit(hub, Some(user), "password_set", None, "");
                Ok(Redirect::to("/console/signin?done=welcome").into_response())
            }
            Err(refused) => {
                let user = invited()?;
                let error = refused_message(refused);
                let page = WelcomePage {
                    t,
                    nav: None,
                    valid: user.is_some(),
                    name: user.as_ref().map(|u| u.name.clone()).unwrap_or_default(),
                    csrf: form.csrf.clone(),
                    login,
                    error: Some(t.get(error)),
                };
                Ok((StatusCode::UNPROCESSABLE_ENTITY, html(&page)).into_response())
            }
        }
    })
    .await
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    t: Tr,
    nav: Option<Nav>,
    login: String,
    error: Option<String>,
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

/// The signed-in person's own account: their password, and the other browsers signed in.
pub async fn account_page(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Query(q): Query<DoneQuery>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let viewer = viewer(hub, ctx)?;
        let t = ctx.tr();
        let notice = match q.done.as_deref() {
            Some("password") => Some(t.get("account.password_changed")),
            Some("sessions") => Some(t.get("account.sessions_ended")),
            _ => None,
        };
        Ok(html(&AccountPage {
            t,
            nav: Nav::of(&viewer, "account"),
            login: viewer.login.clone(),
            error: None,
            notice,
        }))
    })
    .await
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    again: String,
}

pub async fn change_password(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Posted(form): Posted<PasswordForm>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let viewer = posted_by_self(hub, ctx, &form.csrf)?;
        let t = ctx.tr();
        let typed = session::PasswordChange {
            current: &form.current,
            password: &form.password,
            again: &form.again,
        };
        let (status, error) =
            match session::change_password(hub.backend.console(), viewer.user.id, &typed)? {
                AccountChange::Done { id, .. } => {
                    audit(hub, Some(viewer.user.id), "password_change", None, "");
                    return Ok(continue_in(ctx, &id, "password"));
                }
                AccountChange::Wrong => {
                    audit(
                        hub,
                        Some(viewer.user.id),
                        "password_change_refused",
                        None,
                        "",
                    );
                    (
                        StatusCode::UNAUTHORIZED,
                        t.get("account.wrong_current").to_string(),
                    )
                }
                AccountChange::Throttled(seconds) => (
                    StatusCode::TOO_MANY_REQUESTS,
                    t.fmt("signin.throttled", seconds),
                ),
                AccountChange::Refused(refused) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    t.get(refused_message(refused)).to_string(),
                ),
            };
        let page = AccountPage {
            t,
            nav: Nav::of(&viewer, "account"),
            login: viewer.login.clone(),
            error: Some(error),
            notice: None,
        };
        Ok((status, html(&page)).into_response())
    })
    .await
}

pub async fn end_other_sessions(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Posted(form): Posted<CsrfForm>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let viewer = posted_by_self(hub, ctx, &form.csrf)?;
        let (id, _) = session::end_other_sessions(hub.backend.console(), viewer.user.id)?;
        audit(hub, Some(viewer.user.id), "sessions_end", None, "");
        Ok(continue_in(ctx, &id, "sessions"))
    })
    .await
}

/// Back to the account page, in the session opened for this browser after the others ended.
fn continue_in(ctx: &Ctx, session_id: &str, done: &str) -> Response {
    let mut response = Redirect::to(&format!("/console/account?done={done}")).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        ctx.cookie(SESSION_COOKIE, session_id, None),
    );
    response
}

/// The message of a password or sign-in name refused.
fn refused_message(refused: Refused) -> &'static str {
    match refused {
        Refused::LoginFormat => "welcome.login_format",
        Refused::LoginTaken => "welcome.login_taken",
        Refused::PasswordShort => "welcome.password_short",
        Refused::PasswordGuessable => "welcome.password_guessable",
        Refused::PasswordsDiffer => "welcome.passwords_differ",
        Refused::InviteUnknown => "welcome.invalid",
    }
}

/// The language switch: remembered in a cookie, then back to the page it was used on.
pub async fn set_lang(ctx: Ctx, Path(code): Path<String>, headers: HeaderMap) -> Response {
    let lang = Lang::from_code(&code).unwrap_or(Lang::Fr);
    // Back where the switch was used (the browser sends the referrer to this origin only).
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .map(referer_path);
    let mut response = Redirect::to(&safe_next(back.as_deref())).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        ctx.cookie(LANG_COOKIE, lang.code(), Some(365 * 24 * 3600)),
    );
    response
}
