//! Administration: users (create, change areas, deactivate, invite to the console), devices
//! (enrol with a QR code, revoke, re-issue), reference data in force, the audit log; and the
//! supervisors' review of quarantined changes.

use super::{Confirmation, Nav};
use crate::auth::AuthError;
use crate::console::i18n::Tr;
use crate::console::labels;
use crate::console::session;
use crate::console::{
    Access, Ctx, PageResult, Posted, Problem, Viewer, access_of, audit, html, invite_link, posted,
    run, user_names, viewer_with,
};
use crate::http::Hub;
use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use std::sync::Arc;
use uuid::Uuid;
use vigie_core::reference::ReferenceType;
use vigie_core::sync::ReviewState;
use vigie_core::{ChildCase, Error, RecordKind, Role, User, UserProblem};

pub fn routes() -> Router<Arc<Hub>> {
    Router::new()
        .route("/console/users", get(users).post(add_user))
        .route("/console/users/{id}/areas", post(user_areas))
        .route("/console/users/{id}/deactivate", post(user_deactivate))
        .route("/console/users/{id}/invite", post(user_invite))
        .route("/console/devices", get(devices).post(enrol))
        .route("/console/devices/{id}/revoke", post(revoke))
        .route("/console/devices/{id}/reissue", post(reissue))
        .route(
            "/console/reference",
            get(reference)
                .post(publish)
                .layer(axum::extract::DefaultBodyLimit::max(
                    crate::console::MAX_UPLOAD_BYTES,
                )),
        )
        .route("/console/audit", get(audit_log))
        .route("/console/quarantine", get(quarantine))
        .route("/console/quarantine/{entry}", post(review_quarantine))
}

fn time(t: Tr, ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|at| t.here(&at))
        .unwrap_or_default()
}

/// Roles an administrator may give, with their stored codes.
const ROLES: [Role; 4] = [
    Role::CommunityMonitor,
    Role::Inspector,
    Role::Supervisor,
    Role::Administrator,
];

fn role_code(role: Role) -> String {
    serde_json::to_value(role)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A user record the rules of users refuse (`User::check`, the command line's too), said as
/// the page says it.
fn user_refusal(t: Tr, problem: &UserProblem) -> String {
    match problem {
        UserProblem::Name => t.get("users.name_needed").into(),
        UserProblem::AdministratorWithAreas => t.get("users.admin_no_areas").into(),
        UserProblem::NoArea => t.get("users.areas_invalid").into(),
        UserProblem::UnknownArea(code) => t.fmt("users.area_unknown", code),
    }
}

/// Area codes as typed: separated by commas, semicolons or blanks; each of letters, digits and
/// dashes.
fn parse_areas(text: &str) -> Option<Vec<String>> {
    let areas: Vec<String> = text
        // A French list is as often written with `;` (and a paste from a spreadsheet holds
        // tabs and line breaks).
        .split([',', ';', ' ', '\t', '\r', '\n'])
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect();
    let valid = !areas.is_empty()
        && areas.iter().all(|a| {
            a.len() <= 64
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    valid.then_some(areas)
}

// ---------------------------------------------------------------------------------------------
// Users

pub struct UserLine {
    id: Uuid,
    name: String,
    role: String,
    areas: String,
    active: bool,
    login: String,
    console: bool,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    t: Tr,
    nav: Option<Nav>,
    csrf: String,
    lines: Vec<UserLine>,
    roles: Vec<(String, String)>,
    name: String,
    role: String,
    areas: String,
    error: Option<String>,
    error_user: Option<Uuid>,
    link: Option<(String, String)>,
    /// The new user's id, chosen with the form: the same form sent twice (a double click, a
    /// reload) makes one user, not two to tell apart.
    entry: Uuid,
}

#[derive(Default)]
struct UsersState {
    name: String,
    role: String,
    areas: String,
    error: Option<String>,
    error_user: Option<Uuid>,
    link: Option<(String, String)>,
    /// The form's entry, kept when it comes back with an error.
    entry: Option<Uuid>,
}

fn users_page(hub: &Hub, ctx: &Ctx, viewer: &Viewer, state: UsersState) -> PageResult {
    let t = ctx.tr();
    let storage = hub.backend.console();
    let mut lines = Vec::new();
    for u in hub.backend.users()? {
        let account = storage.account_of(u.id)?;
        lines.push(UserLine {
            id: u.id,
            role: t.code("role", &role_code(u.role)),
            areas: u.areas.iter().cloned().collect::<Vec<_>>().join(", "),
            active: u.active,
            login: account.map(|a| a.login).unwrap_or_default(),
            console: access_of(u.role).is_some() && u.active,
            name: u.name,
        });
    }
    let status = if state.error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = UsersPage {
        t,
        nav: Nav::of(viewer, "users"),
        csrf: viewer.csrf.clone(),
        lines,
        roles: ROLES
            .iter()
            .map(|r| (role_code(*r), t.code("role", &role_code(*r))))
            .collect(),
        name: state.name,
        role: state.role,
        areas: state.areas,
        error: state.error,
        error_user: state.error_user,
        link: state.link,
        entry: state.entry.unwrap_or_else(Uuid::now_v7),
    };
    Ok((status, html(&page)).into_response())
}

pub async fn users(State(hub): State<Arc<Hub>>, ctx: Ctx) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let viewer = viewer_with(hub, ctx, Access::Administrator)?;
        users_page(hub, ctx, &viewer, UsersState::default())
    })
    .await
}

#[derive(Deserialize)]
pub struct UserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    areas: String,
    /// `UsersPage::entry` (none from a page rendered before it was a field).
    #[serde(default)]
    entry: String,
}

