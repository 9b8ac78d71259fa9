//! What a new area tree leaves behind, said to whoever publishes it (`vigie reference publish`
//! on stderr, the console's reference page in its language): users holding a code no tree in
//! force holds, and records filed under a community the tree holds elsewhere or no more. One
//! home for both, so that the command line and the console never tell an administrator
//! different things about the same publish.

use crate::backend::Backend;
use uuid::Uuid;
use vigie_core::{Error, RecordKind};

/// One thing a new area tree left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AreaWarning {
    /// An active user holds `code`, which no tree in force holds (a community renamed, merged
    /// or removed): it covers nothing now, until the user is given the area's new code.
    UserAreaGone { user: Uuid, code: String },
    /// Records filed under `district › community`, which the tree in force holds under the
    /// district `now`, or (`None`) no more. They stay filed there until filed again (`vigie
    /// reference refile`): seen by the users whose codes the tree still holds, which for a
    /// community removed are only those of a wider area.
    RecordsLeft {
        district: String,
        community: String,
        now: Option<String>,
        counts: Vec<(RecordKind, u64)>,
    },
}

/// What the area trees in force leave behind (`AreaWarning`): users first, then records by
/// district and community.
pub fn after_area_publish(backend: &dyn Backend) -> Result<Vec<AreaWarning>, Error> {
    let reference = backend.reference()?;
    let mut warnings = Vec::new();
    for user in backend.users()? {
        if !user.active {
            continue;
        }
        for code in user
            .areas
            .iter()
            .filter(|c| reference.grants_of(c).is_empty())
        {
            warnings.push(AreaWarning::UserAreaGone {
                user: user.id,
                code: code.clone(),
            });
        }
    }
    let mut view = backend.open_view()?;
    backend.refresh_view(&mut view)?;
    type Filed = (String, String, Option<String>);
    let mut left: std::collections::BTreeMap<Filed, Vec<(RecordKind, u64)>> = Default::default();
    for (area, kind, count) in view.store.records_by_area()? {
        let Some(tree) = reference.area_tree(&area.country) else {
            continue;
        };
        if tree.check(&area, "area").is_err() {
            let now = tree.area_of(&area.community).map(|a| a.district);
            left.entry((area.district, area.community, now))
                .or_default()
                .push((kind, count));
        }
    }
    warnings.extend(
        left.into_iter().map(
            |((district, community, now), counts)| AreaWarning::RecordsLeft {
                district,
                community,
                now,
                counts,
            },
        ),
    );
    Ok(warnings)
}
