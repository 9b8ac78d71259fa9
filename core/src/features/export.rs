//! Exports for analysis: one table per record kind (workplaces, visits, child cases, and the
//! cases' referrals and follow-ups), and one of the cases erased for good (`erasures`: an id
//! and a date, for copies made from earlier exports to drop), as CSV (UTF-8, header row, RFC
//! 4180 quoting, CRLF; text that a spreadsheet would run as a formula is prefixed with `'`) or
//! JSON (an array of objects per table).
//!
//! Pseudonymised by default: no names (children, guardians, households, owners, workplaces),
//! no exact date of birth (the year only), no GPS coordinates (the administrative area down to
//! the community is kept), no contacts, and no free text (notes, findings, comments, outcomes,
//! providers), which may quote any of these. Records are identified by their random ids and
//! the case's pseudonymous code. Personal data is exported only by a supervisor who asks for
//! it (`ExportOptions::include_personal_data`); anyone else asking gets `Error::NotAllowed`.
//! Users (the staff directory) are not exported.
//!
//! Derived facts are exported as every view shows them: a case's classification by its rule
//! set, its next follow-up due as in the due lists (`ChildCase::next_follow_up_due`), and
//! `merged_into` only for a merged duplicate (`ChildCase::is_merged_duplicate`): counting the
//! cases without it counts each child once. A visit's `children_identified` counts a duplicate
//! and the case it was merged into as one child, and counts no erased case; a duplicate's
//! referrals and follow-ups copied into the case kept are listed under that case only (of a pair
//! merged offline in opposite directions, under the one whose id sorts first): each referral and
//! follow-up id is listed once.

use crate::domain::area::Area;
use crate::domain::codes::{
    Answer, FollowUpSituation, Formality, RecordKind, Role, ServiceKind, Sex, VisitKind,
};
use crate::domain::derived::{self, birth_year};
use crate::domain::records::{ChildCase, FollowUp, Referral, Visit, Workplace};
use crate::domain::rights::Scope;
use crate::error::{Error, Result};
use crate::store::{Scoped, Store};
use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum ExportFormat {
    Csv,
    Json,
    /// CSV as spreadsheet software reads it where the decimal mark is a comma (Excel in French,
    /// among others): cells apart by `;`, decimals with a comma, and a byte order mark, without
    /// which Excel reads UTF-8 as its own code page ("AÃ¯cha"). A double click opens it in
    /// columns; a program reads the plain `Csv`.
    ExcelCsv,
}

impl ExportFormat {
    /// Its name on the command line, in a console form and in the audit log.
    pub fn code(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Json => "json",
            ExportFormat::ExcelCsv => "excel",
        }
    }

    /// The extension of the files it writes.
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv | ExportFormat::ExcelCsv => "csv",
            ExportFormat::Json => "json",
        }
    }

    /// A table's bytes in this format.
    pub fn encode(self, table: &ExportTable) -> Result<Vec<u8>> {
        let mut writer = TableWriter::new(self, Vec::new())?;
        if table.rows.is_empty() {
            writer.row(&table.columns, None)?;
        }
        for row in &table.rows {
            writer.row(&table.columns, Some(row.clone()))?;
        }
        writer.finish()
    }
}

/// Writes one table in a format as its rows come, so that an export of a region (100,000
/// visits) is never held whole: the header (CSV) or the opening bracket (JSON) with the first
/// row, each row as it comes, the end with `finish`.
pub struct TableWriter<W: std::io::Write> {
    out: TableOut<W>,
    /// The header written (CSV), an object written (JSON).
    started: bool,
}

enum TableOut<W: std::io::Write> {
    Csv {
        out: std::io::BufWriter<W>,
        delimiter: char,
        decimal_comma: bool,
    },
    Json(W),
}

/// Writes one CSV line (RFC 4180, ending in CRLF): a cell is quoted when it holds a quote, a
/// line break, the file's separator or a `;` whatever the separator. Excel set to French splits
/// a double-clicked plain CSV on `;`, not on its commas: a phone's `Awa;=cmd|' /C calc'!A0`
/// written bare began a cell there with a formula, past the defusing of each cell's start.
fn write_csv_line<'a>(
    out: &mut impl std::io::Write,
    cells: impl IntoIterator<Item = std::borrow::Cow<'a, str>>,
    delimiter: char,
) -> std::io::Result<()> {
    let mut line = String::new();
    for (i, cell) in cells.into_iter().enumerate() {
        if i > 0 {
            line.push(delimiter);
        }
        if cell.contains(['"', '\r', '\n', ';', delimiter]) {
            line.push('"');
            line.push_str(&cell.replace('"', "\"\""));
            line.push('"');
        } else {
            line.push_str(&cell);
        }
    }
    line.push_str("\r\n");
    out.write_all(line.as_bytes())
}

impl<W: std::io::Write> TableWriter<W> {
    pub fn new(format: ExportFormat, mut out: W) -> Result<Self> {
        let csv = |out, delimiter, decimal_comma| TableOut::Csv {
            out: std::io::BufWriter::new(out),
            delimiter,
            decimal_comma,
        };
        let out = match format {
            ExportFormat::Csv => csv(out, ',', false),
            ExportFormat::ExcelCsv => {
                out.write_all("\u{feff}".as_bytes())?;
                csv(out, ';', true)
            }
            ExportFormat::Json => TableOut::Json(out),
        };
        Ok(TableWriter {
            out,
            started: false,
        })
    }

    /// Writes a row of `columns` (`None`: the table has none, its header alone is written).
    pub fn row(&mut self, columns: &[&'static str], row: Option<Vec<Value>>) -> Result<()> {
        match &mut self.out {
            TableOut::Csv {
                out,
                delimiter,
                decimal_comma,
            } => {
                if !self.started {
                    write_csv_line(out, columns.iter().map(|c| (*c).into()), *delimiter)?;
                    self.started = true;
                }
                let Some(row) = row else { return Ok(()) };
                let cells = row.iter().map(|value| {
                    match value {
                        // "5.3541" is a date or text to French Excel; "5,3541" a number.
                        Value::Number(n) if *decimal_comma && n.is_f64() => {
                            n.to_string().replace('.', ",")
                        }
                        Value::String(digits) if *decimal_comma && read_as_a_number(digits) => {
                            format!("=\"{digits}\"")
                        }
                        value => cell_text(value),
                    }
                    .into()
                });
                Ok(write_csv_line(out, cells, *delimiter)?)
            }
            TableOut::Json(out) => {
                let Some(row) = row else { return Ok(()) };
                let first = !std::mem::replace(&mut self.started, true);
                // As `serde_json::to_vec_pretty` writes the whole array: each object indented
                // under the bracket.
                out.write_all(if first { b"[\n  " } else { b",\n  " })?;
                let object: Map<String, Value> =
                    columns.iter().map(|c| c.to_string()).zip(row).collect();
                let text = serde_json::to_string_pretty(&object)
                    .map_err(|_| Error::Io(std::io::Error::other("json encoding failed")))?;
                out.write_all(text.replace('\n', "\n  ").as_bytes())?;
                Ok(())
            }
        }
    }

    /// Ends the table; returns what it was written to.
    pub fn finish(self) -> Result<W> {
        match self.out {
            TableOut::Csv { out, .. } => out.into_inner().map_err(|e| Error::Io(e.into_error())),
            TableOut::Json(mut out) => {
                out.write_all(if self.started { b"\n]" } else { b"[]" })?;
                Ok(out)
            }
        }
    }
}

/// What an export includes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct ExportOptions {
    /// Names, dates of birth, coordinates, contacts and free text: a supervisor's right only.
    #[cfg_attr(feature = "uniffi", uniffi(default = false))]
    pub include_personal_data: bool,
}

