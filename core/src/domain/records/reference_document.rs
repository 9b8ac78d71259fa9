//! Reference data as the hub publishes it, synced like any record: one document per version
//! (per part of a version too long for one document), each shaped as the single document per
//! type and key that earlier versions kept every version in (still read: hubs and phones hold
//! them). A device of an earlier version reads a version's document as one more document of
//! its type and key, and uses every version that fits one text.

use super::{Record, Version, record_identity};
use crate::domain::codes::{RecordKind, ReferenceType};
use crate::domain::reference::content::valid_key;
use crate::domain::reference::{Published, ReferenceContent, ReferenceData};
use crate::domain::validation::ValidationError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use uuid::Uuid;

/// A reference document as a hub publishes it: one version of a type and key (or one part of
/// it), or, as written before, every version of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceDocument {
    #[serde(skip)]
    pub id: Uuid,
    #[serde(skip)]
    pub version: Version,
    #[serde(rename = "type")]
    pub reference_type: ReferenceType,
    pub key: String,
    /// By version number. A version, once published, is never changed or removed.
    #[serde(default)]
    pub versions: BTreeMap<u32, Published>,
}

impl ReferenceDocument {
    pub fn new(reference_type: ReferenceType, key: &str) -> ReferenceDocument {
        ReferenceDocument {
            id: Self::id_for(reference_type, key),
            version: Version::default(),
            reference_type,
            key: key.into(),
            versions: BTreeMap::new(),
        }
    }

    /// Whether `id` is of the kind reference documents have (a UUID of version 8), which no
    /// other record may take: a field record under the id a later publication needs would
    /// stop every publication of that type and key.
    pub fn reserved_id(id: Uuid) -> bool {
        id.get_version_num() == 8
    }

    /// The rule a record under such an id breaks.
    pub const RESERVED_ID: &str = "must not be an id of the kind reserved for reference data (a UUID of version 8): leave it empty, the store gives one";

    /// The document's id, the same wherever and however often it is published: a UUID
    /// (version 8) from SHA-256 of the type and key.
    pub fn id_for(reference_type: ReferenceType, key: &str) -> Uuid {
        let digest = Sha256::new()
            .chain_update(b"vigie reference document\0")
            .chain_update(reference_type.as_str())
            .chain_update(b"/")
            .chain_update(key)
            .finalize();
        let bytes: [u8; 16] = digest[..16].try_into().expect("16 bytes");
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }

    /// The id of the document holding version `version` of a type and key: its part `part`
    /// (from 1) when the version is cut into parts, else 0.
    pub fn id_for_version(
        reference_type: ReferenceType,
        key: &str,
        version: u32,
        part: u32,
    ) -> Uuid {
        let digest = Sha256::new()
            .chain_update(b"vigie reference version\0")
            .chain_update(reference_type.as_str())
            .chain_update(b"/")
            .chain_update(key)
            .chain_update(format!("@{version}#{part}"))
            .finalize();
        let bytes: [u8; 16] = digest[..16].try_into().expect("16 bytes");
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }

    /// The documents a version is published as: one per part, each holding only that version.
    pub fn for_version(
        reference_type: ReferenceType,
        key: &str,
        version: u32,
        parts: Vec<Published>,
    ) -> Vec<ReferenceDocument> {
        parts
            .into_iter()
            .map(|published| ReferenceDocument {
                id: Self::id_for_version(reference_type, key, version, published.part),
                version: Version::default(),
                reference_type,
                key: key.into(),
                versions: BTreeMap::from([(version, published)]),
            })
            .collect()
    }

    pub fn latest(&self) -> Option<u32> {
        self.versions.keys().next_back().copied()
    }

    pub fn content(&self, version: u32) -> Option<ReferenceContent> {
        self.versions.get(&version)?.content()
    }
}

