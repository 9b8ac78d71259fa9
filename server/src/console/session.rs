//! Signing in: passwords (Argon2id), one-time invitations, sessions, CSRF tokens and the
//! throttling of failed sign-ins.
//!
//! Secrets given to a browser (a session's cookie, an invitation's link) are 32 random bytes;
//! the hub keeps only their SHA-256, so its storage never holds a usable credential.

use super::storage::{Account, AccountError, ConsoleStorage, Session};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use vigie_core::Error;

/// A session ends after this long without a request.
pub const IDLE_MS: i64 = 30 * 60 * 1000;
/// And this long after sign-in, whatever happens.
pub const ABSOLUTE_MS: i64 = 12 * 60 * 60 * 1000;
/// "Last seen" of a session is written at most this often.
const TOUCH_MS: i64 = 60 * 1000;
/// An invitation link works once, for this long.
pub const INVITE_MS: i64 = 72 * 60 * 60 * 1000;

/// A browser stays known this long after its last sign-in (the cookie's lifetime too).
pub const KNOWN_BROWSER_MS: i64 = 180 * 24 * 60 * 60 * 1000;

/// Failed sign-ins allowed before the wait starts: per account (from unknown browsers), per
/// client address, and per account on one known browser.
const FREE_PER_ACCOUNT: i64 = 5;
const FREE_PER_ADDRESS: i64 = 20;
/// The longest wait for an account, and how long without failure clears a count.
const MAX_WAIT_MS: i64 = 15 * 60 * 1000;
const FAILURES_RESET_MS: i64 = 60 * 60 * 1000;
/// The longest wait for a client address: many people share one behind a proxy or an
/// office's router, so an address slows guessing down without shutting anyone out.
const MAX_ADDRESS_WAIT_MS: i64 = 60 * 1000;

pub const MIN_PASSWORD: usize = 10;

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// 32 random bytes as URL-safe text (no padding).
pub fn secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64url(&bytes)
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 2);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

pub fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// The session's CSRF token as a page carries it: a fresh random mask, then the token's bytes
/// XORed with it, in hex. Each page carries other bytes for the same token, so a compressed page
/// that holds it beside text a field user wrote (a record's notes) says nothing of it through
/// its length (BREACH).
pub fn masked(token: &str) -> String {
    let mut mask = vec![0u8; token.len()];
    rand::rngs::OsRng.fill_bytes(&mut mask);
    let xored: Vec<u8> = token.bytes().zip(&mask).map(|(t, m)| t ^ m).collect();
    mask.iter()
        .chain(&xored)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The token a form carried (`masked`); `None` if it is not one.
pub fn unmasked(carried: &str) -> Option<String> {
    if !carried.is_ascii() || !carried.len().is_multiple_of(4) {
        return None;
    }
    let bytes: Vec<u8> = (0..carried.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&carried[i..i + 2], 16).ok())
        .collect::<Option<_>>()?;
    let (mask, xored) = bytes.split_at(bytes.len() / 2);
    String::from_utf8(xored.iter().zip(mask).map(|(x, m)| x ^ m).collect()).ok()
}

/// Compares two texts in time independent of where they differ.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A pre-sign-in form token (the sign-in and invitation forms) lives this long.
pub const FORM_TOKEN_MS: i64 = 60 * 60 * 1000;
/// A token dated this far ahead is still taken (another hub process's clock).
const FORM_TOKEN_SKEW_MS: i64 = 60 * 1000;

type HmacSha256 = hmac::Hmac<hmac_sha2::Sha256>;

fn form_mac(key: &[u8; 32]) -> HmacSha256 {
    <HmacSha256 as hmac::KeyInit>::new_from_slice(key).expect("HMAC takes any key length")
}

/// The key of the pre-sign-in form tokens, derived from the hub's signing key (`seed`): the
/// same in every hub process of one database and after a restart, so a form opened before
/// either still signs in; known to no browser, so no one but the hub can make a token.
pub fn form_key(seed: &[u8]) -> [u8; 32] {
    let mut mac =
        <HmacSha256 as hmac::KeyInit>::new_from_slice(seed).expect("HMAC takes any key length");
    hmac::Mac::update(&mut mac, b"vigie console form token key v1");
    hmac::Mac::finalize(mac).into_bytes().into()
}

