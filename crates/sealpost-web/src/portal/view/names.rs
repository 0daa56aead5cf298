//! Attachment file names a sender chose, made safe to show and to save.
//!
//! The name ends up in a list on the page, in a `Content-Disposition`
//! header and finally on the recipient's disk, so it must not carry a path
//! (`../../etc/passwd`), control or invisible characters, characters that
//! Windows refuses, a leading dot (hidden file, `..`) or a device name.

use sealpost_policy::text::one_line;

/// Longest name kept, in characters; the extension survives a cut.
const MAX_FILE_NAME: usize = 120;

/// `raw` as a safe file name, or `fallback` when nothing usable is left:
/// - cleaned to one line ([`one_line`]: no controls, no bidi overrides);
/// - only the last path segment (`/` or `\`);
/// - `<>:"|?*` become `_`; leading dots and spaces and trailing dots and
///   spaces go; a Windows device name (`CON`, `nul.txt`) gets a `_` first;
/// - at most 120 characters, keeping a short extension.
pub fn safe_file_name(raw: Option<&str>, fallback: &str) -> String {
    let line = one_line(raw.unwrap_or_default(), 1024);
    let last = line.rsplit(['/', '\\']).next().unwrap_or_default();
    let replaced: String = last
        .chars()
        .map(|c| match c {
            '<' | '>' | ':' | '"' | '|' | '?' | '*' => '_',
            c => c,
        })
        .collect();
    let trimmed = replaced
        .trim_start_matches(['.', ' '])
        .trim_end_matches(['.', ' ']);
    if trimmed.is_empty() {
        return fallback.to_owned();
    }
    let mut name = bound(trimmed);
    let stem = name.split('.').next().unwrap_or_default().trim_end();
    if is_device_name(stem) {
        name.insert(0, '_');
    }
    name
}

fn bound(name: &str) -> String {
    if name.chars().count() <= MAX_FILE_NAME {
        return name.to_owned();
    }
    let ext = name
        .rsplit_once('.')
        .map(|(_, ext)| ext)
        .filter(|ext| !ext.is_empty() && ext.chars().count() <= 10);
    match ext {
        Some(ext) => {
            let keep = MAX_FILE_NAME - ext.chars().count() - 1;
            let stem: String = name.chars().take(keep).collect();
            format!("{}.{ext}", stem.trim_end_matches(['.', ' ']))
        }
        None => name.chars().take(MAX_FILE_NAME).collect(),
    }
}

fn is_device_name(stem: &str) -> bool {
    let upper = stem.to_ascii_uppercase();
    matches!(upper.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((upper.starts_with("COM") || upper.starts_with("LPT"))
            && upper.len() == 4
            && upper.as_bytes()[3].is_ascii_digit())
}

/// The usual extension for a content type, for names the sender left out.
pub(crate) fn file_extension_for(content_type: &str) -> &'static str {
    match content_type {
        "application/pdf" => "pdf",
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/svg+xml" => "svg",
        "text/plain" => "txt",
        "text/html" => "html",
        "text/csv" => "csv",
        "text/calendar" => "ics",
        "message/rfc822" => "eml",
        "application/zip" => "zip",
        "application/msword" => "doc",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation" => "pptx",
        "audio/mpeg" => "mp3",
        "video/mp4" => "mp4",
        _ => "bin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_become_safe() {
        let cases: &[(Option<&str>, &str)] = &[
            (Some("report.pdf"), "report.pdf"),
            (Some("../../etc/passwd"), "passwd"),
            (Some("..\\..\\windows\\win.ini"), "win.ini"),
            (Some("/abs/path/x.txt"), "x.txt"),
            (Some(".."), "fallback.bin"),
            (Some("../"), "fallback.bin"),
            (Some(".bashrc"), "bashrc"),
            (Some("a\0b\r\nc.txt"), "ab c.txt"),
            (Some("evil\u{202e}fdp.exe"), "evilfdp.exe"),
            (Some("what?:<>|*\".doc"), "what_______.doc"),
            (Some("CON"), "_CON"),
            (Some("nul.txt"), "_nul.txt"),
            (Some("com1.log"), "_com1.log"),
            (Some("console.log"), "console.log"),
            (Some("trailing. . "), "trailing"),
            (Some("Grüße.pdf"), "Grüße.pdf"),
            (Some("   "), "fallback.bin"),
            (None, "fallback.bin"),
        ];
        for (raw, want) in cases {
            assert_eq!(safe_file_name(*raw, "fallback.bin"), *want, "{raw:?}");
        }
    }

    #[test]
    fn long_names_keep_their_extension() {
        let long = format!("{}.pdf", "x".repeat(500));
        let name = safe_file_name(Some(&long), "f");
        assert_eq!(name.chars().count(), MAX_FILE_NAME);
        assert!(name.ends_with("xx.pdf"));
        let no_ext = "y".repeat(500);
        assert_eq!(
            safe_file_name(Some(&no_ext), "f").chars().count(),
            MAX_FILE_NAME
        );
    }
}
