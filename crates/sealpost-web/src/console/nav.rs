//! The console's navigation: the sections an administrator may open,
//! read from the route table ([`super::routes`]) so that a link is shown
//! exactly when its page would open for the role (one source of truth;
//! the table, not the link, is what refuses).
//!
//! The layout calls `nav(admin.role, nav_current)`; [`section_of`] names
//! the section of the page being rendered from its template's name.

use minijinja::{Environment, Value, context};
use sealpost_store::Role;

use super::{Access, Route};

/// The sections, in the order of the bar: (path, label).
const SECTIONS: &[(&str, &str)] = &[
    ("/console", "Dashboard"),
    ("/console/policies", "Policies"),
    ("/console/definitions", "Definitions"),
    ("/console/groups", "Profile groups"),
    ("/console/directory", "Directory"),
    ("/console/tracking", "Tracking"),
    ("/console/queue", "Queue"),
    ("/console/domains", "Internal domains"),
    ("/console/branding", "Portal branding"),
    ("/console/audit", "Audit log"),
    ("/console/administrators", "Administrators"),
    ("/console/api-keys", "API keys"),
];

/// Who may open `path`: its GET route's rule. A section whose page is
/// not in the table yet answers "not found" to anyone signed in.
fn access_of(routes: &[Route], path: &str) -> Access {
    routes
        .iter()
        .find(|r| r.path == path && r.methods.contains(&"GET"))
        .map_or(Access::SignedIn, |r| r.access)
}

fn opens(access: Access, role: Role) -> bool {
    match access {
        Access::Public | Access::SignedIn => true,
        Access::Roles(roles) => roles.contains(&role),
    }
}

/// The sections `role` may open, with their rules resolved once.
#[derive(Debug, Clone)]
struct Sections(Vec<(&'static str, &'static str, Access)>);

impl Sections {
    fn for_role(&self, role: Role, current: &str) -> Vec<Value> {
        self.0
            .iter()
            .filter(|(_, _, access)| opens(*access, role))
            .map(|(href, label, _)| {
                let section = href.trim_start_matches("/console").trim_start_matches('/');
                let section = if section.is_empty() {
                    "dashboard"
                } else {
                    section
                };
                // Constants of this file: nothing to escape.
                context! {
                    href => Value::from_safe_string((*href).to_owned()),
                    label,
                    current => section == current,
                }
            })
            .collect()
    }
}

/// The section a page belongs to, from its template's name
/// (`tracking_message.html` → `tracking`), for `aria-current`.
pub(super) fn section_of(template: &str) -> &str {
    let stem = template.trim_end_matches(".html");
    match stem {
        "home" => "dashboard",
        // The policy list, form, lookups and policy test.
        _ if stem.starts_with("polic") || stem == "lookup" => "policies",
        _ if stem.starts_with("definition") || stem.starts_with("notification") => "definitions",
        _ if stem.starts_with("group") => "groups",
        "api_keys" => "api-keys",
        "secret" => "administrators",
        _ => stem.split('_').next().unwrap_or(stem),
    }
}

/// Adds the `nav(role, current)` function to the console's templates.
pub(super) fn register(pages: &mut Environment<'static>, routes: &[Route]) {
    let sections = Sections(
        SECTIONS
            .iter()
            .map(|(href, label)| (*href, *label, access_of(routes, href)))
            .collect(),
    );
    pages.add_function("nav", move |role: String, current: Option<String>| {
        let role = Role::parse(&role).unwrap_or(Role::ReadOnly);
        sections.for_role(role, current.as_deref().unwrap_or(""))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_sees_the_sections_its_rules_open() {
        let routes = super::super::routes();
        let sections = Sections(
            SECTIONS
                .iter()
                .map(|(href, label)| (*href, *label, access_of(&routes, href)))
                .collect(),
        );
        let labels = |role| -> Vec<String> {
            sections
                .for_role(role, "")
                .iter()
                .map(|v| v.get_attr("label").unwrap().to_string())
                .collect()
        };
        assert_eq!(labels(Role::SuperAdmin).len(), SECTIONS.len());
        let ro = labels(Role::ReadOnly);
        assert!(ro.contains(&"Tracking".to_owned()) && ro.contains(&"Audit log".to_owned()));
        assert!(!ro.contains(&"Administrators".to_owned()));
        let tracking = labels(Role::TrackingAdmin);
        assert!(!tracking.contains(&"Audit log".to_owned()), "{tracking:?}");
        assert!(!tracking.contains(&"API keys".to_owned()));
        let current = sections.for_role(Role::PolicyAdmin, "tracking");
        let marked: Vec<_> = current
            .iter()
            .filter(|v| v.get_attr("current").unwrap().is_true())
            .collect();
        assert_eq!(marked.len(), 1);
        assert_eq!(
            marked[0].get_attr("href").unwrap().to_string(),
            "/console/tracking"
        );
        assert_eq!(section_of("tracking_message.html"), "tracking");
        assert_eq!(section_of("home.html"), "dashboard");
        assert_eq!(section_of("queue.html"), "queue");
        assert_eq!(section_of("policy_form.html"), "policies");
        assert_eq!(section_of("policy_types.html"), "policies");
    }
}
