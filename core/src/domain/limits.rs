//! The bounds on what one record's document may hold, as data. `codec::bounds` checks them
//! wherever bytes become a document.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One of the bounds on a document, named in refusals and errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum DocumentLimit {
    /// The document's bytes, once every compression in it is undone.
    Bytes,
    /// Levels of maps (or lists) inside one another.
    Depth,
    /// Operations in the document's history.
    Operations,
    /// Changes in the document's history.
    Changes,
    /// Characters in one text or string value.
    TextLength,
}

impl DocumentLimit {
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentLimit::Bytes => "document size",
            DocumentLimit::Depth => "nesting depth",
            DocumentLimit::Operations => "number of operations",
            DocumentLimit::Changes => "number of changes",
            DocumentLimit::TextLength => "length of one text",
        }
    }
}

impl fmt::Display for DocumentLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Of the changes a record may hold (`DocumentLimits::max_changes`), the part one device may
/// make (and of its operations, `DocumentLimits::device_operations_share`): no device (an
/// altered app's) can fill a record's history and leave its colleagues no room to edit it, a
/// record frozen for good (a history is never shortened). A phone makes one change a save: a
/// quarter is years of a case followed by one monitor.
pub const DEVICE_SHARE_OF_CHANGES: u64 = 4;

/// The bounds themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentLimits {
    /// Bytes of a document (or of changes received at once), with every compression undone.
    pub max_bytes: usize,
    pub max_depth: usize,
    pub max_operations: u64,
    pub max_changes: u64,
    /// Characters of one text (notes, findings) or one string.
    pub max_text_chars: usize,
}

impl DocumentLimits {
    /// What every store and hub applies. A record of the reference workload is 2–6 KiB with
    /// 4 levels, a few hundred operations and changes, and notes of ~200 characters; these
    /// bounds leave room for years of edits and notes of 15 pages, and keep one document's
    /// decoding within a few tens of MiB.
    ///
    /// Every character ever typed in a text is an operation for good (one rewritten or deleted
    /// too): a case followed for a childhood, a note of a few lines at each of its 1,000
    /// follow-ups and its summary rewritten at visits, is some 300,000. A text's operations
    /// cost some 16 bytes of memory each once loaded (a 500,000 one, some 10 MiB and 0.2 s
    /// here); a value's, some 75 (the document's bytes bound them first: some 37 MiB).
    pub const STANDARD: DocumentLimits = DocumentLimits {
        max_bytes: 2 * 1024 * 1024,
        max_depth: 32,
        max_operations: 500_000,
        max_changes: 10_000,
        max_text_chars: 32 * 1024,
    };
}

impl DocumentLimits {
    /// Of the operations a record's changes may hold, the part one device's may: a quarter of
    /// the document's (`max_operations`), its deletions counted as its changes hold them. Its
    /// changes' number alone let one change of an altered app type half a million characters
    /// and delete them (each an operation for good) and leave its colleagues no room. An
    /// honest device's share is years of notes: a phone is replaced long before.
    pub fn device_operations_share(&self) -> u64 {
        self.max_operations / DEVICE_SHARE_OF_CHANGES
    }

    /// The operations Automerge may build to read one record's push (`bounds::Admitted`):
    /// twice a device's share, for its own changes and those it relays of others, or a whole
    /// document an app of an earlier version sends (which held at most 100,000). More is
    /// refused before it is read: a whole document typing and deleting half a million
    /// characters, or changes under made-up devices each within a share, took the hub seconds
    /// and 300 to 500 MB each to judge.
    pub fn push_operations(&self) -> u64 {
        self.device_operations_share().saturating_mul(2)
    }
}

impl Default for DocumentLimits {
    fn default() -> Self {
        Self::STANDARD
    }
}