fn form_tag(key: &[u8; 32], issued_ms: i64, nonce: &str) -> String {
    let mut mac = form_mac(key);
    hmac::Mac::update(&mut mac, format!("{issued_ms}.{nonce}").as_bytes());
    base64url(&hmac::Mac::finalize(mac).into_bytes())
}

/// A token for a form shown before sign-in, which its cookie repeats (double submit):
/// `<issued ms>.<32 random bytes>.<HMAC-SHA256 of both under the hub's form key>`. A browser
/// cannot make one: a cookie planted by a page on another port of the same host (cookies are
/// not kept apart by port) with a value of the attacker's choosing is refused.
pub fn form_token(key: &[u8; 32], now_ms: i64) -> String {
    let nonce = secret();
    let tag = form_tag(key, now_ms, &nonce);
    format!("{now_ms}.{nonce}.{tag}")
}

/// Whether `token` is one `form_token` made with `key` less than `FORM_TOKEN_MS` ago.
pub fn form_token_valid(key: &[u8; 32], token: &str, now_ms: i64) -> bool {
    let mut parts = token.split('.');
    let (Some(issued), Some(nonce), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(issued_ms) = issued.parse::<i64>() else {
        return false;
    };
    let age = now_ms.saturating_sub(issued_ms);
    (-FORM_TOKEN_SKEW_MS..=FORM_TOKEN_MS).contains(&age)
        && nonce.len() == 43
        && same(&form_tag(key, issued_ms, nonce), tag)
}

fn argon2() -> Argon2<'static> {
    // OWASP's first recommended setting for Argon2id: 19 MiB, 2 passes, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A password as one form of its characters (NFC): an `é` typed as one character on a
/// phone and as `e` and an accent on another keyboard is one password.
fn composed(password: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    password.nfc().collect()
}

pub fn hash_password(password: &str) -> Result<String, Error> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|_| hash_failure())?;
    argon2()
        .hash_password(composed(password).as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| hash_failure())
}

fn hash_failure() -> Error {
    Error::Io(std::io::Error::other("password hashing failed"))
}

/// Whether `password` matches a stored hash (the hash names its own cost and salt), in either
/// form of its characters: set before passwords were composed (`composed`), a password typed
/// with decomposed accents was hashed as typed.
pub fn verify_password(password: &str, stored: &str) -> bool {
    let Ok(hash) = PasswordHash::new(stored) else {
        return false;
    };
    let matches = |typed: &str| argon2().verify_password(typed.as_bytes(), &hash).is_ok();
    let one_form = composed(password);
    if matches(&one_form) {
        return true;
    }
    // A hash made before: of the password as typed then, composed or not.
    use unicode_normalization::UnicodeNormalization;
    let other_form: String = password.nfd().collect();
    (password != one_form && matches(password)) || (other_form != one_form && matches(&other_form))
}

/// A hash that matches nothing, verified when the sign-in name is unknown so that the answer
/// takes as long as for a real account.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&secret()).unwrap_or_default())
}

/// Creates a one-time invitation for `user`; returns the secret for the link.
pub fn invite(storage: &dyn ConsoleStorage, user: Uuid) -> Result<String, Error> {
    let token = secret();
    storage.add_invite(&hash_secret(&token), user, now_ms() + INVITE_MS)?;
    Ok(token)
}

/// What a sign-in name may be: what a person can type on a tablet.
pub fn valid_login(login: &str) -> bool {
    (3..=40).contains(&login.len())
        && login
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
}

/// What people type when asked for a password, longest first (a row of keys holds a shorter
/// one): with a few characters added, still what a guesser tries first.
const COMMON_PASSWORDS: [&str; 30] = [
    "1234567890",
    "azertyuiop",
    "qwertyuiop",
    "motdepasse",
    "superviseur",
    "supervisor",
    "bienvenue",
    "123456789",
    "1q2w3e4r",
    "password",
    "iloveyou",
    "jetaime",
    "bonjour",
    "football",
    "sunshine",
    "welcome",
    "console",
    "zxcvbnm",
    "azerty",
    "qwerty",
    "123456",
    "654321",
    "abcdef",
    "abc123",
    "soleil",
    "000000",
    "111111",
    "admin",
    "vigie",
    "loulou",
];