pub async fn add_user(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Posted(form): Posted<UserForm>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let viewer = posted(hub, ctx, Access::Administrator, &form.csrf)?;
        let t = ctx.tr();
        let entry = Uuid::parse_str(&form.entry)
            .ok()
            .filter(|id| id.get_version_num() == 7);
        let again = |error: &str| UsersState {
            name: form.name.clone(),
            role: form.role.clone(),
            areas: form.areas.clone(),
            error: Some(error.to_string()),
            entry,
            ..Default::default()
        };
        let name = form.name.trim();
        let Some(role) = ROLES.iter().copied().find(|r| role_code(*r) == form.role) else {
            return users_page(hub, ctx, &viewer, again(t.get("users.role_needed")));
        };
        let areas = if form.areas.trim().is_empty() {
            Vec::new()
        } else {
            let Some(areas) = parse_areas(&form.areas) else {
                return users_page(hub, ctx, &viewer, again(t.get("users.areas_invalid")));
            };
            areas
        };
        let areas: Vec<&str> = areas.iter().map(String::as_str).collect();
        let mut new = User::new(name, role, &areas);
        // The form made a user already: sent again as it was (a double click, a reload), that
        // is done; changed since (a name, a role or areas corrected after going back), it is
        // said, with a new form (the user made is corrected with `vigie user rename`, or the
        // areas and role forms).
        let made_already = UsersState {
            entry: None,
            ..again(t.get("users.entry_used"))
        };
        let made_by_this_form = |hub: &Hub, entry: Uuid| -> Result<Option<bool>, Error> {
            Ok(hub
                .backend
                .user(entry)?
                .map(|made| made.name == name && made.role == role && made.areas == new.areas))
        };
        if let Some(entry) = entry {
            match made_by_this_form(hub, entry)? {
                Some(true) => return Ok(Redirect::to("/console/users").into_response()),
                Some(false) => return users_page(hub, ctx, &viewer, made_already),
                None => new.id = entry,
            }
        }
        if let Err(problem) = new.check_new(&*hub.backend.reference()?) {
            return users_page(hub, ctx, &viewer, again(&user_refusal(t, &problem)));
        }
        match hub.backend.add_user(&new) {
            Ok(user) => {
                audit(
                    hub,
                    Some(viewer.user.id),
                    "user_add",
                    Some(user.id),
                    &role_code(role),
                );
                Ok(Redirect::to("/console/users").into_response())
            }
            Err(e @ Error::Validation(_)) => {
                users_page(hub, ctx, &viewer, again(&ctx.tr().refusal(&e)))
            }
            // The same form sent at once twice (a proxy's retry, a double click on a slow
            // link, two hub machines): the other copy made the user; done, or said as above.
            Err(Error::AlreadyExists { .. }) if entry.is_some_and(|e| e == new.id) => {
                match made_by_this_form(hub, new.id)? {
                    Some(true) => Ok(Redirect::to("/console/users").into_response()),
                    Some(false) => users_page(hub, ctx, &viewer, made_already),
                    None => users_page(
                        hub,
                        ctx,
                        &viewer,
                        UsersState {
                            entry: None,
                            ..again(t.get("users.entry_unusable"))
                        },
                    ),
                }
            }
            // An entry naming a record of another kind (a form altered by hand).
            Err(Error::AlreadyExists { .. }) => users_page(
                hub,
                ctx,
                &viewer,
                UsersState {
                    entry: None,
                    ..again(t.get("users.entry_unusable"))
                },
            ),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

#[derive(Deserialize)]
pub struct AreasForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    areas: String,
}

pub async fn user_areas(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    Posted(form): Posted<AreasForm>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let viewer = posted(hub, ctx, Access::Administrator, &form.csrf)?;
        let t = ctx.tr();
        let refused = |error: String| UsersState {
            error: Some(error),
            error_user: Some(id),
            ..Default::default()
        };
        let Some(areas) = parse_areas(&form.areas) else {
            return users_page(
                hub,
                ctx,
                &viewer,
                refused(t.get("users.areas_invalid").into()),
            );
        };
        let mut record = hub.backend.user(id)?.ok_or(Problem::NotFound)?;
        record.areas = areas.iter().cloned().collect();
        if let Err(problem) = record.check(&*hub.backend.reference()?) {
            return users_page(hub, ctx, &viewer, refused(user_refusal(t, &problem)));
        }
        match hub.backend.set_user_areas(id, &areas) {
            Ok(_) => {
                // Not the areas given: the journal's lines are kept in clear on PostgreSQL,
                // and a community's code can point at a child (the records seal their areas).
                audit(hub, Some(viewer.user.id), "user_areas", Some(id), "");
                Ok(Redirect::to("/console/users").into_response())
            }
            Err(e @ Error::Validation(_)) => users_page(
                hub,
                ctx,
                &viewer,
                UsersState {
                    error: Some(ctx.tr().refusal(&e)),
                    error_user: Some(id),
                    ..Default::default()
                },
            ),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// An action that cannot be taken back (a device revoked, a user deactivated): taken once the
/// administrator confirms it on a page of its own (`confirm=yes`); one tap beside another
/// button revoked a phone, which wipes what it had not synced.
#[derive(Deserialize)]
pub struct ConfirmedForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    confirm: String,
}

impl ConfirmedForm {
    fn confirmed(&self) -> bool {
        self.confirm == "yes"
    }
}

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage {
    t: Tr,
    nav: Option<Nav>,
    csrf: String,
    c: Confirmation,
}

/// The page asking the administrator to confirm `action` (posted again with `confirm=yes`).
fn confirm_page(
    viewer: &Viewer,
    ctx: &Ctx,
    nav: &'static str,
    texts: [String; 4],
    action: String,
) -> PageResult {
    let [title, question, consequence, confirm] = texts;
    let page = ConfirmPage {
        t: ctx.tr(),
        nav: Nav::of(viewer, nav),
        csrf: viewer.csrf.clone(),
        c: Confirmation {
            title,
            question,
            consequence,
            confirm,
            action,
            back: format!("/console/{nav}"),
        },
    };
    Ok(html(&page).into_response())
}

pub async fn user_deactivate(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    Posted(form): Posted<ConfirmedForm>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let viewer = posted(hub, ctx, Access::Administrator, &form.csrf)?;
        if !form.confirmed() && id != viewer.user.id {
            let t = ctx.tr();
            let user = hub.backend.user(id)?.ok_or(Problem::NotFound)?;
            return confirm_page(
                &viewer,
                ctx,
                "users",
                [
                    t.get("users.deactivate").into(),
                    t.fmt("users.confirm_deactivate", &user.name),
                    t.get("users.deactivate_consequence").into(),
                    t.get("users.deactivate").into(),
                ],
                format!("/console/users/{id}/deactivate"),
            );
        }
        if id == viewer.user.id {
            let state = UsersState {
                error: Some(ctx.tr().get("users.not_yourself").into()),
                error_user: Some(id),
                ..Default::default()
            };
            return users_page(hub, ctx, &viewer, state);
        }
        let was_active = hub.backend.deactivate_user(id)?;
        hub.backend.console().end_console_access_of(id)?;
        // Journaled once, by whoever deactivated them: the form sent again (a double tap, a
        // retry, Back) finds them inactive, as the command line says.
        if was_active {
            audit(hub, Some(viewer.user.id), "user_deactivate", Some(id), "");
        }
        Ok(Redirect::to("/console/users").into_response())
    })
    .await
}