impl Record for ReferenceDocument {
    const KIND: RecordKind = RecordKind::Reference;
    const TEXT_FIELDS: &'static [&'static str] = &[];
    // `versions` is not a collection: a version missing from a write is kept, never removed.
    const COLLECTIONS: &'static [&'static str] = &[];
    record_identity!();

    fn validate(&self, _reference: &ReferenceData) -> Result<(), ValidationError> {
        if self.reference_type == ReferenceType::Unknown {
            return Err(ValidationError::new("type", "unknown reference type"));
        }
        if !valid_key(&self.key) {
            return Err(ValidationError::new(
                "key",
                "a key is 1 to 64 printable ASCII characters without spaces, '@' or '/'",
            ));
        }
        let single = match self.versions.iter().next() {
            Some((number, published)) if self.versions.len() == 1 => {
                self.id
                    == Self::id_for_version(self.reference_type, &self.key, *number, published.part)
            }
            _ => false,
        };
        if !single && self.id != Self::id_for(self.reference_type, &self.key) {
            return Err(ValidationError::new(
                "id",
                "must be the id of the document's type and key",
            ));
        }
        for (number, published) in &self.versions {
            let field = format!("versions.{number}");
            if *number == 0 {
                return Err(ValidationError::new(field, "versions are numbered from 1"));
            }
            if !published.is_whole() {
                // A part is checked with the others when the version is assembled (and its
                // content was checked whole when it was published).
                if published.part == 0
                    || published.part > published.parts
                    || published.pieces.is_empty()
                    || !published.content.is_empty()
                {
                    return Err(ValidationError::new(field, "not a part of a version"));
                }
                continue;
            }
            let Some(content) = published.content() else {
                return Err(ValidationError::new(field, "content is not reference data"));
            };
            if content.reference_type() != self.reference_type {
                return Err(ValidationError::new(
                    field,
                    "content is not of the document's type",
                ));
            }
            content
                .validate()
                .map_err(|e| ValidationError::new(format!("{field}.{}", e.field), e.rule))?;
        }
        Ok(())
    }
}

impl ReferenceData {
    /// Adds every whole version of a published document this software can read (the parts of
    /// a version are assembled by `doc::with_published`).
    pub fn add_published(&mut self, document: &ReferenceDocument) {
        for (version, published) in &document.versions {
            if let Some(content) = published.content() {
                self.add_published_content(
                    document.reference_type,
                    &document.key,
                    *version,
                    content,
                );
            }
        }
    }

    /// Adds a version of a published document, if its content is of the document's type.
    pub(crate) fn add_published_content(
        &mut self,
        reference_type: ReferenceType,
        key: &str,
        version: u32,
        content: ReferenceContent,
    ) {
        if content.reference_type() == reference_type {
            self.add_published_version(key, version, content);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_types_and_contents_still_read() {
        let json = serde_json::json!({"type": "school_calendar", "key": "CI", "versions": {
            "1": {"published_at": "2026-01-01T00:00:00Z", "content": "{\"school_calendar\":{}}"}
        }});
        let doc: ReferenceDocument = serde_json::from_value(json).unwrap();
        assert_eq!(doc.reference_type, ReferenceType::Unknown);
        assert_eq!(doc.latest(), Some(1));
        assert_eq!(doc.content(1), None);
        let mut data = ReferenceData::builtin();
        let before = data.clone();
        data.add_published(&doc);
        assert_eq!(data, before);
    }

    #[test]
    fn document_ids_are_stable_and_distinct() {
        let a = ReferenceDocument::id_for(ReferenceType::CountryProfile, "CI");
        assert_eq!(
            a,
            ReferenceDocument::id_for(ReferenceType::CountryProfile, "CI")
        );
        assert_ne!(
            a,
            ReferenceDocument::id_for(ReferenceType::CountryProfile, "BF")
        );
        assert_ne!(
            a,
            ReferenceDocument::id_for(ReferenceType::AdministrativeAreas, "CI")
        );
        assert_eq!(a.get_version_num(), 8);
    }
}
