//! What the console's lists share (issue 16, item 7: each list pages and
//! sorts on the server): the list query (search, sort, direction, page),
//! the page arithmetic, the list's links with its filters kept, and the
//! sortable column headers. The Secure Messaging policies, the
//! definitions and the profile groups use it; each says which columns
//! sort and how it compares its rows.
//!
//! The context [`Listing::page`] gives a template: `first`, `last`,
//! `total`, `page`, `pages`, `previous`, `next` (for `pager.html`),
//! `columns` (each with `label`, `href` and `sorted`, the value of its
//! `aria-sort`), and `q`, `sort`, `dir` for the search form.

use std::cmp::Ordering;

use serde::Deserialize;

/// Rows on a page.
pub(super) const PAGE_SIZE: usize = 50;

/// A list's query string, as far as the lists share it; each page reads
/// its own filters and notices beside it.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    /// Words searched for.
    #[serde(default)]
    q: String,
    /// A column's key; anything else sorts by id.
    #[serde(default)]
    sort: String,
    /// `desc`; anything else is ascending.
    #[serde(default)]
    dir: String,
    /// From 1; anything else is the first page, past the last the last.
    #[serde(default)]
    page: String,
}

/// One request of a list: where it is, what its links keep, how it is
/// sorted and which page is asked for.
#[derive(Debug)]
pub(super) struct Listing {
    path: &'static str,
    /// `(key, label)` of each sortable column, in the header's order; a
    /// key `id` sorts but has no header.
    columns: &'static [(&'static str, &'static str)],
    /// The page's own filters, kept in every link.
    filters: Vec<(&'static str, String)>,
    q: String,
    /// One of the columns' keys, or `id`.
    sort: &'static str,
    descending: bool,
    page: usize,
}

impl ListQuery {
    /// This query on the list at `path` sorting by `columns`, with the
    /// page's own `filters` (empty ones are left out of its links).
    pub(super) fn listing(
        &self,
        path: &'static str,
        columns: &'static [(&'static str, &'static str)],
        filters: Vec<(&'static str, String)>,
    ) -> Listing {
        Listing {
            path,
            columns,
            filters,
            q: self.q.clone(),
            sort: columns
                .iter()
                .find(|(k, _)| *k == self.sort)
                .map_or("id", |(k, _)| k),
            descending: self.dir == "desc",
            page: self.page.trim().parse().unwrap_or(1),
        }
    }
}

impl Listing {
    /// Whether `texts` match the search: each contains the search words
    /// as typed (trimmed, any case), or there is no search.
    pub(super) fn matches(&self, texts: &[&str]) -> bool {
        let needle = self.q.trim().to_lowercase();
        needle.is_empty() || texts.iter().any(|t| t.to_lowercase().contains(&needle))
    }

    /// Sorts `rows` by the sort column with `compare(column, a, b)`
    /// (ascending), reversed when descending, ties in id order whichever
    /// the direction.
    pub(super) fn sort_rows<T>(
        &self,
        rows: &mut [T],
        id: impl Fn(&T) -> i64,
        compare: impl Fn(&str, &T, &T) -> Ordering,
    ) {
        rows.sort_by(|a, b| {
            let o = compare(self.sort, a, b);
            if self.descending { o.reverse() } else { o }.then(id(a).cmp(&id(b)))
        });
    }

    /// The list's URL with its filters, search and sort, and `changes`
    /// applied (an empty value removes a pair).
    pub(super) fn url(&self, changes: &[(&str, String)]) -> String {
        let mut pairs: Vec<(&str, String)> = self.filters.clone();
        pairs.push(("q", self.q.clone()));
        pairs.push((
            "sort",
            if self.sort == "id" { "" } else { self.sort }.to_owned(),
        ));
        pairs.push(("dir", if self.descending { "desc" } else { "" }.to_owned()));
        for (k, v) in changes {
            pairs.retain(|(name, _)| name != k);
            pairs.push((k, v.clone()));
        }
        let encoded: Vec<String> = pairs
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={}", super::encoded(&v)))
            .collect();
        if encoded.is_empty() {
            self.path.to_owned()
        } else {
            format!("{}?{}", self.path, encoded.join("&"))
        }
    }

    /// The page asked for, clamped to the pages there are (one when
    /// there are no rows).
    fn page_number(&self, total: usize) -> usize {
        self.page.clamp(1, total.div_ceil(PAGE_SIZE).max(1))
    }