pub async fn user_invite(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    Posted(form): Posted<CsrfForm>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let viewer = posted(hub, ctx, Access::Administrator, &form.csrf)?;
        let user = hub.backend.user(id)?.ok_or(Problem::NotFound)?;
        if !user.active || access_of(user.role).is_none() {
            let state = UsersState {
                error: Some(ctx.tr().get("users.no_console").into()),
                error_user: Some(id),
                ..Default::default()
            };
            return users_page(hub, ctx, &viewer, state);
        }
        let token = session::invite(hub.backend.console(), id)?;
        let base = hub
            .console
            .settings
            .public_url
            .clone()
            .or_else(|| ctx.own_origin.clone())
            .unwrap_or_default();
        audit(hub, Some(viewer.user.id), "user_invite", Some(id), "");
        let link = invite_link(&base, &token);
        users_page(
            hub,
            ctx,
            &viewer,
            UsersState {
                link: Some((user.name, link)),
                ..Default::default()
            },
        )
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Devices

pub struct DeviceLine {
    id: Uuid,
    user: String,
    enrolled: String,
    last_seen: String,
    revoked: String,
}

#[derive(Template)]
#[template(path = "devices.html")]
struct DevicesPage {
    t: Tr,
    nav: Option<Nav>,
    csrf: String,
    lines: Vec<DeviceLine>,
    users: Vec<(Uuid, String)>,
    /// The id the enrolment form gives the device it enrols (`EnrolForm::device`).
    new_device: Uuid,
    error: Option<String>,
    /// A token just issued: whose, its text and its QR code.
    token: Option<(String, String, String)>,
}

fn devices_page(
    hub: &Hub,
    ctx: &Ctx,
    viewer: &Viewer,
    error: Option<String>,
    token: Option<(String, String, String)>,
) -> PageResult {
    let users = hub.backend.users()?;
    let reference = hub.backend.reference()?;
    let labels: std::collections::HashMap<Uuid, String> = users
        .iter()
        .map(|u| (u.id, user_label(ctx.tr(), &reference, u)))
        .collect();
    let lines = hub
        .backend
        .devices()?
        .into_iter()
        .rev()
        .map(|d| DeviceLine {
            id: d.device,
            user: labels.get(&d.user).cloned().unwrap_or_default(),
            enrolled: time(ctx.tr(), Some(d.enrolled_ms)),
            last_seen: time(ctx.tr(), d.last_seen_ms),
            revoked: time(ctx.tr(), d.revoked_ms),
        })
        .collect();
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = DevicesPage {
        t: ctx.tr(),
        nav: Nav::of(viewer, "devices"),
        csrf: viewer.csrf.clone(),
        lines,
        new_device: Uuid::new_v4(),
        users: users
            .iter()
            .filter(|u| takes_a_device(u))
            .map(|u| (u.id, labels.get(&u.id).cloned().unwrap_or_default()))
            .collect(),
        error,
        token,
    };
    Ok((status, html(&page)).into_response())
}

/// A user as the devices page names them: by name, role and areas, so that two staff of one
/// name are told apart where a device is enrolled for one of them.
fn user_label(t: Tr, reference: &vigie_core::ReferenceData, user: &vigie_core::User) -> String {
    let mut label = format!("{} — {}", user.name, t.code("role", &role_code(user.role)));
    for area in &user.areas {
        label.push_str(", ");
        label.push_str(&t.area(reference, area));
    }
    label
}

/// Whom a device may be enrolled for: an active user who works on records.
fn takes_a_device(user: &vigie_core::User) -> bool {
    user.active && vigie_core::rights::works_on_a_device(user.role)
}

/// A token as a QR code the app scans (SVG, drawn on the hub).
pub fn qr_svg(text: &str) -> String {
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color>()
                .min_dimensions(256, 256)
                .quiet_zone(true)
                .build();
            match svg.find("<svg") {
                Some(i) => svg[i..].to_string(),
                None => svg,
            }
        }
        Err(_) => String::new(),
    }
}

