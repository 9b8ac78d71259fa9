//! The console's server side against the real hub (`vigie serve` on 127.0.0.1), on the
//! embedded store or, with `VIGIE_TEST_BACKEND=postgres`, on PostgreSQL: invitations,
//! sessions and their cookies, CSRF, throttling, scoping of every page, and a review that
//! reaches the phone.

use crate::common;

use common::console::{Browser, account, hidden, invite};
use common::surface::admin_lines;
use common::*;
use uuid::Uuid;
use vigie_core::*;

const PASSWORD: &str = "correct horse battery";

struct Setup {
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    hub: Hub,
    supervisor: Uuid,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data = dir.path().join("hub");
    let supervisor = add_user(&data, "Superviseure Région 1", Role::Supervisor, &[REGION]);
    let hub = Hub::start(&data);
    Setup {
        _dir: dir,
        data,
        hub,
        supervisor,
    }
}

/// A browser signed in as a new administrator of the hub.
fn admin_signed_in(s: &Setup, login: &str) -> Browser {
    let admin = add_user(&s.data, "Administratrice", Role::Administrator, &[]);
    let mut browser = Browser::new(&s.hub.url);
    account(&mut browser, &s.data, admin, login, PASSWORD);
    assert_eq!(browser.sign_in(login, PASSWORD).status, 303);
    browser
}

fn signed_in(s: &Setup, login: &str) -> Browser {
    let mut browser = Browser::new(&s.hub.url);
    account(&mut browser, &s.data, s.supervisor, login, PASSWORD);
    let page = browser.sign_in(login, PASSWORD);
    assert_eq!(page.status, 303, "signed in: {}", page.body);
    browser
}

#[test]
fn an_invitation_sets_the_password_once_and_signing_in_opens_a_session() {
    let s = setup();
    let mut browser = Browser::new(&s.hub.url);
    // Before sign-in, every page sends to the sign-in form.
    let page = browser.get("/console/cases");
    assert_eq!(page.status, 303);
    assert!(
        page.location
            .as_deref()
            .unwrap()
            .starts_with("/console/signin")
    );

    let path = invite(&s.data, s.supervisor);
    let welcome = browser.get(&path);
    assert_eq!(welcome.status, 200);
    assert!(welcome.body.contains("Superviseure Région 1"));
    let csrf = welcome.csrf();
    // Bad input: an inline error, and the link still works.
    let short = browser.post(
        &path,
        &[
            ("csrf", &csrf),
            ("login", "sup.r1"),
            ("password", "short"),
            ("again", "short"),
        ],
    );
    assert_eq!(short.status, 422);
    assert!(short.body.contains("10 caractères"));
    // Long enough, and what a guesser tries first.
    for guessable in ["aaaaaaaaaa", "Motdepasse2026", "sup.r1sup.r1"] {
        let refused = browser.post(
            &path,
            &[
                ("csrf", &csrf),
                ("login", "sup.r1"),
                ("password", guessable),
                ("again", guessable),
            ],
        );
        assert_eq!(refused.status, 422, "{guessable}");
        assert!(refused.body.contains("se devine"), "{guessable}");
    }
    // Blanks count for nothing.
    let blank = "          x";
    let blanks = browser.post(
        &path,
        &[
            ("csrf", &csrf),
            ("login", "sup.r1"),
            ("password", blank),
            ("again", blank),
        ],
    );
    assert_eq!(blanks.status, 422, "{}", blanks.body);
    let differ = browser.post(
        &path,
        &[
            ("csrf", &csrf),
            ("login", "sup.r1"),
            ("password", PASSWORD),
            ("again", "something else"),
        ],
    );
    assert_eq!(differ.status, 422);
    let bad_login = browser.post(
        &path,
        &[
            ("csrf", &csrf),
            ("login", "Sup R1!"),
            ("password", PASSWORD),
            ("again", PASSWORD),
        ],
    );
    assert_eq!(bad_login.status, 422);
    // Without the form's token: refused.
    let forged = browser.post(
        &path,
        &[
            ("csrf", "forged"),
            ("login", "sup.r1"),
            ("password", PASSWORD),
            ("again", PASSWORD),
        ],
    );
    assert_eq!(forged.status, 403);
    let done = browser.post(
        &path,
        &[
            ("csrf", &csrf),
            ("login", "sup.r1"),
            ("password", PASSWORD),
            ("again", PASSWORD),
        ],
    );
    assert_eq!(done.status, 303);
    // Once only.
    let again = browser.get(&path);
    assert_eq!(again.status, 404);

    let wrong = browser.sign_in("sup.r1", "not the password");
    assert_eq!(wrong.status, 401);
    assert!(!browser.cookies.contains_key("vigie_session"));
    let page = browser.sign_in("sup.r1", PASSWORD);
    assert_eq!(page.status, 303);
    let cookie = page
        .set_cookies
        .iter()
        .find(|c| c.starts_with("vigie_session="))
        .expect("a session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP on loopback: {cookie}"
    );
    let overview = browser.get("/console/");
    assert_eq!(overview.status, 200);
    let csp = overview.header("content-security-policy").expect("a CSP");
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(overview.body.contains("sup.r1"));

    // Signing out ends the session on the hub: the old cookie opens nothing.
    let session = browser.cookies.get("vigie_session").cloned().unwrap();
    let csrf = overview.csrf();
    let out = browser.post("/console/signout", &[("csrf", &csrf)]);
    assert_eq!(out.status, 303);
    browser.cookies.insert("vigie_session".into(), session);
    assert_eq!(browser.get("/console/").status, 303);
}

#[test]
fn cookies_are_secure_behind_tls() {
    let s = setup();
    let mut browser = Browser::new(&s.hub.url);
    browser
        .extra
        .push(("X-Forwarded-Proto".into(), "https".into()));
    account(&mut browser, &s.data, s.supervisor, "sup.tls", PASSWORD);
    let page = browser.sign_in("sup.tls", PASSWORD);
    assert_eq!(page.status, 303);
    // `__Host-`: the browser keeps it only as Secure, for Path=/, without Domain, so no page
    // of plain http or of a subdomain can plant one.
    for name in ["__Host-vigie_session=", "__Host-vigie_known="] {
        let cookie = page
            .set_cookies
            .iter()
            .find(|c| c.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {:?}", page.set_cookies));
        assert!(cookie.contains("; Secure"), "{cookie}");
        assert!(cookie.contains("; Path=/;"), "{cookie}");
        assert!(!cookie.contains("Domain"), "{cookie}");
    }
    assert!(!browser.cookies.contains_key("vigie_session"));
    assert_eq!(browser.get("/console/").status, 200, "the session opens");
    // The form's token comes in a `__Host-` cookie too: one without the prefix is not read.
    let form = browser.get("/console/signin");
    assert!(
        form.set_cookies
            .iter()
            .any(|c| c.starts_with("__Host-vigie_presession=") && c.contains("; Secure")),
        "{:?}",
        form.set_cookies
    );
    let csrf = form.csrf();
    browser.cookies.remove("__Host-vigie_presession");
    browser
        .cookies
        .insert("vigie_presession".into(), csrf.clone());
    let planted = browser.post(
        "/console/signin",
        &[
            ("csrf", &csrf),
            ("login", "sup.tls"),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(planted.status, 403, "{}", planted.body);
}

/// Signs in to `login` from `browser` with this form token.
fn sign_in_with(browser: &mut Browser, csrf: &str, login: &str) -> common::console::Page {
    browser.post(
        "/console/signin",
        &[
            ("csrf", csrf),
            ("next", "/console/"),
            ("login", login),
            ("password", PASSWORD),
        ],
    )
}

fn opened_a_session(page: &common::console::Page) -> bool {
    page.set_cookies
        .iter()
        .any(|c| c.starts_with("vigie_session=") && !c.contains("Max-Age=0"))
}

#[test]
fn a_sign_in_form_the_hub_did_not_give_signs_no_one_in() {
    let s = setup();
    // Someone with an account of their own.
    let mut planter = Browser::new(&s.hub.url);
    account(&mut planter, &s.data, s.supervisor, "sup.planter", PASSWORD);

    // A page on another port of the same host plants the pre-sign-in cookie with a value of
    // its choosing (cookies are not kept apart by port, and it is the same site), and a
    // session cookie, then sends the sign-in form with that value and its own account.
    let mut victim = Browser::new(&s.hub.url);
    victim
        .cookies
        .insert("vigie_presession".into(), "tossed123".into());
    let fixed = "Fixed_By_Attacker_xxxxxxxxxxxxxxxxxxxxxxxxx".to_string();
    victim.cookies.insert("vigie_session".into(), fixed.clone());
    let refused = sign_in_with(&mut victim, "tossed123", "sup.planter");
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(!opened_a_session(&refused), "{:?}", refused.set_cookies);
    // A fresh form in its place, which says why, with nothing of what was sent.
    assert!(
        refused.body.contains("Ce formulaire avait expiré"),
        "{}",
        refused.body
    );
    assert!(!refused.body.contains("sup.planter"));
    assert_eq!(victim.get("/console/").status, 303, "signed in to nothing");
    // The planted session cookie opens nothing, and is not the one signing in gives.
    let own = victim.sign_in("sup.planter", PASSWORD);
    assert_eq!(own.status, 303);
    assert_ne!(victim.cookies.get("vigie_session"), Some(&fixed));

    // A token the hub did give, to the planter's own browser, planted in another: the browser
    // says the form was sent from another origin (Sec-Fetch-Site, else Origin).
    let given = planter.get("/console/signin").csrf();
    for headers in [
        vec![
            ("Sec-Fetch-Site", "same-site"),
            ("Origin", "http://127.0.0.1:1"),
        ],
        vec![("Origin", "http://127.0.0.1:1")],
        vec![("Sec-Fetch-Site", "cross-site")],
    ] {
        let mut victim = Browser::new(&s.hub.url);
        victim
            .cookies
            .insert("vigie_presession".into(), given.clone());
        victim.extra = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let refused = sign_in_with(&mut victim, &given, "sup.planter");
        assert_eq!(refused.status, 403, "{headers:?}: {}", refused.body);
        assert!(!opened_a_session(&refused), "{headers:?}");
    }

    // The console's own form, as a browser sends it, signs in.
    let mut person = Browser::new(&s.hub.url);
    let csrf = person.get("/console/signin").csrf();
    person.extra = vec![
        ("Sec-Fetch-Site".into(), "same-origin".into()),
        ("Origin".into(), s.hub.url.trim_end_matches('/').to_string()),
    ];
    let page = sign_in_with(&mut person, &csrf, "sup.planter");
    assert_eq!(page.status, 303, "{}", page.body);
    assert!(opened_a_session(&page));
    person.extra.clear();
    // Several cookies of that name (one planted beside the hub's): the one the form repeats
    // counts.
    let mut person = Browser::new(&s.hub.url);
    let csrf = person.get("/console/signin").csrf();
    let header = format!("vigie_presession=tossed123; vigie_presession={csrf}");
    person.cookies.clear();
    person.extra = vec![("Cookie".into(), header)];
    assert_eq!(sign_in_with(&mut person, &csrf, "sup.planter").status, 303);
}

#[test]
fn an_invitation_form_the_hub_did_not_give_sets_no_password() {
    let s = setup();
    let path = invite(&s.data, s.supervisor);
    let mut browser = Browser::new(&s.hub.url);
    browser
        .cookies
        .insert("vigie_presession".into(), "tossed123".into());
    let fields = |csrf: &str| {
        [
            ("csrf", csrf.to_string()),
            ("login", "sup.invited".to_string()),
            ("password", PASSWORD.to_string()),
            ("again", PASSWORD.to_string()),
        ]
    };
    let sent = fields("tossed123");
    let sent: Vec<(&str, &str)> = sent.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = browser.post(&path, &sent);
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("Ce formulaire avait expiré"));
    // The page again with a token of the hub's: the invitation still works from it.
    let csrf = refused.csrf();
    assert_ne!(csrf, "tossed123");
    let sent = fields(&csrf);
    let sent: Vec<(&str, &str)> = sent.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let done = browser.post(&path, &sent);
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(browser.sign_in("sup.invited", PASSWORD).status, 303);
}

#[test]
fn failed_sign_ins_are_throttled_whatever_the_password_then() {
    let s = setup();
    let mut browser = signed_in(&s, "sup.throttle");
    let mut other = Browser::new(&s.hub.url);
    for _ in 0..5 {
        assert_eq!(other.sign_in("sup.throttle", "wrong password").status, 401);
    }
    // The right password during the wait is refused without being checked.
    let page = other.sign_in("sup.throttle", PASSWORD);
    assert_eq!(page.status, 429, "{}", page.body);
    assert!(page.body.contains("Réessayez dans"));
    // The session opened before is not affected.
    assert_eq!(browser.get("/console/").status, 200);
    // The wait ends (a second after the fifth failure).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(other.sign_in("sup.throttle", PASSWORD).status, 303);
    // The audit log names the account someone guessed (a made-up name, no one).
    other.sign_in("nobody.here", "wrong password");
    let journal = audit_page(&s, "admin.throttle");
    let refused: Vec<&str> = journal
        .split("<tr>")
        .filter(|row| row.contains("Connexion refusée"))
        .collect();
    assert_eq!(refused.len(), 6, "{journal}");
    let named = refused
        .iter()
        .filter(|row| row.contains("Superviseure Région 1"))
        .count();
    assert_eq!(named, 5, "{journal}");
}

/// After an address's guesses, a right password from it starts no new wait: the colleague who
/// signs in next from the same address (an office, a proxy) is not made to wait for it.
#[test]
fn a_right_password_after_an_addresss_guesses_starts_no_wait_for_the_next_person() {
    let s = setup();
    let colleague = add_user(&s.data, "Superviseur Deux", Role::Supervisor, &[REGION]);
    let mut first = Browser::new(&s.hub.url);
    account(&mut first, &s.data, s.supervisor, "sup.first", PASSWORD);
    let mut second = Browser::new(&s.hub.url);
    account(&mut second, &s.data, colleague, "sup.second", PASSWORD);
    let mut guesser = Browser::new(&s.hub.url);
    for i in 0..20 {
        let page = guesser.sign_in(&format!("nobody.{i}"), "wrong password");
        assert_eq!(page.status, 401, "{}", page.body);
    }
    // The address's wait after its free failures (a second) passes.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    for (login, browser) in [("sup.first", &mut first), ("sup.second", &mut second)] {
        browser.cookies.clear();
        let page = browser.sign_in(login, PASSWORD);
        assert_eq!(page.status, 303, "{login}: {}", page.body);
    }
}

/// Behind a reverse proxy, every browser comes from the proxy's address: with
/// `--behind-proxy`, failed sign-ins are counted by the address the proxy forwards, so one
/// guesser does not make every new tablet wait; without it, a forwarded address is the
/// client's to write, and is not believed.
#[test]
fn behind_a_proxy_failed_sign_ins_count_by_the_forwarded_address_only_when_told() {
    let mut s = setup();
    let mut first = Browser::new(&s.hub.url);
    account(&mut first, &s.data, s.supervisor, "sup.proxied", PASSWORD);
    // The guesser's failures; its next attempt, and others' from its address, wait two
    // seconds from the last one counted: each is asked at once after (a loaded machine took
    // longer than that over a few more requests).
    let guess_from = |url: &str, forwarded: &str| {
        let mut guesser = Browser::new(url);
        guesser
            .extra
            .push(("X-Forwarded-For".into(), forwarded.into()));
        for i in 0..22 {
            guesser.sign_in(&format!("nobody.{i}"), "wrong password");
        }
        guesser
    };
    let tablet = |url: &str, forwarded: &str| {
        let mut tablet = Browser::new(url);
        tablet
            .extra
            .push(("X-Forwarded-For".into(), forwarded.into()));
        tablet.sign_in("sup.proxied", PASSWORD).status
    };
    // Not told: each guess names another address, all are the connection's.
    let mut guesser = guess_from(&s.hub.url, "198.51.100.1");
    assert_eq!(tablet(&s.hub.url, "198.51.100.2"), 429, "one address");
    assert_eq!(guesser.sign_in("nobody.more", "wrong password").status, 429);

    s.hub.stop();
    s.hub.extra_args.push("--behind-proxy".into());
    s.hub.restart();
    // Told: the guesser's address waits, the tablet's does not; an address the client put
    // before the proxy's entry counts for nothing. The same address reached over IPv6 (a
    // dual-stack proxy) is the same address.
    let mut guesser = guess_from(&s.hub.url, "203.0.113.7");
    assert_eq!(tablet(&s.hub.url, "::ffff:203.0.113.7"), 429);
    assert_eq!(guesser.sign_in("nobody.more", "wrong password").status, 429);
    assert_eq!(tablet(&s.hub.url, "198.51.100.9, 203.0.113.7"), 429);
    assert_eq!(tablet(&s.hub.url, "203.0.113.7, 198.51.100.9"), 303);
}

/// A supervisor changes their own password: the current one is asked (and wrong ones are
/// throttled, so that a browser left open is not the account), the new one passes the
/// invitation's rules, and every other browser is signed out while this one goes on.
#[test]
fn a_supervisor_changes_their_password_and_their_other_browsers_are_signed_out() {
    let s = setup();
    let mut desk = signed_in(&s, "sup.own");
    let mut tablet = Browser::new(&s.hub.url);
    assert_eq!(tablet.sign_in("sup.own", PASSWORD).status, 303);
    let page = desk.get("/console/account");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("sup.own"));
    let csrf = page.csrf();
    let change = |desk: &mut Browser, csrf: &str, current: &str, new: &str, again: &str| {
        desk.post(
            "/console/account/password",
            &[
                ("csrf", csrf),
                ("current", current),
                ("password", new),
                ("again", again),
            ],
        )
    };
    const NEW: &str = "une autre phrase longue";
    // Without the session's token: refused, nothing changed.
    assert_eq!(change(&mut desk, "forged", PASSWORD, NEW, NEW).status, 403);
    // The new password as an invitation's is checked.
    let short = change(&mut desk, &csrf, PASSWORD, "court", "court");
    assert_eq!(short.status, 422);
    assert!(short.body.contains("10 caractères"), "{}", short.body);
    let guessable = change(
        &mut desk,
        &csrf,
        PASSWORD,
        "Motdepasse2026",
        "Motdepasse2026",
    );
    assert_eq!(guessable.status, 422);
    assert_eq!(
        change(&mut desk, &csrf, PASSWORD, NEW, "autre chose").status,
        422
    );
    // A wrong current password changes nothing; after five, even the right one waits.
    for _ in 0..5 {
        let wrong = change(&mut desk, &csrf, "not my password", NEW, NEW);
        assert_eq!(wrong.status, 401);
        assert!(wrong.body.contains("actuel est faux"), "{}", wrong.body);
    }
    assert_eq!(change(&mut desk, &csrf, PASSWORD, NEW, NEW).status, 429);
    assert_eq!(tablet.get("/console/cases").status, 200, "nothing changed");
    let mut other = Browser::new(&s.hub.url);
    assert_eq!(other.sign_in("sup.own", PASSWORD).status, 303);

    // Once the wait is over (a second after the fifth failure), the change: this browser
    // goes on, in a new session...
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let done = change(&mut desk, &csrf, PASSWORD, NEW, NEW);
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(
        done.location.as_deref(),
        Some("/console/account?done=password")
    );
    let after = desk.get("/console/account?done=password");
    assert_eq!(after.status, 200);
    assert!(after.body.contains("Mot de passe changé"));
    // ...the others are signed out, and only the new password signs in.
    for browser in [&mut tablet, &mut other] {
        assert_eq!(browser.get("/console/cases").status, 303);
    }
    assert_eq!(
        Browser::new(&s.hub.url).sign_in("sup.own", PASSWORD).status,
        401
    );
    assert_eq!(Browser::new(&s.hub.url).sign_in("sup.own", NEW).status, 303);
    let journal = audit_page(&s, "admin.own");
    assert!(journal.contains("Mot de passe changé"));
    assert!(journal.contains("Changement de mot de passe refusé"));
}

/// A tablet lost while signed in: from another browser, the supervisor signs every other one
/// out (and a reset link not yet used stops working); theirs goes on.
#[test]
fn a_supervisor_signs_out_everywhere_else() {
    let s = setup();
    let mut desk = signed_in(&s, "sup.lost");
    let mut lost = Browser::new(&s.hub.url);
    assert_eq!(lost.sign_in("sup.lost", PASSWORD).status, 303);
    let link = invite(&s.data, s.supervisor);
    let csrf = desk.get("/console/account").csrf();
    assert_eq!(
        desk.post("/console/account/sessions", &[("csrf", "forged")])
            .status,
        403
    );
    assert_eq!(lost.get("/console/cases").status, 200);
    let done = desk.post("/console/account/sessions", &[("csrf", &csrf)]);
    assert_eq!(done.status, 303);
    assert_eq!(lost.get("/console/cases").status, 303);
    let page = desk.get("/console/account?done=sessions");
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("Tous les autres navigateurs sont déconnectés")
    );
    assert_eq!(Browser::new(&s.hub.url).get(&link).status, 404);
    assert_eq!(
        Browser::new(&s.hub.url)
            .sign_in("sup.lost", PASSWORD)
            .status,
        303
    );
}

#[test]
fn a_browser_that_signed_in_before_is_not_locked_out_by_others_failures() {
    let s = setup();
    let mut usual = signed_in(&s, "sup.usual");
    let known = usual
        .cookies
        .get("vigie_known")
        .cloned()
        .expect("a known-browser cookie");
    assert_eq!(known.len(), 43);
    usual.cookies.remove("vigie_session");
    // Someone at the same address guesses made-up accounts until the address must wait four
    // seconds (the free failures, then two more, each doubling the wait), then this account.
    let mut guesser = Browser::new(&s.hub.url);
    for i in 0..20 {
        let page = guesser.sign_in(&format!("nobody.{i}"), "wrong password");
        assert_eq!(page.status, 401, "{}", page.body);
    }
    for (i, pause_ms) in [1_100, 2_100].into_iter().enumerate() {
        std::thread::sleep(std::time::Duration::from_millis(pause_ms));
        assert_eq!(guesser.sign_in(&format!("late.{i}"), "wrong").status, 401);
    }
    assert_eq!(guesser.sign_in("nobody.more", "wrong password").status, 429);
    for _ in 0..3 {
        assert_eq!(guesser.sign_in("sup.usual", "wrong password").status, 429);
    }
    // A new browser at that address waits, whatever the password...
    let page = Browser::new(&s.hub.url).sign_in("sup.usual", PASSWORD);
    assert_eq!(page.status, 429, "{}", page.body);
    // ...the browser the supervisor uses every day does not, and keeps its cookie.
    let page = usual.sign_in("sup.usual", PASSWORD);
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(usual.cookies.get("vigie_known"), Some(&known));
    assert_eq!(usual.get("/console/").status, 200);
    // Its own failures are counted on their own: five, then a wait.
    usual.cookies.remove("vigie_session");
    for _ in 0..5 {
        assert_eq!(usual.sign_in("sup.usual", "wrong password").status, 401);
    }
    assert_eq!(usual.sign_in("sup.usual", PASSWORD).status, 429);
}

#[test]
fn wrong_passwords_sent_at_once_are_each_counted_before_one_is_checked() {
    let s = setup();
    let _ = signed_in(&s, "sup.parallel");
    let url = &s.hub.url;
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let sent: Vec<_> = (0..12)
            .map(|_| {
                scope.spawn(move || {
                    Browser::new(url)
                        .sign_in("sup.parallel", "wrong password")
                        .status
                })
            })
            .collect();
        sent.into_iter()
            .map(|h| h.join().expect("a sign-in"))
            .collect()
    });
    // Five failures are free; every other attempt waits, however many arrived together.
    assert_eq!(
        statuses.iter().filter(|&&c| c == 401).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&c| c == 429).count(),
        7,
        "{statuses:?}"
    );
}

#[test]
fn an_administrator_lands_on_users_and_keeps_the_menu_on_a_refused_page() {
    let s = setup();
    let mut browser = admin_signed_in(&s, "admin.home");
    let home = browser.get("/console/");
    assert_eq!(home.status, 303);
    assert_eq!(home.header("location"), Some("/console/users"));
    assert_eq!(browser.get("/console/users").status, 200);
    // A supervisor's page is refused, with the menu and the way out still there.
    let refused = browser.get("/console/cases");
    assert_eq!(refused.status, 403);
    assert!(
        refused.body.contains("/console/signout"),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("/console/users"), "{}", refused.body);
}

/// The console's files are tagged: asked again with their tag, unchanged, they are a few bytes.
#[test]
fn the_consoles_files_are_asked_again_by_their_tag() {
    let s = setup();
    let mut browser = Browser::new(&s.hub.url);
    let first = browser.get("/console/assets/console.css");
    assert_eq!(first.status, 200);
    let tag = first.header("etag").expect("a tag").to_string();
    browser.extra.push(("If-None-Match".into(), tag.clone()));
    let again = browser.get("/console/assets/console.css");
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(tag.as_str()));
    browser.extra.pop();
    browser.extra.push(("If-None-Match".into(), "\"0\"".into()));
    assert_eq!(browser.get("/console/assets/console.css").status, 200);
    // The live search's library loads on the page that searches only.
    let mut supervisor = signed_in(&s, "sup.scripts");
    assert!(!supervisor.get("/console/").body.contains("htmx.min.js"));
    assert!(
        supervisor
            .get("/console/cases")
            .body
            .contains("htmx.min.js")
    );
}

