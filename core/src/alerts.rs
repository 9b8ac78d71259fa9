//! Urgent alerts: open child cases of a worst form or hazardous child labour, and visits that
//! found forced-labour indicators, most urgent first. They come from index rows (`alert_index`,
//! schema 5), written with the record, and the same severity puts urgent records first in the
//! device's sync outbox.

use crate::classify::ClassificationOutcome;
use crate::error::Result;
use crate::model::{AreaFilter, CaseStatus, ChildCase, RecordKind, Visit};
use crate::store::index::{Filter, uuid_col};
use crate::store::{Page, Store};
use chrono::{DateTime, Utc};

/// How urgent an alert is; the discriminant is stored (higher first): never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertSeverity {
    /// A visit found one or more of the ILO forced-labour indicators.
    ForcedLabourIndicators = 1,
    /// An open case classified hazardous child labour.
    HazardousChildLabour = 2,
    /// An open case where a worst form of child labour (C182 art. 3 a-c) is suspected.
    WorstFormSuspected = 3,
}

impl AlertSeverity {
    pub(crate) fn from_i64(v: i64) -> Option<AlertSeverity> {
        match v {
            1 => Some(Self::ForcedLabourIndicators),
            2 => Some(Self::HazardousChildLabour),
            3 => Some(Self::WorstFormSuspected),
            _ => None,
        }
    }
}

/// One alert, as the index knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub id: uuid::Uuid,
    pub kind: RecordKind,
    pub severity: AlertSeverity,
    /// When the child was identified (midnight UTC of that day), or the visit started.
    pub at: DateTime<Utc>,
    pub district: String,
    pub community: String,
}

/// The alert a case raises: while it is open (identified, referred or receiving services) and
/// not a merged duplicate. A withdrawn, prevented or closed child is no longer urgent.
pub fn case_severity(case: &ChildCase) -> Option<AlertSeverity> {
    if case.merged_into.is_some()
        || !matches!(
            case.status,
            CaseStatus::Identified | CaseStatus::Referred | CaseStatus::ReceivingServices
        )
    {
        return None;
    }
    match case.classification.as_ref()?.outcome {
        ClassificationOutcome::WorstFormSuspected => Some(AlertSeverity::WorstFormSuspected),
        ClassificationOutcome::HazardousChildLabour => Some(AlertSeverity::HazardousChildLabour),
        _ => None,
    }
}

/// The alert a visit raises: whenever it recorded a forced-labour indicator.
pub(crate) fn visit_severity(visit: &Visit) -> Option<AlertSeverity> {
    (!visit.forced_labour.is_empty()).then_some(AlertSeverity::ForcedLabourIndicators)
}

impl Store {
    /// Urgent alerts in an area (or everywhere): worst forms first, then hazardous child labour,
    /// then visits with forced-labour indicators; within each, the most recent first.
    pub fn alerts(&self, area: Option<AreaFilter>, page: Page) -> Result<Vec<Alert>> {
        self.alerts_within(area, page, None)
    }

    /// `alerts`, restricted to what a principal receives (`Store::scoped`).
    pub(crate) fn alerts_within(
        &self,
        area: Option<AreaFilter>,
        page: Page,
        scope: Option<&crate::sync::Scope>,
    ) -> Result<Vec<Alert>> {
        let mut f = Filter::default();
        f.area("a", &area);
        if let Some(who) = scope {
            f.within_kinds("a", who);
        }
        let (tail, params) = f.finish("a.severity DESC, a.at_ms DESC, a.record DESC", page);
        let sql = format!(
            "SELECT r.id, a.kind, a.severity, a.at_ms, a.district, a.community
             FROM alert_index a JOIN records r ON r.rowid = a.record {tail}"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(params), |row| {
            Ok(Alert {
                id: uuid_col(row, 0)?,
                kind: RecordKind::from_i64(row.get(1)?).unwrap_or(RecordKind::Visit),
                severity: AlertSeverity::from_i64(row.get(2)?)
                    .unwrap_or(AlertSeverity::ForcedLabourIndicators),
                at: DateTime::from_timestamp_millis(row.get(3)?).unwrap_or_default(),
                district: row.get(4)?,
                community: row.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
