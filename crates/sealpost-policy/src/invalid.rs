//! Validation errors that name the field at fault.
//!
//! Every object an administrator submits (through the API, the CLI or an
//! imported document) is checked here once, and each refusal says which
//! field is wrong, a stable machine-readable code, and what to do about it.

use std::fmt;

/// Why a submitted object was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The path of the offending field, e.g. `from.value` or
    /// `source_ips[2]`; empty when the object as a whole is at fault.
    pub field: String,
    /// A stable code clients can branch on, e.g. `invalid_address`.
    pub code: &'static str,
    /// What is wrong, in words an administrator can act on.
    pub message: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Invalid {
            field: field.into(),
            code,
            message: message.into(),
        }
    }

    /// The same error, with its field placed under `parent` (`to` +
    /// `value` gives `to.value`; an index `[3]` is appended without a dot).
    pub fn within(mut self, parent: &str) -> Self {
        self.field = match (parent.is_empty(), self.field.is_empty()) {
            (true, _) => self.field,
            (false, true) => parent.to_owned(),
            (false, false) if self.field.starts_with('[') => format!("{parent}{}", self.field),
            (false, false) => format!("{parent}.{}", self.field),
        };
        self
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for Invalid {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_field_paths() {
        let e = Invalid::new("value", "x", "bad").within("to");
        assert_eq!(e.field, "to.value");
        let e = Invalid::new("[2]", "x", "bad").within("source_ips");
        assert_eq!(e.to_string(), "source_ips[2]: bad");
        assert_eq!(Invalid::new("", "x", "bad").within("from").field, "from");
    }
}