/// One exported table: its name (the file's stem), columns and rows (one value per column).
#[derive(Debug, Clone, PartialEq)]
pub struct ExportTable {
    pub name: &'static str,
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Value>>,
}

/// A value as a CSV cell: a list's items joined with `;` (JSON keeps it a list), text made
/// inert for spreadsheets. An item's own `;` (a buyer "Coopé; Café") is written `\;`, and its
/// `\` as `\\`, so the cell splits back into the items it was made of.
fn cell_text(value: &Value) -> String {
    match value {
        Value::Array(items) => defused(
            &items
                .iter()
                .map(|item| raw_text(item).replace('\\', "\\\\").replace(';', "\\;"))
                .collect::<Vec<_>>()
                .join(";"),
        ),
        Value::String(s) => defused(s),
        // An object's JSON text holds the texts it maps to (a visit's notes of each
        // indicator), each of which may hold a `;` and a formula after it.
        Value::Object(_) => defused(&raw_text(value)),
        other => raw_text(other),
    }
}

fn raw_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Control characters a phone's text may hold (pasted from a word processor: its line break
/// U+000B, a page break, the Unicode line and paragraph separators; a NUL written before
/// phones refused it), which the tools that read a CSV break on or show as nothing: the line
/// breaks as a line break, the others as U+FFFD, so that the cell shows something was there.
/// Line breaks and tabs stay as they are (CSV quotes them).
fn readable(text: &str) -> std::borrow::Cow<'_, str> {
    use crate::domain::validation::is_other_line_break;
    let odd =
        |c: char| (c.is_control() && !matches!(c, '\n' | '\r' | '\t')) || is_other_line_break(c);
    if !text.contains(odd) {
        return text.into();
    }
    text.chars()
        .map(|c| match c {
            c if is_other_line_break(c) => '\n',
            c if odd(c) => '\u{fffd}',
            c => c,
        })
        .collect::<String>()
        .into()
}

/// Text a phone wrote that a spreadsheet opening the file would take for a number, a date or
/// a time and change: a phone number's leading 0 ("0707123456" became 707123456, which no
/// one can call), the digits past the 15th of a long identifier, or a case code of digits and
/// separators ("11-12" became the 11th of December, "3/4" the 3rd of April, "1E5" 100000,
/// "10:30" a time). The Excel variant writes them as the text they are (`="11-12"`: a formula
/// of a text alone, which shows it as typed; none of them holds a quote). The export's own
/// dates (`2026-04-02`) stay dates for the spreadsheet.
fn read_as_a_number(text: &str) -> bool {
    let digits_alone = text.bytes().all(|b| b.is_ascii_digit());
    if digits_alone {
        return text.len() > 1 && (text.starts_with('0') || text.len() > 15);
    }
    text.bytes().any(|b| b.is_ascii_digit())
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || b"-/:.,+%eE ()".contains(&b))
        && !written_as_a_date(text)
}

/// A day as the export writes one (`2026-04-02`: four digits, two, two), which a spreadsheet
/// should read as the day it is; `1-2-3` or `99-01-01` is a code that only looks like one.
fn written_as_a_date(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
}

/// Text a phone wrote, made inert for a spreadsheet: a cell that starts with `=`, `+`, `-`,
/// `@`, a tab or a carriage return is read as a formula by Excel, LibreOffice and Google
/// Sheets (a `HYPERLINK` sending the sheet's cells away, a `cmd|` call), so it gets a leading
/// apostrophe, which they show as text. So does each part of it after a `;`: Excel set to
/// French splits a double-clicked plain CSV on `;`, and takes a quote for one only at a cell's
/// start, so that `Awa;=cmd|…` quoted still began a cell there with a formula. So does each
/// part after a line break: a quote Excel does not take for one leaves the line break ending
/// its row, and the next row began with the formula. Text that starts with an apostrophe gets
/// one too, so that removing the one added always gives the text back (and the spreadsheet
/// shows the apostrophe typed). Numbers are not text: a negative one stays a number.
fn defused(text: &str) -> String {
    let text = readable(text);
    let mut out = String::with_capacity(text.len() + 1);
    // A cell that starts with a carriage return is one a spreadsheet runs (its first part,
    // before it, is empty).
    if text.starts_with('\r') {
        out.push('\'');
    }
    let mut part_start = 0;
    let defuse = |part: &str, out: &mut String| {
        if runs_as_formula(part) {
            out.push('\'');
        }
        out.push_str(part);
    };
    for (at, separator) in text.match_indices([';', '\n', '\r']) {
        defuse(&text[part_start..at], &mut out);
        out.push_str(separator);
        part_start = at + separator.len();
    }
    defuse(&text[part_start..], &mut out);
    out
}

/// Whether a cell (or a part of one after a `;`) that starts so is read as a formula, or loses
/// its leading apostrophe.
fn runs_as_formula(part: &str) -> bool {
    // Spreadsheets skip leading blanks (and some read full-width signs) before deciding, and a
    // quote at a cell's start is one they take off (`"=F"` is the formula =F; the quote is
    // written by its code point: the catalogues' test reads the core's texts between quotes).
    let blanks = |c: char| c.is_whitespace() || matches!(c, '\u{feff}' | '\u{200b}');
    let start = part.trim_start_matches(blanks);
    let unquoted = start
        .strip_prefix('\u{22}')
        .unwrap_or(start)
        .trim_start_matches(blanks);
    part.starts_with(['\t', '\r', '\''])
        || unquoted.starts_with(['=', '+', '-', '@', '＝', '＋', '－', '＠'])
}

impl ExportTable {
    /// The table as CSV bytes.
    pub fn to_csv(&self) -> Result<Vec<u8>> {
        ExportFormat::Csv.encode(self)
    }

    /// The table as CSV for spreadsheet software of comma-decimal locales
    /// (`ExportFormat::ExcelCsv`).
    pub fn to_excel_csv(&self) -> Result<Vec<u8>> {
        ExportFormat::ExcelCsv.encode(self)
    }

