//! URL-encoded pairs as browsers send them (`a=1&ids=X&ids=Y`), read and
//! written by hand: a bulk recall repeats `ids`, which `axum::Form`
//! (serde_urlencoded) cannot take, and a crafted query must come back as
//! the form with an error, never as a bare 400.

use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// The pairs of `text`, in order; `+` is a space, bad escapes stay as
/// they are, invalid UTF-8 is replaced.
pub(super) fn pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    percent_decode_str(&text.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// `k=v&...` for the non-empty values.
pub(super) fn encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    pairs
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, NON_ALPHANUMERIC)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The first value of `key`.
pub(super) fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip() {
        let p = pairs("from=a%40b.example&subject=Q3+report&ids=1&ids=2&empty=&bad=%zz");
        assert_eq!(first(&p, "from"), Some("a@b.example"));
        assert_eq!(first(&p, "subject"), Some("Q3 report"));
        assert_eq!(p.iter().filter(|(k, _)| k == "ids").count(), 2);
        assert_eq!(first(&p, "bad"), Some("%zz"));
        assert_eq!(
            encode([
                ("from", "a@b.example"),
                ("to", ""),
                ("subject", "Q3 & more")
            ]),
            "from=a%40b%2Eexample&subject=Q3%20%26%20more"
        );
        assert_eq!(
            pairs(&encode([("s", "ä &=+")])),
            [("s".into(), "ä &=+".into())]
        );
    }
}
