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

/// A required text: not empty once trimmed.
pub(crate) fn require_text(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        Err(ValidationError::new(field, "must not be empty"))
    } else {
        Ok(())
    }
}

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
        serde_json::error::Category::Io => "i/o",
        serde_json::error::Category::Syntax => "syntax",
        serde_json::error::Category::Data => "unexpected shape",
        serde_json::error::Category::Eof => "truncated",
    };
    format!("{category} (line {}, column {})", e.line(), e.column())
}