/// Revoking a device (it wipes what it had not synced) and deactivating a user take a second
/// step, on a page that says what they do; the first tap changes nothing.
/// Two staff of one name (common in a district) are told apart where a device is enrolled:
/// by role and areas, in the list to choose from, on the token shown and in the devices' list.
#[test]
fn users_of_one_name_are_told_apart_where_devices_are_enrolled() {
    let s = setup();
    let mut browser = admin_signed_in(&s, "admin.homonymes");
    let monitor = add_user(&s.data, "Konan Kouassi", Role::CommunityMonitor, &[C01]);
    // The command line says the name is taken already, with the other's id.
    let added = try_add_user(&s.data, "Konan Kouassi", Role::Inspector, &["CI-R1"]);
    let said = String::from_utf8_lossy(&added.stderr);
    assert!(
        said.contains("another user has this name") && said.contains(&monitor.to_string()),
        "{said}"
    );
    let inspector: Uuid = String::from_utf8_lossy(&added.stdout)
        .trim()
        .parse()
        .expect("an id");
    // Typed with a decomposed accent and a zero-width space pasted from a message, the name
    // is the same.
    let again = try_add_user(
        &s.data,
        "Kona\u{200B}n Kouassi\u{301}",
        Role::Inspector,
        &[C01],
    );
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(
        said.contains(&monitor.to_string()) && said.contains(&inspector.to_string()),
        "{said}"
    );
    let page = browser.get("/console/devices");
    let option = |id: Uuid| {
        let start = page
            .body
            .find(&format!("<option value=\"{id}\">"))
            .expect("offered");
        let end = start + page.body[start..].find("</option>").unwrap();
        page.body[start..end].to_string()
    };
    let (a, b) = (option(monitor), option(inspector));
    assert!(a.contains("Konan Kouassi — Agent communautaire"), "{a}");
    assert!(b.contains("Konan Kouassi — Inspecteur du travail"), "{b}");
    assert_ne!(a, b);
    let device = hidden(&page.body, "device").expect("the form's device id");
    let form = [
        ("csrf", page.csrf()),
        ("user", inspector.to_string()),
        ("device", device.clone()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let enrolled = browser.post("/console/devices", &form);
    assert_eq!(enrolled.status, 200);
    let heading = enrolled
        .body
        .split("<h2>")
        .nth(1)
        .expect("the token's heading");
    assert!(heading.contains("Inspecteur du travail"), "{heading}");
    assert!(!heading.contains("Agent communautaire"), "{heading}");
    // The page reloaded (the form sent again): one device, not a second with its own token.
    let again = browser.post("/console/devices", &form);
    assert_eq!(again.status, 422);
    assert!(again.body.contains("déjà été envoyé"), "{}", again.body);
    assert!(!again.body.contains("id=\"token\""), "no other token");
    let theirs: Vec<_> = admin_lines(&s.data, &["device", "list"])
        .into_iter()
        .filter(|d| d["user"] == inspector.to_string())
        .collect();
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    assert_eq!(theirs[0]["device"], device);
    // An id the page did not make (the console's own, which the history names "console du
    // hub"; nil) is not taken: the device gets a random one.
    for forged in [
        "76696769-655f-6875-625f-61646d696e00",
        "00000000-0000-0000-0000-000000000000",
    ] {
        let page = browser.get("/console/devices");
        let form = [
            ("csrf", page.csrf()),
            ("user", inspector.to_string()),
            ("device", forged.to_string()),
        ];
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(browser.post("/console/devices", &form).status, 200);
        let listed = admin_lines(&s.data, &["device", "list"]);
        assert!(listed.iter().all(|d| d["device"] != forged), "{listed:?}");
    }
}

#[test]
fn revoking_a_device_or_deactivating_a_user_asks_to_confirm() {
    let s = setup();
    let mut browser = admin_signed_in(&s, "admin.confirm");
    let dir = tempfile::tempdir().expect("temporary directory");
    let phone = Device::enrol(
        dir.path(),
        &s.data,
        "moniteur-partant",
        Role::CommunityMonitor,
        &[C01],
        21,
    );
    let device = phone.store.device_id();
    let page = browser.get("/console/devices");
    assert!(
        page.body
            .contains("aria-label=\"Révoquer l&#39;appareil de moniteur-partant — Agent"),
        "{}",
        page.body
    );
    let revoke = format!("/console/devices/{device}/revoke");
    let asked = browser.post(&revoke, &[("csrf", &page.csrf())]);
    assert_eq!(asked.status, 200);
    assert!(asked.body.contains("id=\"confirm-form\""), "{}", asked.body);
    assert!(
        asked
            .body
            .contains("ce qu&#39;il n&#39;a pas encore synchronisé sera perdu")
    );
    let listed = admin_lines(&s.data, &["device", "list"]);
    let line = listed
        .iter()
        .find(|d| d["device"] == device.to_string())
        .expect("listed");
    assert!(
        line["revoked"].is_null(),
        "the first tap revokes nothing: {line}"
    );
    // The confirmation sent eight times at once (a double tap, a retry): one revocation, one
    // entry in the journal (each request after the first finds it revoked, and must not take
    // it for a revocation whose entry a stopped hub lost).
    let csrf = asked.csrf();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let sent: Vec<_> = (0..8)
            .map(|_| {
                let mut copy = Browser::new(&s.hub.url);
                copy.cookies = browser.cookies.clone();
                let (revoke, csrf) = (&revoke, &csrf);
                scope.spawn(move || {
                    copy.post(revoke, &[("csrf", csrf), ("confirm", "yes")])
                        .status
                })
            })
            .collect();
        sent.into_iter()
            .map(|h| h.join().expect("a request"))
            .collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 303).count(),
        1,
        "{statuses:?}"
    );
    let listed = admin_lines(&s.data, &["device", "list"]);
    let line = listed
        .iter()
        .find(|d| d["device"] == device.to_string())
        .expect("listed");
    assert!(!line["revoked"].is_null(), "{line}");
    let journal = admin_lines(&s.data, &["audit", "--record", &device.to_string()]);
    let revocations: Vec<_> = journal
        .iter()
        .filter(|e| e["action"] == "device_revoke")
        .collect();
    assert_eq!(revocations.len(), 1, "{journal:?}");

    let user = phone.user();
    let deactivate = format!("/console/users/{user}/deactivate");
    let csrf = browser.get("/console/users").csrf();
    let asked = browser.post(&deactivate, &[("csrf", &csrf)]);
    assert!(
        asked.body.contains("Désactiver moniteur-partant ?"),
        "{}",
        asked.body
    );
    let active = |data| {
        admin_lines(data, &["user", "list"])
            .into_iter()
            .find(|u| u["id"] == user.to_string())
            .expect("listed")["active"]
            .clone()
    };
    assert_eq!(active(&s.data), true);
    let csrf = asked.csrf();
    let done = browser.post(&deactivate, &[("csrf", &csrf), ("confirm", "yes")]);
    assert_eq!(done.status, 303);
    assert_eq!(active(&s.data), false);
    // Sent again (Back, a retry): nothing more is journaled.
    let again = browser.post(&deactivate, &[("csrf", &csrf), ("confirm", "yes")]);
    assert_eq!(again.status, 303);
    let journal = admin_lines(&s.data, &["audit", "--record", &user.to_string()]);
    let deactivations = journal
        .iter()
        .filter(|e| e["action"] == "user_deactivate")
        .count();
    assert_eq!(deactivations, 1, "{journal:?}");
}

#[test]
fn a_form_sent_after_the_session_ended_comes_back_to_its_page_after_sign_in() {
    let s = setup();
    let mut browser = signed_in(&s, "sup.expired");
    let csrf = browser.get("/console/cases").csrf();
    browser.cookies.remove("vigie_session");
    let url = format!("{}/console/cases", s.hub.url);
    browser.extra.push(("Referer".into(), url));
    let sent = browser.post("/console/signout", &[("csrf", &csrf)]);
    assert_eq!(sent.status, 303);
    assert_eq!(
        sent.header("location"),
        Some("/console/signin?next=/console/cases")
    );
    // A Referer elsewhere is not followed.
    browser.extra.pop();
    browser
        .extra
        .push(("Referer".into(), "https://elsewhere.example/x".into()));
    let sent = browser.post("/console/signout", &[("csrf", &csrf)]);
    let next = sent.header("location").unwrap_or("").to_string();
    let page = browser.get(&next);
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("elsewhere"), "{}", page.body);
    // Any other form: the sign-in page says it was not saved.
    browser.extra.pop();
    let url = format!("{}/console/review", s.hub.url);
    browser.extra.push(("Referer".into(), url));
    let visit = Uuid::now_v7();
    let sent = browser.post(
        &format!("/console/visits/{visit}"),
        &[("csrf", &csrf), ("action", "validate")],
    );
    assert_eq!(
        sent.header("location"),
        Some("/console/signin?next=/console/review&done=unsent")
    );
    let page = browser.get("/console/signin?next=/console/review&done=unsent");
    assert!(
        page.body.contains("n&#39;a pas été enregistré"),
        "{}",
        page.body
    );
    // A long form (a note of 9 KB) of a session ended meanwhile is sent to sign in as a short
    // one is, not refused as too large (forms without a session are a few KiB at most).
    let mut browser = signed_in(&s, "sup.expired.long");
    let csrf = browser.get("/console/cases").csrf();
    let cookie = browser.cookies["vigie_session"].clone();
    assert_eq!(
        browser.post("/console/signout", &[("csrf", &csrf)]).status,
        303
    );
    browser.cookies.insert("vigie_session".into(), cookie);
    let note = "é".repeat(5_000);
    let sent = browser.post("/console/signout", &[("csrf", &csrf), ("note", &note)]);
    assert_eq!(sent.status, 303, "{}", sent.body);
    assert!(
        sent.header("location")
            .is_some_and(|l| l.starts_with("/console/signin")),
        "{:?}",
        sent.header("location")
    );
}

#[test]
fn an_invitation_of_a_user_deactivated_since_opens_nothing() {
    let s = setup();
    let path = invite(&s.data, s.supervisor);
    let out = common::surface::admin(
        &s.data,
        &["user", "deactivate", "--user", &s.supervisor.to_string()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut browser = Browser::new(&s.hub.url);
    let welcome = browser.get(&path);
    assert_eq!(welcome.status, 404, "{}", welcome.body);
    // The form sent all the same (as a page opened before the deactivation would).
    let csrf = browser.cookies["vigie_presession"].clone();
    let sent = browser.post(
        &path,
        &[
            ("csrf", &csrf),
            ("login", "sup.gone"),
            ("password", PASSWORD),
            ("again", PASSWORD),
        ],
    );
    assert_eq!(sent.status, 422, "{}", sent.body);
    assert_eq!(browser.sign_in("sup.gone", PASSWORD).status, 401);
    // Nor once the user is active again: the deactivation cancelled it.
    let out = common::surface::admin(
        &s.data,
        &["user", "reactivate", "--user", &s.supervisor.to_string()],
    );
    assert!(out.status.success());
    assert_eq!(browser.get(&path).status, 404);
}

/// A link made again replaces the one before, and a link used cancels any other: an earlier
/// link, lost or seen by someone else, set the password anew, ended the owner's sessions and
/// opened the region's files to whoever held it.
#[test]
fn an_earlier_invitation_opens_nothing_once_another_is_made_or_used() {
    let s = setup();
    let earlier = invite(&s.data, s.supervisor);
    let mut owner = Browser::new(&s.hub.url);
    account(&mut owner, &s.data, s.supervisor, "sup.owner", PASSWORD);
    assert_eq!(owner.sign_in("sup.owner", PASSWORD).status, 303);
    let mut intruder = Browser::new(&s.hub.url);
    assert_eq!(intruder.get(&earlier).status, 404);
    let csrf = intruder.cookies["vigie_presession"].clone();
    let taken = intruder.post(
        &earlier,
        &[
            ("csrf", &csrf),
            ("login", "sup.owner"),
            ("password", "another long password"),
            ("again", "another long password"),
        ],
    );
    assert_eq!(taken.status, 422, "{}", taken.body);
    assert_eq!(
        owner.get("/console/").status,
        200,
        "the owner's session goes on"
    );
    assert_eq!(
        intruder
            .sign_in("sup.owner", "another long password")
            .status,
        401
    );

    // Two links made, none used: only the last opens.
    let first = invite(&s.data, s.supervisor);
    let last = invite(&s.data, s.supervisor);
    assert_eq!(intruder.get(&first).status, 404);
    assert_eq!(intruder.get(&last).status, 200);
}

#[test]
fn a_post_that_is_no_form_gets_the_console_error_page() {
    let s = setup();
    let answer = agent()
        .post(format!("{}/console/signout", s.hub.url))
        .header("Accept-Language", "fr")
        .send_empty()
        .expect("the hub answers");
    assert_eq!(answer.status().as_u16(), 400);
    let body = answer.into_body().read_to_string().expect("a page");
    assert!(body.contains("<html"), "{body}");
    assert!(body.contains("n&#39;a pas pu être lu"), "{body}");
}

#[test]
fn addresses_the_console_does_not_serve_get_its_pages_and_refusals_are_in_french() {
    let s = setup();
    let f = field(&s);
    let mut browser = signed_in(&s, "sup.addresses");
    let case = format!("/console/cases/{}", f.my_case);
    let bad = browser.get("/console/cases/not-a-record");
    assert_eq!(bad.status, 400);
    assert!(
        bad.body.contains("<html") && bad.body.contains("pas valide"),
        "{}",
        bad.body
    );
    let bad = browser.get("/console/cases?page=abc");
    assert!(bad.body.contains("<html"), "{}", bad.body);
    let nowhere = browser.get("/console/nowhere");
    assert_eq!(nowhere.status, 404);
    assert!(nowhere.body.contains("Introuvable"), "{}", nowhere.body);
    // An address that only takes a form, opened: the page above it.
    let action = browser.get(&format!("{case}/follow-up"));
    assert_eq!(action.status, 303);
    assert_eq!(action.header("location"), Some(case.as_str()));
    assert_eq!(
        browser.get("/console/signout").header("location"),
        Some("/console/")
    );
    // An export format the page does not offer is not quietly another.
    let xml = browser.get("/console/exports/download?table=visits&format=xml");
    assert_eq!(xml.status, 404);
    // Settling a conflict that is not there (settled meanwhile) says so.
    let csrf = browser.get(&case).csrf();
    let gone = browser.post(
        &format!("{case}/resolve"),
        &[("csrf", &csrf), ("field", "notes"), ("value", "\"x\"")],
    );
    assert_eq!(gone.status, 422, "{}", gone.body);
    assert!(gone.body.contains("déjà été réglé"), "{}", gone.body);
    // A step the page no longer offers (a stale page) is refused in French.
    let csrf = browser.get(&case).csrf();
    let stale = browser.post(
        &format!("{case}/status"),
        &[("csrf", &csrf), ("to", "closed")],
    );
    assert_eq!(stale.status, 422, "{}", stale.body);
    assert!(
        stale.body.contains("ne peut pas passer de"),
        "{}",
        stale.body
    );
}

/// A case verified in the console today is closed once a follow-up dated after the
/// verification finds the child out of work: until then closing is not offered, and a stale
/// form asking for it is told what is missing.
/// A monitor's case, referred on `referred` (its identification day when none) and receiving
/// services, synced: what a supervisor verifies in the console. Returns the case's id; the
/// monitor's device lives in `dir`.
fn case_receiving_services(
    s: &Setup,
    dir: &std::path::Path,
    referred: Option<chrono::NaiveDate>,
) -> Uuid {
    let mut monitor = Device::enrol(
        dir,
        &s.data,
        "moniteur-suivi",
        Role::CommunityMonitor,
        &[C01],
        14,
    );
    // Its role known from the hub, the phone takes the workflow's steps.
    monitor.sync(&s.hub.url).expect("first sync");
    let case = monitor
        .store
        .create(&child(area(C01), "Awa Koné", monitor.user()))
        .expect("case");
    let referral = Referral {
        service: ServiceKind::Education,
        provider: "École primaire".into(),
        date: referred.unwrap_or(case.identified_on),
        outcome: String::new(),
    };
    monitor
        .store
        .refer_case(case.id, referral)
        .expect("referred");
    monitor
        .store
        .transition_case(case.id, CaseStatus::ReceivingServices)
        .expect("receiving services");
    monitor.sync(&s.hub.url).expect("sync");
    case.id
}

/// Verifying a case today whose first referral is dated tomorrow (a date typed wrong, or a
/// phone's clock ahead): refused, and the page says which date is at odds.
#[test]
fn a_verification_before_the_first_referral_says_the_referrals_date() {
    let s = setup();
    let dir = tempfile::tempdir().expect("temporary directory");
    let today = chrono::Utc::now().date_naive();
    let case = case_receiving_services(&s, dir.path(), Some(today));
    let mut browser = signed_in(&s, "sup.dates");
    let page = format!("/console/cases/{case}");
    let csrf = browser.get(&page).csrf();
    let yesterday = (today - chrono::Days::new(1)).to_string();
    let refused = browser.post(
        &format!("{page}/status"),
        &[
            ("csrf", &csrf),
            ("to", "withdrawn"),
            ("date", &yesterday),
            ("confirm", "yes"),
        ],
    );
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused.body.contains(&format!(
            "première orientation du cas est datée du {}",
            today.format("%d/%m/%Y")
        )),
        "{}",
        refused.body
    );
}

/// Verifying a case withdrawn on the day a follow-up found the child still working: refused,
/// the page saying why (it said the step existed no more, to reload the page, which changed
/// nothing while it still offered the step).
#[test]
fn a_verification_on_a_day_the_child_was_seen_working_says_why() {
    let s = setup();
    let dir = tempfile::tempdir().expect("temporary directory");
    let case = case_receiving_services(&s, dir.path(), None);
    let mut monitor = Device::enrol(
        dir.path(),
        &s.data,
        "moniteur-vu",
        Role::CommunityMonitor,
        &[C01],
        15,
    );
    monitor.sync(&s.hub.url).expect("sync");
    let seen = identified_on() + chrono::Days::new(20);
    monitor
        .store
        .add_follow_up(
            case,
            FollowUp::new(seen, FollowUpSituation::StillWorking, None),
        )
        .expect("follow-up");
    monitor.sync(&s.hub.url).expect("sync");
    let mut browser = signed_in(&s, "sup.vu");
    let page = format!("/console/cases/{case}");
    let csrf = browser.get(&page).csrf();
    let refused = browser.post(
        &format!("{page}/status"),
        &[
            ("csrf", &csrf),
            ("to", "withdrawn"),
            ("date", &seen.to_string()),
            ("confirm", "yes"),
        ],
    );
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused.body.contains("à sa date de vérification"),
        "{}",
        refused.body
    );
    assert!(!refused.body.contains("rechargez"), "{}", refused.body);
}

/// A page of the same site (another port or subdomain of the hub's host: its requests carry
/// the supervisor's session) sends her browser to a child's page or to the personal export:
/// nothing is shown, downloaded or journaled in her name. A navigation gets a link to follow
/// if she meant to; an image or a frame gets nothing. From the console's own links, all works.
#[test]
fn a_page_of_the_same_site_cannot_make_a_signed_in_browser_read_or_export() {
    let s = setup();
    let dir = tempfile::tempdir().expect("temporary directory");
    let case = case_receiving_services(&s, dir.path(), None);
    let mut browser = signed_in(&s, "sup.ailleurs");
    let page = format!("/console/cases/{case}");
    let export = "/console/exports/download?table=child_cases&format=csv&personal=1";
    let viewed = || {
        admin_lines(&s.data, &["audit", "--record", &case.to_string()])
            .iter()
            .filter(|l| l["action"] == "case_view")
            .count()
    };
    let fetch = |mode: &str, dest: &str| {
        vec![
            ("Sec-Fetch-Site".to_string(), "same-site".to_string()),
            ("Sec-Fetch-Mode".to_string(), mode.to_string()),
            ("Sec-Fetch-Dest".to_string(), dest.to_string()),
        ]
    };
    browser.extra = fetch("navigate", "document");
    for address in [page.as_str(), export] {
        let shown = browser.get(address);
        assert_eq!(shown.status, 200, "{}", shown.body);
        assert!(
            shown
                .header("content-type")
                .unwrap()
                .starts_with("text/html")
        );
        assert!(
            shown
                .body
                .contains(&format!("href=\"{}\"", address.replace('&', "&#38;"))),
            "{}",
            shown.body
        );
        assert!(!shown.body.contains("Awa Koné"), "{}", shown.body);
    }
    browser.extra = fetch("no-cors", "image");
    assert_eq!(browser.get(&page).status, 403);
    assert_eq!(browser.get(export).status, 403);
    assert_eq!(viewed(), 0);
    let journal = admin_lines(&s.data, &["audit"]);
    assert!(
        !journal.iter().any(|l| l["action"] == "export"),
        "{journal:?}"
    );

    // Her own click on the link: the same browser, from the console's page.
    browser.extra = vec![("Sec-Fetch-Site".to_string(), "same-origin".to_string())];
    let shown = browser.get(&page);
    assert_eq!(shown.status, 200);
    assert!(shown.body.contains("Awa Koné"));
    assert_eq!(viewed(), 1);
    let file = browser.get(export);
    assert_eq!(file.status, 200);
    assert!(file.body.contains("Awa Koné"));
    // The console's doors stay open from anywhere: its home, an email's invitation link.
    browser.extra = fetch("navigate", "document");
    assert_eq!(browser.get("/console/").status, 200);
}

#[test]
fn closing_is_offered_once_a_follow_up_after_the_verification_is_recorded() {
    let s = setup();
    let dir = tempfile::tempdir().expect("temporary directory");
    let case = case_receiving_services(&s, dir.path(), None);

    let mut browser = signed_in(&s, "sup.cloture");
    let page = format!("/console/cases/{case}");
    let csrf = browser.get(&page).csrf();
    let today = chrono::Utc::now().date_naive().to_string();
    let done = browser.post(
        &format!("{page}/status"),
        &[
            ("csrf", &csrf),
            ("to", "withdrawn"),
            ("date", &today),
            ("confirm", "yes"),
        ],
    );
    assert_eq!(done.status, 303, "{}", done.body);
    let offered = |browser: &mut Browser| browser.get(&page).body.contains("value=\"closed\"");
    assert!(
        !offered(&mut browser),
        "closing offered before any follow-up"
    );
    // A follow-up on the verification's own day is that visit's: closing waits still.
    let csrf = browser.get(&page).csrf();
    let done = browser.post(
        &format!("{page}/follow-up"),
        &[
            ("csrf", &csrf),
            ("situation", "in_school"),
            ("date", &today),
        ],
    );
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(
        !offered(&mut browser),
        "closing offered on the verification's day"
    );
    let csrf = browser.get(&page).csrf();
    let refused = browser.post(
        &format!("{page}/status"),
        &[("csrf", &csrf), ("to", "closed")],
    );
    assert_eq!(refused.status, 422, "{}", refused.body);
    // The day written as the console writes days, never as stored.
    let verified = chrono::Utc::now().date_naive();
    assert!(
        refused.body.contains(&format!(
            "suivi daté d&#39;après sa vérification ({})",
            verified.format("%d/%m/%Y")
        )),
        "{}",
        refused.body
    );
}

#[test]
fn a_refused_follow_up_or_referral_says_which_input_is_wrong() {
    let s = setup();
    let dir = tempfile::tempdir().expect("temporary directory");
    let case = case_receiving_services(&s, dir.path(), None);
    let mut browser = signed_in(&s, "sup.saisie");
    let page = format!("/console/cases/{case}");
    // Tomorrow: the room the hub leaves a phone's clock is not the console's.
    let tomorrow = chrono::Local::now().date_naive() + chrono::Days::new(1);
    let ahead = tomorrow.to_string();
    let today = chrono::Local::now().date_naive().to_string();
    let mut refused = |form: &str, fields: &[(&str, &str)], said: &str| {
        let csrf = browser.get(&page).csrf();
        let mut posted = vec![("csrf", csrf.as_str())];
        posted.extend_from_slice(fields);
        let answer = browser.post(&format!("{page}/{form}"), &posted);
        assert_eq!(answer.status, 422, "{fields:?}: {}", answer.body);
        assert!(answer.body.contains(said), "{fields:?}: {}", answer.body);
    };
    // The day written as the console writes days.
    let ahead_said = format!(
        "Le {} n&#39;est pas encore arrivé",
        tomorrow.format("%d/%m/%Y")
    );
    for (fields, said) in [
        (
            vec![("situation", "in_school"), ("date", ahead.as_str())],
            ahead_said.as_str(),
        ),
        (
            vec![("situation", "in_school"), ("date", "2026-02-29")],
            "sous la forme AAAA-MM-JJ",
        ),
        (
            vec![("situation", "in_school"), ("date", "hier")],
            "sous la forme AAAA-MM-JJ",
        ),
        (
            vec![("situation", "dancing"), ("date", today.as_str())],
            "Choisissez la situation",
        ),
        (
            vec![
                ("situation", "in_school"),
                ("date", today.as_str()),
                ("next_due", "bientôt"),
            ],
            "date du prochain suivi",
        ),
        // After the child's 18th birthday, when no follow-up is due: said, not dropped.
        (
            vec![
                ("situation", "in_school"),
                ("date", today.as_str()),
                ("next_due", "2099-01-01"),
            ],
            "atteint 18 ans",
        ),
    ] {
        refused("follow-up", &fields, said);
    }
    for (fields, said) in [
        (
            vec![
                ("service", "education"),
                ("provider", "École"),
                ("date", ahead.as_str()),
            ],
            ahead_said.as_str(),
        ),
        (
            vec![
                ("service", "juggling"),
                ("provider", "École"),
                ("date", &today),
            ],
            "Choisissez un service",
        ),
        (
            vec![
                ("service", "education"),
                ("provider", " "),
                ("date", &today),
            ],
            "Indiquez le prestataire",
        ),
    ] {
        refused("referral", &fields, said);
    }
}

/// A form value whose bytes are not UTF-8 (no browser sends one; a hand-made request does) is
/// refused, not saved with "�" in place of each bad byte.
#[test]
fn a_form_that_is_not_utf8_is_refused_and_nothing_saved() {
    let s = setup();
    let dir = tempfile::tempdir().expect("temporary directory");
    let case = case_receiving_services(&s, dir.path(), None);
    let mut browser = signed_in(&s, "sup.octets");
    let page = format!("/console/cases/{case}");
    let before = browser.get(&page).body.matches("\u{fffd}").count();
    let csrf = browser.get(&page).csrf();
    let today = chrono::Local::now().date_naive().to_string();
    let answer = browser.post_encoded(
        &format!("{page}/referral"),
        format!("csrf={csrf}&service=education&provider=%ED%A0%80x&date={today}"),
    );
    assert_eq!(answer.status, 400, "{}", answer.body);
    let after = browser.get(&page).body;
    assert_eq!(after.matches('\u{fffd}').count(), before, "{after}");
    // A field given twice is named (it was said cut, or not text), and nothing saved.
    let referrals = after.matches("École Doublon").count();
    let answer = browser.post_encoded(
        &format!("{page}/referral"),
        format!(
            "csrf={csrf}&service=education&service=health&provider=%C3%89cole+Doublon\
             &date={today}"
        ),
    );
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(answer.body.contains("deux fois"), "{}", answer.body);
    assert!(answer.body.contains("ervice"), "{}", answer.body);
    let after = browser.get(&page).body;
    assert_eq!(after.matches("École Doublon").count(), referrals);
}

#[test]
fn a_known_browser_cookie_the_hub_did_not_give_is_not_adopted() {
    let s = setup();
    let mut browser = Browser::new(&s.hub.url);
    account(&mut browser, &s.data, s.supervisor, "sup.forged", PASSWORD);
    let chosen = "Fixed_By_Attacker_xxxxxxxxxxxxxxxxxxxxxxxxx".to_string();
    browser.cookies.insert("vigie_known".into(), chosen.clone());
    assert_eq!(browser.sign_in("sup.forged", PASSWORD).status, 303);
    let given = browser
        .cookies
        .get("vigie_known")
        .cloned()
        .expect("a cookie");
    assert_ne!(given, chosen);
    // The one it gave is kept when the next person signs in on this browser.
    browser.cookies.remove("vigie_session");
    assert_eq!(browser.sign_in("sup.forged", PASSWORD).status, 303);
    assert_eq!(browser.cookies.get("vigie_known"), Some(&given));
}