    /// The table as a JSON array of objects.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.rows
                .iter()
                .map(|row| {
                    Value::Object(
                        self.columns
                            .iter()
                            .zip(row)
                            .map(|(c, v)| (c.to_string(), v.clone()))
                            .collect::<Map<_, _>>(),
                    )
                })
                .collect(),
        )
    }
}

/// Whether a user of `role` may export with `options`: personal data is a supervisor's alone.
/// Said before anything is read or written (a download before it starts, a directory before
/// it is looked at).
pub fn may_export(options: ExportOptions, role: Role) -> Result<()> {
    if options.include_personal_data && role != Role::Supervisor {
        return Err(Error::NotAllowed {
            rule: "only a supervisor may export personal data".into(),
        });
    }
    Ok(())
}

/// The export's tables, in order.
pub const TABLES: [&str; 6] = [
    "workplaces",
    "visits",
    "child_cases",
    "referrals",
    "follow_ups",
    "erasures",
];

/// Where an export's rows go, table by table, as they are made (a file, a download, a table
/// kept whole): `row` is `None` for a table without rows, whose header alone is written.
pub(crate) trait RowSink {
    fn row(
        &mut self,
        table: &'static str,
        columns: &[&'static str],
        row: Option<Vec<Value>>,
    ) -> Result<()>;
}

/// One table's rows written as they come (an export of one table).
impl<W: std::io::Write> RowSink for TableWriter<W> {
    fn row(
        &mut self,
        _: &'static str,
        columns: &[&'static str],
        row: Option<Vec<Value>>,
    ) -> Result<()> {
        TableWriter::row(self, columns, row)
    }
}

/// Rows kept as tables (`Store::export_tables`).
#[derive(Default)]
struct KeptTables(Vec<ExportTable>);

impl RowSink for KeptTables {
    fn row(
        &mut self,
        table: &'static str,
        columns: &[&'static str],
        row: Option<Vec<Value>>,
    ) -> Result<()> {
        let at = match self.0.iter().position(|t| t.name == table) {
            Some(at) => at,
            None => {
                self.0.push(ExportTable {
                    name: table,
                    columns: columns.to_vec(),
                    rows: Vec::new(),
                });
                self.0.len() - 1
            }
        };
        self.0[at].rows.extend(row);
        Ok(())
    }
}

/// Builds a table's rows column by column, the personal columns only when allowed; the rows of
/// each record are handed on (`flush`) before the next is read.
struct TableBuilder {
    name: &'static str,
    columns: Vec<&'static str>,
    personal: bool,
    first_row: bool,
    row: Vec<Value>,
    made: Vec<Vec<Value>>,
}

impl TableBuilder {
    fn new(name: &'static str, personal: bool) -> Self {
        TableBuilder {
            name,
            columns: Vec::new(),
            personal,
            first_row: true,
            row: Vec::new(),
            made: Vec::new(),
        }
    }

    fn col(&mut self, name: &'static str, value: impl Serialize) {
        if self.first_row {
            self.columns.push(name);
        }
        self.row
            .push(serde_json::to_value(value).unwrap_or(Value::Null));
    }

    fn personal(&mut self, name: &'static str, value: impl Serialize) {
        if self.personal {
            self.col(name, value);
        }
    }

    fn end_row(&mut self) {
        self.made.push(std::mem::take(&mut self.row));
        self.first_row = false;
    }

    /// Hands the rows made so far to `sink`.
    fn flush(&mut self, sink: &mut dyn RowSink) -> Result<()> {
        for row in self.made.drain(..) {
            sink.row(self.name, &self.columns, Some(row))?;
        }
        Ok(())
    }

    /// A table that made no row still has its header: its columns come from `sample`, a row
    /// of an empty record, which is not kept.
    fn finish(mut self, sink: &mut dyn RowSink, sample: impl FnOnce(&mut Self)) -> Result<()> {
        if !self.first_row {
            return self.flush(sink);
        }
        sample(&mut self);
        sink.row(self.name, &self.columns, None)
    }
}

/// A list as exported: an array in JSON, its items joined with `;` in a CSV cell.
fn joined<T: Serialize>(items: impl IntoIterator<Item = T>) -> Value {
    Value::Array(
        items
            .into_iter()
            .map(|i| serde_json::to_value(i).unwrap_or(Value::Null))
            .collect(),
    )
}

fn area_cols(t: &mut TableBuilder, area: &Area) {
    t.col("country", &area.country);
    t.col("region", &area.region);
    t.col("district", &area.district);
    t.col("community", &area.community);
}

impl Store {
    /// The export's tables: `workplaces`, `visits`, `child_cases`, `referrals`, `follow_ups`,
    /// `erasures`.
    pub fn export_tables(&self, options: ExportOptions) -> Result<Vec<ExportTable>> {
        self.export_tables_within(options, None, None, None)
    }

