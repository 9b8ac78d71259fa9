//! Sync: sans-IO sessions that turn a store's state into bytes to send and apply bytes received.
//! The core never opens a socket: the app carries the bytes over HTTP, Bluetooth or a file.
//!
//! - `client`: a device and its hub. The hub issues a cursor into its change sequence, so a
//!   device learns what changed with bytes proportional to the changes; the device pushes, per
//!   record, only the Automerge changes after the heads the hub is known to hold. One request and
//!   its response carry both directions.
//! - `hub`: the hub's side of the same exchange, with authorization per record, over any
//!   `storage::HubStorage` (the embedded store, `store::hub`; PostgreSQL in the server).
//! - `peer`: two devices with no cursor between them find what differs by range-based set
//!   reconciliation (negentropy), then exchange the documents.
//! - `attachments`: attachment bytes, apart from records, in resumable chunks.
//! - `bundle`: the same documents in a file, signed and sealed to their recipients, refused
//!   whole if anything fails to check.
//! - `identity`: the hub certifies devices' keys; devices keep its key, their certificate, the
//!   revocation list and a directory of certificates.
//!
//! Every byte from elsewhere is untrusted: decoding is bounded, and Automerge is called behind a
//! boundary that turns a panic into a refused record with nothing stored from it.

mod attachments;
mod bundle;
mod client;
mod hub;
mod identity;
mod peer;
mod quarantine;
mod received;
mod token;
pub mod wire;

pub use crate::storage::{
    Appended, ChangedRecord, Departure, DeviceAllowances, ErasedHistory, HeldAttachment,
    HubStorage, HubTransaction, LogEntry, Quarantined, RecordWrite, StoredRecord,
};
pub use crate::store::HubReader;
pub use attachments::{
    AttachmentRequest, AttachmentResponse, AttachmentSummary, AttachmentSyncOptions,
    FILE_CHARGE_BYTES, MAX_CHUNK_BYTES, RecordSyncState, TransferRefusal,
    decode_request as decode_attachment_request, decode_response as decode_attachment_response,
    encode_request as encode_attachment_request, encode_response as encode_attachment_response,
    handle_attachment, sync_attachments,
};
pub use bundle::{BundleReport, Recipient, encode_bundle};
pub use client::{
    Discarded, HubTransport, Removal, RemovedRecord, StoreAccess, SyncOptions, SyncReport,
    SyncSummary, sync_through, sync_with_hub,
};
pub use hub::{
    ADMIN_AUTHOR, COMBINED_WITH_OTHERS, EARLIEST_EVENT_DAY, ErasedRecords, HUB_ADMIN,
    HubBundleReport, HubError, HubLimits, MAX_CARRIED_PER_CARRIER, MAX_QUARANTINED_PER_DEVICE,
    Principal, Scope, change_as, create_record, erase_again, erase_record, hand_over_case,
    handle_certified_sync, handle_sync, import_hub_bundle, latest_event_day, may_take_over,
    publish_reference, publish_references, read_as, read_record, refile_record, resolve_as,
    update_record,
};
pub use identity::{
    Certifier, DeviceRegistry, RegisteredDevice, hub_identity, recertify_user, supersede_reissued,
};
pub use peer::{PeerScope, PeerSession, sync_peers};
pub use quarantine::{
    QuarantineView, QuarantinedAttachment, ReviewState, Reviewer, accept_quarantined,
    community_gone, describe_quarantined, refiled_area, reject_quarantined,
};
pub use token::{EnrolmentToken, MalformedToken};
pub use wire::{
    Cursor, DecodeError, Directory, IdentityUpdate, Refusal, RefusalDetail, RequestIdentity,
    Tombstone, UserProfile,
};
