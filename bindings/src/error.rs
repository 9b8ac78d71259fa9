//! The errors the bindings raise, and the one place where the core's errors become them.
//!
//! Kotlin sees `VigieException.Validation`, `VigieException.NotFound`, ...; Swift
//! `VigieError.Validation(field:rule:)`, ...; Python `VigieError.Validation`, .... Each reads as
//! a sentence ("invalid identified_on: must be a date written YYYY-MM-DD"): Kotlin's
//! `toString()`, Swift's `description` and Python's `str()` are the Rust text. Texts name fields,
//! rules, kinds and record ids (random UUIDs), never record content: the core's own texts make
//! the same promise, and the bindings add nothing typed by a person.

use uniffi::UnexpectedUniFFICallbackError;
use vigie_core::Error as CoreError;
use vigie_core::error::foreign_text;
use vigie_core::{AttachmentRefusal, AttachmentState, IdentityError, NotAllowed, ValidationError};

/// Every failure of a call into Vigie.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
#[uniffi::export(Display)]
pub enum VigieError {
    /// A value broke a rule. `field` is a dotted path such as `location.point.latitude`,
    /// `referrals.<id>.date` or `started_at`; `rule` says what the value must be.
    #[error("invalid {field}: {rule}")]
    Validation { field: String, rule: String },

    /// No record of the expected kind has this id in the store. `kind` is the kind the call
    /// expected (`workplace`, `visit`, `child_case`, `user`), or `record` when any would do.
    #[error("{kind} {id} not found")]
    NotFound { kind: String, id: String },

    /// The call does not fit the record's current state: it already exists or was erased, the
    /// version given is not one this store knows, or the conflict being resolved is no longer
    /// there.
    #[error("conflict on {id}: {reason}")]
    Conflict { id: String, reason: String },

    /// The workflow or the hub does not allow this: a forbidden case transition, a store that
    /// belongs to another device, a request the hub forbids (HTTP 403), a bundle exported for
    /// recipients who may not read its records.
    #[error("not allowed: {reason}")]
    NotAllowed { reason: String },

    /// Wrong store key (or not a Vigie store), malformed enrolment token, credentials the hub
    /// refused (HTTP 401), or a device identity refused: this device has no certificate yet
    /// (sync with the hub once first), is not a recipient of the bundle, or the other device's
    /// certificate is revoked, expired or from another hub.
    #[error("authentication failed: {reason}")]
    Authentication { reason: String },

    /// A wrong PIN: `attempts_left` more before the profile is wiped.
    #[error("wrong PIN: {attempts_left} attempts left")]
    WrongPin { attempts_left: u32 },

    /// Too many wrong PINs for now: the next may be tried in `retry_in_seconds` (this attempt
    /// was not counted). `Vault.pin_retry_in_seconds` says it before an attempt.
    #[error("too many wrong PINs: try again in {retry_in_seconds} seconds")]
    PinLocked { retry_in_seconds: u64 },

    /// The profile is gone from this device: too many wrong PINs, or the app wiped it
    /// (`Vault.wipe_user`, `wipe_all`). Its user must be enrolled again.
    #[error("profile wiped: {reason}")]
    ProfileWiped { reason: String },

    /// The hub revoked this device (lost, stolen, seized) and asks it to destroy its data: the
    /// app wipes the profile (`Vault.wipe_user`, or `wipe_all`) and does not sync again. Raised
    /// by `sync_with` through any transport that reports the hub's answer
    /// (`TransportError.DeviceRevoked`).
    #[error("device revoked: {reason}")]
    DeviceRevoked { reason: String },

    /// The store's file or SQLite failed (disk full, I/O error, a schema newer than this
    /// library).
    #[error("storage error: {reason}")]
    Storage { reason: String },

    /// The device's storage is full: nothing of this call was written (what returned before is
    /// on disk, the outbox whole). The app asks its user to free some space (photos, other
    /// apps), then to try again; a store that cannot even be opened so opens once there is.
    #[error("the device's storage is full")]
    StorageFull,

    /// Bytes from another device, the hub or a file were refused: a damaged or altered sync
    /// message, bundle (a broken seal or signature too) or document. Nothing from them was
    /// stored.
    #[error("damaged input: {reason}")]
    DamagedInput { reason: String },