    /// `export_tables`, of what `scope` receives only, by a user of role `by` (the store's
    /// acting role when `None`), each row handed to `sink` as it is made; the table named
    /// `only` alone, when given (the records of the other kinds are then not read: a download
    /// of one table costs what that table costs). Every record is read one at a time; of the
    /// cases, what the visits' counts and the merges need is kept (`CaseFacts`).
    pub(crate) fn export_rows(
        &self,
        options: ExportOptions,
        by: Option<Role>,
        scope: Option<&Scope>,
        only: Option<&str>,
        sink: &mut dyn RowSink,
    ) -> Result<()> {
        let wanted = |name: &str| only.is_none_or(|o| o == name);
        let personal = options.include_personal_data;
        self.may_export(options, by)?;
        // Every table is read from one snapshot: syncs the hub takes meanwhile do not make one
        // table disagree with another (a referral listed for a case the cases' table lacks).
        // Nothing is written: it begins deferred (the store's transactions take the write
        // lock at once, which would hold every write for the export's time) and ends rolled
        // back.
        let _snapshot = match self.conn.is_autocommit() {
            true => Some(rusqlite::Transaction::new_unchecked(
                &self.conn,
                rusqlite::TransactionBehavior::Deferred,
            )?),
            false => None,
        };
        let each = |kind| crate::store::queries::ids_within(&self.conn, kind, scope);
        if wanted("erasures") {
            self.erasure_rows(personal, scope, sink)?;
        }
        if only == Some("erasures") {
            return Ok(());
        }
        let sample_workplace = Workplace::new("", "other", Formality::Formal, Area::default());
        if wanted("workplaces") {
            let mut workplaces = TableBuilder::new("workplaces", personal);
            for id in each(RecordKind::Workplace)? {
                workplace_row(&mut workplaces, &self.get::<Workplace>(id)?);
                workplaces.flush(sink)?;
            }
            workplaces.finish(sink, |t| workplace_row(t, &sample_workplace))?;
        }
        if only == Some("workplaces") {
            return Ok(());
        }
        // Every other table reads the cases, one at a time: the visits count the children
        // opened on them, and a merged case's referrals and follow-ups defer to the other
        // case's. What that needs of each case is kept, not the case (a region's 30,000 cases
        // held whole took 112 MB, more than an app has). A case in a merge is read again at the
        // end, its referrals and follow-ups written once every case's keys are known.
        let mut held: HashMap<Uuid, CaseFacts> = HashMap::new();
        let mut opened_on: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        let mut in_merges = Vec::new();
        let mut cases = TableBuilder::new("child_cases", personal);
        let mut referrals = TableBuilder::new("referrals", personal);
        let mut follow_ups = TableBuilder::new("follow_ups", personal);
        let mut children = ChildRows {
            referrals: wanted("referrals").then_some(&mut referrals),
            follow_ups: wanted("follow_ups").then_some(&mut follow_ups),
        };
        let today = chrono::Local::now().date_naive();
        for id in each(RecordKind::ChildCase)? {
            let (c, adult_on) = self.get_case_with_adult_day(id)?;
            if let Some(visit) = c.identified_on_visit {
                opened_on.entry(visit).or_default().push(c.id);
            }
            let facts = CaseFacts::of(&c);
            if wanted("child_cases") {
                case_row(&mut cases, &c, c.follow_up_due_on(today, adult_on));
                cases.flush(sink)?;
            }
            if facts.keys.is_some() {
                in_merges.push(c.id);
            } else {
                children.write(&c, None, sink)?;
            }
            held.insert(c.id, facts);
        }
        for id in in_merges {
            let c = self.get::<ChildCase>(id)?;
            // A merge copied the duplicate's referrals and follow-ups into the case kept,
            // under the same keys: they are listed there, once. A pair merged offline in
            // opposite directions (both in view until merged again) holds each other's: they
            // are listed under the case whose id sorts first.
            let listed_by = c
                .merged_into
                .and_then(|k| held.get(&k).map(|facts| (k, facts)))
                .filter(|(k, other)| {
                    c.is_merged_duplicate() || (other.merged_into == Some(c.id) && *k < c.id)
                })
                .and_then(|(_, other)| other.keys.as_ref());
            children.write(&c, listed_by, sink)?;
        }
        if wanted("visits") {
            let mut visits = TableBuilder::new("visits", personal);
            for id in each(RecordKind::Visit)? {
                let v = self.get::<Visit>(id)?;
                let children = children_identified(
                    &v,
                    opened_on.get(&v.id).map(Vec::as_slice).unwrap_or_default(),
                    |id| crate::store::erasure::is_erased(&self.conn, id),
                    |id| held.get(&id).and_then(|c| c.kept_as),
                )?
                .len();
                visit_row(&mut visits, &v, children);
                visits.flush(sink)?;
            }
            visits.finish(sink, |t| {
                let at = DateTime::<FixedOffset>::default();
                let sample = Visit::new(VisitKind::FollowUp, &sample_workplace, Uuid::nil(), at);
                visit_row(t, &sample, 0);
            })?;
        }
        if wanted("child_cases") {
            cases.finish(sink, |t| {
                let sample = ChildCase::new(
                    "",
                    "",
                    Sex::Female,
                    Area::default(),
                    NaiveDate::MIN,
                    Uuid::nil(),
                );
                case_row(t, &sample, None);
            })?;
        }
        if wanted("referrals") {
            referrals.finish(sink, |t| {
                let sample = Referral {
                    service: ServiceKind::Education,
                    provider: String::new(),
                    date: NaiveDate::MIN,
                    outcome: String::new(),
                };
                referral_row(t, Uuid::nil(), Uuid::nil(), &sample);
            })?;
        }
        if wanted("follow_ups") {
            follow_ups.finish(sink, |t| {
                let sample = FollowUp {
                    date: NaiveDate::MIN,
                    situation: FollowUpSituation::InSchool,
                    notes: String::new(),
                    next_due: None,
                };
                follow_up_row(t, Uuid::nil(), Uuid::nil(), &sample);
            })?;
        }
        Ok(())
    }

    /// The cases erased for good, so that a copy made from earlier exports can drop them (a
    /// case's rows simply stop appearing otherwise, as do those of a case moved out of the
    /// exporter's areas). A tombstone holds no content: pseudonymised exports list them too. A
    /// scoped export lists those its principal's devices learn of: cases filed in its areas
    /// when erased, and cases the hub never held.
    fn erasure_rows(
        &self,
        personal: bool,
        scope: Option<&Scope>,
        sink: &mut dyn RowSink,
    ) -> Result<()> {
        let mut erasures = TableBuilder::new("erasures", personal);
        for erased in crate::store::erasure::tombstones(&self.conn)? {
            let listed = match (scope, &erased.filed) {
                (None, _) => true,
                // Filed nowhere the hub knew (a phone reported its id): every device learns it.
                (Some(_), Some((_, area))) if *area == Area::default() => true,
                (Some(scope), Some((kind, area))) => scope.receives(*kind, Some(area)),
                // A case a restored hub erased again, which its copy never held: where it was
                // filed is unknown, and it goes to no one's scope (the whole hub's export lists
                // it; the case's rows leave every scoped export all the same).
                (Some(_), None) => false,
            };
            if listed {
                erasure_row(&mut erasures, erased.id, erased.at_ms);
                erasures.flush(sink)?;
            }
        }
        erasures.finish(sink, |t| erasure_row(t, Uuid::nil(), 0))
    }

    /// `may_export` by a user of role `by`, the store's acting role when `None`.
    fn may_export(&self, options: ExportOptions, by: Option<Role>) -> Result<()> {
        let role = match by {
            Some(role) => role,
            None if options.include_personal_data => self.acting_role()?,
            None => Role::Supervisor,
        };
        may_export(options, role)
    }

    /// `export_rows` kept as tables.
    fn export_tables_within(
        &self,
        options: ExportOptions,
        by: Option<Role>,
        scope: Option<&Scope>,
        only: Option<&str>,
    ) -> Result<Vec<ExportTable>> {
        let mut kept = KeptTables::default();
        self.export_rows(options, by, scope, only, &mut kept)?;
        // In the export's order (a case's rows come table after table).
        kept.0
            .sort_by_key(|t| TABLES.iter().position(|name| *name == t.name));
        Ok(kept.0)
    }

