//! The tracking search form: what the administrator typed, checked field
//! by field into the store's [`MessageFilter`]. A bad date, an unknown
//! status, an inverted range or a page size out of bounds comes back as
//! the form with the error beside its field; nothing is searched.

use std::time::{Duration, SystemTime};

use sealpost_store::{MessageFilter, QueueId, RecipientStatus};
use serde::Serialize;

use super::form;

/// Page sizes offered; anything else is refused.
pub(super) const PAGE_SIZES: [usize; 3] = [25, 50, 100];
const DEFAULT_PAGE: usize = 50;

/// Statuses offered, as the store names them.
pub(super) const STATUSES: [&str; 6] = [
    "queued",
    "delivered",
    "failed",
    "secure",
    "expired",
    "recalled",
];

/// The search form as typed (kept to show it again).
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct Filters {
    pub(super) from: String,
    pub(super) to: String,
    pub(super) subject: String,
    pub(super) status: String,
    /// `YYYY-MM-DD` (UTC), from the start of that day.
    pub(super) since: String,
    /// `YYYY-MM-DD` (UTC), to the end of that day.
    pub(super) until: String,
    /// `newest` (default) or `oldest`.
    pub(super) order: String,
    pub(super) size: String,
    /// The last message of the previous page.
    pub(super) after: String,
}

/// An error per field, shown beside it.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct FieldErrors {
    pub(super) status: Option<String>,
    pub(super) since: Option<String>,
    pub(super) until: Option<String>,
    pub(super) order: Option<String>,
    pub(super) size: Option<String>,
    pub(super) after: Option<String>,
}

impl FieldErrors {
    pub(super) fn any(&self) -> bool {
        self.status.is_some()
            || self.since.is_some()
            || self.until.is_some()
            || self.order.is_some()
            || self.size.is_some()
            || self.after.is_some()
    }
}

/// A `YYYY-MM-DD` date as the start of that day (UTC).
fn day(text: &str) -> Option<SystemTime> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(text.trim(), &format).ok()?;
    Some(SystemTime::from(date.midnight().assume_utc()))
}

impl Filters {
    /// The form from query pairs (unknown keys ignored).
    pub(super) fn from_pairs(pairs: &[(String, String)]) -> Filters {
        let get = |k| form::first(pairs, k).unwrap_or("").trim().to_owned();
        Filters {
            from: get("from"),
            to: get("to"),
            subject: get("subject"),
            status: get("status"),
            since: get("since"),
            until: get("until"),
            order: get("order"),
            size: get("size"),
            after: get("after"),
        }
    }

    /// The query string of this search, without `after` (each page adds
    /// its own).
    pub(super) fn query(&self) -> String {
        form::encode([
            ("from", self.from.as_str()),
            ("to", &self.to),
            ("subject", &self.subject),
            ("status", &self.status),
            ("since", &self.since),
            ("until", &self.until),
            ("order", &self.order),
            ("size", &self.size),
        ])
    }

    pub(super) fn page_size(&self) -> usize {
        self.size.parse().unwrap_or(DEFAULT_PAGE)
    }

    /// The store's filter, or the errors of the fields at fault.
    pub(super) fn parse(&self) -> Result<MessageFilter, Box<FieldErrors>> {
        let mut errors = FieldErrors::default();
        let status = match self.status.as_str() {
            "" => None,
            s => {
                let parsed = RecipientStatus::parse(s);
                if parsed.is_none() {
                    errors.status = Some(format!(
                        "{:?} is not a status: choose one of the list.",
                        sealpost_policy::text::one_line(s, 40)
                    ));
                }
                parsed
            }
        };
        let date = |text: &str, slot: &mut Option<String>| {
            if text.is_empty() {
                return None;
            }
            let parsed = day(text);
            if parsed.is_none() {
                *slot = Some(format!(
                    "{:?} is not a date such as 2026-12-01.",
                    sealpost_policy::text::one_line(text, 40)
                ));
            }
            parsed
        };
        let since = date(&self.since, &mut errors.since);
        // The until day is included: the search ends at the next midnight.
        let until = date(&self.until, &mut errors.until).map(|t| t + Duration::from_secs(86400));
        if let (Some(s), Some(u)) = (since, until)
            && u <= s
        {
            errors.until = Some("Until is before From: the range is inverted.".into());
        }
        let oldest_first = match self.order.as_str() {
            "" | "newest" => false,
            "oldest" => true,
            _ => {
                errors.order = Some("Sort newest or oldest first.".into());
                false
            }
        };
        let limit = if self.size.is_empty() {
            DEFAULT_PAGE
        } else {
            match self.size.parse::<usize>() {
                Ok(n) if PAGE_SIZES.contains(&n) => n,
                _ => {
                    errors.size = Some("Show 25, 50 or 100 a page.".into());
                    DEFAULT_PAGE
                }
            }
        };
        let after = match self.after.as_str() {
            "" => None,
            text => {
                let id = QueueId::parse(text);
                if id.is_none() {
                    errors.after =
                        Some("The page link is damaged: start again from the first page.".into());
                }
                id
            }
        };
        if errors.any() {
            return Err(Box::new(errors));
        }
        let text = |s: &str| Some(s.to_owned()).filter(|s| !s.is_empty());
        Ok(MessageFilter {
            from: text(&self.from),
            to: text(&self.to),
            subject: text(&self.subject),
            status,
            since,
            until,
            all_kinds: false,
            oldest_first,
            after,
            limit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(query: &str) -> Filters {
        Filters::from_pairs(&form::pairs(query))
    }

    #[test]
    fn a_good_search_becomes_the_stores_filter() {
        let f = filters("from=alice&subject=Q3&status=secure&since=2026-12-01&until=2026-12-01&order=oldest&size=25")
            .parse()
            .unwrap();
        assert_eq!(f.from.as_deref(), Some("alice"));
        assert_eq!(f.to, None);
        assert_eq!(f.status, Some(RecipientStatus::Secure));
        assert_eq!(
            f.until.unwrap().duration_since(f.since.unwrap()).unwrap(),
            Duration::from_secs(86400),
            "the until day is included"
        );
        assert!(f.oldest_first && f.limit == 25 && !f.all_kinds);
        assert_eq!(filters("").parse().unwrap().limit, 50);
    }

    #[test]
    fn bad_fields_are_named() {
        let e = filters("status=lost&since=2026-13-01&size=1000&order=up&after=xyz")
            .parse()
            .unwrap_err();
        assert!(e.status.unwrap().contains("\"lost\" is not a status"));
        assert!(e.since.unwrap().contains("is not a date"));
        assert!(e.size.is_some() && e.order.is_some() && e.after.is_some());
        let e = filters("since=2026-12-05&until=2026-12-01")
            .parse()
            .unwrap_err();
        assert!(e.until.unwrap().contains("inverted"));
        assert!(e.since.is_none());
    }

    #[test]
    fn the_query_keeps_the_search_and_drops_the_page() {
        let f = filters("from=a%40b&status=secure&after=0123456789ABCDEF");
        assert_eq!(f.query(), "from=a%40b&status=secure");
    }
}
