//! Sync bundles: documents in a file, for a USB stick, an SD card or a messaging app.
//!
//! A bundle is a tag, the SHA-256 of the body, and the body (a compressed message). It is applied
//! in one transaction: if the checksum, the framing or any single record fails, nothing from it
//! is stored, and the error says which record failed and why.

use super::wire;
use crate::error::{Error, Result};
use crate::model::AreaFilter;
use crate::store::{self, Store};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

const BUNDLE_TAG: [u8; 4] = *b"VGb1";
const BODY_TAG: [u8; 4] = *b"VGB1";
/// A bundle expands to at most this much; larger exports are split by the exporter.
const MAX_BUNDLE_EXPANDED: usize = 512 * 1024 * 1024;

#[derive(Debug, Serialize, Deserialize)]
struct Bundle {
    from_device: Uuid,
    created_ms: i64,
    documents: Vec<(Uuid, Vec<u8>)>,
}

/// What importing a bundle did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BundleReport {
    pub records: usize,
    /// Records that brought something new.
    pub changed: usize,
    pub from_device: Option<Uuid>,
}

fn refuse(record: Option<Uuid>, reason: impl Into<String>) -> Error {
    Error::DamagedBundle {
        record,
        reason: reason.into(),
    }
}

/// A bundle of whole documents (Automerge bytes) from `from_device`, as `export_bundle` writes
/// one (for tools, tests and fuzzing).
pub fn encode_bundle(from_device: Uuid, documents: Vec<(Uuid, Vec<u8>)>) -> Vec<u8> {
    let body = wire::encode(
        BODY_TAG,
        &Bundle {
            from_device,
            created_ms: Utc::now().timestamp_millis(),
            documents,
        },
    );
    let mut out = BUNDLE_TAG.to_vec();
    out.extend_from_slice(&Sha256::digest(&body));
    out.extend_from_slice(&body);
    out
}

impl Store {
    /// Exports every record (in `areas`, if given) that changed after change-log position
    /// `since` (0 for everything). Returns the bundle and the position to pass next time, so a
    /// device can send a peer only what changed since its last bundle to it.
    pub fn export_bundle(&self, since: i64, areas: &[AreaFilter]) -> Result<(Vec<u8>, i64)> {
        let mut params: Vec<rusqlite::types::Value> = vec![since.into()];
        let clauses: Vec<String> = areas
            .iter()
            .map(|a| {
                let (column, code) = a.column_and_code();
                params.push(code.to_string().into());
                format!("s.{column} = ?{}", params.len())
            })
            .collect();
        let (join, filter) = if clauses.is_empty() {
            (String::new(), String::new())
        } else {
            (
                "JOIN scope_index s ON s.record = r.rowid".to_string(),
                format!("AND ({})", clauses.join(" OR ")),
            )
        };
        let mut stmt = self.conn.prepare(&format!(
            "SELECT r.id, r.doc FROM records r {join} WHERE r.last_seq > ?1 {filter} ORDER BY r.last_seq"
        ))?;
        let documents = stmt
            .query_map(rusqlite::params_from_iter(params), |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?
            .filter_map(|row| match row {
                Ok((id, doc)) => Uuid::from_slice(&id).ok().map(|id| Ok((id, doc))),
                Err(e) => Some(Err(e)),
            })
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .map(|(id, stored)| Ok((id, store::decode_stored(id, stored)?)))
            .collect::<Result<Vec<_>>>()?;
        let mark: i64 =
            self.conn
                .query_row("SELECT coalesce(max(seq), 0) FROM change_log", [], |r| {
                    r.get(0)
                })?;
        Ok((encode_bundle(self.author.device, documents), mark))
    }

    /// Imports a bundle whole, or nothing of it.
    pub fn import_bundle(&mut self, bytes: &[u8]) -> Result<BundleReport> {
        let rest = bytes
            .strip_prefix(&BUNDLE_TAG)
            .ok_or_else(|| refuse(None, "not a Vigie bundle"))?;
        if rest.len() < 32 {
            return Err(refuse(None, "truncated bundle"));
        }
        let (checksum, body) = rest.split_at(32);
        if Sha256::digest(body).as_slice() != checksum {
            return Err(refuse(
                None,
                "checksum mismatch: the bundle was damaged or altered",
            ));
        }
        let bundle: Bundle = wire::decode(BODY_TAG, "bundle", body, MAX_BUNDLE_EXPANDED)
            .map_err(|e| refuse(None, e.to_string()))?;
        let mut receiver = self.receiver();
        let tx = self.conn.transaction()?;
        let mut report = BundleReport {
            from_device: Some(bundle.from_device),
            ..BundleReport::default()
        };
        for (id, document) in &bundle.documents {
            match store::receive::merge_received(
                &tx,
                &mut receiver,
                store::reference_source!(self),
                *id,
                document,
            ) {
                Ok(merged) if !merged.complete => {
                    return Err(refuse(Some(*id), "the record's history is incomplete"));
                }
                Ok(merged) => {
                    report.records += 1;
                    report.changed += usize::from(merged.changed);
                }
                Err(Error::Storage(e)) => return Err(Error::Storage(e)),
                Err(e) => return Err(refuse(Some(*id), e.to_string())),
            }
        }
        tx.commit()?;
        self.received(receiver);
        Ok(report)
    }
}