    /// Writes the export's tables into `dir` (created if needed), one file per table
    /// (`<table>.csv` or `<table>.json`), and returns their paths.
    pub fn export_to_dir(
        &self,
        dir: &Path,
        format: ExportFormat,
        options: ExportOptions,
    ) -> Result<Vec<PathBuf>> {
        // Who may export is said before anything of the directory is looked at.
        self.may_export(options, None)?;
        write_tables(dir, format, options, &mut |sink| {
            self.export_rows(options, None, None, None, sink)
        })
    }
}

/// What an export keeps of a child case once its rows are written: what the visits' counts and
/// the other case of a merge need.
struct CaseFacts {
    kept_as: Option<Uuid>,
    merged_into: Option<Uuid>,
    /// The keys of its referrals and follow-ups, for a case in a merge (merged into another, or
    /// another merged into it).
    keys: Option<(BTreeSet<Uuid>, BTreeSet<Uuid>)>,
}

impl CaseFacts {
    fn of(c: &ChildCase) -> CaseFacts {
        let in_a_merge = c.merged_into.is_some() || !c.merged_from.is_empty();
        CaseFacts {
            kept_as: c.kept_as(),
            merged_into: c.merged_into,
            keys: in_a_merge.then(|| {
                (
                    c.referrals.keys().copied().collect(),
                    c.followups.keys().copied().collect(),
                )
            }),
        }
    }
}

/// The tables of a case's referrals and follow-ups, those wanted.
struct ChildRows<'t> {
    referrals: Option<&'t mut TableBuilder>,
    follow_ups: Option<&'t mut TableBuilder>,
}

impl ChildRows<'_> {
    /// Writes the case's referrals and follow-ups, but those listed under another case (whose
    /// referral and follow-up keys `listed_by` holds).
    fn write(
        &mut self,
        c: &ChildCase,
        listed_by: Option<&(BTreeSet<Uuid>, BTreeSet<Uuid>)>,
        sink: &mut dyn RowSink,
    ) -> Result<()> {
        if let Some(t) = self.referrals.as_deref_mut() {
            for (key, referral) in &c.referrals {
                if listed_by.is_none_or(|(theirs, _)| !theirs.contains(key)) {
                    referral_row(t, c.id, *key, referral);
                }
            }
            t.flush(sink)?;
        }
        if let Some(t) = self.follow_ups.as_deref_mut() {
            for (key, follow_up) in &c.followups {
                if listed_by.is_none_or(|(_, theirs)| !theirs.contains(key)) {
                    follow_up_row(t, c.id, *key, follow_up);
                }
            }
            t.flush(sink)?;
        }
        Ok(())
    }
}

/// The file an export directory says its kind in (`personal` or `pseudonymised`): a personal
/// export does not replace a pseudonymised one, which may be shared.
const KIND_FILE: &str = ".vigie-export";

/// Writes the tables `export` makes into `dir` (created if needed), one file per table, each
/// row as it comes, and returns their paths.
fn write_tables(
    dir: &Path,
    format: ExportFormat,
    options: ExportOptions,
    export: &mut dyn FnMut(&mut dyn RowSink) -> Result<()>,
) -> Result<Vec<PathBuf>> {
    if std::fs::metadata(dir).is_ok_and(|found| !found.is_dir()) {
        return Err(Error::unusable_directory(
            "dir",
            std::io::ErrorKind::NotADirectory.into(),
        ));
    }
    // A table exported before in the other format would stay beside this export, and go
    // wherever the directory is shared: a personal JSON beside a pseudonymised CSV.
    let other = match format.extension() {
        "json" => "csv",
        _ => "json",
    };
    let left: Vec<String> = TABLES
        .iter()
        .map(|table| format!("{table}.{other}"))
        .filter(|name| dir.join(name).symlink_metadata().is_ok())
        .collect();
    if !left.is_empty() {
        return Err(Error::NotAllowed {
            rule: format!(
                "the directory holds files of another export ({}): move them out, or export \
                 into a new directory",
                left.join(", ")
            ),
        });
    }
    // Children's names written over a pseudonymised export would go wherever it is shared.
    let kind = if options.include_personal_data {
        "personal"
    } else {
        "pseudonymised"
    };
    // In it, or in a directory it is in: sharing that directory shares this one.
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let pseudonymised_there = absolute.ancestors().any(|above| {
        std::fs::read_to_string(above.join(KIND_FILE))
            .is_ok_and(|said| said.trim() == "pseudonymised")
    });
    if options.include_personal_data && pseudonymised_there {
        return Err(Error::NotAllowed {
            rule: "the directory holds a pseudonymised export, or is inside one, which may be \
                   shared: export personal data into a directory of its own"
                .into(),
        });
    }
    let made_dir = !dir.exists();
    if made_dir {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .map_err(|e| Error::unusable_directory("dir", e))?;
    }
    // What an earlier export killed midway (the app's process stopped by the phone) left
    // aside: a partial copy of the children's tables, which no clean-up of its ran to remove.
    for table in TABLES {
        for format in [ExportFormat::Csv, ExportFormat::Json] {
            let (aside, _) = table_paths(dir, table, format);
            let _ = crate::store::files::remove_if_exists(&aside);
        }
    }
    // Every table is written aside first, and takes its name only once all are whole: an
    // export that fails (a full disk) leaves no table cut mid-row, nor a set of some tables
    // that would pass for the whole, nor new tables mixed with an earlier export's.
    let mut files = TableFiles {
        dir,
        format,
        open: Vec::new(),
    };
    let outcome = export(&mut files).and_then(|()| files.finish());
    let written: Vec<(PathBuf, PathBuf)> = files
        .open
        .iter()
        .map(|(table, _)| table_paths(dir, table, format))
        .collect();
    // Its kind is said before the tables take their names: a personal export cut there is
    // taken for one, never for a pseudonymised export that a later one may write over.
    let outcome = outcome.and_then(|()| write_private(&dir.join(KIND_FILE), kind.as_bytes()));
    let outcome = outcome.and_then(|()| {
        written
            .iter()
            .try_for_each(|(aside, path)| std::fs::rename(aside, path))?;
        crate::store::files::sync_dir(dir)?;
        Ok(())
    });
    if let Err(e) = outcome {
        for (aside, _) in &written {
            let _ = std::fs::remove_file(aside);
        }
        if made_dir {
            let _ = std::fs::remove_dir(dir);
        }
        return Err(e);
    }
    Ok(written.into_iter().map(|(_, path)| path).collect())
}

/// Where a table of an export in `dir` is written aside, and the name it takes once every
/// table is whole (`write_tables`).
fn table_paths(dir: &Path, table: &str, format: ExportFormat) -> (PathBuf, PathBuf) {
    let name = format!("{table}.{}", format.extension());
    (dir.join(format!(".{name}.part")), dir.join(name))
}

/// An export's tables being written aside in a directory (`write_tables`), each opened at its
/// first row.
struct TableFiles<'a> {
    dir: &'a Path,
    format: ExportFormat,
    open: Vec<(
        &'static str,
        Option<TableWriter<std::io::BufWriter<std::fs::File>>>,
    )>,
}