#[test]
fn administration_forms_refuse_areas_that_would_give_nothing() {
    let s = setup();
    let mut desk = admin_signed_in(&s, "admin.areas");
    let csrf = desk.get("/console/users").csrf();
    let add = |desk: &mut Browser, role: &str, areas: &str| {
        desk.post(
            "/console/users",
            &[
                ("csrf", &csrf),
                ("name", "Agent Koffi"),
                ("role", role),
                ("areas", areas),
            ],
        )
    };
    let page = add(&mut desk, "administrator", "CI-R1");
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(page.body.contains("pas de zone"), "{}", page.body);
    let page = add(&mut desk, "community_monitor", "ZZ-NOPE");
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(page.body.contains("ZZ-NOPE") && page.body.contains("aucun découpage"));
    assert_eq!(add(&mut desk, "community_monitor", C01).status, 303);
    assert_eq!(add(&mut desk, "administrator", "").status, 303);
    // The same form sent twice (a double click, a reload that sends it again) makes one user.
    let page = desk.get("/console/users");
    let entry = hidden(&page.body, "entry").expect("the form's entry");
    for _ in 0..2 {
        let answer = desk.post(
            "/console/users",
            &[
                ("csrf", &csrf),
                ("entry", &entry),
                ("name", "Awa Deux Fois"),
                ("role", "supervisor"),
                ("areas", "CI-R1"),
            ],
        );
        assert_eq!(answer.status, 303, "{}", answer.body);
    }
    let named = admin_lines(&s.data, &["user", "list"])
        .into_iter()
        .filter(|user| user["name"] == "Awa Deux Fois")
        .count();
    assert_eq!(named, 1);
    // Sent again with its name or its areas corrected (back, a typo fixed): said, nothing
    // made (the areas were dropped without a word); an entry naming a record of another kind
    // (altered by hand): said too.
    let dir = tempfile::tempdir().expect("temporary directory");
    let case = case_receiving_services(&s, dir.path(), None).to_string();
    for (entry, name, areas, said) in [
        (entry.as_str(), "Awa Deux-Fois", "CI-R1", "déjà créé"),
        (entry.as_str(), "Awa Deux Fois", "CI-R2", "déjà créé"),
        (case.as_str(), "Awa Autre", "CI-R1", "a été modifié"),
    ] {
        let answer = desk.post(
            "/console/users",
            &[
                ("csrf", &csrf),
                ("entry", entry),
                ("name", name),
                ("role", "supervisor"),
                ("areas", areas),
            ],
        );
        assert_eq!(answer.status, 422, "{}", answer.body);
        assert!(answer.body.contains(said), "{}", answer.body);
    }

    // A sign-in link made in the console without --public-url is built from the address the
    // administrator's browser reached the hub at, as a whole link to hand over.
    let origin = s.hub.url.trim_end_matches('/').to_string();
    desk.extra.push(("Origin".into(), origin.clone()));
    let page = desk.post(
        &format!("/console/users/{}/invite", s.supervisor),
        &[("csrf", &csrf)],
    );
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains(&format!("{origin}/console/welcome/")),
        "{}",
        page.body
    );
    // An origin that is not this hub's is no base for a link.
    desk.extra.clear();
    desk.extra
        .push(("Origin".into(), "http://elsewhere.example".into()));
    desk.extra
        .push(("Sec-Fetch-Site".into(), "same-origin".into()));
    let page = desk.post(
        &format!("/console/users/{}/invite", s.supervisor),
        &[("csrf", &csrf)],
    );
    assert!(!page.body.contains("elsewhere.example"), "{}", page.body);
    // The path alone, then, and the page says what to put before it.
    assert!(
        page.body.contains("lancé sans --public-url"),
        "{}",
        page.body
    );
}

/// A phone of region 2 and one of region 1, each with a case and a submitted visit.
struct Field {
    _dir: tempfile::TempDir,
    mine: Device,
    theirs: Device,
    my_case: Uuid,
    their_case: Uuid,
    my_visit: Uuid,
    their_visit: Uuid,
}

const MY_CHILD: &str = "Adjoa Traoré";
const THEIR_CHILD: &str = "Mariam Ouattara";

fn field(s: &Setup) -> Field {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut mine = Device::enrol(
        dir.path(),
        &s.data,
        "moniteur-r1",
        Role::CommunityMonitor,
        &[C01],
        1,
    );
    let r2 = foreign_area();
    let mut theirs = Device::enrol(
        dir.path(),
        &s.data,
        "moniteur-r2",
        Role::CommunityMonitor,
        &[r2.community.as_str()],
        2,
    );
    let make = |device: &mut Device, area: Area, name: &str| {
        let mut w = workplace(area.clone(), "Plantation");
        w.location.point = Some(GeoPoint {
            latitude: 6.8,
            longitude: -5.2,
            accuracy_m: None,
        });
        let mut v = visit(area.clone(), w.id, device.user(), 3);
        v.gps = Some(GeoPoint {
            latitude: 6.81,
            longitude: -5.21,
            accuracy_m: None,
        });
        v.forced_labour
            .insert(ForcedLabourIndicator::ALL[0], String::new());
        v.checklist = ChecklistAnswers {
            checklist: "child-labour".into(),
            version: 1,
            answers: [("CL01".to_string(), Answer::Yes)].into_iter().collect(),
        };
        let v = device.store.create(&v).expect("visit");
        let mut c = child(area, name, device.user());
        c.estimated_age = Some(13);
        c.hours_per_week = 50;
        c.workplace_id = Some(w.id);
        let c = device.store.create(&c).expect("case");
        let summary = device.sync(&s.hub.url).expect("sync");
        assert!(summary.refused.is_empty(), "{:?}", summary.refused);
        (c.id, v.id)
    };
    let (my_case, my_visit) = make(&mut mine, area(C01), MY_CHILD);
    let (their_case, their_visit) = make(&mut theirs, r2, THEIR_CHILD);
    Field {
        _dir: dir,
        mine,
        theirs,
        my_case,
        their_case,
        my_visit,
        their_visit,
    }
}

/// An access request: everything held of one child, in one file from the case's page, with
/// the history's people and devices; the download is journaled.
#[test]
fn a_childs_whole_file_downloads_for_an_access_request() {
    let s = setup();
    let f = field(&s);
    let mut browser = signed_in(&s, "sup.access");
    let page = browser.get(&format!("/console/cases/{}", f.my_case));
    assert!(
        page.body
            .contains(&format!("href=\"/console/cases/{}/file.json\"", f.my_case)),
        "the case's page links its file"
    );
    let file = browser.get(&format!("/console/cases/{}/file.json", f.my_case));
    assert_eq!(file.status, 200);
    let held: serde_json::Value = serde_json::from_str(&file.body).expect("JSON");
    assert_eq!(held["case"]["name"], MY_CHILD);
    let history = held["history"].as_array().expect("the history");
    assert!(!history.is_empty());
    let device = f.mine.store.device_id().to_string();
    assert!(
        history.iter().any(|h| h["device"] == device.as_str()),
        "{history:?}"
    );
    assert!(!file.body.contains(THEIR_CHILD));
    let journal = audit_page(&s, "admin.access");
    assert!(
        journal.contains("Dossier complet d&#39;un enfant téléchargé"),
        "{journal}"
    );
}

