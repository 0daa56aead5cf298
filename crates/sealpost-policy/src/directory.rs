//! The directory: internal users and their attributes.
//!
//! Policies can select senders or recipients by a directory attribute
//! (`department = Legal`). Attribute names are case-insensitive and kept
//! lower-case; values compare case-insensitively (ASCII), as administrators
//! type them in different cases in different places.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{address::EmailAddress, invalid::Invalid};

/// Longest display name or attribute value accepted, in characters.
const MAX_TEXT: usize = 256;
/// Most attributes one user may carry.
const MAX_ATTRIBUTES: usize = 64;

/// A directory user as submitted and as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UserDraft {
    /// The user's email address.
    pub address: String,
    #[serde(default)]
    pub display_name: String,
    /// Attribute name → value, e.g. `{"department": "Legal"}`.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// A validated directory user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    pub address: EmailAddress,
    pub display_name: String,
    /// Lower-case names; values as given.
    pub attributes: BTreeMap<String, String>,
}

impl DirectoryUser {
    /// Validates a submitted user.
    ///
    /// # Errors
    /// [`Invalid`] naming the field at fault.
    pub fn from_draft(draft: &UserDraft) -> Result<Self, Invalid> {
        let address = EmailAddress::parse(draft.address.trim()).map_err(|e| {
            Invalid::new(
                "address",
                "invalid_address",
                format!("{:?} is not a valid email address: {e}", draft.address),
            )
        })?;
        let display_name = draft.display_name.trim().to_owned();
        if display_name.chars().count() > MAX_TEXT {
            return Err(Invalid::new(
                "display_name",
                "too_long",
                format!("display name is longer than {MAX_TEXT} characters"),
            ));
        }
        if draft.attributes.len() > MAX_ATTRIBUTES {
            return Err(Invalid::new(
                "attributes",
                "too_many",
                format!("a user may have at most {MAX_ATTRIBUTES} attributes"),
            ));
        }
        let mut attributes = BTreeMap::new();
        for (name, value) in &draft.attributes {
            let field = format!("attributes.{name}");
            let name = attribute_name(name).map_err(|e| e.within(&field))?;
            if value.chars().count() > MAX_TEXT {
                return Err(Invalid::new(
                    field,
                    "too_long",
                    format!("attribute value is longer than {MAX_TEXT} characters"),
                ));
            }
            if attributes
                .insert(name.clone(), value.trim().to_owned())
                .is_some()
            {
                return Err(Invalid::new(
                    field,
                    "duplicate",
                    format!("attribute {name:?} is given twice (names ignore case)"),
                ));
            }
        }
        Ok(DirectoryUser {
            address,
            display_name,
            attributes,
        })
    }

    /// The user as the API shows it.
    pub fn to_draft(&self) -> UserDraft {
        UserDraft {
            address: self.address.to_string(),
            display_name: self.display_name.clone(),
            attributes: self.attributes.clone(),
        }
    }

    /// Whether the user has attribute `name` (lower-case) equal to `value`.
    pub fn has_attribute(&self, name: &str, value: &str) -> bool {
        self.attributes
            .get(name)
            .is_some_and(|v| v.eq_ignore_ascii_case(value))
    }
}

/// Checks and normalises an attribute name: letters, digits, `_`, `-`
/// and `.`, 1 to 64 characters; returned lower-case.
///
/// # Errors
/// [`Invalid`] with an empty field path (the caller adds its own).
pub fn attribute_name(name: &str) -> Result<String, Invalid> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Invalid::new(
            "",
            "missing_attribute_name",
            "an attribute condition needs an attribute name",
        ));
    }
    if name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        return Err(Invalid::new(
            "",
            "invalid_attribute_name",
            format!(
                "attribute name {name:?} may use only letters, digits, '_', '-' and '.' (at most 64)"
            ),
        ));
    }
    Ok(name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(address: &str, attrs: &[(&str, &str)]) -> UserDraft {
        UserDraft {
            address: address.into(),
            display_name: "A User".into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn attributes_are_case_insensitive() {
        let u = DirectoryUser::from_draft(&draft("a@corp.example", &[("Department", "Legal")]))
            .unwrap();
        assert!(u.has_attribute("department", "legal"));
        assert!(!u.has_attribute("department", "sales"));
    }

    #[test]
    fn errors_name_the_field() {
        let e = DirectoryUser::from_draft(&draft("not an address", &[])).unwrap_err();
        assert_eq!((e.field.as_str(), e.code), ("address", "invalid_address"));
        let e = DirectoryUser::from_draft(&draft("a@corp.example", &[(" ", "x")])).unwrap_err();
        assert_eq!(e.code, "missing_attribute_name");
        let e = DirectoryUser::from_draft(&draft("a@corp.example", &[("A", "1"), ("a", "2")]))
            .unwrap_err();
        assert_eq!(e.code, "duplicate");
    }
}
