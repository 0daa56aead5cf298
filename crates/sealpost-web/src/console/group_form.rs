//! The profile group form as the browser posts it, and its translation to
//! and from the API's [`GroupDraft`].
//!
//! Member addresses and domains are one per line; member groups are
//! checkboxes, one per other group (`member_group` posted once per ticked
//! box, which is why the form is read as a list of pairs). The draft is
//! checked by the same rules as `/api/v1/groups` when it is stored (a cycle
//! of groups is refused there); [`slot`] places a refusal next to its box.

use sealpost_policy::{GroupDraft, GroupId, Invalid};
use serde::Serialize;

/// The form's fields, as typed.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct GroupForm {
    #[serde(skip_serializing)]
    pub(super) csrf: String,
    pub(super) name: String,
    pub(super) description: String,
    /// One address per line.
    pub(super) addresses: String,
    /// One domain (or `*.domain`) per line.
    pub(super) domains: String,
    /// The ids of the ticked member groups, as posted.
    pub(super) member_groups: Vec<String>,
}

fn lines(text: &str) -> Vec<String> {
    text.split(['\n', ','])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

impl GroupForm {
    /// The form from its posted pairs.
    pub(super) fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut form = GroupForm::default();
        for (key, value) in pairs {
            match key.as_str() {
                "csrf" => form.csrf = value,
                "name" => form.name = value,
                "description" => form.description = value,
                "addresses" => form.addresses = value,
                "domains" => form.domains = value,
                "member_group" => form.member_groups.push(value),
                _ => {}
            }
        }
        form
    }

    /// The form showing a stored group.
    pub(super) fn from_draft(g: &GroupDraft) -> Self {
        GroupForm {
            name: g.name.clone(),
            description: g.description.clone(),
            addresses: g.addresses.join("\n"),
            domains: g.domains.join("\n"),
            member_groups: g.groups.iter().map(|id| id.0.to_string()).collect(),
            ..GroupForm::default()
        }
    }

    /// The draft the form describes; the API's rules check it after.
    ///
    /// # Errors
    /// A member group id that is not a number (a crafted post).
    pub(super) fn draft(&self) -> Result<GroupDraft, Invalid> {
        let groups = self
            .member_groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                g.trim().parse().map(GroupId).map_err(|_| {
                    Invalid::new(
                        format!("groups[{i}]"),
                        "unknown_group",
                        format!("{g:?} is not a profile group"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(GroupDraft {
            name: self.name.clone(),
            description: self.description.clone(),
            addresses: lines(&self.addresses),
            domains: lines(&self.domains),
            groups,
        })
    }

    /// Whether the group with this id is ticked.
    pub(super) fn has_member_group(&self, id: i64) -> bool {
        self.member_groups
            .iter()
            .any(|g| g.trim() == id.to_string())
    }
}

/// Where an [`Invalid`]'s field is shown on the form, with the message as
/// shown there (a member list's line named from 1).
pub(super) fn slot(e: &Invalid) -> (&'static str, String) {
    // The store names the group (`groups[id=4].addresses[2]`).
    let field = match e.field.strip_prefix("groups[id=") {
        Some(rest) => rest.split_once("].").map_or("", |(_, f)| f),
        None => e.field.as_str(),
    };
    let (head, index) = match field.split_once('[') {
        Some((head, rest)) => (head, rest.trim_end_matches(']').parse::<usize>().ok()),
        None => (field, None),
    };
    let slot = match head {
        "name" => "name",
        "description" => "description",
        "addresses" => "addresses",
        "domains" => "domains",
        "groups" => "groups",
        "import" => "import",
        _ => "form",
    };
    let message = match (slot, index) {
        ("addresses" | "domains", Some(i)) => format!("Line {}: {}", i + 1, e.message),
        _ => e.message.clone(),
    };
    (slot, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_make_a_draft_and_refusals_find_their_box() {
        let form = GroupForm::from_pairs(
            [
                ("csrf", "t"),
                ("name", "Law firms"),
                ("addresses", "a@x.example\r\n\r\nb@x.example"),
                ("domains", "*.counsel.example"),
                ("member_group", "3"),
                ("member_group", "5"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .to_vec(),
        );
        let draft = form.draft().unwrap();
        assert_eq!(draft.addresses, ["a@x.example", "b@x.example"]);
        assert_eq!(draft.groups, [GroupId(3), GroupId(5)]);
        assert!(form.has_member_group(5) && !form.has_member_group(4));
        assert_eq!(GroupForm::from_draft(&draft).draft().unwrap(), draft);

        let e = Invalid::new("groups[id=2].addresses[1]", "invalid_address", "bad");
        assert_eq!(slot(&e), ("addresses", "Line 2: bad".to_owned()));
        let cycle = Invalid::new("groups", "group_cycle", "loop: A → B → A");
        assert_eq!(slot(&cycle).0, "groups");
        assert_eq!(slot(&Invalid::new("policies[id=1].to", "x", "y")).0, "form");
    }
}