/// A case's history shows when the hub received each change beside the time the phone gave
/// it, which the phone's user may set: an edit made on a phone whose date was set a year ahead
/// is marked so, on the page and in the child's whole file.
#[test]
fn a_history_says_when_the_hub_received_each_change() {
    let s = setup();
    let mut f = field(&s);
    let mut case: ChildCase = f.mine.store.get(f.my_case).unwrap();
    case.hours_per_week += 1;
    vigie_core::doc::debug_shift_clock(400 * 24 * 3600 * 1000);
    let updated = f.mine.store.update(&case);
    vigie_core::doc::debug_shift_clock(0);
    updated.unwrap();
    f.mine.sync(&s.hub.url).unwrap();
    let mut browser = signed_in(&s, "sup.clock");
    let page = browser.get(&format!("/console/cases/{}", f.my_case));
    assert_eq!(page.status, 200);
    let history = &page.body[page.body.find("id=\"history\"").expect("the history")..];
    assert!(history.contains("Reçu par le hub"), "{history}");
    assert_eq!(history.matches("horloge en avance").count(), 1, "{history}");
    let file = browser.get(&format!("/console/cases/{}/file.json", f.my_case));
    let held: serde_json::Value = serde_json::from_str(&file.body).expect("JSON");
    let now = chrono::Utc::now();
    for h in held["history"].as_array().expect("the history") {
        let received = h["received"].as_str().expect("each change received");
        let received = chrono::DateTime::parse_from_rfc3339(received).unwrap();
        assert!((now - received.to_utc()).num_minutes().abs() < 10, "{h}");
    }
    let made: Vec<_> = held["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["time"].as_str())
        .map(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap().to_utc())
        .collect();
    assert!(made.iter().any(|t| (*t - now).num_days() > 300), "{made:?}");
}

/// Three registrations of one child merged one into the next (A into B, then B into C): the
/// child's file of C, and its page, hold A and its document too, as erasing C takes A (the
/// file read one level of merges, and lost A's registration and its files).
#[test]
fn a_childs_file_holds_the_registrations_merged_through_another() {
    let s = setup();
    let mut f = field(&s);
    let mut registered = |name: &str| {
        f.mine
            .store
            .create(&child(area(C01), name, f.mine.user()))
            .expect("case")
            .id
    };
    let (a, b) = (registered("Adjoa Traore"), registered("Traoré Adjoa"));
    f.mine
        .store
        .add_attachment(
            a,
            &NewAttachment {
                kind: AttachmentKind::Document,
                media_type: "application/pdf".into(),
                caption: "Consentement".into(),
            },
            &b"%PDF-1.4\n consent"[..],
        )
        .expect("attachment");
    f.mine.sync(&s.hub.url).expect("sync");
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut supervisor = Device::enrol(
        dir.path(),
        &s.data,
        "superviseur-chaine",
        Role::Supervisor,
        &[C01],
        32,
    );
    supervisor.sync(&s.hub.url).expect("sync");
    supervisor.store.merge_cases(b, a).expect("merge");
    supervisor.store.merge_cases(f.my_case, b).expect("merge");
    let merged = supervisor.sync(&s.hub.url).expect("sync");
    assert!(merged.refused.is_empty(), "{merged:?}");
    let mut browser = signed_in(&s, "sup.chain");
    let file = browser.get(&format!("/console/cases/{}/file.json", f.my_case));
    assert_eq!(file.status, 200);
    let held: serde_json::Value = serde_json::from_str(&file.body).expect("JSON");
    let registrations: Vec<&str> = held["merged_duplicates"]
        .as_array()
        .expect("the registrations merged")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(
        registrations.contains(&"Adjoa Traore") && registrations.contains(&"Traoré Adjoa"),
        "{registrations:?}"
    );
    assert!(file.body.contains("Consentement"), "{}", file.body);
}

/// A case whose `merged_from` names another child's case (an altered app's edit; no merge
/// made it) does not bring that child into this child's access-request file: a registration
/// is one only if it names the case back.
#[test]
fn a_childs_file_holds_no_case_named_merged_that_was_never_merged() {
    let s = setup();
    let mut f = field(&s);
    let other = f
        .mine
        .store
        .create(&child(area(C01), "Kofi Mensah", f.mine.user()))
        .expect("case")
        .id;
    f.mine.sync(&s.hub.url).expect("sync");
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut supervisor = Device::enrol(
        dir.path(),
        &s.data,
        "superviseur-nomme",
        Role::Supervisor,
        &[C01],
        33,
    );
    supervisor.sync(&s.hub.url).expect("sync");
    let mut case: ChildCase = supervisor.store.get(f.my_case).expect("case");
    case.merged_from.insert(other);
    supervisor.store.update(&case).expect("the edit");
    let pushed = supervisor.sync(&s.hub.url).expect("sync");
    assert!(pushed.refused.is_empty(), "{pushed:?}");
    let mut browser = signed_in(&s, "sup.named");
    let file = browser.get(&format!("/console/cases/{}/file.json", f.my_case));
    assert_eq!(file.status, 200);
    assert!(!file.body.contains("Kofi Mensah"), "{}", file.body);
    let page = browser.get(&format!("/console/cases/{}", f.my_case));
    assert!(!page.body.contains("Kofi Mensah"), "{}", page.body);
}

/// A registration of another region merged into a case (by a supervisor of the country)
/// brings none of its files into the case's whole file for a supervisor of the region: their
/// captions may name another district's children.
#[test]
fn a_childs_file_holds_no_file_of_a_duplicate_beyond_the_supervisors_areas() {
    let s = setup();
    let mut f = field(&s);
    f.theirs
        .store
        .add_attachment(
            f.their_case,
            &NewAttachment {
                kind: AttachmentKind::Document,
                media_type: "application/pdf".into(),
                caption: "Consentement de la famille Ouattara".into(),
            },
            &b"%PDF-1.4\n consent"[..],
        )
        .expect("attachment");
    f.theirs.sync(&s.hub.url).expect("sync");
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut national = Device::enrol(
        dir.path(),
        &s.data,
        "superviseur-pays",
        Role::Supervisor,
        &[COUNTRY],
        31,
    );
    national.sync(&s.hub.url).expect("sync");
    national
        .store
        .merge_cases(f.my_case, f.their_case)
        .expect("merge");
    let merged = national.sync(&s.hub.url).expect("sync");
    assert!(merged.refused.is_empty(), "{merged:?}");
    let mut browser = signed_in(&s, "sup.merged");
    let file = browser.get(&format!("/console/cases/{}/file.json", f.my_case));
    assert_eq!(file.status, 200);
    let held: serde_json::Value = serde_json::from_str(&file.body).expect("JSON");
    assert!(
        held["case"]["merged_from"]
            .as_object()
            .is_some_and(|from| !from.is_empty()),
        "{held}"
    );
    assert!(!file.body.contains("Ouattara"), "{}", file.body);
}

#[test]
fn a_supervisor_finds_nothing_of_another_region_on_any_page() {
    let s = setup();
    let mut f = field(&s);
    let mut browser = signed_in(&s, "sup.scope");
    // Each alert says which record it is: a case by its code, a visit as one.
    let alerts = browser.get("/console/alerts");
    assert!(alerts.body.contains("<td>CASE</td>"), "{}", alerts.body);
    assert!(alerts.body.contains("<td>Visite</td>"), "{}", alerts.body);
    let theirs = [
        THEIR_CHILD.to_string(),
        f.their_case.to_string(),
        f.their_visit.to_string(),
    ];
    let mut pages = vec![
        "/console/".to_string(),
        "/console/review".to_string(),
        "/console/alerts".to_string(),
        "/console/cases".to_string(),
        "/console/cases?q=mariam".to_string(),
        "/console/cases?q=ouattara".to_string(),
        "/console/cases?list=due".to_string(),
        "/console/cases?list=overdue".to_string(),
        "/console/map?from=2026-01-01&until=2027-01-01".to_string(),
        "/console/quarantine".to_string(),
    ];
    for table in [
        "workplaces",
        "visits",
        "child_cases",
        "referrals",
        "follow_ups",
        "erasures",
    ] {
        for format in ["csv", "json", "excel"] {
            pages.push(format!(
                "/console/exports/download?table={table}&format={format}&personal=1"
            ));
        }
    }
    for path in &pages {
        let page = browser.get(path);
        assert_eq!(page.status, 200, "{path}");
        for secret in &theirs {
            assert!(
                !page.body.contains(secret.as_str()),
                "{path} shows {secret}"
            );
        }
    }
    // Their records do not open, as if they did not exist.
    assert_eq!(
        browser
            .get(&format!("/console/cases/{}", f.their_case))
            .status,
        404
    );
    assert_eq!(
        browser
            .get(&format!("/console/cases/{}/file.json", f.their_case))
            .status,
        404
    );
    assert_eq!(
        browser
            .get(&format!("/console/visits/{}", f.their_visit))
            .status,
        404
    );
    // Nor can they be changed.
    let overview = browser.get("/console/");
    let csrf = overview.csrf();
    let refused = browser.post(
        &format!("/console/visits/{}", f.their_visit),
        &[("csrf", &csrf), ("action", "validate")],
    );
    assert_eq!(refused.status, 404);
    // Their own records are there, the search ignoring accents and case.
    let found = browser.get("/console/cases?q=traore");
    assert!(
        found.body.contains(&f.my_case.to_string()),
        "the search finds the case"
    );
    // The page's own form searches by POST (a name typed stays out of the address, the
    // history and a proxy's log), live or whole, and keeps no history of result pages.
    let cases = browser.get("/console/cases");
    assert!(
        cases
            .body
            .contains(r#"<form method="post" action="/console/cases" class="filters""#)
            && cases.body.contains(r#"hx-post="/console/cases""#)
            && !cases.body.contains("hx-push-url")
            && cases.body.contains(r#""historyEnabled": false"#),
        "{}",
        cases.body
    );
    let csrf = cases.csrf();
    let posted = browser.post("/console/cases", &[("csrf", &csrf), ("q", "traore")]);
    assert_eq!(posted.status, 200);
    assert!(posted.body.contains(&f.my_case.to_string()));
    assert!(!posted.body.contains(&f.their_case.to_string()));
    let forged = browser.post("/console/cases", &[("csrf", "forged"), ("q", "traore")]);
    assert_eq!(forged.status, 403);
    assert!(!forged.body.contains(&f.my_case.to_string()));
    let review = browser.get("/console/review");
    assert!(review.body.contains(&f.my_visit.to_string()));
    // The queue words a visit's urgency as the alerts page does: forced-labour indicators where
    // children work are forced labour where children work (a worst form), not only
    // "indicators", nor a child's "worst form suspected", which the children's figures count.
    let place = f.mine.store.create(&workplace(area(C01), "Champ")).unwrap();
    let mut bonded = visit(area(C01), place.id, f.mine.user(), 6);
    bonded.workforce.male.age_12_14 = 2;
    bonded
        .forced_labour
        .insert(ForcedLabourIndicator::DebtBondage, String::new());
    let bonded = f.mine.store.create(&bonded).unwrap().id;
    f.mine.sync(&s.hub.url).unwrap();
    let review = browser.get("/console/review");
    let row = review
        .body
        .split(&format!("data-visit=\"{bonded}\""))
        .nth(1)
        .and_then(|rest| rest.split("</tr>").next())
        .expect("the visit's row");
    let alerts = browser.get("/console/alerts");
    let badge_before = |page: &str, marker: &str| -> String {
        let before = page.split(marker).next().unwrap_or_default();
        let start = before.rfind("<span class=\"badge").expect("a badge");
        before[start..]
            .split("</span>")
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let in_alerts = badge_before(&alerts.body, &format!("/console/visits/{bonded}\""));
    assert!(
        in_alerts.contains("Travail forcé où travaillent des enfants"),
        "{in_alerts}"
    );
    assert!(row.contains(&in_alerts), "{row}\n{in_alerts}");
    // The two children under 15 it counted have no case: the row and the visit's page say so.
    assert!(row.contains("2 enfants sans cas"), "{row}");
    let page = browser.get(&format!("/console/visits/{bonded}"));
    assert!(
        page.body
            .contains("2 enfants de moins de 15 ans comptés au travail qu&#39;aucun cas"),
        "{}",
        page.body
    );
    let export = browser.get("/console/exports/download?table=child_cases&format=csv&personal=1");
    assert!(export.body.contains(MY_CHILD));
    // For Excel in French: the same rows, UTF-8 marked, cells apart by `;`.
    let excel = browser.get("/console/exports/download?table=child_cases&format=excel&personal=1");
    assert_eq!(excel.status, 200);
    assert!(excel.body.starts_with('\u{feff}'), "{}", excel.body);
    assert!(excel.body.contains(MY_CHILD));
    assert!(excel.body.lines().next().unwrap().contains("id;"));
    let pseudonymised = browser.get("/console/exports/download?table=child_cases&format=csv");
    assert!(pseudonymised.body.contains(&f.my_case.to_string()));
    // A download manager's HEAD is told what the file is; no export is made nor journaled.
    let mut desk = admin_signed_in(&s, "admin.head");
    let exports_journaled = |desk: &mut Browser| {
        desk.get("/console/audit")
            .body
            .matches("Cas d&#39;enfants, CSV</td>")
            .count()
    };
    let before = exports_journaled(&mut desk);
    assert!(before >= 1, "the GET above is journaled");
    let head = browser.head("/console/exports/download?table=child_cases&format=csv");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("text/csv; charset=utf-8"));
    assert!(head.body.is_empty());
    assert_eq!(exports_journaled(&mut desk), before);
    assert!(
        !pseudonymised.body.contains(MY_CHILD),
        "no name without personal data"
    );
    let _ = &f.theirs;
}

/// The merge form answers for a case of another region as for one that is not there: it read
/// the duplicate before any look at the supervisor's areas, and told that one was already
/// merged elsewhere.
#[test]
fn a_merge_with_a_case_of_another_region_says_what_a_missing_case_says() {
    let s = setup();
    let mut f = field(&s);
    // Their region's supervisor merges a second registration of their child.
    let dir = tempfile::tempdir().expect("temporary directory");
    let r2 = foreign_area();
    let mut their_supervisor = Device::enrol(
        dir.path(),
        &s.data,
        "superviseur-r2",
        Role::Supervisor,
        &[r2.region.as_str()],
        3,
    );
    let again = f
        .theirs
        .store
        .create(&child(r2.clone(), THEIR_CHILD, f.theirs.user()))
        .expect("case");
    f.theirs.sync(&s.hub.url).expect("sync");
    their_supervisor.sync(&s.hub.url).expect("sync");
    their_supervisor
        .store
        .merge_cases(f.their_case, again.id)
        .expect("merged");
    let summary = their_supervisor.sync(&s.hub.url).expect("sync");
    assert!(summary.refused.is_empty(), "{:?}", summary.refused);

    let mut browser = signed_in(&s, "sup.merge");
    let merge = format!("/console/cases/{}/merge", f.my_case);
    let answer = |browser: &mut Browser, duplicate: &str| {
        let csrf = browser.get(&format!("/console/cases/{}", f.my_case)).csrf();
        let page = browser.post(&merge, &[("csrf", &csrf), ("duplicate", duplicate)]);
        (page.status, page.body.contains("Ce doublon n"))
    };
    let missing = answer(&mut browser, &Uuid::now_v7().to_string());
    assert!(missing.1, "a missing case is said so");
    for theirs in [again.id, f.their_case] {
        assert_eq!(answer(&mut browser, &theirs.to_string()), missing);
    }
    // Nor by its code.
    let csrf = browser.get(&format!("/console/cases/{}", f.my_case)).csrf();
    let page = browser.post(&merge, &[("csrf", &csrf), ("code", "CI-D1-0001")]);
    assert!(page.body.contains("Ce doublon n"));
    let history = browser.get(&format!("/console/cases/{}", f.my_case));
    assert!(!history.body.contains("Doublon fusionné"));
}

/// A child registered in two communities (where they live and where they work) is no
/// candidate of either: the supervisor merges the other registration by its code.
#[test]
fn a_duplicate_of_another_community_is_merged_by_its_code() {
    let s = setup();
    let mut f = field(&s);
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut next_door = Device::enrol(
        dir.path(),
        &s.data,
        "moniteur-c02",
        Role::CommunityMonitor,
        &[C02],
        4,
    );
    let mut again = child(area(C02), MY_CHILD, next_door.user());
    again.case_code = "CI-R1-D1-C02-000077".into();
    let again = next_door.store.create(&again).expect("case");
    // A birth certificate, which stays with this registration.
    let certificate = next_door
        .store
        .add_attachment(
            again.id,
            &NewAttachment {
                kind: AttachmentKind::Document,
                media_type: "application/pdf".into(),
                caption: "Acte de naissance".into(),
            },
            &b"%PDF-1.4\n%%EOF"[..],
        )
        .expect("attachment");
    let summary = next_door.sync(&s.hub.url).expect("sync");
    assert!(summary.refused.is_empty(), "{:?}", summary.refused);

    let mut browser = signed_in(&s, "sup.code");
    let page = browser.get(&format!("/console/cases/{}", f.my_case));
    assert!(page.body.contains("id=\"merge-by-code\""));
    let csrf = page.csrf();
    let merge = format!("/console/cases/{}/merge", f.my_case);
    let asked = browser.post(
        &merge,
        &[("csrf", &csrf), ("code", " ci-r1-d1-c02-000077 ")],
    );
    assert_eq!(asked.status, 200, "{}", asked.body);
    let done = confirm_merge(&mut browser, &merge, &asked);
    assert_eq!(done.status, 303, "{}", done.body);
    let merged = browser.get(&format!("/console/cases/{}", again.id));
    assert!(
        merged.body.contains(&f.my_case.to_string()),
        "names the case kept"
    );
    // Work goes on the case kept: the duplicate's page offers no referral or follow-up (a
    // referral there was refused as if the case's status forbade it).
    assert!(!merged.body.contains("referral-form"), "{}", merged.body);
    assert!(!merged.body.contains("follow-up-form"), "{}", merged.body);
    // The case kept shows the file of the registration merged into it.
    let kept_page = browser.get(&format!("/console/cases/{}", f.my_case));
    let link = format!(
        "/console/records/{}/attachments/{}",
        again.id, certificate.id
    );
    assert!(kept_page.body.contains(&link), "{}", kept_page.body);
    f.mine.sync(&s.hub.url).expect("sync");
    let kept: ChildCase = f.mine.store.get(f.my_case).expect("kept");
    assert!(kept.merged_from.contains(&again.id));
    // The monitor next door, offline, records a worst form on the registration at hand: her
    // phone never holds the case kept (another community), and the hub brings it over.
    let mut late: ChildCase = next_door.store.get(again.id).expect("duplicate");
    late.worst_forms.insert(WorstForm::ForcedLabour);
    next_door.store.update(&late).expect("edit");
    let summary = next_door.sync(&s.hub.url).expect("sync");
    assert!(summary.refused.is_empty(), "{summary:?}");
    f.mine.sync(&s.hub.url).expect("sync");
    let kept: ChildCase = f.mine.store.get(f.my_case).expect("kept");
    assert!(kept.worst_forms.contains(&WorstForm::ForcedLabour));

    // Two cases of one code: the supervisor is told to type the duplicate's id instead.
    let mut twice = vec![];
    for name in ["Awa Koné", "Koné Awa"] {
        let mut c = child(area(C02), name, next_door.user());
        c.case_code = "CI-R1-D1-C02-000088".into();
        twice.push(next_door.store.create(&c).expect("case").id);
    }
    next_door.sync(&s.hub.url).expect("sync");
    let csrf = browser.get(&format!("/console/cases/{}", f.my_case)).csrf();
    let page = browser.post(&merge, &[("csrf", &csrf), ("code", "CI-R1-D1-C02-000088")]);
    assert!(
        page.body.contains("Plusieurs cas portent ce code"),
        "{}",
        page.body
    );
    let csrf = browser.get(&format!("/console/cases/{}", f.my_case)).csrf();
    let asked = browser.post(&merge, &[("csrf", &csrf), ("code", &twice[0].to_string())]);
    let done = confirm_merge(&mut browser, &merge, &asked);
    assert_eq!(done.status, 303, "{}", done.body);
    // The confirmation sent again (a double click, Back then send): done, journaled once.
    let again = confirm_merge(&mut browser, &merge, &asked);
    assert_eq!(again.status, 303, "{}", again.body);
    let journal = admin_signed_in(&s, "admin.merges").get("/console/audit");
    let merged = twice[0].to_string();
    let entries = journal
        .body
        .split("<tr>")
        .filter(|row| row.contains("Fusion de doublons") && row.contains(&merged))
        .count();
    assert_eq!(entries, 1, "{}", journal.body);
}

/// Confirms the merge a confirmation page (`asked`) asks for, with its own form's fields.
fn confirm_merge(
    browser: &mut Browser,
    merge: &str,
    asked: &common::console::Page,
) -> common::console::Page {
    let form = asked
        .body
        .split("id=\"confirm-form\"")
        .nth(1)
        .unwrap_or_else(|| panic!("a confirmation: {}", asked.body));
    let duplicate = hidden(form, "duplicate").expect("the duplicate");
    let csrf = hidden(form, "csrf").expect("a token");
    assert_eq!(hidden(form, "confirm").as_deref(), Some("yes"));
    browser.post(
        merge,
        &[
            ("csrf", &csrf),
            ("duplicate", &duplicate),
            ("confirm", "yes"),
        ],
    )
}

/// A monitor of C01 enrolled as `name` (its keys from `seed`), with a case of `child_name`
/// synced to the hub.
fn monitor_with_a_case(
    s: &Setup,
    dir: &std::path::Path,
    name: &str,
    seed: u8,
    child_name: &str,
) -> (Device, ChildCase) {
    let mut monitor = Device::enrol(dir, &s.data, name, Role::CommunityMonitor, &[C01], seed);
    let case = monitor
        .store
        .create(&child(area(C01), child_name, monitor.user()))
        .expect("case");
    monitor.sync(&s.hub.url).expect("sync");
    (monitor, case)
}

/// A pair merged in opposite directions (the supervisor's phone offline one way, the console
/// the other): each case's page says so and that one more merge settles it, rather than each
/// naming the other as the case it was merged into, a loop with no way out shown.
#[test]
fn a_pair_merged_both_ways_says_one_more_merge_settles_it() {
    let s = setup();
    let f = field(&s);
    let dir = tempfile::tempdir().expect("temporary directory");
    let (_mine, other) = monitor_with_a_case(&s, dir.path(), "moniteur-doublons", 6, "Awa Koné");
    let token = enrol(&s.data, s.supervisor);
    let mut phone = Device::open(
        dir.path(),
        "sup-doublons",
        &token,
        Role::Supervisor,
        &[REGION],
        7,
    );
    phone.sync(&s.hub.url).expect("first sync");
    phone
        .store
        .merge_cases(other.id, f.my_case)
        .expect("merged on the phone");
    let mut browser = signed_in(&s, "sup.deux.sens");
    let page = format!("/console/cases/{}", f.my_case);
    let merge = format!("{page}/merge");
    let csrf = browser.get(&page).csrf();
    let asked = browser.post(
        &merge,
        &[("csrf", &csrf), ("duplicate", &other.id.to_string())],
    );
    let done = confirm_merge(&mut browser, &merge, &asked);
    assert_eq!(done.status, 303, "{}", done.body);
    phone.sync(&s.hub.url).expect("sync");
    for (id, names) in [(f.my_case, other.id), (other.id, f.my_case)] {
        let shown = browser.get(&format!("/console/cases/{id}"));
        let notice = shown
            .body
            .split("id=\"merged-into\"")
            .nth(1)
            .and_then(|rest| rest.split("</p>").next())
            .unwrap_or_else(|| panic!("a notice: {}", shown.body));
        assert!(notice.contains("en sens opposés"), "{notice}");
        assert!(notice.contains("Fusionnez-les encore une fois"), "{notice}");
        assert!(
            notice.contains(&format!("href=\"/console/cases/{names}\"")),
            "{notice}"
        );
    }
    // Merged once more: settled, the duplicate's page names the case kept.
    let csrf = browser.get(&page).csrf();
    let asked = browser.post(
        &merge,
        &[("csrf", &csrf), ("duplicate", &other.id.to_string())],
    );
    let done = confirm_merge(&mut browser, &merge, &asked);
    assert_eq!(done.status, 303, "{}", done.body);
    let theirs = browser.get(&format!("/console/cases/{}", other.id));
    assert!(
        theirs.body.contains("Ce cas a été fusionné dans"),
        "{}",
        theirs.body
    );
    assert!(!theirs.body.contains("en sens opposés"), "{}", theirs.body);
    assert!(!browser.get(&page).body.contains("id=\"merged-into\""));
}

/// A supervisor who made a visit and validated it (a district with no other supervisor): the
/// visit's page says it had no second look, rather than read as reviewed by another.
#[test]
fn a_supervisors_own_visit_validated_by_them_says_it_had_no_second_look() {
    let s = setup();
    let dir = tempfile::tempdir().expect("temporary directory");
    let token = enrol(&s.data, s.supervisor);
    let mut phone = Device::open(
        dir.path(),
        "sup-phone",
        &token,
        Role::Supervisor,
        &[REGION],
        9,
    );
    phone.sync(&s.hub.url).expect("first sync");
    let place = phone
        .store
        .create(&workplace(area(C01), "Plantation Bini"))
        .expect("workplace");
    let mut v = visit(area(C01), place.id, s.supervisor, 2);
    v.kind = VisitKind::LabourInspection;
    let v = phone.store.create(&v).expect("visit");
    assert_eq!(v.status, VisitStatus::Submitted);
    phone
        .store
        .review_visit(v.id, Review::Validate)
        .expect("validated by its own visitor");
    let summary = phone.sync(&s.hub.url).expect("sync");
    assert!(summary.refused.is_empty(), "{summary:?}");
    let mut browser = signed_in(&s, "sup.seule");
    let page = browser.get(&format!("/console/visits/{}", v.id));
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("son propre agent : aucun second regard"),
        "{}",
        page.body
    );
}

#[test]
fn a_visit_validated_in_the_console_is_validated_on_the_phone_after_its_sync() {
    let s = setup();
    let mut f = field(&s);
    let mut browser = signed_in(&s, "sup.review");
    let page = browser.get(&format!("/console/visits/{}", f.my_visit));
    assert_eq!(page.status, 200);
    // A checklist's item by its label, not its code.
    assert!(
        page.body
            .contains("Enfants de moins de l&#39;âge minimum au travail"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("CL01"), "{}", page.body);
    let csrf = page.csrf();
    // Without the token: refused, and nothing changes.
    let forged = browser.post(
        &format!("/console/visits/{}", f.my_visit),
        &[("action", "validate")],
    );
    assert_eq!(forged.status, 403);
    // Returning without a comment: an inline error, nothing changes.
    let bare = browser.post(
        &format!("/console/visits/{}", f.my_visit),
        &[("csrf", &csrf), ("action", "return"), ("comment", "  ")],
    );
    assert_eq!(bare.status, 422);
    f.mine.sync(&s.hub.url).expect("sync");
    let visit: Visit = f.mine.store.get(f.my_visit).expect("visit");
    assert_eq!(visit.status, VisitStatus::Submitted);

    let done = browser.post(
        &format!("/console/visits/{}", f.my_visit),
        &[
            ("csrf", &csrf),
            ("action", "validate"),
            ("comment", "Rapport complet, merci."),
        ],
    );
    assert_eq!(done.status, 303, "{}", done.body);
    // The comment typed with it is the validator's, named as a review's.
    let validated = browser.get(&format!("/console/visits/{}", f.my_visit));
    assert!(validated.body.contains("Rapport complet, merci."));
    assert!(validated.body.contains("Examinée par"));
    assert!(!validated.body.contains("aucun second regard"));
    // Sent again (a second tab, a double tap): refused, and the page says why.
    let again = browser.post(
        &format!("/console/visits/{}", f.my_visit),
        &[("csrf", &csrf), ("action", "validate")],
    );
    assert_eq!(again.status, 422, "{}", again.body);
    assert!(again.body.contains("plus à valider"), "{}", again.body);
    f.mine.sync(&s.hub.url).expect("sync");
    let visit: Visit = f.mine.store.get(f.my_visit).expect("visit");
    assert_eq!(visit.status, VisitStatus::Validated);
    assert_eq!(visit.reviewed_by, Some(s.supervisor));
    assert_eq!(visit.review_comment, "Rapport complet, merci.");
    // Who did it is in the record's history, and the console's audit log has the action.
    let history = f.mine.store.history(f.my_visit).expect("history");
    assert!(
        history
            .iter()
            .any(|h| h.author.is_some_and(|a| a.user == s.supervisor))
    );
    // A return written on a stale page (another supervisor validated it meanwhile): refused,
    // the validation stands, and the comment is shown, not lost.
    let stale = browser.post(
        &format!("/console/visits/{}", f.my_visit),
        &[
            ("csrf", &csrf),
            ("action", "return"),
            ("comment", "Merci de préciser les âges"),
        ],
    );
    assert_eq!(stale.status, 422, "{}", stale.body);
    assert!(
        stale.body.contains("<q>Merci de préciser les âges</q>"),
        "{}",
        stale.body
    );
    assert!(stale.body.contains("plus à valider"), "{}", stale.body);
    f.mine.sync(&s.hub.url).expect("sync");
    let visit: Visit = f.mine.store.get(f.my_visit).expect("visit");
    assert_eq!(visit.status, VisitStatus::Validated);
    assert_eq!(visit.review_comment, "Rapport complet, merci.");
    // Found wrong once validated, it is returned from its page (the page it was read on).
    let validated = browser.get(&format!("/console/visits/{}", f.my_visit));
    assert!(
        validated.body.contains("Renvoyer cette visite validée"),
        "{}",
        validated.body
    );
    let version = hidden(&validated.body, "version").expect("the page's version");
    let returned = browser.post(
        &format!("/console/visits/{}", f.my_visit),
        &[
            ("csrf", &csrf),
            ("version", &version),
            ("back", "visit"),
            ("action", "return"),
            ("comment", "Les âges des enfants manquent."),
        ],
    );
    assert_eq!(returned.status, 303, "{}", returned.body);
    f.mine.sync(&s.hub.url).expect("sync");
    let visit: Visit = f.mine.store.get(f.my_visit).expect("visit");
    assert_eq!(visit.status, VisitStatus::Returned);
    assert_eq!(visit.review_comment, "Les âges des enfants manquent.");
    // A case step, a referral and a follow-up through the console reach the phone too.
    let case_path = format!("/console/cases/{}", f.my_case);
    let case_page = browser.get(&case_path);
    assert_eq!(case_page.status, 200);
    assert!(case_page.body.contains(MY_CHILD));
    let bad = browser.post(
        &format!("{case_path}/referral"),
        &[
            ("csrf", &csrf),
            ("service", "education"),
            ("provider", ""),
            ("date", "2026-05-02"),
        ],
    );
    assert_eq!(bad.status, 422);
    // A referral or a follow-up dated after today is refused with the form's message.
    let future = browser.post(
        &format!("{case_path}/referral"),
        &[
            ("csrf", &csrf),
            ("service", "education"),
            ("provider", "École de Kouamé"),
            ("date", "2099-05-02"),
        ],
    );
    assert_eq!(future.status, 422, "{}", future.body);
    assert!(
        future
            .body
            .contains("Le 02/05/2099 n&#39;est pas encore arrivé"),
        "{}",
        future.body
    );
    let future = browser.post(
        &format!("{case_path}/follow-up"),
        &[
            ("csrf", &csrf),
            ("situation", "in_school"),
            ("date", "2099-05-02"),
            ("next_due", ""),
        ],
    );
    assert_eq!(future.status, 422, "{}", future.body);
    let referred = browser.post(
        &format!("{case_path}/referral"),
        &[
            ("csrf", &csrf),
            ("service", "education"),
            ("provider", "École de Kouamé"),
            ("date", "2026-05-02"),
        ],
    );
    assert_eq!(referred.status, 303, "{}", referred.body);
    f.mine.sync(&s.hub.url).expect("sync");
    let case: ChildCase = f.mine.store.get(f.my_case).expect("case");
    assert_eq!(case.status, CaseStatus::Referred);
    assert_eq!(case.referrals.len(), 1);
}

/// A review is of the visit the supervisor read: one sent from a page opened before the visit
/// was returned, corrected and submitted again is refused, and the page says to read it again.
#[test]
fn a_review_of_a_visit_changed_since_its_page_was_opened_is_refused() {
    let s = setup();
    let mut f = field(&s);
    let mut reader = signed_in(&s, "sup.reader");
    let other = add_user(&s.data, "Superviseure Deux", Role::Supervisor, &["CI-R1"]);
    let mut colleague = Browser::new(&s.hub.url);
    account(&mut colleague, &s.data, other, "sup.colleague", PASSWORD);
    assert_eq!(colleague.sign_in("sup.colleague", PASSWORD).status, 303);
    let path = format!("/console/visits/{}", f.my_visit);
    let stale = reader.get(&path);
    assert_eq!(stale.status, 200);
    let (csrf, seen) = (
        stale.csrf(),
        hidden(&stale.body, "version").expect("a version"),
    );
    let page = colleague.get(&path);
    let returned = colleague.post(
        &path,
        &[
            ("csrf", &page.csrf()),
            ("action", "return"),
            ("comment", "Précisez les âges"),
            ("back", "visit"),
            (
                "version",
                &hidden(&page.body, "version").expect("a version"),
            ),
        ],
    );
    assert_eq!(returned.status, 303, "{}", returned.body);
    // The monitor corrects the findings and submits again.
    f.mine.sync(&s.hub.url).expect("sync");
    let mut visit: Visit = f.mine.store.get(f.my_visit).expect("visit");
    assert_eq!(visit.status, VisitStatus::Returned);
    visit.findings = "Deux enfants de 12 et 13 ans au séchage.".into();
    let visit = f.mine.store.update(&visit).expect("corrected");
    f.mine
        .store
        .submit_visit(visit.id)
        .expect("submitted again");
    f.mine.sync(&s.hub.url).expect("sync");

    let refused = reader.post(
        &path,
        &[
            ("csrf", &csrf),
            ("action", "validate"),
            ("back", "visit"),
            ("version", &seen),
        ],
    );
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains("a changé"), "{}", refused.body);
    f.mine.sync(&s.hub.url).expect("sync");
    let visit: Visit = f.mine.store.get(f.my_visit).expect("visit");
    assert_eq!(visit.status, VisitStatus::Submitted);
    // Read again, it is validated.
    let fresh = reader.get(&path);
    let done = reader.post(
        &path,
        &[
            ("csrf", &csrf),
            ("action", "validate"),
            ("back", "visit"),
            (
                "version",
                &hidden(&fresh.body, "version").expect("a version"),
            ),
        ],
    );
    assert_eq!(done.status, 303, "{}", done.body);
}

/// A referral or follow-up form sent twice (a retry on a slow link, a second tap, Back then
/// send) records one, journaled once; the next form the page gives records another.
#[test]
fn a_referral_or_follow_up_form_sent_twice_records_one() {
    let s = setup();
    let mut f = field(&s);
    let mut browser = signed_in(&s, "sup.twice");
    let case_path = format!("/console/cases/{}", f.my_case);
    let page = browser.get(&case_path);
    assert_eq!(page.status, 200, "{}", page.body);
    let (csrf, entry) = (
        page.csrf(),
        hidden(&page.body, "entry").expect("an entry key"),
    );
    let referral = [
        ("csrf", csrf.as_str()),
        ("entry", entry.as_str()),
        ("service", "education"),
        ("provider", "École de Kouamé"),
        ("date", "2026-05-02"),
    ];
    let follow_up = [
        ("csrf", csrf.as_str()),
        ("entry", entry.as_str()),
        ("situation", "in_school"),
        ("date", "2026-05-03"),
        ("next_due", ""),
        ("notes", "Revu à l'école"),
    ];
    for _ in 0..3 {
        let sent = browser.post(&format!("{case_path}/referral"), &referral);
        assert_eq!(sent.status, 303, "{}", sent.body);
        let sent = browser.post(&format!("{case_path}/follow-up"), &follow_up);
        assert_eq!(sent.status, 303, "{}", sent.body);
    }
    // Sent again corrected (its answer lost, the form changed, sent once more): the correction
    // is not taken for it, and the page says so rather than "recorded".
    let mut corrected = follow_up;
    corrected[2].1 = "at_risk";
    let sent = browser.post(&format!("{case_path}/follow-up"), &corrected);
    assert_eq!(sent.status, 422, "{}", sent.body);
    assert!(sent.body.contains("déjà été enregistré"), "{}", sent.body);
    let mut corrected = referral;
    corrected[3].1 = "Centre social";
    let sent = browser.post(&format!("{case_path}/referral"), &corrected);
    assert_eq!(sent.status, 422, "{}", sent.body);
    f.mine.sync(&s.hub.url).expect("sync");
    let case: ChildCase = f.mine.store.get(f.my_case).expect("case");
    assert_eq!(case.referrals.len(), 1, "{:?}", case.referrals);
    assert_eq!(case.followups.len(), 1, "{:?}", case.followups);
    let journal = admin_signed_in(&s, "admin.twice").get("/console/audit");
    assert_eq!(journal.status, 200);
    for action in ["<td>Orientation</td>", "<td>Suivi</td>"] {
        assert_eq!(journal.body.matches(action).count(), 1, "{}", journal.body);
    }
    // The page after it gives a new key: a second referral is one more.
    let next = browser.get(&case_path);
    let again = hidden(&next.body, "entry").expect("an entry key");
    assert_ne!(again, entry);
    let mut second = referral;
    second[1].1 = &again;
    let sent = browser.post(&format!("{case_path}/referral"), &second);
    assert_eq!(sent.status, 303, "{}", sent.body);
    f.mine.sync(&s.hub.url).expect("sync");
    let case: ChildCase = f.mine.store.get(f.my_case).expect("case");
    assert_eq!(case.referrals.len(), 2, "{:?}", case.referrals);
    // A status step sent twice (a double click) is taken once and said done the second time,
    // not refused as a step from a status to itself.
    let status = [("csrf", csrf.as_str()), ("to", "receiving_services")];
    for _ in 0..2 {
        let sent = browser.post(&format!("{case_path}/status"), &status);
        assert_eq!(sent.status, 303, "{}", sent.body);
    }
    let journal = admin_signed_in(&s, "admin.twice.status").get("/console/audit");
    assert_eq!(
        journal
            .body
            .matches("<td>Bénéficie de services</td>")
            .count(),
        1,
        "{}",
        journal.body
    );
    // A verification sent twice with its day is done; one sent from a page that was open
    // before another supervisor verified it on another day says so: that day stands.
    let today = chrono::Local::now().date_naive();
    let yesterday = today - chrono::Days::new(1);
    for (day, said) in [
        (today, None),
        (today, None),
        (yesterday, Some("vérifié entre-temps")),
    ] {
        let day = day.to_string();
        let sent = browser.post(
            &format!("{case_path}/status"),
            &[
                ("csrf", csrf.as_str()),
                ("to", "withdrawn"),
                ("confirm", "yes"),
                ("date", day.as_str()),
            ],
        );
        match said {
            None => assert_eq!(sent.status, 303, "{}", sent.body),
            Some(said) => assert!(sent.body.contains(said), "{}", sent.body),
        }
    }
    f.mine.sync(&s.hub.url).expect("sync");
    let case: ChildCase = f.mine.store.get(f.my_case).expect("case");
    assert_eq!(case.remediated_on, Some(today));
}

/// A referral made in the console names a provider the directory in force lists, offered by
/// name: one opened after the child was identified is offered, one closed since is not.
#[test]
fn a_referral_names_a_provider_of_the_directory_in_force() {
    let s = setup();
    let dir = tempfile::tempdir().expect("temporary directory");
    let directory = |version: &str, providers: &str| {
        let path = dir.path().join(format!("directory-{version}.json"));
        let services = r#"[{"code": "education", "labels": {"fr": "Éducation"}},
            {"code": "vocational", "labels": {"fr": "Formation"}}]"#;
        std::fs::write(
            &path,
            format!(
                r#"{{"key": "CI", "referral_services": {{"services": {services},
                "providers": [{providers}]}}}}"#
            ),
        )
        .expect("write the directory");
        common::reference::publish(&s.data, &[path.to_str().expect("utf-8 path")])
    };
    let school = r#"{"code": "EPP-AKE", "name": "École primaire d'Aké", "service": "education"}"#;
    let centre = r#"{"code": "CFP-AKE", "name": "Centre de formation d'Aké",
        "service": "vocational", "area": "CI-R1-D1"}"#;
    directory("1", school);
    let mut phone = Device::enrol(
        dir.path(),
        &s.data,
        "moniteur-aké",
        Role::CommunityMonitor,
        &[C01],
        1,
    );
    phone.sync(&s.hub.url).expect("sync");
    let mut c = child(area(C01), MY_CHILD, phone.user());
    c.estimated_age = Some(13);
    let c = phone.store.create(&c).expect("case");
    phone
        .store
        .refer_case(
            c.id,
            Referral {
                service: ServiceKind::Education,
                provider: "EPP-AKE".into(),
                date: chrono::NaiveDate::from_ymd_opt(2026, 5, 2).expect("a day"),
                outcome: String::new(),
            },
        )
        .expect("referred");
    let summary = phone.sync(&s.hub.url).expect("sync");
    assert!(summary.refused.is_empty(), "{:?}", summary.refused);
    // The school closes, the centre opens.
    directory("2", centre);

    let mut browser = signed_in(&s, "sup.directory");
    let path = format!("/console/cases/{}", c.id);
    let page = browser.get(&path);
    assert_eq!(page.status, 200, "{}", page.body);
    // The referral made is shown by its provider's name; the form offers the centre only.
    assert!(
        page.body.contains("École primaire d&#39;Aké"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains(r#"<option value="CFP-AKE">Centre de formation d&#39;Aké ("#),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains(r#"<option value="EPP-AKE""#),
        "{}",
        page.body
    );
    let csrf = page.csrf();
    let refer = |browser: &mut Browser, service: &str, provider: &str| {
        browser.post(
            &format!("{path}/referral"),
            &[
                ("csrf", csrf.as_str()),
                ("service", service),
                ("provider", provider),
                ("date", "2026-06-02"),
            ],
        )
    };
    let closed = refer(&mut browser, "education", "EPP-AKE");
    assert_eq!(closed.status, 422, "{}", closed.body);
    assert!(
        closed.body.contains("Prestataire : ") && closed.body.contains("en vigueur"),
        "{}",
        closed.body
    );
    let opened = refer(&mut browser, "vocational", "CFP-AKE");
    assert_eq!(opened.status, 303, "{}", opened.body);
    phone.sync(&s.hub.url).expect("sync");
    let case: ChildCase = phone.store.get(c.id).expect("case");
    assert_eq!(case.referrals.len(), 2);
}

/// A country's own sector list (published under its code): its workplaces' sectors are named
/// on the console by that list's labels, never shown as their codes.
#[test]
fn a_country_s_own_sectors_are_named_on_the_console() {
    let s = setup();
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("sectors-CI.json");
    let list = serde_json::json!({"key": "CI", "sectors": [
        {"code": "cocoa", "labels": {"fr": "Cacao", "en": "Cocoa"}},
        {"code": "gold_panning", "labels": {"fr": "Orpaillage artisanal", "en": "Artisanal gold mining"}},
    ]});
    std::fs::write(&path, list.to_string()).expect("write the list");
    common::reference::publish(&s.data, &[path.to_str().expect("utf-8 path")]);
    let (mut inspector, _) =
        inspector_with_a_workplace(&s, dir.path(), ("insp.secteurs", 31), "Site");
    let mut mine = workplace(area(C01), "Site d'orpaillage");
    mine.sector = "gold_panning".into();
    let mine = inspector.store.create(&mine).expect("workplace");
    inspector.sync(&s.hub.url).expect("sync");
    let mut browser = signed_in(&s, "sup.secteurs");
    let page = browser.get(&format!("/console/workplaces/{}", mine.id));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Orpaillage artisanal"), "{}", page.body);
    assert!(!page.body.contains("gold_panning"), "{}", page.body);
    assert!(!page.body.contains("gold panning"), "{}", page.body);
}

/// A reference file uploaded on the console and refused names its field as the file spells it
/// (`country_profile.minimum_age`), as the command line does: the officer finds it there; one
/// keyed by no country is said to apply to no record.
#[test]
fn the_reference_page_names_a_field_as_the_file_does_and_a_key_of_no_country() {
    let s = setup();
    let mut desk = admin_signed_in(&s, "admin.fichier");
    let csrf = desk.get("/console/reference").csrf();
    let file = serde_json::json!({"key": "CI", "country_profile": {
        "name": {"fr": "Côte d'Ivoire"}, "minimum_agee": 14, "light_work_min_age": 12,
        "light_work_max_hours": 14, "hazardous_work_age": 18, "long_hours": 43,
        "night_work_is_hazardous": true, "hazardous_work": []}});
    let refused = desk.post_file(
        "/console/reference",
        &[("csrf", &csrf)],
        ("file", "profil.json", file.to_string().as_bytes()),
    );
    // The field missing, named as in the file (it was "country profile minimum age").
    assert!(
        refused.body.contains("country_profile.minimum_age : "),
        "{}",
        refused.body
    );
    // A sector list keyed by the country's name, not its tree's code: published, and said at
    // once to apply to no record, as the command line warns.
    let csrf = desk.get("/console/reference").csrf();
    let list = serde_json::json!({"key": "cote-divoire", "sectors": [
        {"code": "cocoa", "labels": {"fr": "Cacao", "en": "Cocoa"}}]});
    let published = desk.post_file(
        "/console/reference",
        &[("csrf", &csrf)],
        ("file", "secteurs.json", list.to_string().as_bytes()),
    );
    assert!(
        published.body.contains("Publié")
            && published.body.contains("ne s&#39;applique à aucune fiche"),
        "{}",
        published.body
    );
    assert!(published.body.contains("CI ici"), "{}", published.body);
    // Saved by Notepad or Excel: with a byte order mark it publishes; in Latin-1 it is said
    // to be no UTF-8 text (not "choose a file").
    let csrf = desk.get("/console/reference").csrf();
    let mut with_mark = "\u{feff}".as_bytes().to_vec();
    with_mark.extend(list.to_string().as_bytes());
    let published = desk.post_file(
        "/console/reference",
        &[("csrf", &csrf)],
        ("file", "secteurs.json", &with_mark),
    );
    assert!(published.body.contains("Publié"), "{}", published.body);
    let csrf = desk.get("/console/reference").csrf();
    let mut latin1 =
        br#"{"key": "CI", "sectors": [{"code": "cocoa", "labels": {"fr": "Caf"#.to_vec();
    latin1.push(0xe9);
    latin1.extend(br#""}}]}"#);
    let refused = desk.post_file(
        "/console/reference",
        &[("csrf", &csrf)],
        ("file", "secteurs.json", &latin1),
    );
    assert!(
        refused.body.contains("pas du texte UTF-8"),
        "{}",
        refused.body
    );
}

/// A community removed from the tree while records are filed under it: the console still names
/// it as the tree it was captured with did, never by its code.
#[test]
fn a_community_removed_from_the_tree_keeps_its_name_on_the_console() {
    let s = setup();
    let f = field(&s);
    let tree = std::fs::read_to_string(common::reference::SAMPLE_AREAS).expect("the sample tree");
    let mut tree: serde_json::Value = serde_json::from_str(&tree).expect("json");
    let communities = tree["administrative_areas"]["children"][0]["children"][0]["children"]
        .as_array_mut()
        .expect("the district's communities");
    communities.retain(|c| c["code"] != C01);
    // Published on the console: what the tree leaves behind is said there, as the command
    // line says it — the monitor holding the code, the records filed under it.
    let mut desk = admin_signed_in(&s, "admin.decoupage");
    let csrf = desk.get("/console/reference").csrf();
    let published = desk.post_file(
        "/console/reference",
        &[("csrf", &csrf)],
        ("file", "areas-v2.json", tree.to_string().as_bytes()),
    );
    assert_eq!(published.status, 200, "{}", published.body);
    let warnings = published
        .body
        .split("id=\"reference-warnings\"")
        .nth(1)
        .and_then(|rest| rest.split("</ul>").next())
        .expect("warnings");
    assert!(
        warnings.contains(&format!(
            "a la zone {C01}, qu&#39;aucun découpage en vigueur"
        )),
        "{warnings}"
    );
    assert!(
        warnings.contains(&format!(
            "Des fiches sont classées sous {DISTRICT} › {C01}, qu&#39;aucun découpage"
        )) && warnings.contains("Cas d&#39;enfant : "),
        "{warnings}"
    );
    let mut browser = signed_in(&s, "sup.removed");
    for page in [
        "/console/".to_string(),
        format!("/console/cases/{}", f.my_case),
    ] {
        let page = browser.get(&page);
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(
            page.body.contains("Communauté 01 (Soubré)"),
            "{}",
            page.body
        );
        assert!(!page.body.contains(&format!(">{C01}<")), "{}", page.body);
    }
}

#[test]
fn erasure_needs_a_reason_and_the_case_code() {
    let s = setup();
    let mut f = field(&s);
    let mut browser = signed_in(&s, "sup.erase");
    let path = format!("/console/cases/{}", f.my_case);
    let csrf = browser.get(&path).csrf();
    let no_reason = browser.post(&format!("{path}/erase"), &[("csrf", &csrf), ("reason", "")]);
    assert_eq!(no_reason.status, 422);
    // The confirmation is a page of its own (Back from the erasure finds a page, not a
    // form's answer), at its form.
    let asked = browser.post(
        &format!("{path}/erase"),
        &[("csrf", &csrf), ("reason", "entered_in_error")],
    );
    assert_eq!(asked.status, 303, "{}", asked.body);
    let to = asked.location.expect("the confirmation");
    assert_eq!(to, format!("{path}?erase=entered_in_error#erase"));
    let confirm = browser.get(to.split('#').next().unwrap());
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("name=\"confirm\""));
    // A reason not among the form's: the case's page, nothing to confirm.
    let unknown = browser.get(&format!("{path}?erase=whatever"));
    assert_eq!(unknown.status, 200);
    assert!(!unknown.body.contains("name=\"confirm\""));
    // The reason chosen stays chosen at the confirmation, and after a wrong code.
    let chosen = "<option value=\"entered_in_error\" selected>";
    assert!(confirm.body.contains(chosen), "{}", confirm.body);
    assert_eq!(confirm.body.matches(" selected>").count(), 1);
    let wrong = browser.post(
        &format!("{path}/erase"),
        &[
            ("csrf", &csrf),
            ("reason", "entered_in_error"),
            ("confirm", "NOT-THE-CODE"),
        ],
    );
    assert_eq!(wrong.status, 303, "{}", wrong.body);
    let to = wrong.location.expect("the confirmation again");
    assert_eq!(to, format!("{path}?erase=entered_in_error&wrong=1#erase"));
    let wrong = browser.get(to.split('#').next().unwrap());
    assert_eq!(wrong.status, 422);
    assert!(wrong.body.contains("id=\"erase-error\""), "{}", wrong.body);
    assert!(wrong.body.contains(chosen), "{}", wrong.body);
    assert_eq!(browser.get(&path).status, 200, "still there");
    // The confirmed form sent four times at once (a double tap, a retry): one erasure, one
    // entry in the journal.
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let sent: Vec<_> = (0..4)
            .map(|_| {
                let mut copy = Browser::new(&s.hub.url);
                copy.cookies = browser.cookies.clone();
                let (path, csrf) = (&path, &csrf);
                scope.spawn(move || {
                    copy.post(
                        &format!("{path}/erase"),
                        &[
                            ("csrf", csrf),
                            ("reason", "entered_in_error"),
                            ("confirm", "CASE"),
                        ],
                    )
                    .status
                })
            })
            .collect();
        sent.into_iter()
            .map(|h| h.join().expect("a request"))
            .collect()
    });
    // Each sent after it erased finds it gone, which is what was asked: not a page "not
    // found", but the cases' list saying so.
    assert_eq!(statuses, vec![303; 4]);
    assert_eq!(browser.get(&path).status, 404);
    let again = browser.post(
        &format!("{path}/erase"),
        &[
            ("csrf", &csrf),
            ("reason", "entered_in_error"),
            ("confirm", "CASE"),
        ],
    );
    assert_eq!(again.status, 303, "{}", again.body);
    let gone = again.location.expect("the cases' list");
    assert_eq!(gone, "/console/cases?done=erase_gone");
    let gone = browser.get(&gone);
    assert!(
        gone.body
            .contains("id=\"done\">Ce cas n&#39;est plus là : déjà effacé"),
        "{}",
        gone.body
    );
    // Erased: the cases' list the erasure leads to says so.
    let list = browser.get("/console/cases?done=erased");
    assert_eq!(list.status, 200);
    assert!(
        list.body.contains("id=\"done\">Cas effacé."),
        "{}",
        list.body
    );
    f.mine.sync(&s.hub.url).expect("sync");
    assert!(!f.mine.has(f.my_case), "the phone dropped the erased case");
    let mut desk = admin_signed_in(&s, "admin.journal");
    let journal = desk.get("/console/audit");
    assert_eq!(journal.status, 200);
    let case = f.my_case.to_string();
    // One entry changed the case (its pages opened on the way are entries of their own).
    let changes = journal
        .body
        .split("<tr>")
        .filter(|row| row.contains(&case) && !row.contains("Dossier consulté"))
        .count();
    assert_eq!(changes, 1, "{}", journal.body);
    // Its reason as the form said it, not its code.
    assert!(
        journal.body.contains("Saisi par erreur"),
        "{}",
        journal.body
    );
}