impl TableFiles<'_> {
    /// Every table whole on disk, in the export's order.
    fn finish(&mut self) -> Result<()> {
        self.open
            .sort_by_key(|(table, _)| TABLES.iter().position(|name| name == table));
        for (_, writer) in &mut self.open {
            if let Some(writer) = writer.take() {
                let file = writer
                    .finish()?
                    .into_inner()
                    .map_err(|e| Error::Io(e.into_error()))?;
                file.sync_all()?;
            }
        }
        Ok(())
    }
}

impl RowSink for TableFiles<'_> {
    fn row(
        &mut self,
        table: &'static str,
        columns: &[&'static str],
        row: Option<Vec<Value>>,
    ) -> Result<()> {
        let at = match self.open.iter().position(|(name, _)| *name == table) {
            Some(at) => at,
            None => {
                let (aside, _) = table_paths(self.dir, table, self.format);
                let file = std::io::BufWriter::new(create_private(&aside)?);
                self.open
                    .push((table, Some(TableWriter::new(self.format, file)?)));
                self.open.len() - 1
            }
        };
        match &mut self.open[at].1 {
            Some(writer) => writer.row(columns, row),
            None => Ok(()),
        }
    }
}

/// Writes a file only its owner may read (an export names children even pseudonymised, and the
/// directory may be shared).
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut file = create_private(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// A new file only its owner may read. What was at the path goes first and the file is made
/// anew, so a file left there, or a link to another file, is never written through.
fn create_private(path: &Path) -> Result<std::fs::File> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    Ok(options.open(path)?)
}

/// How many children a visit identified, as every view counts them: the cases opened on it
/// (`opened_on`: those naming it as `identified_on_visit`) and those its own list names (filled
/// only by an app that chooses to), a merged duplicate and the case it was merged into counted
/// as one child (`ChildCase::child_of`; `kept_as` gives the case a held duplicate was merged
/// into), an erased case (entered in error, say) as none. A case not held here (another
/// area's) counts as itself.
fn children_identified(
    visit: &Visit,
    opened_on: &[Uuid],
    is_erased: impl Fn(Uuid) -> Result<bool>,
    kept_as: impl Fn(Uuid) -> Option<Uuid>,
) -> Result<BTreeSet<Uuid>> {
    let child_of = |id: Uuid| ChildCase::child_of(id, |id| Some(kept_as(id))).unwrap_or(id);
    let mut children: BTreeSet<Uuid> = opened_on.iter().map(|id| child_of(*id)).collect();
    for id in &visit.children_identified {
        if !is_erased(*id)? {
            children.insert(child_of(*id));
        }
    }
    Ok(children)
}

impl Store {
    /// How many children `visit` identified, as the exports count them (`children_identified`).
    pub fn children_identified(&self, visit: &Visit) -> Result<usize> {
        Ok(self.children_identified_within(visit, None)?.len())
    }

    fn children_identified_within(
        &self,
        visit: &Visit,
        scope: Option<&Scope>,
    ) -> Result<BTreeSet<Uuid>> {
        let opened_on = crate::store::queries::cases_identified_on(&self.conn, visit.id, scope)?;
        children_identified(
            visit,
            &opened_on,
            |id| crate::store::erasure::is_erased(&self.conn, id),
            |id| self.get::<ChildCase>(id).ok().and_then(|c| c.kept_as()),
        )
    }

    /// The children under 15 `visit` counted at work whom no case registers
    /// (`derived::children_without_case`): its head-count of under-15s less the children it
    /// identified (as `children_identified` counts them, wherever their cases are filed now: a
    /// child registered in another district is registered) who were under 15 when identified,
    /// or of no age known (a case this store does not hold counts too).
    pub fn children_without_case(&self, visit: &Visit) -> Result<u32> {
        let registered = self
            .children_identified_within(visit, None)?
            .into_iter()
            .filter(|id| match self.get::<ChildCase>(*id) {
                Ok(case) => case.age_on(case.identified_on).is_none_or(|age| age < 15),
                Err(_) => true,
            })
            .count();
        Ok(crate::domain::derived::children_without_case(
            visit, registered,
        ))
    }
}

impl Scoped<'_> {
    /// How many children `visit` identified, counting the cases the principal receives as its
    /// exports do (`Store::children_identified`).
    pub fn children_identified(&self, visit: &Visit) -> Result<usize> {
        Ok(self
            .store
            .children_identified_within(visit, Some(&self.who))?
            .len())
    }

    /// `Store::export_tables` of what the principal receives, by a user of role `by`.
    pub fn export_tables(&self, options: ExportOptions, by: Role) -> Result<Vec<ExportTable>> {
        self.store
            .export_tables_within(options, Some(by), Some(&self.who), None)
    }

    /// `Store::export_to_dir` of what the principal receives, by a user of role `by`.
    pub fn export_to_dir(
        &self,
        dir: &Path,
        format: ExportFormat,
        options: ExportOptions,
        by: Role,
    ) -> Result<Vec<PathBuf>> {
        self.store.may_export(options, Some(by))?;
        write_tables(dir, format, options, &mut |sink| {
            self.store
                .export_rows(options, Some(by), Some(&self.who), None, sink)
        })
    }

    /// The table `name` of `export_tables`, written to `out` in `format` row by row as its
    /// records are read (a download starts at once, and a region's table is never held
    /// whole); `false` if no table has that name.
    pub fn export_table_to(
        &self,
        name: &str,
        options: ExportOptions,
        by: Role,
        format: ExportFormat,
        out: &mut dyn std::io::Write,
    ) -> Result<bool> {
        if !TABLES.contains(&name) {
            return Ok(false);
        }
        let mut writer = TableWriter::new(format, out)?;
        self.store
            .export_rows(options, Some(by), Some(&self.who), Some(name), &mut writer)?;
        writer.finish()?.flush()?;
        Ok(true)
    }

    /// The table `name` of `export_tables` alone (`None` if no table has that name), reading
    /// only the records it needs.
    pub fn export_table(
        &self,
        name: &str,
        options: ExportOptions,
        by: Role,
    ) -> Result<Option<ExportTable>> {
        Ok(self
            .store
            .export_tables_within(options, Some(by), Some(&self.who), Some(name))?
            .into_iter()
            .next())
    }
}

fn workplace_row(t: &mut TableBuilder, w: &Workplace) {
    t.col("id", w.id);
    t.col("sector", &w.sector);
    t.col("formality", w.formality);
    area_cols(t, &w.location.area);
    t.personal("name", &w.name);
    t.personal("owner_name", &w.owner_name);
    t.personal("owner_contact", &w.owner_contact);
    t.personal("latitude", w.location.point.map(|p| p.latitude));
    t.personal("longitude", w.location.point.map(|p| p.longitude));
    t.personal("buyers", joined(&w.buyers));
    t.personal("suppliers", joined(&w.suppliers));
    t.personal("notes", &w.notes);
    t.end_row();
}