/// Whether a password long enough is one a guesser tries first: one to three characters over
/// and over ("aaaaaaaaaa"), or, letters and digits only, fewer than six characters beside a
/// common password or the sign-in name ("Motdepasse2026", "sup.r1sup.r1"). The console's
/// accounts read children's records.
fn guessable(login: &str, password: &str) -> bool {
    let distinct: std::collections::BTreeSet<char> =
        password.chars().filter(|c| !c.is_whitespace()).collect();
    if distinct.len() < 4 {
        return true;
    }
    let plain = |text: &str| -> String {
        text.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    };
    let mut rest = plain(password);
    let login = plain(login);
    if login.chars().count() >= 3 {
        rest = rest.replace(&login, "");
    }
    for common in COMMON_PASSWORDS {
        rest = rest.replace(common, "");
    }
    rest.chars().count() < 6
}

/// Why a password or sign-in name was not accepted (each an inline message key).
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    LoginFormat,
    LoginTaken,
    PasswordShort,
    /// A password anyone would try first (`guessable`).
    PasswordGuessable,
    PasswordsDiffer,
    InviteUnknown,
}

/// What a person typed on an invitation's page.
pub struct Typed<'a> {
    pub login: &'a str,
    pub password: &'a str,
    pub again: &'a str,
}

/// Whether a password chosen (on an invitation's page or the account's) may be taken: long
/// enough, not one a guesser tries first, typed twice alike.
fn check_new_password(login: &str, password: &str, again: &str) -> Result<(), Refused> {
    // Judged as hashed (`composed`): an accent typed as a letter and a mark is one character.
    let (password, again) = (&composed(password), &composed(again));
    // Blanks count for nothing: ten spaces are no password.
    if password.chars().filter(|c| !c.is_whitespace()).count() < MIN_PASSWORD {
        return Err(Refused::PasswordShort);
    }
    if guessable(login, password) {
        return Err(Refused::PasswordGuessable);
    }
    if password != again {
        return Err(Refused::PasswordsDiffer);
    }
    Ok(())
}

/// Uses an invitation: sets the user's sign-in name and password. The invitation is gone once
/// used, even if what was typed is refused... except for inline errors, which are checked first
/// so that a typo does not waste the link. `active` says whether its user may sign in still.
pub fn accept_invite(
    storage: &dyn ConsoleStorage,
    token: &str,
    typed: &Typed,
    active: &dyn Fn(Uuid) -> Result<bool, Error>,
) -> Result<Result<Uuid, Refused>, Error> {
    let Typed {
        login,
        password,
        again,
    } = *typed;
    let hash = hash_secret(token);
    // An invitation of a user deactivated since (or moved to a field role) opens nothing.
    let Some(user) = storage.invite(&hash, now_ms())? else {
        return Ok(Err(Refused::InviteUnknown));
    };
    if !active(user)? {
        return Ok(Err(Refused::InviteUnknown));
    }
    if !valid_login(login) {
        return Ok(Err(Refused::LoginFormat));
    }
    if let Err(refused) = check_new_password(login, password, again) {
        return Ok(Err(refused));
    }
    if let Some(other) = storage.account_by_login(login)?
        && other.user != user
    {
        return Ok(Err(Refused::LoginTaken));
    }
    let password_hash = hash_password(password)?;
    if storage.take_invite(&hash, now_ms())?.is_none() {
        return Ok(Err(Refused::InviteUnknown));
    }
    match storage.set_account(&Account {
        user,
        login: login.to_string(),
        password_hash,
    }) {
        Ok(()) => {}
        Err(AccountError::LoginTaken) => return Ok(Err(Refused::LoginTaken)),
        Err(AccountError::Storage(e)) => return Err(e),
    }
    // A new password ends the sessions opened with the old one.
    storage.end_console_access_of(user)?;
    Ok(Ok(user))
}

/// The outcome of a sign-in attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum SignIn {
    /// A new session: the cookie's secret, the session, and the known-browser cookie's secret
    /// to set (the one the browser brought, or a new one).
    Opened {
        id: String,
        session: Session,
        known: String,
    },
    /// Refused; `account` is the user whose sign-in name was typed, if one has it (for the
    /// audit log: which account someone is guessing).
    Wrong { account: Option<Uuid> },
    /// Too many failures: wait this many seconds.
    Throttled { seconds: i64, account: Option<Uuid> },
}

