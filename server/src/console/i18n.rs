//! The console's words: one catalogue per language (`i18n/fr.txt`, `i18n/en.txt`, lines of
//! `key = text`), French by default. Templates and handlers name keys, never text; a test
//! checks that both catalogues have the same keys and that every key used exists.

use std::collections::HashMap;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Fr,
    En,
}

const FR: &str = include_str!("i18n/fr.txt");
const EN: &str = include_str!("i18n/en.txt");

/// The console's words in `lang` with the core's (`vigie_core::messages`: field labels and
/// rules, which apps show too).
fn entries(lang: Lang) -> HashMap<&'static str, &'static str> {
    let mut entries = vigie_core::messages::catalogue(lang.code()).clone();
    entries.extend(vigie_core::messages::parse(match lang {
        Lang::Fr => FR,
        Lang::En => EN,
    }));
    entries
}

fn catalogue(lang: Lang) -> &'static HashMap<&'static str, &'static str> {
    static FR_MAP: OnceLock<HashMap<&str, &str>> = OnceLock::new();
    static EN_MAP: OnceLock<HashMap<&str, &str>> = OnceLock::new();
    match lang {
        Lang::Fr => FR_MAP.get_or_init(|| entries(Lang::Fr)),
        Lang::En => EN_MAP.get_or_init(|| entries(Lang::En)),
    }
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Fr => "fr",
            Lang::En => "en",
        }
    }

    pub fn from_code(code: &str) -> Option<Lang> {
        match code {
            "fr" => Some(Lang::Fr),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The language chosen with the switch (a cookie), else the browser's first supported
    /// one (`Accept-Language`), else French.
    pub fn choose(cookie: Option<&str>, accept_language: Option<&str>) -> Lang {
        if let Some(lang) = cookie.and_then(Lang::from_code) {
            return lang;
        }
        let mut best: Option<(f32, Lang)> = None;
        for part in accept_language.unwrap_or("").split(',') {
            let mut pieces = part.trim().split(';');
            let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse().ok()))
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            if let Some(lang) = Lang::from_code(primary)
                && best.is_none_or(|(bq, _)| q > bq)
            {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::Fr, |(_, l)| l)
    }
}

/// A whole number a page shows as a count (`Tr::count`).
pub trait Count {
    fn whole(self) -> i128;
}

macro_rules! counts {
    ($($t:ty),*) => {$(
        impl Count for $t {
            fn whole(self) -> i128 {
                self as i128
            }
        }
    )*};
}

counts!(i32, i64, i128, u32, u64, usize);

/// A count as a template holds it (a field of a row: a reference).
impl<N: Count + Copy> Count for &N {
    fn whole(self) -> i128 {
        (*self).whole()
    }
}

/// Text in one language, as templates call it: `t.get("key")`, `t.fmt("key", value)`.
#[derive(Debug, Clone, Copy)]
pub struct Tr(pub Lang);