    /// An attachment over one of the limits the hub publishes (`VigieStore.attachment_limits`):
    /// `limit_of` is `file_bytes` (one attachment, as stored), `record_bytes` (all of one
    /// record's) or `attachments_per_record` (their number); `size` is what the attachment
    /// would have made it. Nothing was stored.
    #[error("over the limit on {limit_of}: {size} > {limit}")]
    OverLimit {
        limit_of: String,
        size: u64,
        limit: u64,
    },

    /// The attachment's bytes are not on this device (`state` says why: not downloaded yet,
    /// downloading, failed). Ask for it (`request_attachment`) and sync.
    #[error("attachment {id} is not on this device ({state:?})")]
    AttachmentNotHere { id: String, state: AttachmentState },

    /// The app's transport failed (link down, hub error): nothing is lost, the next session
    /// resumes where this one stopped.
    #[error("transport failed: {reason}")]
    Transport { reason: String },
}

pub type Result<T, E = VigieError> = std::result::Result<T, E>;

impl VigieError {
    pub(crate) fn validation(field: impl Into<String>, rule: impl Into<String>) -> VigieError {
        VigieError::Validation {
            field: field.into(),
            rule: rule.into(),
        }
    }
}

#[uniffi::export]
impl VigieError {
    /// The error as a sentence (what `str()` shows in Python).
    pub fn text(&self) -> String {
        self.to_string()
    }

    /// The error as a sentence for the app's user, in `language` (`fr` or `en`; another code
    /// reads French): the field's label and the rule for a value refused, the rule for a step
    /// not allowed (the texts the hub's console shows), and what to do for the others. A rule
    /// of a newer library than its translations reads as the core words it. Like `text`, it
    /// never holds a value the user typed.
    pub fn text_in(&self, language: String) -> String {
        use vigie_core::messages::{self, field_label, field_refusal, rule_text, step_refusal};
        let lang = language.as_str();
        let said = |key: &str, values: &[&str]| messages::text(lang, key, values);
        match self {
            VigieError::Validation { field, rule } => field_refusal(field, rule, lang),
            VigieError::NotAllowed { reason } => step_refusal(reason, lang),
            VigieError::NotFound { kind, .. } => {
                let what = field_label(kind, lang).unwrap_or_else(|| kind.clone());
                said("error.not_found", &[&what])
            }
            // The id the reason names tells the person nothing: `rule_text` words it `0`.
            VigieError::Conflict { reason, .. } => {
                said("error.conflict", &[&rule_text(reason, lang)])
            }
            VigieError::Authentication { reason } => {
                said("error.authentication", &[&rule_text(reason, lang)])
            }
            VigieError::WrongPin { attempts_left } => {
                said("error.wrong_pin", &[&attempts_left.to_string()])
            }
            VigieError::PinLocked { retry_in_seconds } => {
                said("error.pin_locked", &[&retry_in_seconds.to_string()])
            }
            VigieError::ProfileWiped { .. } => said("error.profile_wiped", &[]),
            VigieError::DeviceRevoked { .. } => said("error.device_revoked", &[]),
            VigieError::Storage { reason } => said("error.storage", &[&rule_text(reason, lang)]),
            VigieError::StorageFull => said("error.storage_full", &[]),
            VigieError::DamagedInput { reason } => {
                said("error.damaged_input", &[&rule_text(reason, lang)])
            }
            VigieError::OverLimit {
                limit_of,
                size,
                limit,
            } => {
                let what = messages::limit_label(limit_of, lang)
                    .or_else(|| field_label(limit_of, lang))
                    .unwrap_or_else(|| limit_of.clone());
                said(
                    "error.over_limit",
                    &[
                        &what,
                        &messages::limit_in(&size.to_string(), lang),
                        &messages::limit_in(&limit.to_string(), lang),
                    ],
                )
            }
            VigieError::AttachmentNotHere { .. } => said("error.attachment_not_here", &[]),
            // The text already says the hub could not be reached: what the transport said
            // follows, in the user's language when the catalogues hold it.
            // The hub answered (busy, a limit, its own fault): it was reached.
            VigieError::Transport { reason } if reason.starts_with("hub answered ") => {
                said("error.hub_answered", &[&rule_text(reason, lang)])
            }
            VigieError::Transport { reason } => {
                let why = reason.strip_prefix("hub unreachable: ").unwrap_or(reason);
                said("error.transport", &[&rule_text(why, lang)])
            }
        }
    }
}

