//! What the domain refuses: a value that breaks a rule (`ValidationError`, naming the field) and
//! a step the role matrix or the state machine does not allow (`NotAllowed`, naming the rule).
//!
//! Neither ever carries record content: a child's name, a note or a value typed by a user must
//! not end up in a log or a crash report.

/// A rule that a value broke, with the field it was found in (a dotted path such as
/// `location.latitude` or `referrals.<id>.date`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {rule}")]
pub struct ValidationError {
    pub field: String,
    pub rule: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            rule: rule.into(),
        }
    }
}

/// A workflow step the state machine or the acting role does not allow. `rule` names the rule
/// (statuses, roles), never record content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not allowed: {rule}")]
pub struct NotAllowed {
    pub rule: String,
}

impl NotAllowed {
    pub fn new(rule: impl Into<String>) -> Self {
        NotAllowed { rule: rule.into() }
    }
}

/// Why a device refused its own user's write: a value that breaks a rule, or a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteRefused {
    Invalid(ValidationError),
    NotAllowed(NotAllowed),
}

impl From<ValidationError> for WriteRefused {
    fn from(e: ValidationError) -> Self {
        WriteRefused::Invalid(e)
    }
}

impl From<NotAllowed> for WriteRefused {
    fn from(e: NotAllowed) -> Self {
        WriteRefused::NotAllowed(e)
    }
}

/// Characters that show nothing of their own: the format characters (Unicode's Cf: zero-width
/// spaces and joiners, the soft hyphen, invisible operators, direction marks), the combining
/// marks (an accent with no letter under it) and the blank letters some fonts draw as nothing
/// (the Hangul fillers, the blank Braille pattern), and the noncharacters. Allowed
/// inside a name (a joiner shapes Indic scripts), never all a name holds.
pub(crate) fn shows_nothing(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0300}'..='\u{036F}'
            | '\u{1AB0}'..='\u{1AFF}'
            | '\u{1DC0}'..='\u{1DFF}'
            | '\u{20D0}'..='\u{20FF}'
            | '\u{FE20}'..='\u{FE2F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFFB}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    ) || is_noncharacter(c)
}

/// Unicode's noncharacters (U+FDD0–U+FDEF, and the last two code points of every plane):
/// never meant to be shown, drawn as nothing or as a box.
fn is_noncharacter(c: char) -> bool {
    matches!(c, '\u{FDD0}'..='\u{FDEF}') || (c as u32) & 0xFFFE == 0xFFFE
}

/// Whether a text shows nothing: empty, or spaces and invisible characters alone
/// (`shows_nothing`). A list, a page or an export would show it blank.
pub(crate) fn looks_empty(value: &str) -> bool {
    value.chars().all(|c| c.is_whitespace() || shows_nothing(c))
}

/// A required text: at least one character that shows (not only spaces, nor only invisible
/// characters: a name no one can read in a list, nor find by searching).
pub(crate) fn require_text(field: &str, value: &str) -> Result<(), ValidationError> {
    if looks_empty(value) {
        Err(ValidationError::new(field, "must not be empty"))
    } else {
        Ok(())
    }
}

/// The longest name or other one-line field (a guardian, a household, an owner, a provider), in
/// characters: a line of a list on a phone, not a page.
pub const MAX_LINE_CHARS: usize = 120;

/// The characters that reorder how the text around them displays: the bidirectional
/// embeddings and overrides (U+202A–U+202E) and isolates (U+2066–U+2069). A name stored with
/// one shows reversed in every list, and searching for what is shown finds nothing.
pub fn is_direction_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Characters that are no control character to Unicode but act as one in a line: the line
/// and paragraph separators (U+2028, U+2029: a line break to browsers, spreadsheets and
/// JavaScript), the byte order mark (U+FEFF: an invisible character that makes two equal names
/// differ) and the tag characters (U+E0000–U+E007F: invisible).
fn is_hidden_control(c: char) -> bool {
    matches!(
        c,
        '\u{2028}' | '\u{2029}' | '\u{FEFF}' | '\u{E0000}'..='\u{E007F}'
    )
}

/// Whether `value` fits on one line of a list: at most `max_chars` characters (composed), without a
/// control character (a line break, NUL, a terminal's escape, `is_hidden_control`) or a
/// direction control (`is_direction_control`). Empty passes: whether a field may be empty is
/// its own rule.
pub fn is_one_line(value: &str, max_chars: usize) -> bool {
    use unicode_normalization::UnicodeNormalization;
    // Characters as a person counts them: an accent typed apart from its letter (the
    // keyboards of many phones) is one character with it, as it shows. Composing never adds
    // characters, so only a value over the bound as typed is composed.
    (value.chars().count() <= max_chars || value.nfc().count() <= max_chars)
        && !value.chars().any(unseen_in_text)
}

/// A character no text field shows as typed: a control character (a line break, NUL, a
/// terminal's escape), a hidden one (`is_hidden_control`) or a direction control
/// (`is_direction_control`). Free text keeps its line breaks (`free_text`).
fn unseen_in_text(c: char) -> bool {
    c.is_control() || is_hidden_control(c) || is_direction_control(c)
}