/// A copy loaded from earlier exports (an M&E database) learns which children to drop: every
/// export lists the cases erased, those of the exporter's areas when made for someone, dated as
/// the hub erased them; the console's download of the table too.
#[test]
fn exports_list_the_cases_erased_in_the_exporters_areas() {
    let s = setup();
    let f = field(&s);
    let r2 = foreign_area();
    let mine_by = add_user(&s.data, "Superviseure", Role::Supervisor, &["CI-R1"]);
    let theirs_by = add_user(&s.data, "Superviseure R2", Role::Supervisor, &[&r2.region]);
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    common::lifecycle::erase(&s.data, f.my_case, mine_by);
    common::lifecycle::erase(&s.data, f.their_case, theirs_by);
    let export = |by: Option<Uuid>| -> String {
        let out = tempfile::tempdir().expect("temporary directory");
        let by = by.map(|b| b.to_string());
        let mut args = vec!["--out", out.path().to_str().unwrap()];
        if let Some(by) = &by {
            args.extend(["--by", by.as_str()]);
        }
        let done = common::lifecycle::admin(&s.data, &["export"], &args);
        assert!(
            done.status.success(),
            "{}",
            String::from_utf8_lossy(&done.stderr)
        );
        std::fs::read_to_string(out.path().join("erasures.csv")).expect("erasures")
    };
    let (mine, theirs) = (f.my_case.to_string(), f.their_case.to_string());
    let listed = export(Some(mine_by));
    assert!(listed.starts_with("case_id,erased_at\r\n"), "{listed}");
    assert!(
        listed.contains(&mine) && !listed.contains(&theirs),
        "{listed}"
    );
    let whole = export(None);
    assert!(whole.contains(&mine) && whole.contains(&theirs), "{whole}");
    for line in whole.lines().skip(1) {
        let at = line.split(',').nth(1).expect("a date");
        let at = chrono::DateTime::parse_from_rfc3339(at).expect("RFC 3339");
        assert!(at >= before && at <= chrono::Utc::now(), "{line}");
        assert!(line.ends_with('Z'), "in UTC: {line}");
    }

    let mut desk = Browser::new(&s.hub.url);
    account(&mut desk, &s.data, mine_by, "sup.erasures", PASSWORD);
    assert_eq!(desk.sign_in("sup.erasures", PASSWORD).status, 303);
    let page = desk.get("/console/exports/download?table=erasures&format=csv");
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(&mine) && !page.body.contains(&theirs),
        "{}",
        page.body
    );
}

#[test]
fn erasures_and_exports_from_the_command_line_are_journaled() {
    let s = setup();
    let f = field(&s);
    let by = add_user(&s.data, "Superviseure", Role::Supervisor, &["CI-R1"]);
    common::lifecycle::erase(&s.data, f.my_case, by);
    let out = tempfile::tempdir().expect("temporary directory");
    let asked = add_user(&s.data, "Demandeuse Export", Role::Supervisor, &["CI-R1"]);
    let admin = add_user(&s.data, "Administratrice", Role::Administrator, &[]);
    // Personal data is exported for an active supervisor, named in the journal.
    let export_for = |by: Uuid| {
        let by = by.to_string();
        let out = out.path().to_str().unwrap();
        common::lifecycle::admin(
            &s.data,
            &["export"],
            &["--out", out, "--personal", "--by", &by],
        )
    };
    let refused = export_for(admin);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no active supervisor"));
    assert!(export_for(asked).status.success());
    // Made for a supervisor of one region: what they receive, not the other region's records.
    let cases = std::fs::read_to_string(out.path().join("child_cases.csv")).expect("cases");
    assert!(!cases.contains(THEIR_CHILD), "{cases}");
    let visits = std::fs::read_to_string(out.path().join("visits.csv")).expect("visits");
    assert!(visits.contains(&f.my_visit.to_string()), "{visits}");
    assert!(!visits.contains(&f.their_visit.to_string()), "{visits}");
    // Without --by, the whole hub.
    let whole = tempfile::tempdir().expect("temporary directory");
    let all = common::lifecycle::admin(
        &s.data,
        &["export"],
        &["--out", whole.path().to_str().unwrap(), "--personal"],
    );
    assert!(all.status.success());
    let cases = std::fs::read_to_string(whole.path().join("child_cases.csv")).expect("cases");
    assert!(cases.contains(THEIR_CHILD), "{cases}");

    let mut desk = Browser::new(&s.hub.url);
    account(&mut desk, &s.data, admin, "admin.cli", PASSWORD);
    assert_eq!(desk.sign_in("admin.cli", PASSWORD).status, 303);
    let journal = desk.get("/console/audit");
    assert_eq!(journal.status, 200);
    let body = &journal.body;
    assert_eq!(body.matches(&f.my_case.to_string()).count(), 1, "{body}");
    assert!(body.contains("Consentement retiré"), "{body}");
    // As the forms say it, in the page's language.
    assert!(
        body.contains(
            "toutes les tables, dans les zones de cet utilisateur, CSV, avec données \
             personnelles (ligne de commande)"
        ),
        "{body}"
    );
    assert!(
        body.contains(
            "toutes les tables, toutes les zones, CSV, avec données personnelles (ligne de \
             commande)"
        ),
        "{body}"
    );
    assert!(!body.contains("command line"), "{body}");
    assert!(body.contains("Demandeuse Export"), "{body}");
}

/// The monitor of `field` edits their case offline and is moved away: the edit is kept for
/// review. Returns the field and the entry's number.
fn quarantined_edit(s: &Setup) -> (Field, i64) {
    let mut f = field(s);
    let mut case: ChildCase = f.mine.store.get(f.my_case).expect("the case");
    case.notes = "Revu hors ligne.".into();
    f.mine.store.update(&case).expect("edit");
    common::lifecycle::set_areas(&s.data, f.mine.user(), &[C02]);
    let summary = f.mine.sync(&s.hub.url).expect("sync");
    assert_eq!(summary.quarantined, vec![f.my_case]);
    let (_, entries) = common::lifecycle::quarantine_list(&s.data);
    (f, entries[0]["entry"].as_i64().unwrap())
}

/// The audit log's page, as a new administrator signed in as `login` reads it.
fn audit_page(s: &Setup, login: &str) -> String {
    let mut desk = admin_signed_in(s, login);
    let journal = desk.get("/console/audit");
    assert_eq!(journal.status, 200);
    journal.body
}

/// A hub restored from a backup says so in its journal, with the backup's time: the lines
/// written since (reads, exports, decisions) are gone with the rest, and an auditor reading a
/// journal that seems whole learns where it was cut.
#[test]
fn a_hub_restored_from_a_backup_says_so_in_its_journal() {
    if postgres_server().is_some() {
        return; // pg_restore: the database's own tools
    }
    let mut s = setup();
    let copy = tempfile::tempdir().expect("temporary directory");
    backup(&s.data, copy.path());
    s.hub.stop();
    restore_backup(&s.data, copy.path());
    s.hub.restart();
    let journal = audit_page(&s, "admin.restore");
    assert_eq!(
        journal.matches("Hub restauré d&#39;une sauvegarde").count(),
        1,
        "{journal}"
    );
    assert!(journal.contains("sauvegarde faite le"), "{journal}");
    // The journal as JSON lines, for an auditor or a copy kept outside the hub: newest first,
    // by the hub's clock, filtered by action's actor, record or day.
    let lines = admin_lines(&s.data, &["audit"]);
    let restored = lines
        .iter()
        .find(|l| l["action"] == "hub_restored")
        .expect("the restore is in the journal");
    let at = restored["at"].as_str().expect("its time");
    chrono::DateTime::parse_from_rfc3339(at).expect("RFC 3339");
    let seqs: Vec<i64> = lines.iter().map(|l| l["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{seqs:?}");
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).date_naive();
    let later = admin_lines(&s.data, &["audit", "--since", &tomorrow.to_string()]);
    assert!(later.is_empty(), "{later:?}");
    let about = admin_lines(&s.data, &["audit", "--record", &s.supervisor.to_string()]);
    assert!(!about.is_empty());
    assert!(
        about
            .iter()
            .all(|l| l["record"] == s.supervisor.to_string()),
        "{about:?}"
    );
    let signed_in = lines.iter().find(|l| l["action"] == "sign_in").unwrap();
    let by = signed_in["user"].as_str().unwrap();
    let theirs = admin_lines(&s.data, &["audit", "--user", by]);
    assert!(
        theirs.len() >= 2 && theirs.iter().all(|l| l["user"] == by),
        "{theirs:?}"
    );
}

/// A quarantine decision is journaled with the record it settles (entry numbers are given
/// again after a restore; record ids never are).
#[test]
fn a_quarantine_decision_from_the_command_line_names_its_record() {
    let s = setup();
    let (f, number) = quarantined_edit(&s);
    let by = add_user(&s.data, "Superviseure", Role::Supervisor, &["CI-R1"]);
    let out = common::lifecycle::quarantine_accept(&s.data, number, Some(by));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Settled: a second decision says which, and journals nothing.
    let again = common::lifecycle::quarantine_accept(&s.data, number, Some(by));
    assert!(!again.status.success());
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(
        said.contains(&format!(
            "quarantine entry {number} was accepted already (record {})",
            f.my_case
        )),
        "{said}"
    );
    let body = &audit_page(&s, "admin.quarantine");
    assert!(body.contains("Quarantaine acceptée"), "{body}");
    assert_eq!(body.matches(&f.my_case.to_string()).count(), 1, "{body}");

    // The command stopped between the decision and its entry (the entry taken away here): the
    // decision asked again is journaled then, as found, once.
    on_console_tables(
        &s.data,
        "DELETE FROM console_audit WHERE action = 'quarantine_accepted'",
    );
    // Asked again by another supervisor (or by anyone): journaled in the name of who decided.
    let other = add_user(&s.data, "Autre superviseure", Role::Supervisor, &["CI-R1"]);
    for _ in 0..2 {
        let again = common::lifecycle::quarantine_accept(&s.data, number, Some(other));
        assert!(!again.status.success());
    }
    let entries: Vec<_> = admin_lines(&s.data, &["audit", "--record", &f.my_case.to_string()])
        .into_iter()
        .filter(|l| l["action"] == "quarantine_accepted")
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        entries[0]["detail"],
        format!("{number} (found_done_unjournaled) (command line)")
    );
    assert_eq!(entries[0]["user"], by.to_string());
    let body = &audit_page(&s, "admin.quarantine2");
    assert!(body.contains("Trouvé déjà fait"), "{body}");
}

/// A rejection from the command line may name its supervisor, as the console's does: one whose
/// areas do not hold the record is refused, and the audit log names the one who rejected.
#[test]
fn a_quarantine_rejection_from_the_command_line_names_its_supervisor() {
    let s = setup();
    let (_field, number) = quarantined_edit(&s);
    let elsewhere = add_user(&s.data, "Superviseur Sud", Role::Supervisor, &[DISTRICT_2]);
    let out = common::lifecycle::quarantine_review(&s.data, "reject", number, Some(elsewhere));
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("outside the reviewer's areas"), "{said}");
    assert_eq!(common::lifecycle::quarantine_list(&s.data).1.len(), 1);
    let by = add_user(&s.data, "Superviseure Aya", Role::Supervisor, &[DISTRICT]);
    let out = common::lifecycle::quarantine_review(&s.data, "reject", number, Some(by));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(common::lifecycle::quarantine_list(&s.data).1.is_empty());

    let body = audit_page(&s, "admin.rejection");
    let line = body
        .split("<tr")
        .find(|row| row.contains("Quarantaine rejetée"))
        .unwrap_or_else(|| panic!("{body}"));
    assert!(line.contains("Superviseure Aya"), "{line}");
}

/// The conflicts section of a record's page, if it shows one.
fn conflicts_of(body: &str) -> Option<&str> {
    body.split("id=\"conflicts\"")
        .nth(1)
        .and_then(|rest| rest.split("</section>").next())
}

/// An edit of a case, made on one phone.
type CaseEdit<'a> = &'a dyn Fn(&mut ChildCase);

/// A case recorded on phone `a` and synced to both phones, which then edit it offline: `a`
/// with `on_a`, `b` with `on_b`, by the phones' clocks shifted `b_ahead_ms` for `b`. Nothing
/// is sent yet.
fn a_case_edited_on_both(
    (a, b): (&mut Device, &mut Device),
    url: &str,
    (on_a, on_b): (CaseEdit<'_>, CaseEdit<'_>),
    b_ahead_ms: i64,
) -> Uuid {
    let case = a
        .store
        .create(&child(area(C01), MY_CHILD, a.user()))
        .expect("case");
    a.sync(url).expect("sync");
    b.sync(url).expect("sync");
    let mut edited: ChildCase = a.store.get(case.id).expect("case");
    on_a(&mut edited);
    a.store.update(&edited).expect("update");
    let mut edited: ChildCase = b.store.get(case.id).expect("case");
    on_b(&mut edited);
    vigie_core::doc::debug_shift_clock(b_ahead_ms);
    let updated = b.store.update(&edited);
    vigie_core::doc::debug_shift_clock(0);
    updated.expect("update");
    case.id
}

/// A community monitor of C01 named `name` and their two phones, each a device of its own.
fn two_phones_of_one_monitor(s: &Setup, dir: &std::path::Path, name: &str) -> (Device, Device) {
    let a = Device::enrol(dir, &s.data, name, Role::CommunityMonitor, &[C01], 3);
    let token = enrol(&s.data, a.user());
    let b = Device::open(dir, "moniteur-b", &token, Role::CommunityMonitor, &[C01], 4);
    (a, b)
}

/// The values in conflict are listed in the order the hub received them, by its clock: a
/// phone whose date was set a year ahead listed its value last, as if entered most recently,
/// and a supervisor keeping the latest kept the wrong one. Its value is marked as the history
/// marks its change.
#[test]
fn values_in_conflict_are_listed_as_the_hub_received_them() {
    let s = setup();
    let dir = tempfile::tempdir().expect("temporary directory");
    let (mut a, mut b) = two_phones_of_one_monitor(&s, dir.path(), "moniteur-ordre");
    let case = a_case_edited_on_both(
        (&mut a, &mut b),
        &s.hub.url,
        (&|c| c.hours_per_week = 20, &|c| c.hours_per_week = 30),
        365 * 24 * 3600 * 1000,
    );
    // The phone set ahead reaches the hub first.
    b.sync(&s.hub.url).expect("sync");
    a.sync(&s.hub.url).expect("sync");
    let mut browser = signed_in(&s, "sup.ordre");
    let page = browser.get(&format!("/console/cases/{case}"));
    let conflicts = conflicts_of(&page.body).expect("the conflict is shown");
    let first = conflicts.find("30 — ").expect("the value set ahead");
    let then = conflicts.find("20 — ").expect("the value received last");
    assert!(first < then, "{conflicts}");
    assert_eq!(
        conflicts.matches("horloge en avance").count(),
        1,
        "{conflicts}"
    );
}

#[test]
fn a_conflict_resolved_in_the_console_reaches_the_phones() {
    let s = setup();
    let dir = tempfile::tempdir().expect("temporary directory");
    let (mut a, mut b) = two_phones_of_one_monitor(&s, dir.path(), "moniteur-a");
    // Offline, each phone records other hours, and the same activity.
    let edit = |hours| {
        move |c: &mut ChildCase| {
            c.hours_per_week = hours;
            c.activity = "Cueillette".into();
        }
    };
    let case = a_case_edited_on_both((&mut a, &mut b), &s.hub.url, (&edit(20), &edit(30)), 0);
    a.sync(&s.hub.url).expect("sync");
    b.sync(&s.hub.url).expect("sync");

    let mut browser = signed_in(&s, "sup.conflict");
    let path = format!("/console/cases/{case}");
    let page = browser.get(&path);
    // The conflict under the field's label, as the case's values name it; the form keeps the
    // field's path.
    let conflicts = conflicts_of(&page.body).expect("the conflict is shown");
    assert!(
        conflicts.contains("<strong>Heures par semaine</strong>"),
        "{conflicts}"
    );
    assert!(conflicts.contains("value=\"hours_per_week\""));
    // The classification, weighed on every value in conflict, says so until one is kept.
    assert!(
        page.body.contains("la plus grave des valeurs en conflit"),
        "{}",
        page.body
    );
    // Why, in French, and by which rules (20 hours or 30, an 11-year-old's work is child
    // labour: no value in conflict decides more).
    let shown = |label: &str| {
        page.body
            .split(&format!("<dt>{label}</dt><dd>"))
            .nth(1)
            .and_then(|rest| rest.split("</dd>").next())
            .map(str::to_string)
    };
    assert_eq!(
        shown("Motif du classement").as_deref(),
        Some("travaille avant l&#39;âge des travaux légers")
    );
    let rules = shown("Règles appliquées").expect("the rules applied");
    assert!(
        rules.starts_with("profil ") && rules.contains(", version "),
        "{rules}"
    );
    // The history names the fields changed as the page does, each once.
    let history = page
        .body
        .split("id=\"history\"")
        .nth(1)
        .and_then(|rest| rest.split("</table>").next())
        .expect("the history");
    assert!(history.contains("Heures par semaine"), "{history}");
    // Each change by its person and the phone it was made on: one monitor, two phones.
    for phone in [&a, &b] {
        let device = phone.store.device_id().simple().to_string();
        assert!(
            history.contains(&format!("moniteur-a · appareil {}", &device[..8])),
            "{history}"
        );
    }
    for code in ["hours_per_week", "classification", "identified_by", "_"] {
        assert!(!history.contains(code), "{code}: {history}");
    }
    let csrf = page.csrf();
    let bad = browser.post(
        &format!("{path}/resolve"),
        &[
            ("csrf", &csrf),
            ("field", "hours_per_week"),
            ("value", "not json"),
        ],
    );
    assert_eq!(bad.status, 422);
    // The console keeps a value a phone entered: a value typed into the form (a forged post)
    // is refused, and nothing changes.
    for forged in ["25", "99"] {
        let refused = browser.post(
            &format!("{path}/resolve"),
            &[
                ("csrf", &csrf),
                ("field", "hours_per_week"),
                ("value", forged),
            ],
        );
        assert_eq!(refused.status, 422, "{forged}: {}", refused.body);
        assert!(
            refused.body.contains("value=\"hours_per_week\""),
            "the conflict stays"
        );
    }
    // The same activity set on both phones is no conflict to settle: a forged settling of it
    // (which wrote a value no device entered) is refused as one not there.
    assert!(!conflicts.contains("value=\"activity\""), "{conflicts}");
    let invented = browser.post(
        &format!("{path}/resolve"),
        &[
            ("csrf", &csrf),
            ("field", "activity"),
            ("value", "\"Inventé\""),
        ],
    );
    assert_eq!(invented.status, 422, "{}", invented.body);
    let done = browser.post(
        &format!("{path}/resolve"),
        &[
            ("csrf", &csrf),
            ("field", "hours_per_week"),
            ("value", "30"),
        ],
    );
    assert_eq!(done.status, 303, "{}", done.body);
    let settled = browser.get(&path);
    assert!(
        !settled
            .body
            .contains("la plus grave des valeurs en conflit")
    );
    assert!(
        !settled.body.contains("value=\"hours_per_week\""),
        "no conflict left"
    );
    // The settling change is the console's, by its supervisor: no phone's number.
    let history = settled
        .body
        .split("id=\"history\"")
        .nth(1)
        .expect("the history");
    assert!(history.contains("console du hub"), "{history}");
    a.sync(&s.hub.url).expect("sync");
    let on_a: ChildCase = a.store.get(case).expect("case");
    assert_eq!(on_a.hours_per_week, 30);
    assert_eq!(on_a.activity, "Cueillette", "as both phones entered it");
    assert!(a.store.conflicts(case).expect("conflicts").is_empty());
}

