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

/// Failed sign-ins allowed before the wait starts: per account, then per client address.
const FREE_PER_ACCOUNT: i64 = 5;
const FREE_PER_ADDRESS: i64 = 20;
/// The longest wait, and how long without failure clears the count.
const MAX_WAIT_MS: i64 = 15 * 60 * 1000;
const FAILURES_RESET_MS: i64 = 60 * 60 * 1000;

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

/// Compares two texts in time independent of where they differ.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn argon2() -> Argon2<'static> {
    // OWASP's first recommended setting for Argon2id: 19 MiB, 2 passes, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub fn hash_password(password: &str) -> Result<String, Error> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|_| hash_failure())?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| hash_failure())
}

fn hash_failure() -> Error {
    Error::Io(std::io::Error::other("password hashing failed"))
}

/// Whether `password` matches a stored hash (the hash names its own cost and salt).
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .is_ok_and(|hash| argon2().verify_password(password.as_bytes(), &hash).is_ok())
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

/// Why a password or sign-in name was not accepted (each an inline message key).
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    LoginFormat,
    LoginTaken,
    PasswordShort,
    PasswordsDiffer,
    InviteUnknown,
}

/// Uses an invitation: sets the user's sign-in name and password. The invitation is gone once
/// used, even if what was typed is refused... except for inline errors, which are checked first
/// so that a typo does not waste the link.
pub fn accept_invite(
    storage: &dyn ConsoleStorage,
    token: &str,
    login: &str,
    password: &str,
    again: &str,
) -> Result<Result<Uuid, Refused>, Error> {
    let hash = hash_secret(token);
    let Some(user) = storage.invite(&hash, now_ms())? else {
        return Ok(Err(Refused::InviteUnknown));
    };
    if !valid_login(login) {
        return Ok(Err(Refused::LoginFormat));
    }
    if password.chars().count() < MIN_PASSWORD {
        return Ok(Err(Refused::PasswordShort));
    }
    if password != again {
        return Ok(Err(Refused::PasswordsDiffer));
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
    storage.end_sessions_of(user)?;
    Ok(Ok(user))
}

/// The outcome of a sign-in attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum SignIn {
    /// A new session: the cookie's secret and the session.
    Opened(String, Session),
    Wrong,
    /// Too many failures: wait this many seconds.
    Throttled(i64),
}

fn wait_ms(failures: Option<(i64, i64)>, free: i64, now: i64) -> i64 {
    let Some((count, last)) = failures else {
        return 0;
    };
    if count < free || now - last > FAILURES_RESET_MS {
        return 0;
    }
    let wait = (1000i64 << (count - free).min(20)).min(MAX_WAIT_MS);
    (last + wait - now).max(0)
}

pub fn account_key(login: &str) -> String {
    format!("account:{login}")
}

pub fn address_key(address: &str) -> String {
    format!("address:{address}")
}

/// Checks a sign-in name and password, throttled per account and per client address: past a
/// few failures each new attempt waits twice as long as the last (up to 15 minutes), and an
/// attempt during the wait is refused without looking at the password.
/// `active` says whether the account's user may still sign in.
pub fn sign_in(
    storage: &dyn ConsoleStorage,
    login: &str,
    password: &str,
    address: &str,
    active: &dyn Fn(Uuid) -> Result<bool, Error>,
) -> Result<SignIn, Error> {
    let now = now_ms();
    let login = login.trim().to_ascii_lowercase();
    let (account_key, address_key) = (account_key(&login), address_key(address));
    let wait = wait_ms(storage.failures(&account_key)?, FREE_PER_ACCOUNT, now).max(wait_ms(
        storage.failures(&address_key)?,
        FREE_PER_ADDRESS,
        now,
    ));
    if wait > 0 {
        return Ok(SignIn::Throttled((wait + 999) / 1000));
    }
    let account = storage.account_by_login(&login)?;
    let matches = match &account {
        Some(a) => verify_password(password, &a.password_hash),
        None => {
            verify_password(password, decoy_hash());
            false
        }
    };
    let account = match account {
        Some(a) if matches && active(a.user)? => a,
        _ => {
            storage.note_failure(&account_key, now, FAILURES_RESET_MS)?;
            storage.note_failure(&address_key, now, FAILURES_RESET_MS)?;
            return Ok(SignIn::Wrong);
        }
    };
    storage.clear_failures(&account_key)?;
    storage.purge(now - IDLE_MS, now - ABSOLUTE_MS, now)?;
    let id = secret();
    let session = Session {
        user: account.user,
        csrf: secret(),
        created_ms: now,
        last_ms: now,
    };
    storage.add_session(&hash_secret(&id), &session)?;
    Ok(SignIn::Opened(id, session))
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
        assert_eq!(wait_ms(None, 5, now), 0);
        assert_eq!(wait_ms(Some((4, now)), 5, now), 0);
        assert_eq!(wait_ms(Some((5, now)), 5, now), 1000);
        assert_eq!(wait_ms(Some((7, now)), 5, now), 4000);
        assert_eq!(wait_ms(Some((7, now - 3000)), 5, now), 1000);
        assert_eq!(wait_ms(Some((40, now)), 5, now), MAX_WAIT_MS);
        assert_eq!(wait_ms(Some((40, now - FAILURES_RESET_MS - 1)), 5, now), 0);
    }
}