impl From<ValidationError> for VigieError {
    fn from(e: ValidationError) -> VigieError {
        VigieError::Validation {
            field: e.field,
            rule: e.rule,
        }
    }
}

impl From<NotAllowed> for VigieError {
    fn from(e: NotAllowed) -> VigieError {
        VigieError::NotAllowed { reason: e.rule }
    }
}

/// The one mapping from the core's errors to the bindings' (the core's texts carry no record
/// content, so they may be kept as reasons).
impl From<CoreError> for VigieError {
    fn from(e: CoreError) -> VigieError {
        if e.is_disk_full() {
            return VigieError::StorageFull;
        }
        let reason = e.to_string();
        match e {
            CoreError::Validation(v) => v.into(),
            CoreError::NotFound { kind, id } => VigieError::NotFound {
                kind: kind.map_or("record".to_string(), |k| k.to_string()),
                id: id.to_string(),
            },
            // Asked for one kind, found another: from the caller's side, no such record.
            CoreError::WrongKind { id, expected, .. } => VigieError::NotFound {
                kind: expected.to_string(),
                id: id.to_string(),
            },
            CoreError::AlreadyExists { id, .. }
            | CoreError::Erased { id }
            | CoreError::UnknownVersion { id }
            | CoreError::NoSuchConflict { id, .. } => VigieError::Conflict {
                id: id.to_string(),
                reason,
            },
            CoreError::NotAllowed { rule } => VigieError::NotAllowed { reason: rule },
            CoreError::WrongKeyOrNotAStore => VigieError::Authentication { reason },
            CoreError::WrongPin { attempts_left } => VigieError::WrongPin { attempts_left },
            CoreError::PinLocked { retry_in_seconds } => VigieError::PinLocked { retry_in_seconds },
            CoreError::ProfileWiped => VigieError::ProfileWiped { reason },
            CoreError::WipeRequested => VigieError::DeviceRevoked {
                reason: REVOKED.into(),
            },
            CoreError::NoProfile { user } => VigieError::NotFound {
                kind: "profile".into(),
                id: user.to_string(),
            },
            CoreError::ProfileExists { user } => VigieError::Conflict {
                id: user.to_string(),
                reason,
            },
            CoreError::CaseNotOpen { .. } => VigieError::NotAllowed { reason },
            CoreError::Attachment(refusal) => refusal.into(),
            CoreError::AttachmentNotFound { id } => VigieError::NotFound {
                kind: "attachment".into(),
                id: id.to_string(),
            },
            CoreError::AttachmentNotHere { id, state } => VigieError::AttachmentNotHere {
                id: id.to_string(),
                state,
            },
            // SQLite's own message (a write the system refused asks whether the disk is full):
            // the variant already says "storage error".
            CoreError::Storage(e) => VigieError::Storage {
                reason: vigie_core::error::storage_text(&e),
            },
            CoreError::SchemaTooNew { .. }
            | CoreError::UpgradeWithheld { .. }
            | CoreError::HubStorage { .. }
            | CoreError::Io(_)
            | CoreError::Document(_)
            | CoreError::DamagedProfile { .. } => VigieError::Storage { reason },
            CoreError::DamagedDocument { .. }
            | CoreError::ActorReused { .. }
            | CoreError::OverLimit { .. }
            | CoreError::Protocol(_)
            | CoreError::DamagedBundle { .. } => VigieError::DamagedInput { reason },
            CoreError::Transport { reason } => VigieError::Transport { reason },
            // Bytes damaged or altered on their way are refused as any damaged input; the
            // rest is about who the devices are (no certificate yet, not a recipient, revoked).
            CoreError::Identity(
                IdentityError::Malformed { .. }
                | IdentityError::UnsupportedVersion { .. }
                | IdentityError::BadSignature { .. }
                | IdentityError::Tampered,
            ) => VigieError::DamagedInput { reason },
            // An export whose recipients may not read its records: nothing wrong with who
            // anyone is, the role matrix does not let the records go to them.
            CoreError::Identity(IdentityError::NothingForRecipient { .. }) => {
                VigieError::NotAllowed { reason }
            }
            CoreError::Identity(_) => VigieError::Authentication { reason },
        }
    }
}