/// A line break other than `\n` and `\r`, as a word processor or another system writes one: a
/// vertical tab, a page break, NEL, the Unicode line and paragraph separators. Free text keeps
/// them (`free_text`); exports write each as a line break.
pub(crate) fn is_other_line_break(c: char) -> bool {
    matches!(c, '\u{b}' | '\u{c}' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// A field of free text (notes, findings, comments): line breaks and tabs are the writer's
/// (a word processor's too: a vertical tab, a page break, the Unicode line and paragraph
/// separators; exports write them as line breaks), but no other control character (NUL, a
/// terminal's escape: exports turned them into U+FFFD, so what a phone accepted was not what a
/// spreadsheet showed), no hidden one (`is_hidden_control`: a byte order mark, a tag) and no
/// direction control (`is_direction_control`: text the console showed reversed). The refusal
/// says where the first one is, which the writer cannot see. Its length is bounded where
/// documents are read (`codec::bounds`); it is judged when set (`records::texts_within_rules`).
pub(crate) fn free_text(field: &str, value: &str) -> Result<(), ValidationError> {
    let kept = |c: char| matches!(c, '\n' | '\r' | '\t') || is_other_line_break(c);
    let refused = |c: char| !kept(c) && unseen_in_text(c);
    if let Some(at) = value.chars().position(refused) {
        return Err(ValidationError::new(
            field,
            format!(
                "must hold no control or text-direction character (line breaks and tabs are kept): the first is character {}",
                at + 1
            ),
        ));
    }
    Ok(())
}

/// Why `value` is no one-line field within `max_chars` (`is_one_line` said so), for
/// `ValidationError`s: the first character it does not take, which the writer cannot see (a
/// line break, a byte order mark, a direction control), else its length.
fn one_line_rule(value: &str, max_chars: usize) -> String {
    match value.chars().position(unseen_in_text) {
        Some(at) => format!(
            "must be on one line, without control or text-direction characters: the first is character {}",
            at + 1
        ),
        None => format!("must be at most {max_chars} characters on one line"),
    }
}

/// A required one-line field (a name): not empty once trimmed, and `is_one_line` within
/// `MAX_LINE_CHARS`.
pub(crate) fn require_line(field: &str, value: &str) -> Result<(), ValidationError> {
    require_text(field, value)?;
    if !is_one_line(value, MAX_LINE_CHARS) {
        return Err(ValidationError::new(
            field,
            one_line_rule(value, MAX_LINE_CHARS),
        ));
    }
    Ok(())
}

/// An optional one-line field: empty, or `is_one_line` within `max_chars`.
pub(crate) fn optional_line(
    field: &str,
    value: &str,
    max_chars: usize,
) -> Result<(), ValidationError> {
    if !is_one_line(value, max_chars) {
        return Err(ValidationError::new(field, one_line_rule(value, max_chars)));
    }
    // Spaces or invisible characters alone: a value that looks empty and is not (an owner no
    // one can read, nor find; a guardian counted as recorded in an export whose cell shows
    // nothing).
    if !value.is_empty() && looks_empty(value) {
        return Err(ValidationError::new(
            field,
            "must be empty or hold a character that shows",
        ));
    }
    Ok(())
}

/// The most entries each collection of a record may hold: the field's work with room to spare
/// (a case followed every week for ten years, a cooperative's every member as a supplier),
/// and a bound on what one record costs a phone to read and edit, and the hub to check (a
/// workplace of 60,000 buyers, each inside every other bound, took a quarter of a second of
/// the hub's time per push, and seconds of a phone's).
pub const MAX_BUYERS_OR_SUPPLIERS: usize = 5_000;
pub const MAX_TASKS: usize = 100;
pub const MAX_REFERRALS: usize = 200;
pub const MAX_FOLLOWUPS: usize = 1_000;
pub const MAX_MERGED_CASES: usize = 1_000;
pub const MAX_CHILDREN_PER_VISIT: usize = 1_000;

/// A collection holding at most `max` entries.
pub(crate) fn at_most_entries(field: &str, len: usize, max: usize) -> Result<(), ValidationError> {
    if len > max {
        return Err(ValidationError::new(
            field,
            format!("must hold at most {max} entries"),
        ));
    }
    Ok(())
}

/// The most people a visit may count in one band of a workforce (one sex, one age band): a
/// large plantation or mine, with room to spare. A count beyond is a typing error, and would
/// make every total it joins meaningless.
pub const MAX_WORKFORCE_BAND: i32 = 100_000;

/// A code (of reference data, of a case): 1 to `MAX_CODE_CHARS` printable ASCII characters, no
/// space. Codes are named in error fields and used as keys.
pub fn valid_code(code: &str) -> bool {
    !code.is_empty() && code.len() <= MAX_CODE_CHARS && code.chars().all(|c| c.is_ascii_graphic())
}

/// The longest code, in characters.
pub const MAX_CODE_CHARS: usize = 64;

/// A count, an age or a number of hours: never negative.
pub(crate) fn require_count(field: &str, value: i32) -> Result<(), ValidationError> {
    if value < 0 {
        Err(ValidationError::new(field, "must not be negative"))
    } else {
        Ok(())
    }
}

/// serde_json's messages quote the offending value ("invalid type: string \"Kouamé\""), so they
/// are reduced to their category and position before they can reach an error.
pub(crate) fn describe_json_error(e: &serde_json::Error) -> String {
    let category = match e.classify() {
        // serde_json's own words for it, which it gives no category of its own.
        serde_json::error::Category::Syntax if e.to_string().starts_with("recursion limit") => {
            "nested too deeply"
        }
        serde_json::error::Category::Io => "i/o",
        serde_json::error::Category::Syntax => "syntax",
        serde_json::error::Category::Data => "unexpected shape",
        serde_json::error::Category::Eof => "truncated",
    };
    format!("{category} (line {}, column {})", e.line(), e.column())
}