#[test]
fn a_quarantine_entry_reviewed_in_another_tab_says_it_was_settled() {
    let s = setup();
    let dir = tempfile::tempdir().expect("temporary directory");
    let (mut monitor, case) =
        monitor_with_a_case(&s, dir.path(), "moniteur-quarantaine", 7, "Fatou Koné");
    // Offline, the monitor edits the case; meanwhile the area is taken away.
    let mut edited: ChildCase = monitor.store.get(case.id).expect("case");
    edited.notes = "Vue au marché le samedi.".into();
    monitor.store.update(&edited).expect("edit");
    common::lifecycle::set_areas(&s.data, monitor.user(), &[C02]);
    let summary = monitor.sync(&s.hub.url).expect("sync");
    assert_eq!(summary.quarantined, vec![case.id], "{summary:?}");

    // Two tabs show the entry; the first accepts it, then the second.
    let mut first = signed_in(&s, "sup.quarantine");
    let page = first.get("/console/quarantine");
    assert_eq!(page.status, 200);
    // The record by its case's code (a case of the supervisor's areas), its fields in words.
    let listed = page
        .body
        .split("id=\"quarantine\"")
        .nth(1)
        .expect("the entries");
    assert!(listed.contains(&case.case_code), "{listed}");
    assert!(
        listed.contains(&format!("href=\"/console/cases/{}\"", case.id)),
        "{listed}"
    );
    assert!(listed.contains("<td>Notes</td>"), "{listed}");
    assert!(!listed.contains("<td>notes</td>"), "{listed}");
    // Its areas by their names, as on every list.
    assert!(
        listed.contains("District de Soubré (exemple) › Communauté 01 (Soubré)"),
        "{listed}"
    );
    assert!(!listed.contains("CI-R1 › "), "{listed}");

    // A supervisor of another region gets, for this entry, the answer of an entry that is not
    // there: nothing tells which numbers are in use elsewhere.
    let other = add_user(
        &s.data,
        "Superviseur Région 2",
        Role::Supervisor,
        &["CI-R2"],
    );
    let mut elsewhere = Browser::new(&s.hub.url);
    account(&mut elsewhere, &s.data, other, "sup.elsewhere", PASSWORD);
    assert_eq!(elsewhere.sign_in("sup.elsewhere", PASSWORD).status, 303);
    let their_csrf = elsewhere.get("/console/quarantine").csrf();
    let entry_there = page
        .body
        .split("action=\"/console/quarantine/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("an entry's form")
        .to_string();
    let answers: Vec<(u16, String)> = [entry_there.as_str(), "987654"]
        .iter()
        .map(|entry| {
            let answer = elsewhere.post(
                &format!("/console/quarantine/{entry}"),
                &[("csrf", &their_csrf), ("action", "reject")],
            );
            // Each page carries the session's token masked anew.
            let token = answer.csrf();
            (answer.status, answer.body.replace(&token, "<token>"))
        })
        .collect();
    assert_eq!(answers[0], answers[1]);
    assert!(!answers[0].1.contains(&case.case_code));
    let entry = page
        .body
        .split("action=\"/console/quarantine/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("an entry's form")
        .to_string();
    let csrf = page.csrf();
    let mut second = Browser::new(&s.hub.url);
    second.cookies = first.cookies.clone();
    let form = format!("/console/quarantine/{entry}");
    let done = first.post(&form, &[("csrf", &csrf), ("action", "accept")]);
    assert_eq!(done.status, 303, "{}", done.body);
    for action in ["accept", "reject"] {
        let stale = second.post(&form, &[("csrf", &csrf), ("action", action)]);
        assert_eq!(stale.status, 422, "{}", stale.body);
        assert!(
            stale.body.contains("id=\"quarantine-error\""),
            "{}",
            stale.body
        );
        assert!(
            stale.body.contains("a pu être réglée entre-temps"),
            "{}",
            stale.body
        );
    }
}

/// What a phone recorded of a workplace, a visit and a case is on their pages: a workplace's
/// buyers, suppliers, contact, notes and history; the workplace a visit was made at, and what
/// the visitor noted of each forced-labour indicator; a case's attachments, and its history
/// naming them in words.
#[test]
fn the_pages_show_what_the_phone_recorded() {
    let s = setup();
    let mut f = field(&s);
    let mut place = workplace(area(C01), "Coopérative Ébène");
    place.buyers = ["Négoce Abidjan".to_string(), "Coop, Soubré".to_string()]
        .into_iter()
        .collect();
    place.suppliers = (0..150).map(|i| format!("Planteur {i:03}")).collect();
    place.owner_contact = "+225 07 00 00 00".into();
    place.notes = "Séchoir couvert depuis mars.".into();
    let place = f.mine.store.create(&place).expect("workplace");
    let mut v = visit(area(C01), place.id, f.mine.user(), 4);
    v.forced_labour.insert(
        ForcedLabourIndicator::ALL[0],
        "Papiers gardés par le gérant".into(),
    );
    let v = f.mine.store.create(&v).expect("visit");
    let mut bytes = b"%PDF-1.4\n".to_vec();
    bytes.resize(3 * 1024, b' ');
    f.mine
        .store
        .add_attachment(
            f.my_case,
            &NewAttachment {
                kind: AttachmentKind::Document,
                media_type: "application/pdf".into(),
                caption: "Consentement du tuteur".into(),
            },
            &bytes[..],
        )
        .expect("attachment");
    let photo = f
        .mine
        .store
        .add_attachment(
            place.id,
            &NewAttachment {
                kind: AttachmentKind::Photo,
                media_type: "image/png".into(),
                caption: "Séchoir".into(),
            },
            &PNG_PIXEL[..],
        )
        .expect("photo");
    let summary = f.mine.sync(&s.hub.url).expect("sync");
    assert!(summary.refused.is_empty(), "{:?}", summary.refused);
    let mut browser = signed_in(&s, "sup.pages");

    let page = browser.get(&format!("/console/workplaces/{}", place.id));
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(&format!(
            "src=\"/console/records/{}/attachments/{}\"",
            place.id, photo.id
        )),
        "{}",
        page.body
    );
    // One name a line: a buyer with a comma reads as one.
    assert!(
        page.body.contains("<dd>Coop, Soubré\nNégoce Abidjan</dd>"),
        "{}",
        page.body
    );
    for said in [
        "Négoce Abidjan",
        "Planteur 099",
        "(+50)",
        "+225 07 00 00 00",
        "Séchoir couvert depuis mars.",
        "Informel",
        "id=\"history\"",
    ] {
        assert!(page.body.contains(said), "{said}: {}", page.body);
    }
    assert!(!page.body.contains("Planteur 100"), "{}", page.body);

    let page = browser.get(&format!("/console/visits/{}", v.id));
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains(&format!("href=\"/console/workplaces/{}\"", place.id)),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("Papiers gardés par le gérant"),
        "{}",
        page.body
    );

    let page = browser.get(&format!("/console/cases/{}", f.my_case));
    assert_eq!(page.status, 200);
    let listed = page
        .body
        .split("id=\"attachments\"")
        .nth(1)
        .expect("the case's attachments");
    assert!(listed.contains("Consentement du tuteur"), "{listed}");
    assert!(listed.contains("3 Ko"), "{listed}");
    let history = page.body.split("id=\"history\"").nth(1).expect("history");
    assert!(history.contains("Pièces jointes"), "{history}");
    assert!(!history.contains("$attachment"), "{history}");
}

/// A record edited hundreds of times shows its latest changes and says how many earlier ones
/// it leaves out: a page of thousands of rows took seconds to make, and held a console worker.
#[test]
fn a_long_history_shows_its_latest_changes_and_counts_the_rest() {
    let s = setup();
    let mut f = field(&s);
    let mut case: ChildCase = f.mine.store.get(f.my_case).expect("case");
    for hours in 0..210 {
        case.hours_per_week = hours % 40 + 1;
        case = f.mine.store.update(&case).expect("edit");
    }
    f.mine.sync(&s.hub.url).expect("sync");
    let mut browser = signed_in(&s, "sup.history");
    let page = browser.get(&format!("/console/cases/{}", f.my_case));
    assert_eq!(page.status, 200);
    let history = page.body.split("id=\"history\"").nth(1).expect("history");
    let rows = history.split("</table>").next().unwrap_or_default();
    assert_eq!(
        rows.matches("<tr><td class=\"date\">").count(),
        200,
        "{rows}"
    );
    let total = f.mine.store.history(f.my_case).unwrap().len();
    assert!(
        history.contains(&format!("{} modifications plus anciennes", total - 200)),
        "{history}"
    );
}

/// A 1×1 picture, as a phone's camera might hand one over.
const PNG_PIXEL: [u8; 69] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0x00,
    0x00, 0x03, 0x01, 0x01, 0x00, 0xc9, 0xfe, 0x92, 0xef, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

/// A supervisor sees the files attached to the records of their areas: a photo as a picture
/// on the case's page, a voice note as a player, a document to download; each file exactly as
/// the phone holds it, sandboxed, and its reading in the audit log. A file the hub has not
/// received yet says so; another region's file, or an id the record does not name, is not
/// found.
#[test]
fn a_supervisor_opens_the_files_of_their_areas_records() {
    let s = setup();
    let mut f = field(&s);
    let attach = |device: &mut Device, record: Uuid, kind, media_type: &str, bytes: &[u8]| {
        device
            .store
            .add_attachment(
                record,
                &NewAttachment {
                    kind,
                    media_type: media_type.into(),
                    caption: "Pièce du dossier".into(),
                },
                bytes,
            )
            .expect("attachment")
    };
    let mut pdf = b"%PDF-1.4\n".to_vec();
    pdf.resize(300 * 1024, b'%');
    let photo = attach(
        &mut f.mine,
        f.my_case,
        AttachmentKind::Photo,
        "image/png",
        &PNG_PIXEL,
    );
    let document = attach(
        &mut f.mine,
        f.my_case,
        AttachmentKind::Document,
        "application/pdf",
        &pdf,
    );
    let voice = attach(
        &mut f.mine,
        f.my_case,
        AttachmentKind::VoiceNote,
        "audio/ogg",
        b"OggS\0\x02 a voice note",
    );
    let theirs = attach(
        &mut f.theirs,
        f.their_case,
        AttachmentKind::Document,
        "application/pdf",
        &pdf,
    );
    for device in [&mut f.mine, &mut f.theirs] {
        let summary = device.sync(&s.hub.url).expect("sync");
        assert!(summary.refused.is_empty(), "{:?}", summary.refused);
    }
    let url = |record: Uuid, id: Uuid| format!("/console/records/{record}/attachments/{id}");
    let mut browser = signed_in(&s, "sup.files");

    // The records are at the hub, their files not yet.
    let waiting = browser.get(&url(f.my_case, document.id));
    assert_eq!(waiting.status, 404);
    assert!(waiting.body.contains("pas encore reçu"), "{}", waiting.body);

    for device in [&mut f.mine, &mut f.theirs] {
        let sent = device
            .client(&s.hub.url)
            .sync_attachments(&mut device.store, &Default::default(), |_| {})
            .expect("upload");
        assert!(sent.failed.is_empty(), "{sent:?}");
    }
    let page = browser.get(&format!("/console/cases/{}", f.my_case));
    let listed = page
        .body
        .split("id=\"attachments\"")
        .nth(1)
        .expect("listed");
    assert!(
        listed.contains(&format!(
            "<img class=\"attachment\" src=\"{}\"",
            url(f.my_case, photo.id)
        )),
        "{listed}"
    );
    assert!(
        listed.contains(&format!(
            "<audio controls preload=\"none\" src=\"{}\"",
            url(f.my_case, voice.id)
        )),
        "{listed}"
    );
    assert!(
        listed.contains(&format!(
            "<a href=\"{}\">Télécharger</a>",
            url(f.my_case, document.id)
        )),
        "{listed}"
    );

    // A photo is stored as the phone re-encoded it (a JPEG).
    for (entry, disposition) in [
        (&photo, "inline"),
        (&voice, "inline"),
        (&document, "attachment;"),
    ] {
        let file = browser.get(&url(f.my_case, entry.id));
        assert_eq!(file.status, 200, "{}", file.body);
        assert_eq!(file.header("content-type"), Some(entry.media_type.as_str()));
        assert!(
            file.header("content-disposition")
                .is_some_and(|d| d.starts_with(disposition)),
            "{:?}",
            file.headers
        );
        let policy = file.header("content-security-policy").unwrap_or_default();
        assert!(policy.contains("sandbox"), "{policy}");
        assert_eq!(file.header("cache-control"), Some("no-store"));
        assert_eq!(file.bytes, f.mine.store.read_attachment(entry.id).unwrap());
    }

    // Another region's file, with its record's id or with one of this region's records.
    for path in [
        url(f.their_case, theirs.id),
        url(f.my_case, theirs.id),
        url(f.my_visit, photo.id),
    ] {
        let refused = browser.get(&path);
        assert_eq!(refused.status, 404, "{path}");
        assert!(!refused.bytes.starts_with(b"%PDF"), "{path}");
    }

    let journal = audit_page(&s, "admin.files");
    assert_eq!(
        journal.matches("Pièce jointe consultée").count(),
        3,
        "{journal}"
    );
}

#[test]
fn hazards_worst_forms_and_cases_without_a_workplace_are_shown_in_words() {
    let s = setup();
    let mut f = field(&s);
    let mut c = child(area(C01), "Koffi Yao", f.mine.user());
    c.hazards = ["dangerous_machinery", "heavy_loads"]
        .into_iter()
        .map(String::from)
        .collect();
    let c = f.mine.store.create(&c).expect("case");
    // A second child, found at a workplace: what the supervisor must act on is on the page
    // (which worst form: trafficking calls the police), and the workplace is one click away.
    let place = f
        .mine
        .store
        .create(&workplace(area(C01), "Carrière Yao-Ébène"))
        .expect("workplace");
    let mut found = child(area(C01), "Awa Yao", f.mine.user());
    found.workplace_id = Some(place.id);
    found.worst_forms = [
        WorstForm::SlaveryOrTrafficking,
        WorstForm::SexualExploitation,
    ]
    .into_iter()
    .collect();
    found.night_work = true;
    found.tasks = ["concassage".to_string()].into_iter().collect();
    found.household = "Ménage Yao, Daloa".into();
    let found = f.mine.store.create(&found).expect("case");
    let summary = f.mine.sync(&s.hub.url).expect("sync");
    assert!(summary.refused.is_empty(), "{:?}", summary.refused);
    let mut browser = signed_in(&s, "sup.words");
    let path = format!("/console/cases/{}", c.id);
    for (lang, machinery, loads, no_workplace) in [
        (
            "fr",
            "Machines ou outils dangereux",
            "Port de charges lourdes",
            "Sans lieu de travail connu",
        ),
        (
            "en",
            "Dangerous machinery, equipment or tools",
            "Carrying heavy loads",
            "No known workplace",
        ),
    ] {
        browser.cookies.insert("vigie_lang".into(), lang.into());
        let page = browser.get(&path);
        assert_eq!(page.status, 200);
        // Days as the page's readers write them.
        let day = match lang {
            "fr" => c.identified_on.format("%d/%m/%Y").to_string(),
            _ => c.identified_on.format("%d %b %Y").to_string(),
        };
        assert!(page.body.contains(&day), "{lang}: {day}");
        // The case's values (its history names the fields changed, codes included).
        let values = page
            .body
            .split("id=\"case-values\"")
            .nth(1)
            .and_then(|rest| rest.split("</dl>").next())
            .expect("the case's values");
        assert!(values.contains(machinery), "{lang}: {values}");
        assert!(values.contains(loads), "{lang}: {values}");
        assert!(!values.contains("dangerous_machinery"), "{lang}: {values}");
        assert!(!values.contains("heavy_loads"), "{lang}: {values}");
        let found_page = browser.get(&format!("/console/cases/{}", found.id));
        let values = found_page
            .body
            .split("id=\"case-values\"")
            .nth(1)
            .and_then(|rest| rest.split("</dl>").next())
            .expect("the case's values");
        let (trafficking, exploitation, night) = match lang {
            "fr" => (
                "Esclavage ou traite",
                "Exploitation sexuelle",
                "Travail de nuit",
            ),
            _ => (
                "Slavery or trafficking",
                "Sexual exploitation",
                "Night work",
            ),
        };
        for shown in [
            trafficking,
            exploitation,
            night,
            "concassage",
            "Ménage Yao, Daloa",
        ] {
            assert!(values.contains(shown), "{lang}: {shown}: {values}");
        }
        assert!(
            !values.contains("slavery_or_trafficking"),
            "{lang}: {values}"
        );
        assert!(
            values.contains(&format!(
                "<a href=\"/console/workplaces/{}\">Carrière Yao-Ébène</a>",
                place.id
            )),
            "{lang}: {values}"
        );
        // The overview's breakdown by sector: the case without a workplace in words.
        let overview = browser.get("/console/");
        assert_eq!(overview.status, 200);
        assert!(
            overview.body.contains(no_workplace),
            "{lang}: {}",
            overview.body
        );
        assert!(!overview.body.contains(">unknown<"), "{lang}");
    }
    // A refused form shows the child's file again: read, as an opening is.
    let csrf = browser.get(&path).csrf();
    let refused = browser.post(
        &format!("{path}/referral"),
        &[("csrf", &csrf), ("service", "nope"), ("date", "2026-05-02")],
    );
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("Koffi Yao"));
    // What the supervisor typed is in the form again, to be corrected rather than retyped.
    // A form, the fields posted, and what its answer shows again.
    type Refused<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);
    let forms: [Refused; 2] = [
        (
            "referral",
            &[
                ("service", "health"),
                ("provider", "Centre de santé de Buyo"),
                ("date", "2099-01-15"),
            ],
            &[
                "value=\"health\" selected",
                "value=\"Centre de santé de Buyo\"",
                "value=\"2099-01-15\"",
            ],
        ),
        (
            "follow-up",
            &[
                ("situation", "still_working"),
                ("date", "2026-05-04"),
                ("next_due", "2026-05-01"),
                ("notes", "Travaille encore au champ"),
            ],
            &[
                "value=\"still_working\" selected",
                "value=\"2026-05-04\"",
                "value=\"2026-05-01\"",
                "value=\"Travaille encore au champ\"",
            ],
        ),
    ];
    for (form, fields, shown) in forms {
        let csrf = browser.get(&path).csrf();
        let mut posted = vec![("csrf", csrf.as_str())];
        posted.extend_from_slice(fields);
        let refused = browser.post(&format!("{path}/{form}"), &posted);
        assert_eq!(refused.status, 422, "{form}");
        for typed in shown {
            assert!(refused.body.contains(typed), "{typed}: {}", refused.body);
        }
    }
    // Who read a child's file is in the audit log, as what they did is.
    let journal = audit_page(&s, "admin.words");
    let viewed = journal
        .split("<tr>")
        .filter(|row| row.contains("Dossier consulté"))
        .count();
    assert_eq!(
        viewed, 10,
        "two cases, each opened in two languages, one opened again three times and shown after three refused forms: {journal}"
    );
    // So is who read a workplace's page (its owner's name and contact).
    assert_eq!(
        browser
            .get(&format!("/console/workplaces/{}", place.id))
            .status,
        200
    );
    let journal = audit_page(&s, "admin.places");
    let row = journal
        .split("<tr>")
        .find(|row| row.contains("Lieu de travail consulté"))
        .expect("the workplace's opening in the journal");
    assert!(row.contains(&place.id.to_string()), "{row}");
    assert!(!row.contains("Carrière"), "{row}");
}

/// The overview shared beyond the team: a count withheld is not given away by the total and
/// the counts beside it, in the tables nor by a bar's height.
#[test]
fn a_shared_overview_gives_no_withheld_count_away() {
    let s = setup();
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut monitor = Device::enrol(
        dir.path(),
        &s.data,
        "moniteur-r1",
        Role::CommunityMonitor,
        &[C01],
        1,
    );
    for i in 0..8 {
        let mut c = child(area(C01), &format!("Enfant {i}"), monitor.user());
        if i >= 6 {
            c.sex = Sex::Male;
        }
        monitor.store.create(&c).expect("case");
    }
    let summary = monitor.sync(&s.hub.url).expect("sync");
    assert!(summary.refused.is_empty(), "{:?}", summary.refused);
    let mut browser = signed_in(&s, "sup.shared");
    browser.cookies.insert("vigie_lang".into(), "en".into());
    let row = |body: &str, label: &str| -> String {
        body.split(&format!("<th scope=\"row\">{label}</th>"))
            .nth(1)
            .and_then(|rest| rest.split("</tr>").next())
            .unwrap_or_else(|| panic!("a row {label}: {body}"))
            .to_string()
    };
    let exact = browser.get("/console/");
    assert_eq!(exact.status, 200);
    assert!(row(&exact.body, "Girl").starts_with("<td class=\"num\">6</td>"));
    assert!(row(&exact.body, "Boy").starts_with("<td class=\"num\">2</td>"));

    let shared = browser.get("/console/?shared=1");
    assert_eq!(shared.status, 200);
    // Eight children: the boys withheld, and the girls with them (8 less 6 is 2).
    assert!(row(&shared.body, "Boy").starts_with("<td class=\"num\">x</td>"));
    assert!(row(&shared.body, "Girl").starts_with("<td class=\"num\">x</td>"));
    assert!(!shared.body.contains(": 6</title>"), "a bar's title");
    assert!(!shared.body.contains(": 2</title>"), "a bar's title");
    assert!(!shared.body.contains("<5"));
}