    /// The sorted `rows`' page asked for, and the template's context for
    /// it (see the module's notes).
    pub(super) fn page<T>(&self, rows: Vec<T>) -> (Vec<T>, minijinja::Value) {
        let total = rows.len();
        let pages = total.div_ceil(PAGE_SIZE).max(1);
        let page = self.page_number(total);
        let skip = (page - 1) * PAGE_SIZE;
        let shown: Vec<T> = rows.into_iter().skip(skip).take(PAGE_SIZE).collect();
        let columns: Vec<minijinja::Value> = self
            .columns
            .iter()
            .filter(|(k, _)| *k != "id")
            .map(|(k, label)| {
                let current = *k == self.sort;
                let next_dir = if current && !self.descending { "desc" } else { "asc" };
                minijinja::context! {
                    key => k,
                    label,
                    href => self.url(&[("sort", (*k).to_owned()), ("dir", next_dir.to_owned()), ("page", String::new())]),
                    sorted => match (current, self.descending) {
                        (false, _) => "none",
                        (true, false) => "ascending",
                        (true, true) => "descending",
                    },
                }
            })
            .collect();
        let context = minijinja::context! {
            first => skip + usize::from(total > 0),
            last => skip + shown.len(),
            total,
            page,
            pages,
            // The first page's link names no page.
            previous => (page > 1).then(|| self.url(&[("page", if page == 2 { String::new() } else { (page - 1).to_string() })])),
            next => (page < pages).then(|| self.url(&[("page", (page + 1).to_string())])),
            columns,
            q => self.q.as_str(),
            sort => self.sort,
            dir => if self.descending { "desc" } else { "asc" },
        };
        (shown, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: [(&str, &str); 2] = [("name", "Name"), ("id", "Id")];

    fn query(q: &str, sort: &str, dir: &str, page: &str) -> ListQuery {
        ListQuery {
            q: q.into(),
            sort: sort.into(),
            dir: dir.into(),
            page: page.into(),
        }
    }

    #[test]
    fn pages_are_clamped_and_counted() {
        let l = query("", "", "", "99").listing("/x", &COLUMNS, vec![]);
        assert_eq!(l.page_number(0), 1);
        assert_eq!(l.page_number(50), 1);
        assert_eq!(l.page_number(51), 2);
        assert_eq!(
            query("", "", "", "0")
                .listing("/x", &COLUMNS, vec![])
                .page_number(120),
            1
        );
        assert_eq!(
            query("", "", "", "two")
                .listing("/x", &COLUMNS, vec![])
                .page_number(120),
            1
        );
        let (shown, ctx) = l.page((0..120).collect::<Vec<i32>>());
        assert_eq!(shown, (100..120).collect::<Vec<_>>());
        assert_eq!(ctx.get_attr("first").unwrap().to_string(), "101");
        assert_eq!(ctx.get_attr("last").unwrap().to_string(), "120");
        assert!(ctx.get_attr("next").unwrap().is_none());
        let (none, ctx) = l.page(Vec::<i32>::new());
        assert!(none.is_empty());
        assert_eq!(ctx.get_attr("first").unwrap().to_string(), "0");
        assert_eq!(ctx.get_attr("pages").unwrap().to_string(), "1");
    }

    #[test]
    fn links_keep_the_filters_and_drop_the_defaults() {
        let l = query("a b&c", "name", "desc", "2").listing(
            "/x",
            &COLUMNS,
            vec![("status", "active".into()), ("kind", String::new())],
        );
        assert_eq!(
            l.url(&[]),
            "/x?status=active&q=a%20b%26c&sort=name&dir=desc"
        );
        assert_eq!(
            l.url(&[("page", "3".into())]),
            "/x?status=active&q=a%20b%26c&sort=name&dir=desc&page=3"
        );
        let plain = query("", "nonsense", "up", "").listing("/x", &COLUMNS, vec![]);
        assert_eq!(plain.sort, "id");
        assert_eq!(plain.url(&[]), "/x");
    }

    #[test]
    fn ties_stay_in_id_order_whichever_the_direction() {
        let mut rows = vec![(3, "b"), (1, "b"), (2, "a"), (4, "A")];
        let by =
            |_: &str, a: &(i64, &str), b: &(i64, &str)| a.1.to_lowercase().cmp(&b.1.to_lowercase());
        let l = query("", "name", "desc", "").listing("/x", &COLUMNS, vec![]);
        l.sort_rows(&mut rows, |r| r.0, by);
        assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 3, 2, 4]);
        let l = query("", "name", "", "").listing("/x", &COLUMNS, vec![]);
        l.sort_rows(&mut rows, |r| r.0, by);
        assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [2, 4, 1, 3]);
        assert!(l.matches(&["x", "y"]));
        let s = query(" LAW ", "", "", "").listing("/x", &COLUMNS, vec![]);
        assert!(s.matches(&["", "Outside lawyers"]) && !s.matches(&["Counsel"]));
    }
}