/// A sign-in form as sent, with where it comes from.
pub struct Attempt<'a> {
    pub login: &'a str,
    pub password: &'a str,
    /// The client's address.
    pub address: &'a str,
    /// The known-browser cookie's secret, if the browser brought one.
    pub known: Option<&'a str>,
}

/// A count of failures a sign-in is checked against: after `free` failures each new attempt
/// waits twice as long as the last, up to `max_wait_ms`.
struct Throttle {
    key: String,
    free: i64,
    max_wait_ms: i64,
}

impl Throttle {
    fn wait_ms(&self, failures: Option<(i64, i64)>, now: i64) -> i64 {
        let Some((count, last)) = failures else {
            return 0;
        };
        // A last failure ahead of now was counted while the hub's clock ran ahead: a wait is
        // counted from now at the latest (a clock three days ahead, set right, locked an
        // account out for three days), and a count from over an hour ahead starts over, as
        // one an hour old does (`claim_attempt`).
        if count < self.free || (now - last).abs() > FAILURES_RESET_MS {
            return 0;
        }
        let wait = (1000i64 << (count - self.free).min(20)).min(self.max_wait_ms);
        (last.min(now) + wait - now).max(0)
    }
}

/// The counts an attempt is checked against. A browser that signed in as this account before
/// has a count of its own: failures from elsewhere (one address guessing many accounts, or
/// anyone guessing this one) do not lock out the person at their usual desk.
fn throttles(login: &str, address: &str, known: Option<(&str, Uuid)>) -> Vec<Throttle> {
    match known {
        Some((token, user)) => vec![Throttle {
            key: format!("browser:{user}:{}", base64url(&hash_secret(token)[..16])),
            free: FREE_PER_ACCOUNT,
            max_wait_ms: MAX_WAIT_MS,
        }],
        // The address first: an attempt it refuses writes nothing under the login it names.
        // A login no account can have (`valid_login`) has no count of its own.
        None => {
            let mut counts = vec![Throttle {
                key: format!("address:{address}"),
                free: FREE_PER_ADDRESS,
                max_wait_ms: MAX_ADDRESS_WAIT_MS,
            }];
            if valid_login(login) {
                counts.push(Throttle {
                    key: format!("account:{login}"),
                    free: FREE_PER_ACCOUNT,
                    max_wait_ms: MAX_WAIT_MS,
                });
            }
            counts
        }
    }
}

/// A count an attempt claimed, with its last failure before the claim (`claim`).
type Claimed<'t> = (&'t Throttle, Option<i64>);

/// Counts an attempt as a failure under each of `throttles` before its password is checked
/// (taken back by the caller if it was right), so that attempts sent at once cannot all pass
/// the check: each count claimed, with its last failure before the claim. During a wait, none
/// is claimed (those claimed before are forgiven) and the seconds to wait are the error.
fn claim<'t>(
    storage: &dyn ConsoleStorage,
    throttles: &'t [Throttle],
    now: i64,
) -> Result<Result<Vec<Claimed<'t>>, i64>, Error> {
    let mut claimed = Vec::with_capacity(throttles.len());
    for throttle in throttles {
        let allowed = |failures| throttle.wait_ms(failures, now) == 0;
        let previous = storage.failures(&throttle.key)?.map(|(_, last)| last);
        if storage.claim_attempt(&throttle.key, now, FAILURES_RESET_MS, &allowed)? {
            claimed.push((throttle, previous));
            continue;
        }
        for (done, previous) in claimed {
            storage.forgive_attempt(&done.key, now, previous)?;
        }
        let mut wait = 0;
        for t in throttles {
            wait = wait.max(t.wait_ms(storage.failures(&t.key)?, now));
        }
        return Ok(Err(((wait + 999) / 1000).max(1)));
    }
    Ok(Ok(claimed))
}