pub async fn devices(State(hub): State<Arc<Hub>>, ctx: Ctx) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let viewer = viewer_with(hub, ctx, Access::Administrator)?;
        devices_page(hub, ctx, &viewer, None, None)
    })
    .await
}

#[derive(Deserialize)]
pub struct EnrolForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user: String,
    /// The id the page chose for the device: the same form sent again (a reload of the page
    /// showing the token, Back then send) finds it enrolled rather than enrolling another.
    #[serde(default)]
    device: String,
}

pub async fn enrol(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Posted(form): Posted<EnrolForm>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let viewer = posted(hub, ctx, Access::Administrator, &form.csrf)?;
        let t = ctx.tr();
        let user = match form.user.parse::<Uuid>() {
            Ok(id) => hub.backend.user(id)?.filter(takes_a_device),
            Err(_) => None,
        };
        let Some(user) = user else {
            return devices_page(
                hub,
                ctx,
                &viewer,
                Some(t.get("devices.choose_user").into()),
                None,
            );
        };
        // A random id, as the page made it: any other (the console's own, nil, one chosen to
        // look like another's) is replaced by a new one.
        let device = form
            .device
            .parse::<Uuid>()
            .ok()
            .filter(|id| id.get_version_num() == 4)
            .unwrap_or_else(Uuid::new_v4);
        let Some(token) = hub.backend.enrol_device(user.id, device)? else {
            return devices_page(
                hub,
                ctx,
                &viewer,
                Some(t.get("devices.sent_already").into()),
                None,
            );
        };
        audit(
            hub,
            Some(viewer.user.id),
            "device_enrol",
            Some(token.device),
            "",
        );
        let text = token.to_text();
        let qr = qr_svg(&text);
        let whose = user_label(t, &*hub.backend.reference()?, &user);
        devices_page(hub, ctx, &viewer, None, Some((whose, text, qr)))
    })
    .await
}

pub async fn revoke(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    Posted(form): Posted<ConfirmedForm>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let viewer = posted(hub, ctx, Access::Administrator, &form.csrf)?;
        if !form.confirmed() {
            let t = ctx.tr();
            let device = hub
                .backend
                .devices()?
                .into_iter()
                .find(|d| d.device == id)
                .ok_or(Problem::NotFound)?;
            let owner = hub
                .backend
                .user(device.user)?
                .map(|u| u.name)
                .unwrap_or_default();
            return confirm_page(
                &viewer,
                ctx,
                "devices",
                [
                    t.get("devices.revoke").into(),
                    t.fmt("devices.confirm_revoke", id)
                        .replacen("{}", &owner, 1),
                    t.get("devices.revoke_consequence").into(),
                    t.get("devices.revoke").into(),
                ],
                format!("/console/devices/{id}/revoke"),
            );
        }
        let revoked = crate::console::one_irreversible_at_a_time(|| {
            let revoked = match hub.backend.revoke(id) {
                // A copy of the hub served to be looked into takes no revocation: said as such.
                Err(AuthError::OnACopy) => {
                    return Ok::<_, Problem>(Err(crate::irreversible::ON_A_COPY.to_string()));
                }
                other => other?,
            };
            if revoked {
                audit(hub, Some(viewer.user.id), "device_revoke", Some(id), "");
                return Ok(Ok(true));
            }
            if hub.backend.is_revoked(id)? {
                // A hub stopped between a revocation and its entry: journaled now.
                crate::console::journal_found_done(
                    &*hub.backend,
                    Some(viewer.user.id),
                    ("device_revoke", ""),
                    crate::console::Held::AnyOf(&[]),
                    id,
                    false,
                );
            }
            Ok(Ok(false))
        })?;
        let revoked = match revoked {
            Ok(revoked) => revoked,
            Err(rule) => {
                let refused = ctx.tr().refusal(&Error::NotAllowed { rule });
                return devices_page(hub, ctx, &viewer, Some(refused), None);
            }
        };
        if !revoked {
            return devices_page(
                hub,
                ctx,
                &viewer,
                Some(ctx.tr().get("devices.not_revocable").into()),
                None,
            );
        }
        Ok(Redirect::to("/console/devices").into_response())
    })
    .await
}

