//! A branding change as the console's form or the API sends it, and its
//! one validation ([`BrandingDraft::apply`]), so both faces refuse the
//! same input with the same field and message.
//!
//! An empty text field means "the configuration file's value"; the logo
//! is kept, removed or replaced.

use sealpost_policy::Invalid;
use sealpost_store::branding::{Logo, StoredBranding};

use super::logo;

/// Longest product name, disclaimer and support contact, in characters
/// (the configuration file's bounds).
pub const MAX_PRODUCT_NAME: usize = 60;
pub const MAX_DISCLAIMER: usize = 2000;
pub const MAX_SUPPORT_CONTACT: usize = 200;

/// What happens to the stored logo.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LogoChange {
    #[default]
    Keep,
    /// Back to the configuration file's (or none).
    Remove,
    /// An upload, not yet checked.
    Replace(Vec<u8>),
}

/// A branding change, as typed.
#[derive(Debug, Clone, Default)]
pub struct BrandingDraft {
    pub product_name: Option<String>,
    pub accent_color: Option<String>,
    pub disclaimer: Option<String>,
    pub support_contact: Option<String>,
    pub logo: LogoChange,
}

/// A text field: trimmed, empty is `None`, at most `max` characters, no
/// control characters (but newlines where `lines`).
fn text(
    field: &'static str,
    value: Option<String>,
    max: usize,
    lines: bool,
) -> Result<Option<String>, Invalid> {
    let Some(value) = value
        .map(|v| v.replace("\r\n", "\n").trim().to_owned())
        .filter(|v| !v.is_empty())
    else {
        return Ok(None);
    };
    let count = value.chars().count();
    if count > max {
        return Err(Invalid::new(
            field,
            "too_long",
            format!("at most {max} characters ({count} given)"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !(lines && c == '\n'))
    {
        return Err(Invalid::new(
            field,
            "control_characters",
            if lines {
                "only text and line breaks, no control characters"
            } else {
                "one line of text, no control characters"
            },
        ));
    }
    Ok(Some(value))
}

/// `#rrggbb`, lower-cased.
///
/// # Errors
/// [`Invalid`] on `accent_color`.
pub fn colour(value: Option<String>) -> Result<Option<String>, Invalid> {
    let Some(value) = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let hex = value.strip_prefix('#').unwrap_or_default();
    if hex.len() != 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Invalid::new(
            "accent_color",
            "invalid_colour",
            format!(
                "{:?} is not a colour such as #1d4ed8 (# and six hexadecimal digits)",
                sealpost_policy::text::one_line(&value, 40)
            ),
        ));
    }
    Ok(Some(value.to_ascii_lowercase()))
}

impl BrandingDraft {
    /// The branding to store: this draft over `current` (whose logo is
    /// kept unless the draft says otherwise).
    ///
    /// # Errors
    /// The first field at fault, with the API's code and message.
    pub fn apply(self, current: &StoredBranding) -> Result<StoredBranding, Invalid> {
        let logo = match self.logo {
            LogoChange::Keep => current.logo.clone(),
            LogoChange::Remove => None,
            LogoChange::Replace(bytes) => {
                let content_type = logo::sniff(&bytes)?;
                Some(Logo {
                    bytes,
                    content_type: content_type.to_owned(),
                })
            }
        };
        Ok(StoredBranding {
            product_name: text("product_name", self.product_name, MAX_PRODUCT_NAME, false)?,
            accent_color: colour(self.accent_color)?,
            disclaimer: text("disclaimer", self.disclaimer, MAX_DISCLAIMER, true)?,
            support_contact: text(
                "support_contact",
                self.support_contact,
                MAX_SUPPORT_CONTACT,
                false,
            )?,
            logo,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> BrandingDraft {
        BrandingDraft::default()
    }

    #[test]
    fn fields_are_trimmed_bounded_and_empty_means_the_files() {
        let stored = BrandingDraft {
            product_name: Some("  Acme secure mail ".into()),
            accent_color: Some("#AA3300".into()),
            disclaimer: Some("Line one\r\nLine two".into()),
            support_contact: Some("   ".into()),
            logo: LogoChange::Keep,
        }
        .apply(&StoredBranding::default())
        .unwrap();
        assert_eq!(stored.product_name.as_deref(), Some("Acme secure mail"));
        assert_eq!(stored.accent_color.as_deref(), Some("#aa3300"));
        assert_eq!(stored.disclaimer.as_deref(), Some("Line one\nLine two"));
        assert_eq!(stored.support_contact, None);

        for (d, field, code) in [
            (
                BrandingDraft {
                    accent_color: Some("blue".into()),
                    ..draft()
                },
                "accent_color",
                "invalid_colour",
            ),
            (
                BrandingDraft {
                    accent_color: Some("#12345g".into()),
                    ..draft()
                },
                "accent_color",
                "invalid_colour",
            ),
            (
                BrandingDraft {
                    product_name: Some("x".repeat(61)),
                    ..draft()
                },
                "product_name",
                "too_long",
            ),
            (
                BrandingDraft {
                    product_name: Some("a\nb".into()),
                    ..draft()
                },
                "product_name",
                "control_characters",
            ),
            (
                BrandingDraft {
                    logo: LogoChange::Replace(b"GIF89a".to_vec()),
                    ..draft()
                },
                "logo",
                "unsupported_logo",
            ),
        ] {
            let e = d.apply(&StoredBranding::default()).unwrap_err();
            assert_eq!((e.field.as_str(), e.code), (field, code), "{}", e.message);
        }
    }

    #[test]
    fn the_logo_is_kept_removed_or_replaced() {
        let current = StoredBranding {
            logo: Some(Logo {
                bytes: b"\x89PNG\r\n\x1a\nold".to_vec(),
                content_type: "image/png".into(),
            }),
            ..StoredBranding::default()
        };
        assert_eq!(draft().apply(&current).unwrap().logo, current.logo);
        let removed = BrandingDraft {
            logo: LogoChange::Remove,
            ..draft()
        };
        assert_eq!(removed.apply(&current).unwrap().logo, None);
        let replaced = BrandingDraft {
            logo: LogoChange::Replace(vec![0xff, 0xd8, 0xff, 1]),
            ..draft()
        }
        .apply(&current)
        .unwrap();
        assert_eq!(replaced.logo.unwrap().content_type, "image/jpeg");
    }
}