/// Checks a sign-in name and password, throttled (`Throttle`): an attempt during a wait is
/// refused without looking at the password. Each attempt is counted as a failure before its
/// password is checked and taken back if it was right, so that attempts sent at once cannot
/// all pass the check. `active` says whether the account's user may still sign in.
pub fn sign_in(
    storage: &dyn ConsoleStorage,
    attempt: &Attempt,
    active: &dyn Fn(Uuid) -> Result<bool, Error>,
) -> Result<SignIn, Error> {
    let now = now_ms();
    // Counts whose last failure is old count for nothing: they go, so that made-up logins
    // do not pile up.
    storage.purge(
        now - IDLE_MS,
        now - ABSOLUTE_MS,
        now,
        now - FAILURES_RESET_MS,
    )?;
    let login = attempt.login.trim().to_ascii_lowercase();
    let account = if valid_login(&login) {
        storage.account_by_login(&login)?
    } else {
        None
    };
    let known = match (attempt.known, &account) {
        (Some(token), Some(a)) if storage.known_browser(&hash_secret(token), a.user, now)? => {
            Some((token, a.user))
        }
        _ => None,
    };
    let throttles = throttles(&login, attempt.address, known);
    let claimed = match claim(storage, &throttles, now)? {
        Ok(claimed) => claimed,
        Err(seconds) => {
            return Ok(SignIn::Throttled {
                seconds,
                account: account.map(|a| a.user),
            });
        }
    };
    let matches = match &account {
        Some(a) => verify_password(attempt.password, &a.password_hash),
        None => {
            verify_password(attempt.password, decoy_hash());
            false
        }
    };
    let account = match account {
        Some(a) if matches && active(a.user)? => a,
        other => {
            return Ok(SignIn::Wrong {
                account: other.map(|a| a.user),
            });
        }
    };
    // The account's own counts start again; an address's is only spared this attempt (one
    // good password must not wipe out another's guesses from the same address).
    for (throttle, previous) in &claimed {
        if throttle.key.starts_with("address:") {
            storage.forgive_attempt(&throttle.key, now, *previous)?;
        } else {
            storage.clear_failures(&throttle.key)?;
        }
    }
    // A browser keeps its secret when another user signs in on it (an office's computer), if
    // it is one the hub gave: a value the browser chose is never adopted.
    let known = match attempt.known {
        Some(token) if storage.known_browser_token(&hash_secret(token), now)? => token.to_string(),
        _ => secret(),
    };
    storage.add_known_browser(&hash_secret(&known), account.user, now + KNOWN_BROWSER_MS)?;
    let (id, session) = open_session(storage, account.user, now)?;
    Ok(SignIn::Opened { id, session, known })
}

/// A new session of `user`: the cookie's secret, and the session stored under its hash.
fn open_session(
    storage: &dyn ConsoleStorage,
    user: Uuid,
    now: i64,
) -> Result<(String, Session), Error> {
    let id = secret();
    let session = Session {
        user,
        csrf: secret(),
        created_ms: now,
        last_ms: now,
    };
    storage.add_session(&hash_secret(&id), &session)?;
    Ok((id, session))
}

/// What a signed-in person typed to change their password.
pub struct PasswordChange<'a> {
    pub current: &'a str,
    pub password: &'a str,
    pub again: &'a str,
}

/// The outcome of a password change, or of signing out everywhere else.
#[derive(Debug, PartialEq, Eq)]
pub enum AccountChange {
    /// Every session of the user ended and so did any invitation (a reset link sent meanwhile
    /// would set the password again); the browser that asked goes on in this new one.
    Done {
        id: String,
        session: Session,
    },
    /// The current password typed is not the account's.
    Wrong,
    /// Too many wrong current passwords: wait this many seconds.
    Throttled(i64),
    Refused(Refused),
}

/// Changes a signed-in user's password. The current password is asked (a browser left open
/// is not the account), and wrong ones are throttled as wrong sign-ins are: a stolen session
/// cannot guess it, then change it.
pub fn change_password(
    storage: &dyn ConsoleStorage,
    user: Uuid,
    typed: &PasswordChange,
) -> Result<AccountChange, Error> {
    let Some(account) = storage.account_of(user)? else {
        return Ok(AccountChange::Wrong);
    };
    if let Err(refused) = check_new_password(&account.login, typed.password, typed.again) {
        return Ok(AccountChange::Refused(refused));
    }
    let throttle = [Throttle {
        key: format!("password:{user}"),
        free: FREE_PER_ACCOUNT,
        max_wait_ms: MAX_WAIT_MS,
    }];
    if let Err(seconds) = claim(storage, &throttle, now_ms())? {
        return Ok(AccountChange::Throttled(seconds));
    }
    if !verify_password(typed.current, &account.password_hash) {
        return Ok(AccountChange::Wrong);
    }
    storage.clear_failures(&throttle[0].key)?;
    let password_hash = hash_password(typed.password)?;
    match storage.set_account(&Account {
        password_hash,
        ..account
    }) {
        Ok(()) => {}
        Err(AccountError::LoginTaken) => return Ok(AccountChange::Refused(Refused::LoginTaken)),
        Err(AccountError::Storage(e)) => return Err(e),
    }
    let (id, session) = end_other_sessions(storage, user)?;
    Ok(AccountChange::Done { id, session })
}