pub async fn reissue(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    Posted(form): Posted<CsrfForm>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let viewer = posted(hub, ctx, Access::Administrator, &form.csrf)?;
        let token = match hub.backend.reissue(id) {
            Ok(token) => token,
            Err(AuthError::Unknown | AuthError::Revoked) => {
                return devices_page(
                    hub,
                    ctx,
                    &viewer,
                    Some(ctx.tr().get("devices.not_reissuable").into()),
                    None,
                );
            }
            Err(e) => return Err(e.into()),
        };
        audit(hub, Some(viewer.user.id), "device_reissue", Some(id), "");
        let reference = hub.backend.reference()?;
        let whose = hub
            .backend
            .user(token.user)?
            .map(|u| user_label(ctx.tr(), &reference, &u))
            .unwrap_or_default();
        let text = token.to_text();
        let qr = qr_svg(&text);
        devices_page(hub, ctx, &viewer, None, Some((whose, text, qr)))
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Reference data

pub struct ReferenceLine {
    kind: String,
    key: String,
    versions: String,
}

#[derive(Template)]
#[template(path = "reference.html")]
struct ReferencePage {
    t: Tr,
    nav: Option<Nav>,
    csrf: String,
    lines: Vec<ReferenceLine>,
    error: Option<String>,
    done: Option<String>,
    /// What a publish left behind (a key that applies to no record, users and records an area
    /// tree left without their area): said beside the notice that it is published.
    warnings: Vec<String>,
}

const TYPES: [ReferenceType; 5] = [
    ReferenceType::CountryProfile,
    ReferenceType::Checklist,
    ReferenceType::Sectors,
    ReferenceType::ReferralServices,
    ReferenceType::AdministrativeAreas,
];

fn reference_page(
    hub: &Hub,
    ctx: &Ctx,
    viewer: &Viewer,
    error: Option<String>,
    done: Option<String>,
    warnings: Vec<String>,
) -> PageResult {
    let t = ctx.tr();
    let data = hub.backend.reference()?;
    let mut lines = Vec::new();
    for ty in TYPES {
        for key in data.keys(ty) {
            lines.push(ReferenceLine {
                kind: t.code("reftype", ty.as_str()),
                key: key.to_string(),
                versions: data
                    .versions(ty, key)
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = ReferencePage {
        t,
        nav: Nav::of(viewer, "reference"),
        csrf: viewer.csrf.clone(),
        lines,
        error,
        done,
        warnings,
    };
    Ok((status, html(&page)).into_response())
}

pub async fn reference(State(hub): State<Arc<Hub>>, ctx: Ctx) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let viewer = viewer_with(hub, ctx, Access::Administrator)?;
        reference_page(hub, ctx, &viewer, None, None, Vec::new())
    })
    .await
}

/// Publishes an uploaded reference data file (as `vigie reference publish` does).
pub async fn publish(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    mut multipart: axum::extract::Multipart,
) -> Response {
    let (mut csrf, mut file) = (String::new(), None::<Vec<u8>>);
    let mut unreadable = false;
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_string();
                match field.bytes().await {
                    Ok(bytes) if name == "csrf" => {
                        csrf = String::from_utf8_lossy(&bytes).into_owned()
                    }
                    Ok(bytes) if name == "file" => file = Some(bytes.to_vec()),
                    Ok(_) => {}
                    Err(_) => unreadable = true,
                }
            }
            Ok(None) => break,
            Err(_) => {
                unreadable = true;
                break;
            }
        }
    }
    run(hub, ctx, move |hub, ctx| {
        let viewer = posted(hub, ctx, Access::Administrator, &csrf)?;
        let t = ctx.tr();
        let text = match file.as_deref().map(std::str::from_utf8) {
            Some(Ok(text)) if !unreadable && !text.trim().is_empty() => text.to_string(),
            Some(Err(_)) if !unreadable => {
                let error = Some(t.get("reference.not_utf8").to_string());
                return reference_page(hub, ctx, &viewer, error, None, Vec::new());
            }
            _ => {
                let error = Some(t.get("reference.file_needed").to_string());
                return reference_page(hub, ctx, &viewer, error, None, Vec::new());
            }
        };
        let parsed = match vigie_core::ReferenceFile::parse(&text) {
            Ok(parsed) => parsed,
            Err(e) => {
                return reference_page(
                    hub,
                    ctx,
                    &viewer,
                    Some(file_refusal(t, &Error::Validation(e))),
                    None,
                    Vec::new(),
                );
            }
        };
        match hub
            .backend
            .publish_references(std::slice::from_ref(&parsed))
            .map(|versions| versions[0])
        {
            Ok(version) => {
                let what = format!(
                    "{} {}@{version}",
                    parsed.content.reference_type(),
                    parsed.key
                );
                audit(hub, Some(viewer.user.id), "reference_publish", None, &what);
                let done = Some(t.fmt("reference.published", reference_version(t, &what)));
                // Published, and said at once when it applies to no record (a profile keyed
                // `ghana` where Ghana's tree is `GH`), as `vigie reference publish` warns.
                let ty = parsed.content.reference_type();
                let reference = hub.backend.reference()?;
                let mut warnings: Vec<String> = (!reference.key_applies(ty, &parsed.key))
                    .then(|| {
                        t.get("reference.applies_to_none")
                            .replacen("{}", &reference.countries().join(", "), 1)
                            .replacen("{}", reference.default_key(ty), 1)
                    })
                    .into_iter()
                    .collect();
                // What a new area tree left behind, as `vigie reference publish` says it.
                if ty == ReferenceType::AdministrativeAreas {
                    warnings.extend(areas_left(hub, t)?);
                }
                reference_page(hub, ctx, &viewer, None, done, warnings)
            }
            Err(e @ Error::Validation(_)) => reference_page(
                hub,
                ctx,
                &viewer,
                Some(file_refusal(t, &e)),
                None,
                Vec::new(),
            ),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// What the area trees in force leave behind (`area_warnings`), as the console says it: users
/// by name, records by kind and place.
fn areas_left(hub: &Hub, t: Tr) -> Result<Vec<String>, Error> {
    use crate::area_warnings::{AreaWarning, after_area_publish};
    let warnings = after_area_publish(&*hub.backend)?;
    if warnings.is_empty() {
        return Ok(Vec::new());
    }
    let names = crate::console::user_names(&hub.backend.users()?);
    let lang = t.0.code();
    Ok(warnings
        .into_iter()
        .map(|warning| match warning {
            AreaWarning::UserAreaGone { user, code } => t
                .get("reference.user_area_gone")
                .replacen(
                    "{}",
                    &names
                        .get(&user)
                        .cloned()
                        .unwrap_or_else(|| user.to_string()),
                    1,
                )
                .replacen("{}", &code, 1),
            AreaWarning::RecordsLeft {
                district,
                community,
                now,
                counts,
            } => {
                let counts: Vec<String> = counts
                    .iter()
                    .map(|(kind, n)| {
                        let label = vigie_core::messages::field_label(kind.as_str(), lang)
                            .unwrap_or_else(|| kind.as_str().to_string());
                        t.get("reference.count_of")
                            .replacen("{}", &label, 1)
                            .replacen("{}", &t.count(*n), 1)
                    })
                    .collect();
                let said = match &now {
                    Some(now) => t
                        .get("reference.records_moved")
                        .replacen("{}", &district, 1)
                        .replacen("{}", &community, 1)
                        .replacen("{}", now, 1)
                        .replacen("{}", now, 1),
                    None => t
                        .get("reference.records_unfiled")
                        .replacen("{}", &district, 1)
                        .replacen("{}", &community, 1),
                };
                format!("{said} ({})", counts.join(", "))
            }
        })
        .collect())
}

/// A reference file's refusal with its field as the file spells it
/// (`country_profile.minimum_ages`, as `vigie reference publish` says it), where a record's
/// field is named by its label: the officer searches the file for it.
fn file_refusal(t: Tr, e: &Error) -> String {
    match e {
        Error::Validation(v) => vigie_core::messages::text(
            t.0.code(),
            "refused.field",
            &[
                &v.field,
                &vigie_core::messages::rule_text(&v.rule, t.0.code()),
            ],
        ),
        _ => t.refusal(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Audit log

pub struct AuditLine {
    when: String,
    who: String,
    action: String,
    record: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    t: Tr,
    nav: Option<Nav>,
    lines: Vec<AuditLine>,
    next: Option<i64>,
}

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    before: Option<i64>,
}

pub async fn audit_log(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Query(q): Query<AuditQuery>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let viewer = viewer_with(hub, ctx, Access::Administrator)?;
        let t = ctx.tr();
        let names = user_names(&hub.backend.users()?);
        let entries = hub.backend.console().audit_log(q.before, 100)?;
        let next = (entries.len() == 100)
            .then(|| entries.last().map(|(seq, _)| *seq))
            .flatten();
        let lines = entries
            .into_iter()
            .map(|(_, e)| AuditLine {
                when: time(t, Some(e.at_ms)),
                who: e
                    .user
                    .map(|u| names.get(&u).cloned().unwrap_or_else(|| u.to_string()))
                    .unwrap_or_default(),
                action: t.code("action", &e.action),
                record: e.record.map(|r| r.to_string()).unwrap_or_default(),
                detail: audit_detail(t, &e.action, &e.detail),
            })
            .collect();
        Ok(html(&AuditPage {
            t,
            nav: Nav::of(&viewer, "audit"),
            lines,
            next,
        }))
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Quarantine (supervisors)

pub struct QuarantineLine {
    entry: i64,
    /// A case's code, else the record's id.
    record: String,
    /// The case's page, for a case of the supervisor's areas.
    href: Option<String>,
    kind: String,
    sender: String,
    received: String,
    fields: String,
    before: String,
    after: String,
    /// What accepting it leaves to settle: filed under a community no tree holds now, a visit
    /// only its visitor can finish.
    warnings: Vec<&'static str>,
    state: String,
    applies: bool,
}

#[derive(Template)]
#[template(path = "quarantine.html")]
struct QuarantinePage {
    t: Tr,
    nav: Option<Nav>,
    csrf: String,
    lines: Vec<QuarantineLine>,
    error: Option<String>,
    done: Option<&'static str>,
}

fn quarantine_page(
    hub: &Hub,
    ctx: &Ctx,
    viewer: &Viewer,
    error: Option<String>,
    done: Option<&str>,
) -> PageResult {
    let t = ctx.tr();
    let reference = hub.backend.reference()?;
    let scope = viewer.principal().scope(&reference);
    let users = hub.backend.users()?;
    let names = user_names(&users);
    let inactive: std::collections::HashSet<Uuid> =
        users.iter().filter(|u| !u.active).map(|u| u.id).collect();
    // A lost or stolen phone's work, which a colleague's phone carried (its device revoked).
    let revoked = crate::backend::revoked_devices(hub.backend.as_ref())?;
    let who = viewer.principal();
    let view = hub.console.views.current(hub.backend.as_ref())?;
    let scoped = view.scoped(&who);
    let lines = hub
        .backend
        .quarantined()?
        .into_iter()
        // Entries about records of the supervisor's areas, before or after the changes.
        .filter(|q| {
            q.reviewed_at()
                .iter()
                .any(|a| a.is_some_and(|a| scope.covers(a)))
        })
        .map(|q| {
            // A case of the supervisor's areas by its code (and its page); any other record by
            // its id alone: nothing of a record outside them is shown.
            let case = match q.kind {
                Some(RecordKind::ChildCase) => scoped.get::<ChildCase>(q.record).ok(),
                _ => None,
            };
            QuarantineLine {
                entry: q.entry,
                // A case not on the hub yet (a lost phone's, carried by a colleague) by the
                // code its monitor gave it.
                record: case
                    .as_ref()
                    .map(|c| c.case_code.clone())
                    .or_else(|| q.case_code.clone())
                    .unwrap_or_else(|| q.record.to_string()),
                href: case.as_ref().map(|c| format!("/console/cases/{}", c.id)),
                kind: q
                    .kind
                    .map(|k| t.code("record_kind", k.as_str()))
                    .unwrap_or_default(),
                sender: names
                    .get(&q.user)
                    .cloned()
                    .unwrap_or_else(|| q.user.to_string()),
                received: time(t, Some(q.received_ms)),
                fields: labels::fields(
                    t,
                    q.kind,
                    q.fields.iter().map(String::as_str),
                    case.as_ref(),
                ),
                before: q
                    .area_before
                    .as_ref()
                    .map(|a| t.area_path(&reference, a))
                    .unwrap_or_default(),
                // Where accepting files it: the community's place now, if it moved.
                after: q
                    .filed_at
                    .as_ref()
                    .or(q.area_after.as_ref())
                    .map(|a| t.area_path(&reference, a))
                    .unwrap_or_default(),
                warnings: [
                    (revoked.contains(&q.device), "quarantine.revoked_device"),
                    (
                        q.community_gone && q.refiled_to.is_none(),
                        "quarantine.community_gone",
                    ),
                    (
                        q.kind == Some(RecordKind::Visit) && q.status_after == Some("draft"),
                        "quarantine.draft_visit",
                    ),
                    // The case follows whoever it is assigned to: its deactivated author's,
                    // until handed over again (a hand-over made before could not take it).
                    (
                        q.kind == Some(RecordKind::ChildCase)
                            && case.as_ref().map_or(inactive.contains(&q.user), |c| {
                                inactive.contains(&c.identified_by)
                            }),
                        "quarantine.assignee_inactive",
                    ),
                ]
                .into_iter()
                .filter(|(said, _)| *said)
                .map(|(_, key)| t.get(key))
                .collect(),
                state: t.code("qstate", q.state.code()),
                // Accepting an entry already in the record settles it.
                applies: matches!(q.state, ReviewState::Applies | ReviewState::AlreadyIn),
            }
        })
        .collect();
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = QuarantinePage {
        t,
        nav: Nav::of(viewer, "quarantine"),
        csrf: viewer.csrf.clone(),
        lines,
        error,
        done: match done {
            Some("accepted") => Some(t.get("quarantine.accepted")),
            Some("rejected") => Some(t.get("quarantine.rejected")),
            _ => None,
        },
    };
    Ok((status, html(&page)).into_response())
}

#[derive(Deserialize, Default)]
pub struct DoneQuery {
    done: Option<String>,
}

pub async fn quarantine(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Query(q): Query<DoneQuery>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let viewer = viewer_with(hub, ctx, Access::Supervisor)?;
        quarantine_page(hub, ctx, &viewer, None, q.done.as_deref())
    })
    .await
}

#[derive(Deserialize)]
pub struct QuarantineForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action: String,
}

pub async fn review_quarantine(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Path(entry): Path<i64>,
    Posted(form): Posted<QuarantineForm>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let viewer = posted(hub, ctx, Access::Supervisor, &form.csrf)?;
        let t = ctx.tr();
        let accept = match form.action.as_str() {
            "accept" => true,
            "reject" => false,
            _ => {
                return quarantine_page(
                    hub,
                    ctx,
                    &viewer,
                    Some(t.get("quarantine.choose").into()),
                    None,
                );
            }
        };
        // Only entries of the supervisor's areas (the page lists no other). One no longer
        // there was reviewed meanwhile (another tab, another supervisor, the command line): the
        // page says so, as for a conflict settled already.
        let reference = hub.backend.reference()?;
        let scope = viewer.principal().scope(&reference);
        let gone = || {
            quarantine_page(
                hub,
                ctx,
                &viewer,
                Some(t.get("quarantine.gone").into()),
                None,
            )
        };
        let Some(found) = hub
            .backend
            .quarantined()?
            .into_iter()
            .find(|q| q.entry == entry)
        else {
            return gone();
        };
        let visible = found
            .reviewed_at()
            .iter()
            .any(|a| a.is_some_and(|a| scope.covers(a)));
        // Another zone's entry gets the answer of an entry that is not there: whether a
        // number is in use elsewhere is not the supervisor's to learn.
        if !visible {
            return gone();
        }
        match hub
            .backend
            .review_quarantined(entry, accept, Some(viewer.user.id))
        {
            Ok(true) => {
                let action = if accept { "accepted" } else { "rejected" };
                audit(
                    hub,
                    Some(viewer.user.id),
                    &format!("quarantine_{action}"),
                    Some(found.record),
                    &entry.to_string(),
                );
                Ok(Redirect::to(&format!("/console/quarantine?done={action}")).into_response())
            }
            Ok(false) => gone(),
            Err(e @ (Error::NotAllowed { .. } | Error::Validation(_))) => {
                quarantine_page(hub, ctx, &viewer, Some(ctx.tr().refusal(&e)), None)
            }
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// An audit entry's detail as the console's forms say it: the journal keeps codes (an erasure's
/// reason, a role, a table, a field's path), and `(command line)` after what `vigie` did.
fn audit_detail(t: Tr, action: &str, detail: &str) -> String {
    use crate::console::COMMAND_LINE;
    if detail == crate::irreversible::REAPPLIED {
        return t
            .get(match action {
                "device_revoke" => "audit.revoked_again_after_restore",
                _ => "audit.reapplied_after_restore",
            })
            .to_string();
    }
    if detail == COMMAND_LINE {
        return t.get("audit.command_line").to_string();
    }
    if detail == crate::console::FOUND_DONE {
        return t.get("audit.found_done").to_string();
    }
    if let Some(done) = detail.strip_suffix(&format!(" ({})", crate::console::FOUND_DONE)) {
        return format!(
            "{} ({})",
            audit_detail(t, action, done),
            t.get("audit.found_done")
        );
    }
    if let Some(done) = detail.strip_suffix(&format!(" ({COMMAND_LINE})")) {
        return format!(
            "{} ({})",
            audit_detail(t, action, done),
            t.get("audit.command_line")
        );
    }
    match action {
        "user_add" | "user_role" => t.code("role", detail),
        "case_erase" | "erase_unheld" => t.code("erase.reason", detail),
        "case_status" => t.code("status", detail),
        "case_referral" => t.code("service", detail),
        "case_follow_up" => t.code("situation", detail),
        "case_resolve" => labels::field(t, Some(RecordKind::ChildCase), detail, None),
        "visit_resolve" => labels::field(t, Some(RecordKind::Visit), detail, None),
        "workplace_resolve" => labels::field(t, Some(RecordKind::Workplace), detail, None),
        "quarantine_accepted" | "quarantine_rejected" => t.fmt("audit.quarantine_entry", detail),
        "hub_restored" if detail.is_empty() => t.get("audit.restored_copy").to_string(),
        "hub_restored" => {
            let taken = detail
                .parse::<i64>()
                .ok()
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|at| t.here(&at))
                .unwrap_or_default();
            t.fmt("audit.restored_from", taken)
        }
        "reference_publish" => reference_version(t, detail),
        "export" => {
            let (what, personal) = match detail.strip_suffix(" personal") {
                Some(what) => (what, true),
                None => (detail, false),
            };
            let (what, format) = what.rsplit_once(' ').unwrap_or((what, ""));
            let what = match what {
                "all" => t.get("audit.export_all").to_string(),
                "scope of --by" => t.get("audit.export_by_scope").to_string(),
                table => t.code("table", table),
            };
            let format = match format {
                "excel" => "CSV (Excel)".to_string(),
                other => other.to_uppercase(),
            };
            let mut said = format!("{what}, {format}");
            if personal {
                said = format!("{said}, {}", t.get("audit.export_personal"));
            }
            said
        }
        _ => detail.to_string(),
    }
}

/// A reference version as the journal keeps it (`administrative_areas CI@2`), as people say
/// it ("Découpage administratif CI, version 2").
fn reference_version(t: Tr, what: &str) -> String {
    let Some((kind, rest)) = what.split_once(' ') else {
        return what.to_string();
    };
    let Some((key, version)) = rest.rsplit_once('@') else {
        return what.to_string();
    };
    t.fmt("reference.published_what", t.code("reftype", kind))
        .replacen("{}", key, 1)
        .replacen("{}", version, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Codes typed as an officer writes a list (`CI-R1-D1 ; CI-R1-D2` was refused as giving no
    /// code at all), or pasted from a spreadsheet's column.
    #[test]
    fn area_codes_are_read_whatever_separates_them() {
        let both = Some(vec!["CI-R1-D1".to_string(), "CI-R1-D2".to_string()]);
        for typed in [
            "CI-R1-D1, CI-R1-D2",
            "CI-R1-D1 ; CI-R1-D2",
            "CI-R1-D1;CI-R1-D2",
            "CI-R1-D1\r\nCI-R1-D2\t",
        ] {
            assert_eq!(parse_areas(typed), both, "{typed:?}");
        }
        assert_eq!(parse_areas(" ; , "), None);
        assert_eq!(parse_areas("CI-R1/D1"), None);
    }
}