fn visit_row(t: &mut TableBuilder, v: &Visit, children_identified: usize) {
    t.col("id", v.id);
    t.col("kind", v.kind);
    t.col("workplace_id", v.workplace_id);
    t.col("visitor_id", v.visitor_id);
    area_cols(t, &v.area);
    t.col("started_at", v.started_at.to_rfc3339());
    t.col("ended_at", v.ended_at.map(|e| e.to_rfc3339()));
    t.col("status", v.status);
    t.col("checklist", &v.checklist.checklist);
    t.col("checklist_version", v.checklist.version);
    t.col(
        "answered_no",
        joined(
            v.checklist
                .answers
                .iter()
                .filter(|(_, a)| **a == Answer::No)
                .map(|(c, _)| c),
        ),
    );
    t.col("breaches", joined(v.breaches.iter()));
    t.col(
        "forced_labour_indicators",
        joined(derived::indicators_found(v).iter()),
    );
    // The workforce counted, by sex and age band: what the indicators of children at work
    // are made of.
    let (female, male) = (&v.workforce.female, &v.workforce.male);
    t.col("workforce_female_under_12", female.under_12);
    t.col("workforce_female_12_14", female.age_12_14);
    t.col("workforce_female_15_17", female.age_15_17);
    t.col("workforce_female_adults", female.adults);
    t.col("workforce_male_under_12", male.under_12);
    t.col("workforce_male_12_14", male.age_12_14);
    t.col("workforce_male_15_17", male.age_15_17);
    t.col("workforce_male_adults", male.adults);
    t.col("actions", joined(&v.actions));
    t.col("follow_up_due", v.follow_up_due);
    t.col("children_identified", children_identified);
    t.col("reviewed_by", v.reviewed_by);
    t.personal("latitude", v.gps.map(|p| p.latitude));
    t.personal("longitude", v.gps.map(|p| p.longitude));
    t.personal("findings", &v.findings);
    // What the visitor wrote of each indicator observed (free text): indicator -> note.
    t.personal(
        "forced_labour_notes",
        v.forced_labour
            .iter()
            .filter(|(_, note)| !note.trim().is_empty())
            .collect::<BTreeMap<_, _>>(),
    );
    t.personal("review_comment", &v.review_comment);
    t.end_row();
}

/// A case's row; `follow_up_due`, its next follow-up as the due lists show it today
/// (`ChildCase::follow_up_due_on`).
fn case_row(t: &mut TableBuilder, c: &ChildCase, follow_up_due: Option<NaiveDate>) {
    t.col("id", c.id);
    t.col("case_code", &c.case_code);
    t.col("sex", c.sex);
    // The year only: from the date of birth, or from the estimated age.
    t.col("birth_year", birth_year(c));
    t.col("estimated_age", c.estimated_age);
    t.col("age_when_identified", c.age_on(c.identified_on));
    t.col("age_basis", c.age_basis);
    area_cols(t, &c.area);
    t.col("workplace_id", c.workplace_id);
    t.col("identified_on_visit", c.identified_on_visit);
    t.col("identified_on", c.identified_on);
    t.col("identified_by", c.identified_by);
    t.col("school", c.school);
    t.col("hours_per_week", c.hours_per_week);
    t.col("night_work", c.night_work);
    t.col("hazards", joined(&c.hazards));
    t.col("worst_forms", joined(&c.worst_forms));
    t.col(
        "classification",
        c.classification.as_ref().map(|k| k.outcome),
    );
    t.col(
        "rule_set",
        c.classification.as_ref().map(|k| k.rule_set.clone()),
    );
    t.col("status", c.status);
    t.col("remediated_on", c.remediated_on);
    // None for a merged duplicate, nor once the child is 18.
    t.col("follow_up_due", follow_up_due);
    // Only a duplicate's: a pair merged both ways, each naming the other, is two cases in
    // view until a supervisor settles it, as in the lists and indicators.
    t.col("merged_into", c.kept_as());
    t.personal("name", &c.name);
    t.personal("date_of_birth", c.date_of_birth);
    t.personal("guardian", &c.guardian);
    t.personal("household", &c.household);
    t.personal("activity", &c.activity);
    t.personal("tasks", joined(&c.tasks));
    t.personal("notes", &c.notes);
    t.end_row();
}

fn referral_row(t: &mut TableBuilder, case: Uuid, key: Uuid, referral: &Referral) {
    t.col("case_id", case);
    t.col("referral_id", key);
    t.col("service", referral.service);
    t.col("date", referral.date);
    // Free text: a provider may be a person, or named after one.
    t.personal("provider", &referral.provider);
    t.personal("outcome", &referral.outcome);
    t.end_row();
}

fn erasure_row(t: &mut TableBuilder, case: Uuid, at_ms: i64) {
    t.col("case_id", case);
    let at = DateTime::<Utc>::from_timestamp_millis(at_ms).unwrap_or_default();
    t.col("erased_at", at.to_rfc3339_opts(SecondsFormat::Secs, true));
    t.end_row();
}