/// Ends every session of `user` (and any invitation of theirs) but a new one for the browser
/// that asks, returned as a sign-in's is: a lost tablet or a shared computer left signed in is
/// out.
pub fn end_other_sessions(
    storage: &dyn ConsoleStorage,
    user: Uuid,
) -> Result<(String, Session), Error> {
    storage.end_console_access_of(user)?;
    open_session(storage, user, now_ms())
}

/// The session a cookie's secret opens, if it has not expired (idle or absolute); its "last
/// seen" moves on.
pub fn session(storage: &dyn ConsoleStorage, id: &str) -> Result<Option<Session>, Error> {
    let hash = hash_secret(id);
    let Some(session) = storage.session(&hash)? else {
        return Ok(None);
    };
    let now = now_ms();
    if now - session.last_ms > IDLE_MS || now - session.created_ms > ABSOLUTE_MS {
        storage.end_session(&hash)?;
        return Ok(None);
    }
    if now - session.last_ms > TOUCH_MS {
        storage.touch_session(&hash, now)?;
    }
    Ok(Some(session))
}

pub fn sign_out(storage: &dyn ConsoleStorage, id: &str) -> Result<(), Error> {
    storage.end_session(&hash_secret(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A password with an accent signs in however the keyboard writes the accent: one
    /// character (NFC) or a letter and a combining mark (NFD), set either way; one hashed as
    /// typed before passwords were composed still matches.
    #[test]
    fn a_password_signs_in_whatever_form_its_accents_are_typed_in() {
        let (composed_form, decomposed_form) = ("café du marché", "cafe\u{301} du marche\u{301}");
        for set in [composed_form, decomposed_form] {
            let stored = hash_password(set).unwrap();
            for typed in [composed_form, decomposed_form] {
                assert!(verify_password(typed, &stored), "{set:?} then {typed:?}");
            }
            assert!(!verify_password("cafe du marche", &stored));
        }
        let salt = SaltString::encode_b64(&[7; 16]).unwrap();
        let as_typed = argon2()
            .hash_password(decomposed_form.as_bytes(), &salt)
            .unwrap()
            .to_string();
        assert!(verify_password(decomposed_form, &as_typed));
        assert!(verify_password(composed_form, &as_typed));
        // Its rules count characters as hashed: six accented letters and a digit are seven.
        let short = "e\u{301}a\u{300}u\u{308}o\u{308}c\u{327}1";
        assert_eq!(
            check_new_password("awa.kone", short, "éàüöç1"),
            Err(Refused::PasswordShort)
        );
    }

    #[test]
    fn a_password_a_guesser_tries_first_is_refused() {
        for (login, password) in [
            ("sup.r1", "aaaaaaaaaa"),
            ("sup.r1", "abababababab"),
            ("sup.r1", "password12"),
            ("sup.r1", "Motdepasse2026!"),
            ("sup.r1", "azerty1234"),
            ("sup.r1", "1234567890"),
            ("sup.r1", "sup.r1sup.r1"),
            ("awa.kone", "AwaKone2026"),
            ("sup.r1", "iloveyou12"),
            ("sup.r1", "Soleil2026!"),
        ] {
            assert!(guessable(login, password), "{password}");
        }
        for (login, password) in [
            ("sup.r1", "correct horse battery"),
            ("sup.r2", "un mot de passe long"),
            ("sup.r1", "another long password"),
            ("awa.kone", "Kpalimé-Daloa 1987"),
        ] {
            assert!(!guessable(login, password), "{password}");
        }
    }

    #[test]
    fn a_masked_token_differs_on_every_page_and_unmasks_to_the_token() {
        let token = secret();
        let (a, b) = (masked(&token), masked(&token));
        assert_ne!(a, b);
        assert!(!a.contains(&token));
        assert_eq!(unmasked(&a).as_deref(), Some(token.as_str()));
        assert_eq!(unmasked(&b).as_deref(), Some(token.as_str()));
        // The token itself, cut or altered, is not one.
        assert_ne!(unmasked(&token).as_deref(), Some(token.as_str()));
        assert_eq!(unmasked(&a[1..]), None);
        assert_eq!(unmasked("zz"), None);
        let mut flipped = a.clone().into_bytes();
        flipped[a.len() - 1] = if flipped[a.len() - 1] == b'0' {
            b'1'
        } else {
            b'0'
        };
        assert_ne!(
            unmasked(std::str::from_utf8(&flipped).unwrap()).as_deref(),
            Some(token.as_str())
        );
    }

    #[test]
    fn secrets_are_url_safe_and_distinct() {
        let a = secret();
        assert_eq!(a.len(), 43);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(a, secret());
    }

    #[test]
    fn a_form_token_is_taken_only_as_the_hub_made_it_and_for_an_hour() {
        let key = form_key(b"a hub's signing seed");
        let now = 1_800_000_000_000;
        let token = form_token(&key, now);
        assert!(form_token_valid(&key, &token, now));
        assert!(form_token_valid(&key, &token, now + FORM_TOKEN_MS));
        assert!(
            !form_token_valid(&key, &token, now + FORM_TOKEN_MS + 1),
            "expired"
        );
        assert!(
            !form_token_valid(&key, &token, now - 2 * 60 * 1000),
            "from the future"
        );
        let other = form_key(b"another hub");
        assert!(!form_token_valid(&other, &token, now), "another hub's key");
        // Any change, and what a browser could make up, is refused.
        let (head, tag) = token.rsplit_once('.').unwrap();
        let flipped = if tag.starts_with('A') { "B" } else { "A" };
        assert!(!form_token_valid(
            &key,
            &format!("{head}.{flipped}{}", &tag[1..]),
            now
        ));
        let (issued, rest) = token.split_once('.').unwrap();
        let later = issued.parse::<i64>().unwrap() + 1000;
        assert!(!form_token_valid(&key, &format!("{later}.{rest}"), now));
        for made_up in ["", "tossed123", "1.2.3", &format!("{token}.x"), &secret()] {
            assert!(!form_token_valid(&key, made_up, now), "{made_up:?}");
        }
    }

    #[test]
    fn a_password_verifies_against_its_hash_only() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterY", &hash));
        assert!(!verify_password("anything", "not a hash"));
    }

    #[test]
    fn the_wait_doubles_after_the_free_failures_and_is_capped() {
        let now = 10_000_000;
        let account = &throttles("a.b", "10.0.0.1", None)[1];
        assert_eq!(account.wait_ms(None, now), 0);
        assert_eq!(account.wait_ms(Some((4, now)), now), 0);
        assert_eq!(account.wait_ms(Some((5, now)), now), 1000);
        assert_eq!(account.wait_ms(Some((7, now)), now), 4000);
        assert_eq!(account.wait_ms(Some((7, now - 3000)), now), 1000);
        assert_eq!(account.wait_ms(Some((40, now)), now), MAX_WAIT_MS);
        let stale = Some((40, now - FAILURES_RESET_MS - 1));
        assert_eq!(account.wait_ms(stale, now), 0);
        // Counted while the hub's clock ran ahead, then set right: waited from now at the
        // latest, forgotten from over an hour ahead.
        let ahead = |ms| Some((40, now + ms));
        assert_eq!(account.wait_ms(ahead(10 * 60 * 1000), now), MAX_WAIT_MS);
        assert_eq!(account.wait_ms(ahead(3 * 24 * FAILURES_RESET_MS), now), 0);
        // An address's wait stays short: many people may share it.
        let address = &throttles("a.b", "10.0.0.1", None)[0];
        // A login no account can have has no count of its own: the address's only.
        let long = "x".repeat(60_000);
        assert_eq!(throttles(&long, "10.0.0.1", None).len(), 1);
        assert_eq!(address.wait_ms(Some((19, now)), now), 0);
        assert_eq!(address.wait_ms(Some((60, now)), now), MAX_ADDRESS_WAIT_MS);
    }
}