/// An attachment refused at capture: a limit with its figures, else the problem with the
/// input named as a field (`source`: the file's bytes; `media_type`; the manifest's fields).
impl From<AttachmentRefusal> for VigieError {
    fn from(refusal: AttachmentRefusal) -> VigieError {
        let rule = refusal.to_string();
        let over = |limit_of: &str, size: u64, limit: u64| VigieError::OverLimit {
            limit_of: limit_of.into(),
            size,
            limit,
        };
        match refusal {
            AttachmentRefusal::FileTooLarge { size, limit } => over("file_bytes", size, limit),
            AttachmentRefusal::RecordTooLarge { size, limit } => over("record_bytes", size, limit),
            AttachmentRefusal::TooManyForRecord { count, limit } => {
                over("attachments_per_record", count, limit.into())
            }
            AttachmentRefusal::UnsupportedMediaType { .. } => {
                VigieError::validation("media_type", rule)
            }
            AttachmentRefusal::Empty
            | AttachmentRefusal::NotAnImage
            | AttachmentRefusal::ImageTooLarge
            | AttachmentRefusal::HashMismatch
            | AttachmentRefusal::NotTheMediaType => VigieError::validation("source", rule),
            AttachmentRefusal::Invalid(v) => v.into(),
        }
    }
}

/// Why the app's transport could not carry a sync message. Raise (throw) it from
/// `SyncTransport.exchange`; any other exception thrown there counts as `Unreachable`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum TransportError {
    /// No answer: no network, timeout, cut connection. The session resumes next time.
    #[error("hub unreachable: {reason}")]
    Unreachable { reason: String },
    /// The hub answered with an HTTP error status. 401 becomes `VigieError.Authentication`,
    /// 403 `VigieError.NotAllowed`, any other `VigieError.Transport`.
    #[error("hub answered {status}: {reason}")]
    Http { status: i32, reason: String },
    /// The hub revoked this device and asks it to wipe (HTTP 403 with `"wipe": true`), with
    /// the order the hub signed (the answer's `"order"`, empty if none): becomes
    /// `VigieError.DeviceRevoked` once the order is found the hub's, else `NotAllowed`, and
    /// nothing is wiped.
    #[error("device revoked by the hub: {reason}")]
    DeviceRevoked { reason: String, order: String },
}

/// What an app's transport threw instead of a `TransportError`: only the exception's type is
/// kept (`java.net.SocketTimeoutException`, `ValueError`), never its message, which may quote
/// anything the app had at hand.
impl From<UnexpectedUniFFICallbackError> for TransportError {
    fn from(e: UnexpectedUniFFICallbackError) -> TransportError {
        // The text starts with the type as the language prints it (`ValueError(...)`,
        // `java.io.IOException: ...`), unless the app's exception prints itself otherwise: a
        // first word that is no exception type's name is not kept.
        let first = e.reason.split(['(', ':', ' ']).next().unwrap_or_default();
        let is_type = first.len() <= 120
            && first
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '$'))
            && ["Error", "Exception", "Exit", "Interrupt", "Timeout"]
                .iter()
                .any(|suffix| first.ends_with(suffix));
        let kind = if is_type { first } else { "an exception" };
        // Python raises these when a transport returns another type than `bytes` (a
        // `bytearray`, `None`): the app threw nothing, and a retry would fail alike.
        let returned = match kind {
            "TypeError" | "ArgumentError" | "ValueError" => {
                ", or returned something other than bytes"
            }
            _ => "",
        };
        TransportError::Unreachable {
            reason: format!("the app's transport threw {kind}{returned}"),
        }
    }
}

/// `VigieError::DeviceRevoked`'s words, whichever way the hub's order came: its text reads
/// "device revoked: the hub asks this device to wipe its data", once.
const REVOKED: &str = "the hub asks this device to wipe its data";