#[test]
fn administration_on_the_command_line_is_journaled() {
    let s = setup();
    let run = |args: &[&str]| {
        let out = common::surface::admin(&s.data, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let user = add_user(&s.data, "Moniteur Journal", Role::CommunityMonitor, &[C01]);
    let id = user.to_string();
    run(&["user", "areas", "--user", &id, "--area", C02]);
    run(&["user", "role", "--user", &id, "--role", "inspector"]);
    let token = run(&["device", "enrol", "--user", &id]);
    let device = vigie_server::auth::Token::parse(&token).unwrap().device;
    run(&["device", "reissue", "--device", &device.to_string()]);
    run(&["device", "revoke", "--device", &device.to_string()]);
    run(&["user", "deactivate", "--user", &id]);
    // Areas given a deactivated user are kept for a reactivation, which the command says.
    let said = common::surface::admin(&s.data, &["user", "areas", "--user", &id, "--area", C01]);
    let said =
        String::from_utf8_lossy(&said.stderr).to_string() + &String::from_utf8_lossy(&said.stdout);
    assert!(said.contains("the user is deactivated"), "{said}");
    assert!(
        !said.contains("hold their new scope at their next sync"),
        "{said}"
    );
    run(&["user", "reactivate", "--user", &id]);
    run(&["reference", "publish", common::reference::SAMPLE_AREAS]);
    // An erasure of an id the hub holds nothing under: refused as nothing erased, and the
    // tombstone it places is journaled all the same.
    let eraser = add_user(&s.data, "Superviseure", Role::Supervisor, &[REGION]);
    let tombstone = Uuid::now_v7().to_string();
    let out = common::surface::admin(
        &s.data,
        &[
            "erase",
            "--record",
            &tombstone,
            "--by",
            &eraser.to_string(),
            "--reason",
            "legal_request",
        ],
    );
    assert!(!out.status.success());
    // A bundle a phone carried in, and a backup (the embedded hub's: PostgreSQL has pg_dump).
    let dir = s.data.parent().unwrap();
    let mut monitor = Device::enrol(dir, &s.data, "carrier", Role::CommunityMonitor, &[C01], 9);
    monitor.sync(&s.hub.url).unwrap();
    monitor
        .store
        .create(&child(area(C01), "Awa Koné", monitor.user()))
        .unwrap();
    let (bundle, _) = monitor
        .store
        .export_bundle(0, &[], &[vigie_core::sync::Recipient::Hub])
        .unwrap();
    let file = dir.join("carried.vigie");
    std::fs::write(&file, bundle).unwrap();
    run(&["bundle", "import", file.to_str().unwrap()]);
    let embedded = common::postgres_server().is_none();
    if embedded {
        run(&["backup", "--out", dir.join("backup").to_str().unwrap()]);
    }

    let mut desk = admin_signed_in(&s, "admin.cli");
    let journal = desk.get("/console/audit");
    assert_eq!(journal.status, 200);
    let body = &journal.body;
    for action in [
        "Utilisateur créé",
        "Zones changées",
        "Rôle changé",
        "Appareil enrôlé",
        "Nouveau jeton",
        "Appareil révoqué",
        "Utilisateur désactivé",
        "Utilisateur réactivé",
        "Référentiel publié",
        "Lien de connexion créé",
        "Identifiant effacé sans dossier sur le hub",
        "Demande légale (ligne de commande)",
        "Inspecteur du travail (ligne de commande)",
        "Découpage administratif CI, version",
        "Fichier d&#39;un appareil importé",
    ]
    .into_iter()
    .chain(embedded.then_some("Sauvegarde du hub"))
    {
        assert!(body.contains(action), "{action}: {body}");
    }
    assert!(body.contains(&tombstone), "{body}");
    // Said apart from an erasure: nothing was erased.
    assert!(!body.contains("Cas effacé"), "{body}");
    // Ids and actions, never a name.
    assert!(
        body.contains(&id) && body.contains(&device.to_string()),
        "{body}"
    );
    assert!(!body.contains("Moniteur Journal"), "{body}");
    assert!(body.contains("ligne de commande"), "{body}");
    assert!(!body.contains("command line"), "{body}");
}

/// A `vigie_session` cookie planted for `/console/` (a page of the same host on another port,
/// over plain HTTP: cookies are not kept apart by port) is sent before the hub's, set for
/// `/console`: the supervisor's session is still found, and the sign-in page clears both
/// when neither opens one.
#[test]
fn a_planted_session_cookie_does_not_lock_the_supervisor_out() {
    let s = setup();
    let mut browser = signed_in(&s, "sup.planted");
    let real = browser.cookies["vigie_session"].clone();
    let planted = "planted0123456789abcdefghijklmnopqrstuv";
    // The browser sends the cookie of the longer path first.
    browser.cookies.insert(
        "vigie_session".into(),
        format!("{planted}; vigie_session={real}"),
    );
    let page = browser.get("/console/cases");
    assert_eq!(page.status, 200, "{:?}", page.location);
    let csrf = page.csrf();
    // Signing out ends the real session, not the planted one.
    let out = browser.post("/console/signout", &[("csrf", &csrf)]);
    assert_eq!(out.status, 303);
    let mut after = Browser::new(&s.hub.url);
    after.cookies.insert("vigie_session".into(), real.clone());
    assert_eq!(after.get("/console/cases").status, 303, "signed out");

    // Neither opens a session: the sign-in page expires the name at every path it sees.
    let mut stuck = Browser::new(&s.hub.url);
    stuck.cookies.insert(
        "vigie_session".into(),
        format!("{planted}; vigie_session={real}"),
    );
    let form = stuck.get("/console/signin");
    assert_eq!(form.status, 200);
    for path in ["/", "/console", "/console/"] {
        assert!(
            form.set_cookies
                .iter()
                .any(|c| c.starts_with("vigie_session=;")
                    && c.contains(&format!("Path={path};"))
                    && c.contains("Max-Age=0")),
            "{path}: {:?}",
            form.set_cookies
        );
    }
    // One cookie alone, or a live session beside it, is left as it is.
    let mut single = Browser::new(&s.hub.url);
    single
        .cookies
        .insert("vigie_session".into(), planted.to_string());
    let form = single.get("/console/signin");
    assert!(
        !form
            .set_cookies
            .iter()
            .any(|c| c.starts_with("vigie_session=")),
        "{:?}",
        form.set_cookies
    );
}

/// A live session of another account planted beside the person's own (an insider's cookie,
/// set for a longer path by a page of the same host on another port): the browser is never
/// signed in as the planter; both sessions end, and the person signs in again as themselves.
#[test]
fn a_live_session_planted_beside_ones_own_signs_the_browser_out_not_in_as_the_planter() {
    let s = setup();
    let planter_user = add_user(&s.data, "Superviseur Initié", Role::Supervisor, &[C02]);
    let mut planter = Browser::new(&s.hub.url);
    account(&mut planter, &s.data, planter_user, "sup.planter", PASSWORD);
    assert_eq!(planter.sign_in("sup.planter", PASSWORD).status, 303);
    let planted = planter.cookies["vigie_session"].clone();
    let mut victim = signed_in(&s, "sup.victim");
    let own = victim.cookies["vigie_session"].clone();
    victim.cookies.insert(
        "vigie_session".into(),
        format!("{planted}; vigie_session={own}"),
    );
    let page = victim.get("/console/cases");
    assert_eq!(page.status, 303, "signed out, not in as the planter");
    assert!(!page.body.contains("sup.planter"));
    // Both sessions are over: the planter's own browser is signed out too.
    assert_eq!(planter.get("/console/cases").status, 303);
    let mut alone = Browser::new(&s.hub.url);
    alone.cookies.insert("vigie_session".into(), own);
    assert_eq!(alone.get("/console/cases").status, 303);
    // Signing in again opens the person's own session, the dead planted one beside it.
    victim.cookies.remove("vigie_session");
    assert_eq!(victim.sign_in("sup.victim", PASSWORD).status, 303);
    let fresh = victim.cookies["vigie_session"].clone();
    victim.cookies.insert(
        "vigie_session".into(),
        format!("{planted}; vigie_session={fresh}"),
    );
    assert_eq!(victim.get("/console/cases").status, 200);
}

/// Pages and assets are compressed for a browser that asks, but not an answer that writes
/// back what the request brought beside the page's tokens (BREACH); a page with children's
/// data is still never stored.
#[test]
fn pages_are_compressed_unless_they_reflect_the_request() {
    let s = setup();
    let mut browser = signed_in(&s, "sup.compress");
    browser.extra = vec![("Accept-Encoding".into(), "br, gzip".into())];
    let encoding =
        |page: &common::console::Page| page.header("content-encoding").map(str::to_string);
    for path in [
        "/console/",
        "/console/cases",
        "/console/cases?page=0",
        "/console/assets/htmx.min.js",
        "/console/assets/console.css",
    ] {
        let page = browser.get(path);
        assert_eq!(page.status, 200, "{path}");
        assert!(
            matches!(encoding(&page).as_deref(), Some("br" | "gzip")),
            "{path}: {:?}",
            page.headers
        );
        assert!(
            page.header("vary")
                .is_some_and(|v| v.to_ascii_lowercase().contains("accept-encoding")),
            "{path}"
        );
    }
    let overview = browser.get("/console/");
    assert_eq!(overview.header("cache-control"), Some("no-store"));
    // A period is written back as the page writes dates, not as sent: compressed.
    for path in [
        "/console/?from=2026-01-01&until=2027-01-01",
        "/console/map?from=2026-01-01&until=2027-01-01",
        "/console/map?from=2026-13-01",
        // The daily lists: a fixed choice, never the text sent.
        "/console/cases?list=due",
        "/console/cases?list=overdue",
        "/console/cases?list=x2026zq",
    ] {
        let page = browser.get(path);
        assert!(
            matches!(encoding(&page).as_deref(), Some("br" | "gzip")),
            "{path}: {:?}",
            page.headers
        );
    }
    // A search, the sign-in page's `next`: written back into the page.
    for path in [
        "/console/cases?q=adjoa",
        "/console/signin?next=/console/cases",
    ] {
        let page = browser.get(path);
        assert_eq!(encoding(&page), None, "{path}: {:?}", page.headers);
    }
    // Without Accept-Encoding, nothing is compressed.
    browser.extra = vec![("Accept-Encoding".into(), "identity".into())];
    let plain = browser.get("/console/");
    assert_eq!(encoding(&plain), None);
    assert!(plain.body.contains("<html"));
    // What a period's fields held is not written back when it is no date.
    for path in ["/console/?from=x2026zq&until=", "/console/map?from=x2026zq"] {
        let page = browser.get(path);
        assert_eq!(page.status, 422, "{path}");
        assert!(page.body.contains("<html"), "{path}");
        assert!(!page.body.contains("x2026zq"), "{path}");
    }
}

/// The case search takes a case's code, or its last part, as well as names; it finds no case
/// of another region by its code.
#[test]
fn the_case_search_finds_a_case_by_its_code() {
    let s = setup();
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut mine = Device::enrol(
        dir.path(),
        &s.data,
        "moniteur-codes",
        Role::CommunityMonitor,
        &[C01],
        11,
    );
    let r2 = foreign_area();
    let mut theirs = Device::enrol(
        dir.path(),
        &s.data,
        "moniteur-codes-r2",
        Role::CommunityMonitor,
        &[r2.community.as_str()],
        12,
    );
    let mut ids = vec![];
    for (n, name) in ["Aya Kouamé", "Adjoa Traoré", "Ligne 2 Koné"]
        .iter()
        .enumerate()
    {
        let mut c = child(area(C01), name, mine.user());
        c.case_code = format!("CI-R1-D1-C01-00000{}", n + 4);
        ids.push(mine.store.create(&c).expect("case").id);
    }
    // A programme whose codes hold no number.
    let mut lettered = child(area(C01), "Bintou Sanogo", mine.user());
    lettered.case_code = "CI-SBR-AKAFL".into();
    let lettered = mine.store.create(&lettered).expect("case").id;
    // More cases, listed before those (the search went through the first 500 only).
    let later: Vec<_> = (0..vigie_core::Page::MAX_LIMIT)
        .map(|n| {
            let mut c = child(area(C01), "Enfant Suivant", mine.user());
            c.case_code = format!("CI-R1-D1-C01-{:06}", 100_000 + n);
            c
        })
        .collect();
    mine.store.create_all(&later).expect("cases");
    let mut foreign = child(r2, THEIR_CHILD, theirs.user());
    foreign.case_code = "CI-R2-D1-C01-000009".into();
    let foreign = theirs.store.create(&foreign).expect("case");
    for device in [&mut mine, &mut theirs] {
        let summary = device.sync(&s.hub.url).expect("sync");
        assert!(summary.refused.is_empty(), "{:?}", summary.refused);
    }
    let mut browser = signed_in(&s, "sup.codes");
    let cases = browser.get("/console/cases");
    assert!(cases.body.contains("Nom ou code"), "the box says it");
    for typed in [
        "CI-R1-D1-C01-000004",
        "ci-r1-d1-c01-000004",
        "000004",
        "C01-000004",
        "4",
        // Arabic-Indic and full-width digits, as some keyboards type them (URL-encoded).
        "%D9%A4",
        "%D9%A0%D9%A0%D9%A0%D9%A0%D9%A0%D9%A4",
        "%EF%BC%94",
    ] {
        let page = browser.get(&format!("/console/cases?q={typed}"));
        assert_eq!(page.status, 200);
        assert!(page.body.contains(&ids[0].to_string()), "{typed}");
        assert!(!page.body.contains(&ids[1].to_string()), "{typed}");
    }
    // Not a part's middle, nor another region's case.
    for typed in ["C01-00004", "D1-C01", "CI-R2-D1-C01-000009", "000009"] {
        let page = browser.get(&format!("/console/cases?q={typed}"));
        assert!(!page.body.contains(&ids[0].to_string()), "{typed}");
        assert!(!page.body.contains(&foreign.id.to_string()), "{typed}");
        assert!(!page.body.contains(THEIR_CHILD), "{typed}");
    }
    // Names are found as before, with a number among their words too.
    let page = browser.get("/console/cases?q=traore");
    assert!(page.body.contains(&ids[1].to_string()));
    for typed in ["ligne", "Ligne+2", "ligne+2+kone", "2+Kon%C3%A9"] {
        let page = browser.get(&format!("/console/cases?q={typed}"));
        assert!(page.body.contains(&ids[2].to_string()), "{typed}");
        assert!(!page.body.contains(&ids[0].to_string()), "{typed}");
    }
    // A number finds the case of that code, and names with a word it begins.
    let page = browser.get("/console/cases?q=6");
    assert!(page.body.contains(&ids[2].to_string()));
    let page = browser.get("/console/cases?q=Ligne+3");
    assert!(!page.body.contains(&ids[2].to_string()));
    // A name with its code's last part: that case.
    for typed in ["Adjoa+000005", "traore+5", "C01-000005+Adjoa"] {
        let page = browser.get(&format!("/console/cases?q={typed}"));
        assert!(page.body.contains(&ids[1].to_string()), "{typed}");
        assert!(!page.body.contains(&ids[0].to_string()), "{typed}");
    }
    // A code without a number, whole or by its last parts.
    for typed in ["CI-SBR-AKAFL", "sbr-akafl", "AKAFL"] {
        let page = browser.get(&format!("/console/cases?q={typed}"));
        assert!(page.body.contains(&lettered.to_string()), "{typed}");
        assert!(!page.body.contains(&ids[0].to_string()), "{typed}");
    }
}

/// The overview's age bands are in age order and its other tables in the page's alphabetical
/// order, not their codes'; a chart's labels are whole.
#[test]
fn the_overview_sorts_rows_as_a_person_reads_them() {
    let s = setup();
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut monitor = Device::enrol(
        dir.path(),
        &s.data,
        "moniteur-ages",
        Role::CommunityMonitor,
        &[C01],
        13,
    );
    for (age, name) in [(10, "Aya Kouamé"), (13, "Adjoa Traoré"), (16, "Fatou Koné")] {
        let mut c = child(area(C01), name, monitor.user());
        c.estimated_age = Some(age);
        monitor.store.create(&c).expect("case");
    }
    // Two indicators whose codes and French labels sort the other way round.
    let w = workplace(area(C01), "Plantation");
    let mut v = visit(area(C01), w.id, monitor.user(), 3);
    for indicator in [
        ForcedLabourIndicator::Deception,
        ForcedLabourIndicator::RetentionOfIdentityDocuments,
    ] {
        v.forced_labour.insert(indicator, String::new());
    }
    monitor.store.create(&v).expect("visit");
    let summary = monitor.sync(&s.hub.url).expect("sync");
    assert!(summary.refused.is_empty(), "{:?}", summary.refused);
    let mut browser = signed_in(&s, "sup.ages");
    let page = browser.get("/console/");
    assert_eq!(page.status, 200);
    let cell = |label: &str| {
        page.body
            .find(&format!("<th scope=\"row\">{label}</th>"))
            .or_else(|| page.body.find(&format!("<td>{label}</td>")))
            .unwrap_or_else(|| panic!("a row {label}: {}", page.body))
    };
    let (under_12, from_12, from_15) = (
        cell("Moins de 12 ans"),
        cell("12-14 ans"),
        cell("15-17 ans"),
    );
    assert!(under_12 < from_12 && from_12 < from_15, "{}", page.body);
    // The chart's axis: "Moins de 12 ans" whole, not "Moins de 12 an".
    assert!(
        page.body.contains(">Moins de 12 ans</tspan>"),
        "{}",
        page.body
    );
    assert!(
        cell("Confiscation des papiers d&#39;identité") < cell("Tromperie"),
        "{}",
        page.body
    );
    // Areas by the names of the area tree, not their codes.
    cell("District de Soubré (exemple)");
    cell("Communauté 01 (Soubré)");
    assert!(!page.body.contains(&format!(">{C01}<")), "{}", page.body);
    // So do the lists and a record's page (a French reader was shown codes).
    for path in ["/console/cases", "/console/alerts", "/console/review"] {
        let page = browser.get(path);
        assert_eq!(page.status, 200, "{path}");
        assert!(
            page.body.contains("Communauté 01 (Soubré)"),
            "{path}: {}",
            page.body
        );
        assert!(
            !page.body.contains(&format!(">{C01}<")),
            "{path}: {}",
            page.body
        );
    }
    let place = browser.get(&format!("/console/visits/{}", v.id));
    assert!(
        place
            .body
            .contains("District de Soubré (exemple) › Communauté 01 (Soubré)"),
        "{}",
        place.body
    );
    let _ = &dir;
}

/// A page number past any list's end, up to the largest a number in the address takes, is an
/// empty page of the list, on every paged list and search.
#[test]
fn a_page_number_past_the_end_is_an_empty_page() {
    let s = setup();
    let f = field(&s);
    let mut browser = signed_in(&s, "sup.pages");
    for list in [
        "/console/cases?",
        "/console/cases?list=due&",
        "/console/cases?list=overdue&",
        "/console/cases?q=adjoa&",
        "/console/cases?q=4&",
        "/console/cases?q=Adjoa+1&",
        "/console/review?",
        "/console/alerts?",
    ] {
        for page in ["2147483647", "2147483648", "4294967295"] {
            let path = format!("{list}page={page}");
            let answer = browser.get(&path);
            assert_eq!(answer.status, 200, "{path}: {}", answer.body);
            assert!(!answer.body.contains(&f.my_case.to_string()), "{path}");
            assert!(!answer.body.contains(&f.my_visit.to_string()), "{path}");
        }
    }
    // Beyond a number's range: refused as any unreadable page number.
    let answer = browser.get("/console/cases?page=4294967296");
    assert_eq!(answer.status, 400);
}

/// Every page a form sends back to with a `done=` code says what was done: the review queue,
/// a visit, a case, the cases' list (an erased case), the quarantine, the sign-in page.
#[test]
fn every_page_a_form_sends_back_to_says_what_was_done() {
    let s = setup();
    let f = field(&s);
    let mut browser = signed_in(&s, "sup.done");
    let visit = format!("/console/visits/{}", f.my_visit);
    let case = format!("/console/cases/{}", f.my_case);
    let pages = [
        (
            "/console/review?done=validated".to_string(),
            "Visite validée.",
        ),
        (
            "/console/review?done=returned".to_string(),
            "Visite renvoyée",
        ),
        (format!("{visit}?done=validated"), "Visite validée."),
        (format!("{visit}?done=returned"), "Visite renvoyée"),
        (format!("{case}?done=status"), "Statut du cas mis à jour."),
        (format!("{case}?done=referral"), "Orientation enregistrée."),
        (format!("{case}?done=follow_up"), "Suivi enregistré."),
        (format!("{case}?done=merged"), "Doublon fusionné"),
        (format!("{case}?done=resolved"), "Conflit résolu."),
        ("/console/cases?done=erased".to_string(), "Cas effacé."),
        (
            "/console/quarantine?done=accepted".to_string(),
            "Modifications acceptées.",
        ),
        (
            "/console/quarantine?done=rejected".to_string(),
            "Modifications rejetées.",
        ),
    ];
    for (path, said) in pages {
        let page = browser.get(&path);
        assert_eq!(page.status, 200, "{path}");
        assert!(
            page.body.contains(&format!("id=\"done\">{said}")),
            "{path}: {}",
            page.body
        );
    }
    // An unknown code says nothing.
    let page = browser.get("/console/cases?done=%3Cb%3E");
    assert!(!page.body.contains("id=\"done\""), "{}", page.body);
    let mut out = Browser::new(&s.hub.url);
    for (path, said) in [
        ("/console/signin?done=out", "Vous êtes déconnecté."),
        ("/console/signin?done=welcome", "Mot de passe enregistré."),
    ] {
        let page = out.get(path);
        assert_eq!(page.status, 200, "{path}");
        assert!(page.body.contains(said), "{path}: {}", page.body);
    }
}

/// A conflict between many devices (here one person's three phones): the hint holds for any
/// number, and each value says its device and its second, in the order they were entered.
#[test]
fn a_conflict_between_many_devices_tells_their_values_apart() {
    let s = setup();
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut devices = vec![Device::enrol(
        dir.path(),
        &s.data,
        "moniteur-1",
        Role::CommunityMonitor,
        &[C01],
        21,
    )];
    let user = devices[0].user();
    for n in 2..=3u8 {
        let token = enrol(&s.data, user);
        devices.push(Device::open(
            dir.path(),
            &format!("moniteur-{n}"),
            &token,
            Role::CommunityMonitor,
            &[C01],
            20 + n,
        ));
    }
    let case = devices[0]
        .store
        .create(&child(area(C01), MY_CHILD, user))
        .expect("case");
    for d in devices.iter_mut() {
        d.sync(&s.hub.url).expect("sync");
    }
    for (hours, d) in [20, 30, 40].into_iter().zip(devices.iter_mut()) {
        let mut on: ChildCase = d.store.get(case.id).expect("case");
        on.hours_per_week = hours;
        d.store.update(&on).expect("update");
    }
    for d in devices.iter_mut() {
        d.sync(&s.hub.url).expect("sync");
    }
    let mut browser = signed_in(&s, "sup.devices");
    let page = browser.get(&format!("/console/cases/{}", case.id));
    let section = page
        .body
        .split("<h2>Conflits</h2>")
        .nth(1)
        .and_then(|rest| rest.split("</section>").next())
        .expect("the conflicts");
    assert!(!section.contains("deux"), "{section}");
    assert!(section.contains("appareils différents"), "{section}");
    let values: Vec<&str> = section
        .split("<li>")
        .skip(2)
        .map(|v| v.split('\n').next().unwrap_or(v))
        .collect();
    assert_eq!(values.len(), 3, "{section}");
    let mut labels = Vec::new();
    let mut times = Vec::new();
    for value in &values {
        let device = value
            .split("appareil ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .unwrap_or_else(|| panic!("a device: {value}"));
        assert_eq!(device.len(), 8, "{value}");
        labels.push(device.to_string());
        // To the second: "03/12/2026 16:27:05".
        let time = value.rsplit(", ").next().unwrap_or("").trim();
        assert_eq!(time.len(), 19, "{value}");
        times.push(time.to_string());
    }
    labels.sort();
    labels.dedup();
    assert_eq!(labels.len(), 3, "{values:?}");
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}

/// The hub of `setup` run in this process (the same data and storage), so that the test can
/// hold the console's view as a long page would.
struct InProcessHub {
    hub: std::sync::Arc<vigie_server::http::Hub>,
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    serving: Option<std::thread::JoinHandle<()>>,
}

impl InProcessHub {
    fn start(s: &mut Setup) -> InProcessHub {
        let key = s.hub.key_options();
        s.hub.stop();
        let database = hub_database(&s.data);
        let database = vigie_server::Database::choose(database.as_deref(), &s.data, key).unwrap();
        let hub = std::sync::Arc::new(
            vigie_server::open_hub(&database, vigie_core::sync::HubLimits::default()).unwrap(),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (address_tx, address) = std::sync::mpsc::channel();
        let serving = std::thread::spawn({
            let hub = hub.clone();
            move || {
                let runtime = tokio::runtime::Runtime::new().unwrap();
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                    address_tx.send(listener.local_addr().unwrap()).unwrap();
                    let stopped = async {
                        let _ = stopped.await;
                    };
                    vigie_server::http::serve(listener, hub, stopped)
                        .await
                        .unwrap();
                });
            }
        });
        let url = format!("http://{}", address.recv().unwrap());
        InProcessHub {
            hub,
            url,
            stop: Some(stop),
            serving: Some(serving),
        }
    }
}

impl Drop for InProcessHub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(serving) = self.serving.take() {
            let _ = serving.join();
        }
        self.hub.console.views.close();
    }
}

#[test]
fn a_long_console_read_holds_back_neither_other_pages_nor_devices_syncs() {
    let mut s = setup();
    let dir = tempfile::tempdir().unwrap();
    let mut phone = Device::enrol(
        dir.path(),
        &s.data,
        "Moniteur C01",
        Role::CommunityMonitor,
        &[C01],
        7,
    );
    let cookies = signed_in(&s, "sup").cookies;
    let hub = InProcessHub::start(&mut s);
    let browser = |cookies: &std::collections::BTreeMap<String, String>| {
        let mut browser = Browser::new(&hub.url);
        browser.cookies = cookies.clone();
        browser
    };
    // A page that reads for long (an export of a region's visits), held by the test.
    let long_read = hub
        .hub
        .console
        .views
        .current(hub.hub.backend.as_ref())
        .unwrap();
    // Another supervisor's page is served meanwhile.
    let page = browser(&cookies).get("/console/");
    assert_eq!(page.status, 200, "{}", page.body);
    // Many downloads at once, more than the hub has threads: devices still sync.
    let downloads: Vec<_> = (0..12)
        .map(|i| {
            let mut browser = browser(&cookies);
            std::thread::spawn(move || {
                let table = ["visits", "child_cases", "workplaces"][i % 3];
                browser
                    .get(&format!("/console/exports/download?table={table}"))
                    .status
            })
        })
        .collect();
    phone
        .store
        .create(&workplace(area(C01), "Plantation"))
        .unwrap();
    let summary = phone.sync(&hub.url).expect("the phone syncs");
    assert_eq!(summary.accepted, 1);
    drop(long_read);
    for download in downloads {
        assert_eq!(download.join().unwrap(), 200);
    }
}

/// Two values of one field set at once on two phones: shown on the page of the visit and of the
/// workplace as on a case's, by the name of who set each, and settled there when the
/// supervisor may; a visit's content is its visitor's to settle.
#[test]
fn conflicts_of_visits_and_workplaces_are_shown_and_settled_in_the_console() {
    let s = setup();
    let dir = tempfile::tempdir().expect("temporary directory");
    let (mut a, mut b) = two_phones_of_one_monitor(&s, dir.path(), "Moniteur Aka");
    let mut reviewers: Vec<Device> = ["tablette-1", "tablette-2"]
        .iter()
        .zip([5, 6])
        .map(|(name, key)| {
            let token = enrol(&s.data, s.supervisor);
            Device::open(dir.path(), name, &token, Role::Supervisor, &[REGION], key)
        })
        .collect();
    let w = a
        .store
        .create(&workplace(area(C01), "Plantation Aké"))
        .expect("workplace");
    let submitted = a
        .store
        .create(&visit(area(C01), w.id, a.user(), 3))
        .expect("visit");
    let mut draft = visit(area(C01), w.id, a.user(), 4);
    draft.status = VisitStatus::Draft;
    let draft = a.store.create(&draft).expect("visit");
    a.sync(&s.hub.url).expect("sync");
    b.sync(&s.hub.url).expect("sync");
    for tablet in &mut reviewers {
        tablet.sync(&s.hub.url).expect("sync");
    }
    // Offline, each phone records another owner and another end of the draft visit.
    let ends = ["2026-04-04T11:00:00+00:00", "2026-04-04T12:30:00+00:00"];
    for ((device, owner), end) in [(&mut a, "Kouamé Yao"), (&mut b, "Konan Aya")]
        .into_iter()
        .zip(ends)
    {
        let mut on: Workplace = device.store.get(w.id).expect("workplace");
        on.owner_name = owner.into();
        device.store.update(&on).expect("update");
        let mut on: Visit = device.store.get(draft.id).expect("visit");
        on.ended_at = Some(chrono::DateTime::parse_from_rfc3339(end).unwrap());
        device.store.update(&on).expect("update");
    }
    // Offline, one tablet validates the submitted visit, the other returns it.
    for (tablet, status) in reviewers
        .iter_mut()
        .zip([VisitStatus::Validated, VisitStatus::Returned])
    {
        let mut on: Visit = tablet.store.get(submitted.id).expect("visit");
        on.status = status;
        on.reviewed_by = Some(s.supervisor);
        if status == VisitStatus::Returned {
            on.review_comment = "Photos manquantes".into();
        }
        tablet.store.update(&on).expect("review");
    }
    for device in [&mut a, &mut b].into_iter().chain(reviewers.iter_mut()) {
        device.sync(&s.hub.url).expect("sync");
    }

    let mut browser = signed_in(&s, "sup.conflicts");
    for (path, field, keep) in [
        (
            format!("/console/workplaces/{}", w.id),
            "owner_name",
            "\"Konan Aya\"".to_string(),
        ),
        (
            format!("/console/visits/{}", submitted.id),
            "status",
            "\"returned\"".to_string(),
        ),
    ] {
        let page = browser.get(&path);
        assert_eq!(page.status, 200, "{}", page.body);
        let conflicts =
            conflicts_of(&page.body).unwrap_or_else(|| panic!("the conflict is shown on {path}"));
        assert!(
            conflicts.contains(&format!("value=\"{field}\"")),
            "{conflicts}"
        );
        assert!(
            conflicts.contains("saisie par "),
            "who set it, by name: {conflicts}"
        );
        let csrf = page.csrf();
        let done = browser.post(
            &format!("{path}/resolve"),
            &[("csrf", &csrf), ("field", field), ("value", &keep)],
        );
        assert_eq!(done.status, 303, "{}", done.body);
        let after = browser.get(done.location.as_deref().expect("back to the page"));
        assert!(
            !after.body.contains(&format!("value=\"{field}\"")),
            "no conflict left on {path}"
        );
        assert!(after.body.contains("id=\"done\""), "{path} says it is done");
    }
    // The draft's conflict is shown, by its visitor's name; its content is the visitor's: the
    // supervisor may keep only the value in force, never put the other in its place.
    let page = browser.get(&format!("/console/visits/{}", draft.id));
    let conflicts = conflicts_of(&page.body).expect("the draft's conflict is shown");
    assert!(conflicts.contains("saisie par Moniteur Aka"), "{conflicts}");
    assert_eq!(conflicts.matches("<form").count(), 1, "{conflicts}");
    // Sent all the same, the other value is refused, in the page's language.
    let in_force = hidden(conflicts, "value")
        .expect("the value in force has its form")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"");
    // The other value as the conflict holds it (the form of the one in force, the other time).
    let other = match in_force.contains("11:00") {
        true => in_force.replace("11:00", "12:30"),
        false => in_force.replace("12:30", "11:00"),
    };
    assert_ne!(other, in_force);
    let refused = browser.post(
        &format!("/console/visits/{}/resolve", draft.id),
        &[
            ("csrf", &page.csrf()),
            ("field", "ended_at"),
            ("value", &other),
        ],
    );
    assert_eq!(refused.status, 422);
    let said = refused
        .body
        .split("id=\"conflict-error\">")
        .nth(1)
        .and_then(|rest| rest.split("</p>").next())
        .expect("the refusal is said");
    assert!(
        said.contains("seul l&#39;agent qui a fait la visite peut en modifier le contenu"),
        "{said}"
    );
    assert!(!said.contains("visit&#39;s content"), "{said}");

    a.sync(&s.hub.url).expect("sync");
    let on_a: Workplace = a.store.get(w.id).expect("workplace");
    assert_eq!(on_a.owner_name, "Konan Aya");
    assert!(a.store.conflicts(w.id).expect("conflicts").is_empty());
    let on_a: Visit = a.store.get(submitted.id).expect("visit");
    assert_eq!(on_a.status, VisitStatus::Returned);
    assert!(
        a.store
            .conflicts(submitted.id)
            .expect("conflicts")
            .is_empty()
    );
}

