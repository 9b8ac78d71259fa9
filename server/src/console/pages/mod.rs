//! The console's pages: signing in (`auth`), the records of a supervisor's areas (`records`),
//! and administration (`admin`).

pub mod admin;
pub mod auth;
pub mod records;

use super::i18n::Tr;
use super::{Access, Viewer};
use askama::Template;

/// What a confirmation page says and where its form goes (`confirm.html`, which the pages
/// of an irreversible step extend).
pub struct Confirmation {
    pub title: String,
    pub question: String,
    pub consequence: String,
    /// The confirming button's words.
    pub confirm: String,
    pub action: String,
    /// Where "cancel" leads.
    pub back: String,
}

/// The header's navigation for a signed-in user.
pub struct Nav {
    pub login: String,
    pub csrf: String,
    pub supervisor: bool,
    pub section: &'static str,
}

impl Nav {
    pub fn of(viewer: &Viewer, section: &'static str) -> Option<Nav> {
        Some(Nav {
            login: viewer.login.clone(),
            csrf: viewer.csrf.clone(),
            supervisor: viewer.access == Access::Supervisor,
            section,
        })
    }
}

/// A console page a browser was sent to from another site or application
/// (`console::elsewhere_guard`): a link to it, for its person to follow if they meant to.
#[derive(Template)]
#[template(path = "elsewhere.html")]
pub struct ElsewherePage {
    pub t: Tr,
    pub nav: Option<Nav>,
    /// The console address asked for (path and query).
    pub target: String,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub t: Tr,
    pub nav: Option<Nav>,
    pub title: &'static str,
    pub message: String,
}