impl Tr {
    pub fn get(&self, key: &str) -> &'static str {
        catalogue(self.0)
            .get(key)
            .or_else(|| catalogue(Lang::Fr).get(key))
            .copied()
            .unwrap_or("?")
    }

    /// The text with `{}` replaced by `value`.
    pub fn fmt(&self, key: &str, value: impl std::fmt::Display) -> String {
        self.get(key).replacen("{}", &value.to_string(), 1)
    }

    pub fn lang(&self) -> &'static str {
        self.0.code()
    }

    /// A count as the page's readers write it: 2 358 in French (a narrow no-break space
    /// between thousands), 2,358 in English. Exports keep raw numbers.
    pub fn count(&self, n: impl Count) -> String {
        let n = n.whole();
        let digits =
            vigie_core::messages::digits_grouped(&n.unsigned_abs().to_string(), self.0.code());
        if n < 0 { format!("-{digits}") } else { digits }
    }

    /// A file's size as the page's readers write it: 765 Ko, 1,5 Mo in French; 765 KB,
    /// 1.5 MB in English.
    pub fn size(&self, bytes: u64) -> String {
        const KB: f64 = 1024.0;
        let (b, kb, mb) = match self.0 {
            Lang::Fr => ("o", "Ko", "Mo"),
            Lang::En => ("B", "KB", "MB"),
        };
        let size = bytes as f64;
        if size < KB {
            format!("{} {b}", self.count(bytes as i64))
        } else if size < KB * KB {
            format!("{} {kb}", self.count((size / KB).round() as i64))
        } else {
            let megabytes = format!("{:.1}", size / (KB * KB));
            let megabytes = match self.0 {
                Lang::Fr => megabytes.replace('.', ","),
                Lang::En => megabytes,
            };
            format!("{megabytes} {mb}")
        }
    }

    /// The colon between a name and its value, as the page's language writes it (a space
    /// before it in French).
    pub fn colon(&self) -> &'static str {
        match self.0 {
            Lang::Fr => " : ",
            Lang::En => ": ",
        }
    }

    /// An indicator's cell: its count (`count`), or the mark of a withheld one.
    pub fn cell(&self, cell: &vigie_core::Cell) -> String {
        match cell {
            vigie_core::Cell::Count(n) => self.count(*n),
            withheld => withheld.to_string(),
        }
    }

    /// The text of `key.one` or `key.other` as the page's language chooses for `n` (French:
    /// 0 and 1 are singular; English: 1 only), `{}` replaced by the count (`count`).
    pub fn plural(&self, key: &str, n: impl Count) -> String {
        let n = n.whole();
        let one = match self.0 {
            Lang::Fr => n.abs() < 2,
            Lang::En => n.abs() == 1,
        };
        let form = if one { "one" } else { "other" };
        self.fmt(&format!("{key}.{form}"), self.count(n))
    }

    /// A day as a reader of the page's language writes it (13/07/2026 in French). Forms keep
    /// ISO days: a date field's value is one.
    pub fn day(&self, day: chrono::NaiveDate) -> String {
        day.format(self.get("format.day")).to_string()
    }

    /// A moment, to the minute, at its own offset (a visit's time where it was made).
    pub fn moment<Tz: chrono::TimeZone>(&self, at: &chrono::DateTime<Tz>) -> String
    where
        Tz::Offset: std::fmt::Display,
    {
        at.format(self.get("format.moment")).to_string()
    }

    /// A moment the hub or a phone's clock stamped (a change made or received, an audit line,
    /// a device last seen), in the hub's time zone: the one whose day the console calls
    /// today (README asks the hub to run in the country's), not UTC unsaid.
    pub fn here(&self, at: &chrono::DateTime<chrono::Utc>) -> String {
        self.moment(&at.with_timezone(&chrono::Local))
    }

    /// `here`, to the second.
    pub fn here_exactly(&self, at: &chrono::DateTime<chrono::Utc>) -> String {
        self.instant(&at.with_timezone(&chrono::Local))
    }

    /// A moment to the second (values in conflict, made within the same minute).
    pub fn instant<Tz: chrono::TimeZone>(&self, at: &chrono::DateTime<Tz>) -> String
    where
        Tz::Offset: std::fmt::Display,
    {
        at.format(self.get("format.instant")).to_string()
    }

    /// A month given as `2026-01` (the indicators' months): "janv. 2026" in French.
    pub fn month(&self, month: &str) -> String {
        match month
            .split_once('-')
            .and_then(|(y, m)| Some((y, m.parse::<u8>().ok()?)))
        {
            Some((year, m @ 1..=12)) => format!("{} {year}", self.get(&format!("month.{m}"))),
            _ => month.to_string(),
        }
    }

    /// A stored code's label (`status.referred`, `role.supervisor`...), the code itself if the
    /// catalogue has none.
    /// A sector's label from the reference data in force (sectors are data, not code: a
    /// country's own list, `country` when it is known, else the default, else any country's
    /// holding it), else the code as `code` shows it.
    pub fn sector(
        &self,
        reference: &vigie_core::ReferenceData,
        code: &str,
        country: Option<&str>,
    ) -> String {
        match reference.sector(code, country) {
            Some(sector) => sector.label(self.0.code()).to_string(),
            None => self.code("sector", code),
        }
    }

    /// An area's name in the page's language, from the latest area tree that holds its code
    /// (a community removed or renamed since keeps the name an earlier version gave it); the
    /// code itself when none does.
    pub fn area(&self, reference: &vigie_core::ReferenceData, code: &str) -> String {
        let areas = vigie_core::ReferenceType::AdministrativeAreas;
        reference
            .keys(areas)
            .into_iter()
            .flat_map(|country| {
                let versions = reference.versions(areas, country).into_iter().rev();
                versions.map(move |version| vigie_core::Pin::new(country, version))
            })
            .filter_map(|pin| reference.area_tree_at(&pin)?.find(code))
            .map(|node| node.labels.get(self.0.code()).unwrap_or(code).to_string())
            .next()
            .unwrap_or_else(|| code.to_string())
    }

    /// Where a record lies, region › district › community, each by its name (`area`).
    pub fn area_path(
        &self,
        reference: &vigie_core::ReferenceData,
        area: &vigie_core::Area,
    ) -> String {
        [&area.region, &area.district, &area.community]
            .map(|code| self.area(reference, code))
            .join(" › ")
    }

    /// A hazard's label: hazards are data too (the hazardous work list of a country profile),
    /// from the rule set the case is classified with, else the one in force, else the code as
    /// `code` shows it.
    pub fn hazard(
        &self,
        reference: &vigie_core::ReferenceData,
        case: &vigie_core::ChildCase,
        code: &str,
    ) -> String {
        let find = |rules: &vigie_core::classify::RuleSet| {
            let item = rules
                .thresholds
                .hazardous_work
                .iter()
                .find(|h| h.code == code)?;
            Some(item.label(self.0.code()).to_string())
        };
        reference
            .rule_set_of(case)
            .ok()
            .and_then(find)
            .or_else(|| find(reference.rule_set()))
            .unwrap_or_else(|| self.code("hazard", code))
    }

    /// What a person is told when the core refuses their action (a validation rule, a
    /// workflow step), in the page's language (`vigie_core::messages::refusal`). Other errors
    /// are not the person's to fix and are not given here.
    pub fn refusal(&self, error: &vigie_core::Error) -> String {
        vigie_core::messages::refusal(error, self.0.code()).unwrap_or_else(|| error.to_string())
    }

    /// Why a child is classified as she is, in the page's language
    /// (`vigie_core::messages::classification_reason`).
    pub fn classification_reason(&self, reason: &str) -> String {
        vigie_core::messages::classification_reason(reason, self.0.code())
    }

    pub fn code(&self, prefix: &str, code: &str) -> String {
        let key = format!("{prefix}.{code}");
        match catalogue(self.0).get(key.as_str()) {
            Some(text) => text.to_string(),
            None => code.replace('_', " "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_months_read_as_their_readers_write_them() {
        let (fr, en) = (Tr(Lang::Fr), Tr(Lang::En));
        let day = chrono::NaiveDate::from_ymd_opt(2026, 7, 13).unwrap();
        assert_eq!(fr.day(day), "13/07/2026");
        assert_eq!(en.day(day), "13 Jul 2026");
        assert_eq!(fr.month("2026-01"), "janv. 2026");
        assert_eq!(en.month("2026-12"), "Dec 2026");
        assert_eq!(fr.month("2026-13"), "2026-13");
        assert_eq!(fr.month("unknown"), "unknown");
    }

    #[test]
    fn sizes_read_as_their_readers_write_them() {
        let (fr, en) = (Tr(Lang::Fr), Tr(Lang::En));
        assert_eq!(fr.size(54), "54 o");
        assert_eq!(en.size(54), "54 B");
        assert_eq!(fr.size(765 * 1024), "765 Ko");
        assert_eq!(fr.size(1_572_864), "1,5 Mo");
        assert_eq!(en.size(1_572_864), "1.5 MB");
        assert_eq!((fr.colon(), en.colon()), (" : ", ": "));
    }

    #[test]
    fn counts_read_as_their_readers_write_them() {
        let (fr, en) = (Tr(Lang::Fr), Tr(Lang::En));
        assert_eq!(fr.count(2358), "2\u{202F}358");
        assert_eq!(en.count(2358_usize), "2,358");
        assert_eq!(fr.count(999), "999");
        assert_eq!(en.count(1_234_567_i64), "1,234,567");
        assert_eq!(en.count(-1200), "-1,200");
        assert_eq!(fr.cell(&vigie_core::Cell::Suppressed), "x");
        assert_eq!(
            fr.plural("map.visits_in_period", 0),
            "0 visite dans la période"
        );
        assert_eq!(
            fr.plural("map.visits_in_period", 2),
            "2 visites dans la période"
        );
        assert_eq!(
            en.plural("map.visits_in_period", 0),
            "0 visits in the period"
        );
        assert_eq!(
            en.plural("map.visits_in_period", 1),
            "1 visit in the period"
        );
    }

    #[test]
    fn both_catalogues_have_the_same_keys() {
        let fr = entries(Lang::Fr);
        let en = entries(Lang::En);
        let mut missing: Vec<_> = fr.keys().filter(|k| !en.contains_key(*k)).collect();
        missing.extend(en.keys().filter(|k| !fr.contains_key(*k)));
        assert!(
            missing.is_empty(),
            "keys in one catalogue only: {missing:?}"
        );
    }

    #[test]
    fn a_refusal_names_the_field_and_the_rule_in_the_page_language() {
        let error = vigie_core::Error::Validation(vigie_core::ValidationError::new(
            format!("followups.{}.date", uuid::Uuid::now_v7()),
            "must not be before the child was identified",
        ));
        assert_eq!(
            Tr(Lang::Fr).refusal(&error),
            "Date du suivi : ne peut pas précéder l'identification de l'enfant"
        );
        assert_eq!(
            Tr(Lang::En).refusal(&error),
            "Follow-up date: cannot be before the child was identified"
        );
        // A date the core writes as 2027-01-01 reads as the page writes dates.
        let late = vigie_core::Error::Validation(vigie_core::ValidationError::new(
            "follow_up.next_due",
            "must not be after the next follow-up due, on 2027-01-01",
        ));
        let told = Tr(Lang::Fr).refusal(&late);
        assert!(
            told.ends_with("ne peut pas être postérieur au prochain suivi prévu, le 01/01/2027"),
            "{told}"
        );
        let adult = vigie_core::Error::Validation(vigie_core::ValidationError::new(
            "follow_up.next_due",
            "must be before the day the child turns 18, 2027-05-01 (no follow-up is due after)",
        ));
        let told = Tr(Lang::Fr).refusal(&adult);
        assert!(told.contains("atteint 18 ans, le 01/05/2027"), "{told}");
        // Every field has its label, and an entry of a collection its collection's.
        let guardian = vigie_core::Error::Validation(vigie_core::ValidationError::new(
            "guardian",
            "some rule of a later version",
        ));
        assert_eq!(
            Tr(Lang::Fr).refusal(&guardian),
            "Tuteur : some rule of a later version"
        );
        let hazard = vigie_core::Error::Validation(vigie_core::ValidationError::new(
            "hazards.HZ99",
            "some rule of a later version",
        ));
        assert!(Tr(Lang::Fr).refusal(&hazard).starts_with("Dangers : "));
        // A whole record named in a rule is named as the page names it.
        let visit = vigie_core::Error::NotAllowed {
            rule: "some rule of a later version: visit".into(),
        };
        assert!(
            Tr(Lang::Fr).refusal(&visit).ends_with(": Visite"),
            "{}",
            Tr(Lang::Fr).refusal(&visit)
        );
        // A rule not in the catalogues yet shows as the core words it, under its field.
        let new_rule = vigie_core::Error::Validation(vigie_core::ValidationError::new(
            "livestock",
            "some rule of a later version",
        ));
        assert_eq!(
            Tr(Lang::Fr).refusal(&new_rule),
            "livestock : some rule of a later version"
        );
        let step = vigie_core::Error::NotAllowed {
            rule: "only a supervisor may erase a record".into(),
        };
        assert_eq!(
            Tr(Lang::Fr).refusal(&step),
            "Refusé : seul un superviseur peut effacer un dossier"
        );
        // A rule worded "what: why" is told part by part.
        let reviewed = vigie_core::Error::NotAllowed {
            rule: "the reviewed changes break a rule: the record is outside the areas of this \
                   user"
                .into(),
        };
        assert_eq!(
            Tr(Lang::Fr).refusal(&reviewed),
            "Refusé : ces changements enfreignent une règle : le dossier est hors des zones de \
             cet utilisateur"
        );
    }

    #[test]
    fn every_rule_the_catalogues_translate_is_one_the_core_words() {
        // The core's string literals, as `Tr::rule` turns them into keys.
        let mut literals = std::collections::HashSet::new();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        // And the Python transport's, the words every language's transport says.
        let mut dirs = vec![
            root.join("../core/src"),
            root.join("../bindings/src"),
            root.join("../bindings/python/vigie"),
            root.join("src"),
        ];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs" || e == "py") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for literal in text.split('"').skip(1).step_by(2) {
                        // A literal continued on the next line (`\` at a line's end) is one
                        // line of text.
                        let mut joined = String::new();
                        let mut lines = literal.split("\\\n");
                        joined.push_str(lines.next().unwrap_or_default());
                        for line in lines {
                            joined.push_str(line.trim_start());
                        }
                        // A format string's placeholders stand for codes (a frame)…
                        if joined.contains('{') {
                            literals.insert(vigie_core::messages::frame_key(&joined));
                        }
                        // …or numbers.
                        let mut plain = String::new();
                        let mut rest = joined.as_str();
                        while let Some(open) = rest.find('{') {
                            plain.push_str(&rest[..open]);
                            plain.push('0');
                            rest = rest[open..]
                                .find('}')
                                .map_or("", |close| &rest[open + close + 1..]);
                        }
                        plain.push_str(rest);
                        // A literal `what: {}` is told part by part: `what` is a rule too.
                        if let Some(what) = plain.strip_suffix(": 0") {
                            literals.insert(vigie_core::messages::rule_key(what));
                        }
                        literals.insert(vigie_core::messages::rule_key(&plain));
                    }
                }
            }
        }
        for key in vigie_core::messages::catalogue("fr")
            .keys()
            .filter_map(|k| k.strip_prefix("rule."))
        {
            assert!(
                literals.contains(key),
                "rule.{key} is no text of the core's"
            );
        }
    }

    /// A field the bindings name in a refusal of an app's input (a query's dates, a bundle's
    /// recipients) is labelled in both languages, as every record field is: a French user read
    /// "until date : doit être…".
    #[test]
    fn every_field_the_bindings_refuse_has_a_label_in_both_languages() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bindings/src");
        let callers = [
            "validation(",
            "id_opt(",
            "instant_opt(",
            "id(",
            "id_arg_opt(",
            "date(",
            "count(",
            "unsigned(",
        ];
        let mut fields = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(root).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for caller in callers {
                for (at, _) in text.match_indices(caller) {
                    let before = text[..at].chars().next_back();
                    if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        continue;
                    }
                    let rest = text[at + caller.len()..].trim_start();
                    if let Some(literal) = rest.strip_prefix('"')
                        && let Some((field, _)) = literal.split_once('"')
                    {
                        fields.insert(field.to_string());
                    }
                }
            }
        }
        assert!(fields.contains("started_before"), "{fields:?}");
        // Named in a list of pairs, not a call.
        fields.extend(["from_date".to_string(), "until_date".to_string()]);
        let mut missing = Vec::new();
        for field in &fields {
            for lang in ["fr", "en"] {
                if vigie_core::messages::field_label(field, lang).is_none() {
                    missing.push(format!("{lang}: {field}"));
                }
            }
        }
        assert!(missing.is_empty(), "no label for {missing:?}");
    }

    #[test]
    fn every_code_the_pages_show_has_a_label_in_both_languages() {
        use vigie_core::domain::codes::*;
        let codes: Vec<(&str, Vec<&str>)> = vec![
            (
                "fl",
                ForcedLabourIndicator::ALL
                    .iter()
                    .map(|c| c.as_str())
                    .collect(),
            ),
            (
                "school",
                SchoolStatus::ALL.iter().map(|c| c.as_str()).collect(),
            ),
            ("sex", Sex::ALL.iter().map(|c| c.as_str()).collect()),
            (
                "visit_kind",
                VisitKind::ALL.iter().map(|c| c.as_str()).collect(),
            ),
            (
                "visit_status",
                VisitStatus::ALL.iter().map(|c| c.as_str()).collect(),
            ),
            (
                "status",
                CaseStatus::ALL.iter().map(|c| c.as_str()).collect(),
            ),
            (
                "class",
                ClassificationOutcome::ALL
                    .iter()
                    .map(|c| c.as_str())
                    .collect(),
            ),
            (
                "service",
                ServiceKind::ALL.iter().map(|c| c.as_str()).collect(),
            ),
            (
                "situation",
                FollowUpSituation::ALL.iter().map(|c| c.as_str()).collect(),
            ),
        ];
        for catalogue in [entries(Lang::Fr), entries(Lang::En)] {
            for (prefix, all) in &codes {
                for code in all {
                    let key = format!("{prefix}.{code}");
                    assert!(catalogue.contains_key(key.as_str()), "no label for {key}");
                }
            }
        }
    }

    #[test]
    fn every_key_the_templates_and_handlers_use_exists() {
        let fr = entries(Lang::Fr);
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/console");
        let mut files = vec![];
        for sub in ["templates", "pages", ""] {
            for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
                let path = entry.unwrap().path();
                // This file names the patterns themselves.
                if path.is_file() && !path.ends_with("i18n.rs") {
                    files.push(path);
                }
            }
        }
        let mut unknown = vec![];
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            for pattern in ["t.get(\"", "t.fmt(\"", "tr.get(\"", "tr.fmt(\""] {
                for piece in text.split(pattern).skip(1) {
                    let key = piece.split('"').next().unwrap();
                    if !fr.contains_key(key) {
                        unknown.push(format!("{}: {key}", path.display()));
                    }
                }
            }
            // A plural names its two forms.
            for piece in text.split("t.plural(\"").skip(1) {
                let key = piece.split('"').next().unwrap();
                for form in ["one", "other"] {
                    if !fr.contains_key(format!("{key}.{form}").as_str()) {
                        unknown.push(format!("{}: {key}.{form}", path.display()));
                    }
                }
            }
        }
        assert!(unknown.is_empty(), "keys in no catalogue: {unknown:?}");
    }

    #[test]
    fn the_language_follows_the_switch_then_the_browser() {
        assert_eq!(Lang::choose(None, None), Lang::Fr);
        assert_eq!(Lang::choose(None, Some("en-GB,en;q=0.9")), Lang::En);
        assert_eq!(Lang::choose(None, Some("de, en;q=0.5, fr;q=0.8")), Lang::Fr);
        assert_eq!(Lang::choose(Some("en"), Some("fr")), Lang::En);
    }
}