/// A visit's page counts its children as exports do: a case erased since is no child.
#[test]
fn a_visits_page_counts_no_erased_child() {
    let s = setup();
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut monitor = Device::enrol(
        dir.path(),
        &s.data,
        "moniteur-enfants",
        Role::CommunityMonitor,
        &[C01],
        14,
    );
    let w = monitor
        .store
        .create(&workplace(area(C01), "Plantation"))
        .expect("workplace");
    let kept = monitor
        .store
        .create(&child(area(C01), "Aya Kouamé", monitor.user()))
        .expect("case");
    let wrong = monitor
        .store
        .create(&child(area(C01), "Fatou Koné", monitor.user()))
        .expect("case");
    let mut v = visit(area(C01), w.id, monitor.user(), 3);
    v.children_identified = [kept.id, wrong.id].into();
    let v = monitor.store.create(&v).expect("visit");
    // A case opened on the visit names it; the visit's own list need not.
    let mut opened = child(area(C01), "Awa Traoré", monitor.user());
    opened.identified_on_visit = Some(v.id);
    monitor.store.create(&opened).expect("case");
    monitor.sync(&s.hub.url).expect("sync");
    common::lifecycle::erase(&s.data, wrong.id, s.supervisor);
    let mut browser = signed_in(&s, "sup.enfants");
    let page = browser.get(&format!("/console/visits/{}", v.id));
    assert!(
        page.body.contains("<dt>Enfants identifiés</dt><dd>2</dd>"),
        "{}",
        page.body
    );
    // The same figure as the export's.
    let out = tempfile::tempdir().expect("temporary directory");
    let by = s.supervisor.to_string();
    let done = common::lifecycle::admin(
        &s.data,
        &["export"],
        &["--out", out.path().to_str().unwrap(), "--by", &by],
    );
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let visits = std::fs::read_to_string(out.path().join("visits.csv")).expect("visits");
    let mut lines = visits.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let column = header
        .iter()
        .position(|h| *h == "children_identified")
        .expect("the column");
    let row = lines
        .find(|l| l.starts_with(&v.id.to_string()))
        .expect("the visit's row");
    assert_eq!(row.split(',').nth(column), Some("2"), "{visits}");
}

/// A PostgreSQL database out of reach while a supervisor browses: the console's page says so,
/// in French, answered 503 with a time to come back (it was a 500 saying the hub could not
/// handle the request), and pages come back once the database does.
#[test]
fn a_database_out_of_reach_gets_its_own_page() {
    let Some(_) = postgres_server() else {
        return;
    };
    let s = setup();
    let mut browser = signed_in(&s, "superviseure.r1");
    assert_eq!(browser.get("/console/cases").status, 200);
    let url = hub_database(&s.data).unwrap();
    set_reachable(&url, false);
    let page = browser.get("/console/cases");
    set_reachable(&url, true);
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(page.body.contains("base de données"), "{}", page.body);
    assert!(
        page.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("retry-after")),
        "{:?}",
        page.headers
    );
    assert_eq!(browser.get("/console/cases").status, 200);
}

/// Two children merged by a mistyped code left every list for good: a merge, by a code typed or
/// a candidate's button, first shows both children side by side and says it is not undone;
/// nothing is written before the confirmation, whose form carries its token. The duplicate's
/// page then names the case kept by its code and name.
#[test]
fn a_merge_shows_both_children_and_waits_for_its_confirmation() {
    let s = setup();
    let f = field(&s);
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut next_door = Device::enrol(
        dir.path(),
        &s.data,
        "moniteur-c02",
        Role::CommunityMonitor,
        &[C02],
        4,
    );
    let mut other = child(area(C02), "Fatou Bamba", next_door.user());
    other.case_code = "CI-R1-D1-C02-002761".into();
    other.sex = Sex::Male;
    other.estimated_age = None;
    other.date_of_birth = chrono::NaiveDate::from_ymd_opt(2014, 10, 28);
    let other = next_door.store.create(&other).expect("case");
    next_door.sync(&s.hub.url).expect("sync");

    let mut browser = signed_in(&s, "sup.fusion");
    let page = format!("/console/cases/{}", f.my_case);
    let merge = format!("{page}/merge");
    let untouched = |browser: &mut Browser| {
        let theirs = browser.get(&format!("/console/cases/{}", other.id));
        assert!(
            !theirs.body.contains("id=\"merged-into\""),
            "merged unconfirmed"
        );
        let kept = browser.get(&page);
        assert!(!kept.body.contains("Doublon fusionné"), "{}", kept.body);
    };
    // By its code, and as a candidate's button sends it: a confirmation each time.
    for sent in [
        ("code", "CI-R1-D1-C02-002761".to_string()),
        ("duplicate", other.id.to_string()),
    ] {
        let csrf = browser.get(&page).csrf();
        let asked = browser.post(&merge, &[("csrf", &csrf), (sent.0, &sent.1)]);
        assert_eq!(asked.status, 200, "{}", asked.body);
        let compared = asked
            .body
            .split("id=\"merge-compare\"")
            .nth(1)
            .unwrap_or_else(|| panic!("both children side by side: {}", asked.body));
        for said in [
            MY_CHILD,
            "Fatou Bamba",
            "CI-R1-D1-C02-002761",
            "28/10/2014",
            "13 ans (estimé)",
            "Fille",
            "Garçon",
            "Identifié",
        ] {
            assert!(compared.contains(said), "{said}: {compared}");
        }
        assert!(
            asked.body.contains("ne peut pas être annulée"),
            "{}",
            asked.body
        );
        let form = asked
            .body
            .split("id=\"confirm-form\"")
            .nth(1)
            .expect("a form");
        assert!(hidden(form, "csrf").is_some_and(|c| !c.is_empty()));
        untouched(&mut browser);
    }
    // Its confirmation without the page's token is refused, and merges nothing.
    let forged = browser.post(
        &merge,
        &[
            ("csrf", "forged"),
            ("duplicate", &other.id.to_string()),
            ("confirm", "yes"),
        ],
    );
    assert_eq!(forged.status, 403);
    untouched(&mut browser);

    let csrf = browser.get(&page).csrf();
    let asked = browser.post(
        &merge,
        &[("csrf", &csrf), ("duplicate", &other.id.to_string())],
    );
    let done = confirm_merge(&mut browser, &merge, &asked);
    assert_eq!(done.status, 303, "{}", done.body);
    let theirs = browser.get(&format!("/console/cases/{}", other.id));
    let notice = theirs
        .body
        .split("id=\"merged-into\"")
        .nth(1)
        .and_then(|rest| rest.split("</p>").next())
        .unwrap_or_else(|| panic!("the case kept named: {}", theirs.body));
    let kept: ChildCase = f.mine.store.get(f.my_case).expect("kept");
    assert!(
        notice.contains(&format!("href=\"/console/cases/{}\"", f.my_case)),
        "{notice}"
    );
    assert!(notice.contains(&kept.case_code), "{notice}");
    assert!(notice.contains(MY_CHILD), "{notice}");
    assert!(!notice.contains(&format!(">{}<", f.my_case)), "{notice}");
}

/// Withdrawn and prevented count the child in the figures for good: the step asks for the day
/// the child was verified (today at first), checked as the core checks it, and a confirmation;
/// nothing is written before. The referral hint is shown on identified cases only.
#[test]
fn withdrawn_or_prevented_asks_the_verification_day_and_a_confirmation() {
    let s = setup();
    let dir = tempfile::tempdir().expect("temporary directory");
    let case = case_receiving_services(&s, dir.path(), None);
    let mut browser = signed_in(&s, "sup.verifie");
    let page = format!("/console/cases/{case}");
    let shown = browser.get(&page);
    assert!(!shown.body.contains("id=\"refer-hint\""), "{}", shown.body);
    let today = chrono::Utc::now().date_naive();
    for step in ["withdrawn", "prevented"] {
        let csrf = browser.get(&page).csrf();
        let asked = browser.post(&format!("{page}/status"), &[("csrf", &csrf), ("to", step)]);
        assert_eq!(asked.status, 200, "{}", asked.body);
        let form = asked
            .body
            .split("id=\"confirm-form\"")
            .nth(1)
            .expect("a form");
        assert!(
            form.contains(&format!("type=\"date\" name=\"date\" value=\"{today}\"")),
            "{form}"
        );
        assert_eq!(hidden(form, "to").as_deref(), Some(step));
        assert!(hidden(form, "csrf").is_some_and(|c| !c.is_empty()));
        let counted = match step {
            "withdrawn" => "compte l&#39;enfant comme retiré",
            _ => "compte l&#39;enfant comme prévenu",
        };
        assert!(asked.body.contains(counted), "{}", asked.body);
        let case_page = browser.get(&page);
        assert!(
            case_page.body.contains("Bénéficie de services"),
            "written unconfirmed"
        );
    }
    let confirm = |browser: &mut Browser, date: &str| {
        let csrf = browser.get(&page).csrf();
        browser.post(
            &format!("{page}/status"),
            &[
                ("csrf", &csrf),
                ("to", "withdrawn"),
                ("date", date),
                ("confirm", "yes"),
            ],
        )
    };
    // After today, or before the first referral (the day the child was identified): refused on
    // the confirmation, with the date typed kept.
    let tomorrow = (today + chrono::Days::new(1)).to_string();
    let refused = confirm(&mut browser, &tomorrow);
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused.body.contains("id=\"step-error\""),
        "{}",
        refused.body
    );
    assert!(refused.body.contains(&format!("value=\"{tomorrow}\"")));
    let refused = confirm(&mut browser, "2026-03-15");
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("première orientation du cas est datée du 01/04/2026"),
        "{}",
        refused.body
    );
    assert!(browser.get(&page).body.contains("Bénéficie de services"));
    let done = confirm(&mut browser, "2026-05-02");
    assert_eq!(done.status, 303, "{}", done.body);
    let verified = browser.get(&page);
    assert!(
        verified.body.contains("<dd>Retiré</dd>"),
        "{}",
        verified.body
    );
    assert!(
        verified.body.contains("<dd>02/05/2026</dd>"),
        "{}",
        verified.body
    );

    // An identified case says what a referral does.
    let f = field(&s);
    let identified = browser.get(&format!("/console/cases/{}", f.my_case));
    assert!(
        identified.body.contains("id=\"refer-hint\""),
        "{}",
        identified.body
    );
}

/// `n` cases of community C01 on the hub, through a monitor's phone (one sync), each working 50
/// hours a week at 13 (an alert each), their follow-ups due from `due` on, a day apart.
fn cases_on_the_hub(s: &Setup, dir: &std::path::Path, n: usize, due: chrono::NaiveDate) {
    let mut monitor = Device::enrol(
        dir,
        &s.data,
        "moniteur-nombreux",
        Role::CommunityMonitor,
        &[C01],
        21,
    );
    let cases: Vec<ChildCase> = (0..n)
        .map(|i| {
            let mut c = child(area(C01), &format!("Enfant {i:04}"), monitor.user());
            c.estimated_age = Some(13);
            c.hours_per_week = 50;
            // The date a follow-up plans is the case's next due (`follow_up_due` is derived).
            let planned = FollowUp {
                date: identified_on(),
                situation: FollowUpSituation::AtRisk,
                notes: String::new(),
                next_due: Some(due + chrono::Days::new(i as u64)),
            };
            c.followups.insert(Uuid::now_v7(), planned);
            c
        })
        .collect();
    monitor.store.create_all(&cases).expect("cases");
    let summary = monitor.sync(&s.hub.url).expect("sync");
    assert!(summary.refused.is_empty(), "{:?}", summary.refused);
}

/// Counts are written as each language writes them: 1 200 (a narrow no-break space) in French,
/// 1,200 in English, on the overview's figures, tables and charts' scales.
#[test]
fn counts_are_written_as_each_language_writes_them() {
    let s = setup();
    let dir = tempfile::tempdir().expect("temporary directory");
    let today = chrono::Utc::now().date_naive();
    cases_on_the_hub(&s, dir.path(), 1_200, today);
    let mut browser = signed_in(&s, "sup.nombres");
    let overview = browser.get("/console/");
    assert_eq!(overview.status, 200);
    let kpis = overview.body.split("id=\"kpis\"").nth(1).expect("figures");
    assert!(
        kpis.contains("<div class=\"value\">1\u{202F}200</div>"),
        "{kpis}"
    );
    assert!(!overview.body.contains(">1200<"), "a raw count");
    // The charts' tooltips and scales too.
    assert!(
        overview.body.contains(": 1\u{202F}200</title>"),
        "a bar's title"
    );
    browser.get("/console/lang/en");
    let english = browser.get("/console/");
    assert!(
        english.body.contains("<div class=\"value\">1,200</div>"),
        "{}",
        english.body
    );
    assert!(
        english.body.contains("<td class=\"num\">1,200</td>"),
        "a table's cell"
    );
}

/// The review queue, the alerts and the due lists say how many they hold, and the due list
/// marks the follow-ups already late.
#[test]
fn lists_say_how_many_they_hold_and_the_due_list_marks_the_late() {
    let s = setup();
    let dir = tempfile::tempdir().expect("temporary directory");
    let today = chrono::Utc::now().date_naive();
    // 70 cases due from 40 days ago on, a day apart: 40 late, all due within 30 days.
    cases_on_the_hub(&s, dir.path(), 70, today - chrono::Days::new(40));
    let mut monitor = Device::enrol(
        dir.path(),
        &s.data,
        "moniteur-visites",
        Role::CommunityMonitor,
        &[C01],
        22,
    );
    monitor.sync(&s.hub.url).expect("first sync");
    let place = monitor
        .store
        .create(&workplace(area(C01), "Champ"))
        .expect("workplace");
    for day in 1..=55 {
        monitor
            .store
            .create(&visit(area(C01), place.id, monitor.user(), day % 28 + 1))
            .expect("visit");
    }
    monitor.sync(&s.hub.url).expect("sync");

    let mut browser = signed_in(&s, "sup.totaux");
    let total = |page: &common::console::Page| {
        page.body
            .split("id=\"list-total\">")
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .unwrap_or_else(|| panic!("a total: {}", page.body))
            .to_string()
    };
    assert_eq!(total(&browser.get("/console/review")), "50 sur 55");
    assert_eq!(
        total(&browser.get("/console/review?page=1")),
        "51–55 sur 55"
    );
    assert_eq!(total(&browser.get("/console/alerts")), "50 sur 70");
    let due = browser.get("/console/cases?list=due");
    assert_eq!(total(&due), "50 sur 70");
    // The late first (the list runs by date), each marked.
    assert_eq!(
        due.body.matches("en retard</span>").count(),
        40,
        "{}",
        due.body
    );
    let overdue = browser.get("/console/cases?list=overdue");
    assert_eq!(total(&overdue), "Total : 40");
}

/// A visit's page shows what the phone recorded of it: the workforce counted by sex and age,
/// the measures taken, the re-inspection planned, the checklist answered, and each
/// forced-labour indicator with its note on a line of its own. The workplace's page marks its
/// visits that found a breach, so that repeated breaches show.
#[test]
fn a_visit_shows_its_workforce_measures_and_checklist_and_its_workplace_its_breaches() {
    let s = setup();
    let dir = tempfile::tempdir().expect("temporary directory");
    // Warnings and orders are a labour inspector's.
    let (mut inspector, place) =
        inspector_with_a_workplace(&s, dir.path(), ("inspecteur-d1", 23), "Plantation Konan");
    let by = inspector.user();
    let inspection = |day: u32| {
        let mut v = visit(area(C01), place.id, by, day);
        v.kind = VisitKind::LabourInspection;
        v
    };
    let mut v = inspection(5);
    v.workforce.male.under_12 = 2;
    v.workforce.male.age_12_14 = 3;
    v.workforce.female.adults = 1_500;
    v.actions = [VisitAction::Warning, VisitAction::Referral]
        .into_iter()
        .collect();
    v.follow_up_due = chrono::NaiveDate::from_ymd_opt(2026, 5, 20);
    v.checklist = ChecklistAnswers {
        checklist: "child-labour".into(),
        version: 1,
        // Children under age at work (a breach by its "yes"), not at school (a breach by its
        // "no"), their ages recorded (kept).
        answers: [
            ("CL01".to_string(), Answer::Yes),
            ("CL03".to_string(), Answer::No),
            ("CL11".to_string(), Answer::Yes),
        ]
        .into_iter()
        .collect(),
    };
    v.forced_labour.insert(
        ForcedLabourIndicator::ALL[0],
        "Signalé par deux travailleurs.".into(),
    );
    v.forced_labour
        .insert(ForcedLabourIndicator::ALL[1], "Observé sur le site.".into());
    let breached = inspector.store.create(&v).expect("visit");
    // Another breach at the next inspection (an indicator: what a checklist's answer breaches
    // depends on its item's wording).
    let mut again = inspection(9);
    again
        .forced_labour
        .insert(ForcedLabourIndicator::ALL[2], String::new());
    inspector.store.create(&again).expect("visit");
    let clean = inspector.store.create(&inspection(12)).expect("visit");
    let summary = inspector.sync(&s.hub.url).expect("sync");
    assert!(summary.refused.is_empty(), "{:?}", summary.refused);

    let mut browser = signed_in(&s, "sup.visite");
    let page = browser.get(&format!("/console/visits/{}", breached.id));
    assert_eq!(page.status, 200);
    let workforce = page
        .body
        .split("id=\"visit-workforce\"")
        .nth(1)
        .and_then(|rest| rest.split("</table>").next())
        .unwrap_or_else(|| panic!("the workforce: {}", page.body));
    assert!(
        workforce
            .contains("Garçons et hommes</th><td class=\"num\">2</td><td class=\"num\">3</td>"),
        "{workforce}"
    );
    assert!(
        workforce.contains("<td class=\"num\">1\u{202F}500</td>"),
        "{workforce}"
    );
    for said in [
        "Mesures prises</dt><dd>Avertissement; Orientation</dd>",
        "Contre-visite prévue le</dt><dd>20/05/2026</dd>",
        "(version 1)</dd>",
    ] {
        assert!(page.body.contains(said), "{said}: {}", page.body);
    }
    assert!(
        page.body.contains(
            "Points non conformes</dt><dd>Enfants de moins de l&#39;âge minimum au travail : oui\n\
             Enfants inscrits et assidus à l&#39;école : non</dd>"
        ),
        "{}",
        page.body
    );
    let noted = page
        .body
        .split("Indicateurs de travail forcé</dt><dd>")
        .nth(1)
        .and_then(|rest| rest.split("</dd>").next())
        .expect("the indicators");
    assert_eq!(noted.lines().count(), 2, "{noted}");
    assert!(!noted.contains("., "), "{noted}");
    assert!(noted.lines().all(|l| l.ends_with('.')), "{noted}");

    let page = browser.get(&format!("/console/workplaces/{}", place.id));
    assert!(
        page.body.contains("Infractions relevées à 2 visites"),
        "{}",
        page.body
    );
    let row = |id: Uuid| {
        page.body
            .split(&format!("href=\"/console/visits/{id}\""))
            .nth(1)
            .and_then(|rest| rest.split("</tr>").next())
            .unwrap_or_else(|| panic!("the visit's row: {}", page.body))
            .to_string()
    };
    assert!(
        row(breached.id).contains("class=\"badge"),
        "{}",
        row(breached.id)
    );
    assert!(
        !row(clean.id).contains("class=\"badge"),
        "{}",
        row(clean.id)
    );
    assert!(!page.body.contains("id=\"workplace-visits-shown\""));

    // Fifty later inspections that found nothing: the breaches are still counted and their
    // visits listed, beyond the latest fifty, and the page says how many it lists.
    for n in 0..50 {
        inspector
            .store
            .create(&inspection(13 + n % 15))
            .expect("visit");
    }
    let summary = inspector.sync(&s.hub.url).expect("sync");
    assert!(summary.refused.is_empty(), "{:?}", summary.refused);
    let page = browser.get(&format!("/console/workplaces/{}", place.id));
    assert!(
        page.body.contains("Infractions relevées à 2 visites"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("52 de ses 53 visites listées : les plus récentes, et toutes celles"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains(&format!("href=\"/console/visits/{}\"", breached.id))
    );
    assert!(
        !page
            .body
            .contains(&format!("href=\"/console/visits/{}\"", clean.id))
    );
}

/// A form sent after the session ended comes back, after sign-in, to the page it was sent
/// from: the Referer's when it is the hub's own, else the page its address belongs to.
#[test]
fn a_form_sent_after_the_session_ended_names_its_page_without_a_referer() {
    let s = setup();
    let mut browser = signed_in(&s, "sup.retour");
    let csrf = browser.get("/console/cases").csrf();
    browser.cookies.remove("vigie_session");
    let (visit, case) = (Uuid::now_v7(), Uuid::now_v7());
    let sent = browser.post(
        &format!("/console/visits/{visit}"),
        &[
            ("csrf", &csrf),
            ("action", "return"),
            ("comment", "Corriger"),
        ],
    );
    assert_eq!(
        sent.header("location"),
        Some(format!("/console/signin?next=/console/visits/{visit}&done=unsent").as_str())
    );
    // A Referer of another origin is no page of the hub's: the form's own page.
    browser.extra.push((
        "Referer".into(),
        "https://elsewhere.example/console/review".into(),
    ));
    let sent = browser.post(
        &format!("/console/cases/{case}/status"),
        &[("csrf", &csrf), ("to", "withdrawn")],
    );
    assert_eq!(
        sent.header("location"),
        Some(format!("/console/signin?next=/console/cases/{case}&done=unsent").as_str())
    );
    // Signing in then goes back to it.
    browser.extra.clear();
    let next = format!("/console/cases/{case}");
    let form = browser.get(&format!("/console/signin?next={next}"));
    assert_eq!(hidden(&form.body, "next").as_deref(), Some(next.as_str()));
}

/// The overview and the alerts name the areas above communities as the area trees do:
/// districts, not departments.
#[test]
fn districts_are_called_districts_and_counts_agree_with_their_plural() {
    let s = setup();
    let mut f = field(&s);
    let mut browser = signed_in(&s, "sup.mots");
    let overview = browser.get("/console/");
    assert!(overview.body.contains("Par district"), "{}", overview.body);
    assert!(!overview.body.contains("partement"), "{}", overview.body);
    let alerts = browser.get("/console/alerts");
    assert!(alerts.body.contains("<th>District</th>"), "{}", alerts.body);
    let map = browser.get("/console/map?from=2026-01-01&until=2026-12-31");
    assert!(!map.body.contains("visite(s)"), "{}", map.body);
    // French writes 0 and 1 in the singular.
    assert!(
        map.body.contains("0 lieu de travail · 1 visite dessinée"),
        "{}",
        map.body
    );
    // What has no position is said to be on no map, counted.
    let unplaced_place = f
        .mine
        .store
        .create(&workplace(area(C01), "Champ sans position"))
        .unwrap();
    let by = f.mine.user();
    let mut at_it = visit(area(C01), unplaced_place.id, by, 3);
    at_it.status = VisitStatus::Draft;
    f.mine.store.create(&at_it).unwrap();
    f.mine.sync(&s.hub.url).unwrap();
    let map = browser.get("/console/map?from=2026-01-01&until=2026-12-31");
    let unplaced = map
        .body
        .split("id=\"map-unplaced\">")
        .nth(1)
        .and_then(|rest| rest.split("</p>").next())
        .expect("the records with no position are said");
    assert!(
        unplaced.starts_with("Sans position, ni sur la carte")
            && unplaced.contains("1 lieu de travail (de toutes dates), et 1 visite de la période"),
        "{unplaced}"
    );
    // A child in a worst form (no visit there found forced labour) is named as the alerts
    // list names it, in the point's title, the legend and the table: not as a visit's forced
    // labour where children work.
    let mut field_with_a_child = workplace(area(C01), "Champ Brou");
    field_with_a_child.location.point = Some(GeoPoint {
        latitude: 6.81,
        longitude: -5.27,
        accuracy_m: None,
    });
    let placed = f.mine.store.create(&field_with_a_child).unwrap();
    let mut exploited = child(area(C01), "Awa Brou", by);
    exploited.workplace_id = Some(placed.id);
    exploited.worst_forms = [WorstForm::SexualExploitation].into();
    f.mine.store.create(&exploited).unwrap();
    f.mine.sync(&s.hub.url).unwrap();
    let map = browser.get("/console/map?from=2026-01-01&until=2026-12-31");
    assert!(
        map.body.contains("Champ Brou · Pire forme suspectée"),
        "{}",
        map.body
    );
    assert!(
        !map.body.contains("où travaillent des enfants"),
        "{}",
        map.body
    );
}

/// The re-inspections planned at visits are on the review page, the late ones marked, each
/// with its workplace; an inspection or follow-up visit of the workplace takes them off.
#[test]
fn planned_re_inspections_are_listed_until_made() {
    let s = setup();
    let dir = tempfile::tempdir().expect("temporary directory");
    let (mut inspector, place) = inspector_with_a_workplace(
        &s,
        dir.path(),
        ("inspecteur-contre", 24),
        "Plantation Kouassi",
    );
    let today = chrono::Utc::now().date_naive();
    let by = inspector.user();
    let on = |days_ago: u64| {
        let day = today - chrono::Days::new(days_ago);
        let mut v = visit(area(C01), place.id, by, 1);
        v.kind = VisitKind::LabourInspection;
        v.started_at = day
            .and_hms_opt(9, 0, 0)
            .expect("a time")
            .and_utc()
            .fixed_offset();
        v
    };
    let mut warned = on(40);
    warned.actions = [VisitAction::Warning].into_iter().collect();
    warned.follow_up_due = Some(today - chrono::Days::new(5));
    let warned = inspector.store.create(&warned).expect("visit");
    inspector.sync(&s.hub.url).expect("sync");

    let mut browser = signed_in(&s, "sup.contre");
    let reinspections = |browser: &mut Browser| {
        let page = browser.get("/console/review");
        page.body
            .split("id=\"reinspections\"")
            .nth(1)
            .and_then(|rest| rest.split("</section>").next())
            .unwrap_or_else(|| panic!("the re-inspections: {}", page.body))
            .to_string()
    };
    let section = reinspections(&mut browser);
    assert!(
        section.contains(&format!("href=\"/console/visits/{}\"", warned.id)),
        "{section}"
    );
    assert!(section.contains("Plantation Kouassi"), "{section}");
    assert!(
        section.contains("inspecteur-contre"),
        "its visitor: {section}"
    );
    assert!(section.contains("en retard"), "{section}");
    assert!(section.contains("Total : 1"), "{section}");

    // The re-inspection, made and submitted.
    let mut again = on(2);
    again.kind = VisitKind::FollowUp;
    inspector.store.create(&again).expect("visit");
    inspector.sync(&s.hub.url).expect("sync");
    let section = reinspections(&mut browser);
    assert!(
        section.contains("Aucune contre-visite prévue dans les 30 jours."),
        "{section}"
    );
}

/// An inspector of the district, enrolled as `name` (with `seed`) and synced, and a workplace
/// of community C01 recorded on the phone.
fn inspector_with_a_workplace(
    s: &Setup,
    dir: &std::path::Path,
    (name, seed): (&str, u8),
    workplace_name: &str,
) -> (Device, Workplace) {
    let mut inspector = Device::enrol(dir, &s.data, name, Role::Inspector, &[DISTRICT], seed);
    inspector.sync(&s.hub.url).expect("first sync");
    let place = inspector
        .store
        .create(&workplace(area(C01), workplace_name))
        .expect("workplace");
    (inspector, place)
}