fn follow_up_row(t: &mut TableBuilder, case: Uuid, key: Uuid, follow_up: &FollowUp) {
    t.col("case_id", case);
    t.col("follow_up_id", key);
    t.col("date", follow_up.date);
    t.col("situation", follow_up.situation);
    t.col("next_due", follow_up.next_due);
    t.personal("notes", &follow_up.notes);
    t.end_row();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table comes from one snapshot: a case recorded by another connection (as a hub's
    /// syncs write) once the export has begun is in none of its tables.
    #[test]
    fn every_table_is_read_from_one_snapshot() {
        use crate::store::{Encryption, StoreConfig};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        let user = Uuid::from_u128(1);
        let area = Area::new("CI", "CI-R1", "CI-R1-D1", "CI-R1-D1-C01");
        let open = || Store::open(StoreConfig::new(&path, Encryption::Unencrypted, user)).unwrap();
        let mut store = open();
        let workplace = Workplace::new("Plantation", "cocoa", Formality::Informal, area.clone());
        store.create(&workplace).unwrap();
        struct WritesMeanwhile {
            writer: Option<(Store, ChildCase)>,
            cases: usize,
        }
        impl RowSink for WritesMeanwhile {
            fn row(
                &mut self,
                table: &'static str,
                _: &[&'static str],
                row: Option<Vec<Value>>,
            ) -> Result<()> {
                if let Some((mut writer, case)) = self.writer.take() {
                    writer.create(&case)?;
                }
                self.cases += usize::from(table == "child_cases" && row.is_some());
                Ok(())
            }
        }
        let on = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
        let mut case = ChildCase::new("CI-E-0001", "Awa", Sex::Female, area, on, user);
        case.estimated_age = Some(11);
        let mut sink = WritesMeanwhile {
            writer: Some((open(), case)),
            cases: 0,
        };
        let options = ExportOptions::default();
        let supervisor = Some(Role::Supervisor);
        store
            .export_rows(options, supervisor, None, None, &mut sink)
            .unwrap();
        assert!(sink.writer.is_none(), "written while the export ran");
        assert_eq!(sink.cases, 0, "a case the export's snapshot does not hold");
        store
            .export_rows(options, supervisor, None, None, &mut sink)
            .unwrap();
        assert_eq!(sink.cases, 1, "the next export lists it");
    }

    /// Written row by row, a table reads as the whole table written at once: the same JSON as
    /// `serde_json::to_vec_pretty` gives, the same CSV header whether rows come or not.
    #[test]
    fn a_table_written_row_by_row_is_the_table_written_whole() {
        let table = ExportTable {
            name: "visits",
            columns: vec!["id", "notes", "items"],
            rows: vec![
                vec![
                    Value::from(1),
                    Value::from("a\nb"),
                    serde_json::json!(["x", "y"]),
                ],
                vec![
                    Value::from(2),
                    Value::Null,
                    serde_json::json!({"k": [1, 2]}),
                ],
            ],
        };
        let whole = serde_json::to_vec_pretty(&table.to_json()).unwrap();
        assert_eq!(ExportFormat::Json.encode(&table).unwrap(), whole);
        let empty = ExportTable {
            rows: Vec::new(),
            ..table.clone()
        };
        assert_eq!(ExportFormat::Json.encode(&empty).unwrap(), b"[]");
        assert_eq!(
            ExportFormat::Csv.encode(&empty).unwrap(),
            b"id,notes,items\r\n"
        );
        // A full disk is said as one, whatever the format.
        struct Full;
        impl std::io::Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::StorageFull.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        for format in [
            ExportFormat::Csv,
            ExportFormat::ExcelCsv,
            ExportFormat::Json,
        ] {
            let written = TableWriter::new(format, Full).and_then(|mut w| {
                w.row(&table.columns, Some(table.rows[0].clone()))?;
                w.finish().map(|_| ())
            });
            assert!(
                matches!(&written, Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::StorageFull),
                "{format:?}: {written:?}"
            );
        }
        let excel = ExportFormat::ExcelCsv.encode(&table).unwrap();
        assert!(excel.starts_with("\u{feff}id;notes;items\r\n1;\"a\nb\";\"x;y\"\r\n".as_bytes()));
    }

    /// Excel set to French splits a double-clicked plain CSV on `;`, taking a quote for one only
    /// at the start of a cell: no part of a cell after a `;` may start a formula there, and a
    /// program reading the CSV gets the text back by removing the apostrophe added at the start
    /// of the cell and after each `;`.
    #[test]
    fn no_part_of_a_cell_after_a_semicolon_starts_a_formula() {
        let texts = [
            "Awa;=cmd|' /C calc'!A0",
            "a \"b\", c",
            "'Ndri Plantation",
            "Famille; -2+3+cmd|' /C calc'!A0",
            "x;'y",
        ];
        let table = ExportTable {
            name: "t",
            columns: vec!["id", "name", "items"],
            rows: vec![vec![
                Value::from(1),
                Value::from(texts[0]),
                Value::from(texts[1]),
            ]],
        };
        let csv = String::from_utf8(ExportFormat::Csv.encode(&table).unwrap()).unwrap();
        assert_eq!(
            csv,
            "id,name,items\r\n1,\"Awa;'=cmd|' /C calc'!A0\",\"a \"\"b\"\", c\"\r\n"
        );
        // Split as that spreadsheet splits it: on every `;`, a quote being one only where a
        // cell starts.
        for line in csv.lines() {
            let mut cells = vec![String::new()];
            let mut quoted = false;
            for c in line.chars() {
                let cell = cells.last_mut().unwrap();
                match c {
                    '"' if cell.is_empty() && !quoted => quoted = true,
                    '"' if quoted => quoted = false,
                    ';' if !quoted => cells.push(String::new()),
                    c => cell.push(c),
                }
            }
            for cell in &cells {
                assert!(
                    !runs_as_formula(cell) || cell.starts_with('\''),
                    "{cell:?} in {cells:?}"
                );
            }
        }
        // The text back, as EXPORTS.md says to read it.
        for text in texts {
            let written = defused(text);
            let back = written
                .split(';')
                .map(|part| part.strip_prefix('\'').unwrap_or(part))
                .collect::<Vec<_>>()
                .join(";");
            assert_eq!(back, text, "{written}");
        }
    }

    /// A phone number's leading 0 stays in the spreadsheet the Excel variant is opened in; the
    /// plain CSV, read by programs, keeps the digits as they are.
    #[test]
    fn digits_a_spreadsheet_would_change_stay_text_in_the_excel_variant() {
        let table = ExportTable {
            name: "workplaces",
            columns: vec!["owner_contact", "count", "code"],
            rows: vec![vec![
                Value::String("0707123456".into()),
                Value::String("12".into()),
                Value::String("1234567890123456".into()),
            ]],
        };
        let excel = String::from_utf8(ExportFormat::ExcelCsv.encode(&table).unwrap()).unwrap();
        assert!(
            excel.ends_with("\"=\"\"0707123456\"\"\";12;\"=\"\"1234567890123456\"\"\"\r\n"),
            "{excel}"
        );
        let csv = String::from_utf8(table.to_csv().unwrap()).unwrap();
        assert!(csv.ends_with("0707123456,12,1234567890123456\r\n"), "{csv}");
        // Codes of digits and separators, which a spreadsheet makes a date, a number or a
        // time, stay as typed; a date of the export stays a date, and text is text.
        for (code, written) in [
            ("11-12", "\"=\"\"11-12\"\"\""),
            ("3/4", "\"=\"\"3/4\"\"\""),
            ("1E5", "\"=\"\"1E5\"\"\""),
            ("45e3", "\"=\"\"45e3\"\"\""),
            ("10:30", "\"=\"\"10:30\"\"\""),
            ("1,5", "\"=\"\"1,5\"\"\""),
            ("1-2-3", "\"=\"\"1-2-3\"\"\""),
            ("99-01-01", "\"=\"\"99-01-01\"\"\""),
            ("(123)", "\"=\"\"(123)\"\"\""),
            ("2026-04-02", "2026-04-02"),
            ("CI-2026-17", "CI-2026-17"),
            ("e", "e"),
        ] {
            let table = ExportTable {
                name: "cases",
                columns: vec!["case_code"],
                rows: vec![vec![Value::String(code.into())]],
            };
            let excel = String::from_utf8(ExportFormat::ExcelCsv.encode(&table).unwrap()).unwrap();
            assert!(
                excel.ends_with(&format!("\n{written}\r\n")),
                "{code}: {excel}"
            );
        }
    }
}
