//! The sample area tree the repository ships, as the test hubs publish it.

use std::path::Path;
use std::sync::OnceLock;
use vigie_core::{ReferenceData, ReferenceFile};

/// `reference/areas-CI.json`: Côte d'Ivoire, region CI-R1 (districts D1 to D4, communities C01
/// to C10 each) and region CI-R2 (district CI-R2-D1, community CI-R2-D1-C01).
pub const SAMPLE_AREAS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../reference/areas-CI.json");

/// Reference data with the sample area tree: what a test hub's principals are resolved with.
pub fn sample_reference() -> &'static ReferenceData {
    static DATA: OnceLock<ReferenceData> = OnceLock::new();
    DATA.get_or_init(|| {
        let text = std::fs::read_to_string(SAMPLE_AREAS).expect("read the sample area tree");
        let file = ReferenceFile::parse(&text).expect("the sample area tree parses");
        ReferenceData::builtin().with(&file.key, 1, file.content)
    })
}

/// `vigie reference publish` of `files` on the hub whose data is `data`; returns its output.
pub fn publish(data: &Path, files: &[&str]) -> String {
    let database = super::database_args(data);
    let mut args = vec![
        "reference",
        "publish",
        "--data",
        data.to_str().expect("utf-8 path"),
    ];
    args.extend(database.iter().map(String::as_str));
    args.extend(files);
    super::vigie(&args)
}