impl From<TransportError> for VigieError {
    fn from(e: TransportError) -> VigieError {
        let e = match e {
            TransportError::Unreachable { reason } => TransportError::Unreachable {
                reason: foreign_text(&reason),
            },
            TransportError::Http { status, reason } => TransportError::Http {
                status,
                reason: foreign_text(&reason),
            },
            revoked @ TransportError::DeviceRevoked { .. } => revoked,
        };
        let reason = e.to_string();
        match e {
            TransportError::DeviceRevoked { .. } => VigieError::DeviceRevoked {
                reason: REVOKED.into(),
            },
            TransportError::Http { status: 401, .. } => VigieError::Authentication { reason },
            TransportError::Http { status: 403, .. } => VigieError::NotAllowed { reason },
            _ => VigieError::Transport { reason },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_with_nothing_for_its_recipients_is_not_allowed_not_an_identity_failure() {
        let e: VigieError = CoreError::Identity(IdentityError::NothingForRecipient {
            recipient: "CI-R2".into(),
            reason: "none of the records lies in the areas named",
        })
        .into();
        assert!(matches!(e, VigieError::NotAllowed { .. }), "{e:?}");
        let e: VigieError = CoreError::Identity(IdentityError::NotARecipient).into();
        assert!(matches!(e, VigieError::Authentication { .. }), "{e:?}");
    }

    /// A conflict's id tells the person nothing: its text in French holds none.
    #[test]
    fn a_conflict_reads_in_french_without_its_id() {
        let id = uuid::Uuid::now_v7();
        let e: VigieError = CoreError::AlreadyExists {
            kind: vigie_core::RecordKind::ChildCase,
            id,
        }
        .into();
        let said = e.text_in("fr".into());
        assert!(said.contains("existe déjà"), "{said}");
        assert!(!said.contains(&id.to_string()), "{said}");
    }

    /// An attachment no longer on the store is said to be one, in every language.
    #[test]
    fn an_attachment_not_found_is_named_so() {
        let id = uuid::Uuid::now_v7();
        let e: VigieError = CoreError::AttachmentNotFound { id }.into();
        assert!(
            matches!(&e, VigieError::NotFound { kind, .. } if kind == "attachment"),
            "{e:?}"
        );
        assert_eq!(e.text_in("fr".into()), "Introuvable : Pièce jointe");
    }

    /// Why a bundle or a peer was refused reads in French, without the device's or record's
    /// id (which tells a monitor nothing): a phone whose clock runs ahead is told so in her
    /// language, not in English.
    #[test]
    fn who_the_devices_are_reads_in_french_without_ids() {
        let device = uuid::Uuid::now_v7();
        for (error, french) in [
            (
                IdentityError::Expired { device },
                "Authentification refusée : le certificat de l'appareil a expiré",
            ),
            (
                IdentityError::NotARecipient,
                "Authentification refusée : le paquet n'est pas scellé pour cet appareil",
            ),
            (
                IdentityError::OutOfScope { record: device },
                "Authentification refusée : un dossier est hors du périmètre",
            ),
        ] {
            let e: VigieError = CoreError::Identity(error).into();
            let said = e.text_in("fr".into());
            assert!(said.starts_with(french), "{said}");
            assert!(!said.contains(&device.to_string()), "{said}");
            assert!(!e.text_in("en".into()).contains(&device.to_string()));
        }
    }

    /// What a proxy or a portal wrote in the hub's place reaches the app on one line, without
    /// its controls or direction marks, and cut to a length a screen shows.
    #[test]
    fn a_text_another_party_wrote_is_shown_on_one_short_line() {
        let e: VigieError = TransportError::Http {
            status: 403,
            reason: format!("Forfait\népuisé\u{202E}: {}", "x".repeat(5_000_000)),
        }
        .into();
        let VigieError::NotAllowed { reason } = e else {
            panic!("{e:?}")
        };
        assert!(
            reason.starts_with("hub answered 403: Forfait épuisé : xxx"),
            "{reason}"
        );
        assert!(reason.chars().count() < 700, "{}", reason.len());
        assert!(reason.ends_with('…'));
    }
}
