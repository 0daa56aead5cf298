//! The configuration file against the stored configuration: what `serve`
//! would refuse at start, found by `sealpost config check` before a
//! restart turns it into an outage.
//!
//! [`check_document`] is pure and shared: `serve` runs it on the document
//! it loaded, `config check` on one read from the database read-only
//! ([`check`]; no lock, no migration, nothing created). Every problem
//! names the configuration key and the stored object at fault.

use std::path::Path;

use sealpost_policy::{
    DefinitionDraft, DefinitionEntry, DefinitionId, DomainPattern, Invalid, PolicyDocument,
};
use sealpost_store::{AdminStore, SqliteStore, StoredConfig};

use crate::config::{Config, ConfigError};

/// What [`check`] found beyond the file.
#[derive(Debug)]
pub struct StoredCheck {
    /// One line on what was checked, or why not.
    pub summary: String,
    /// What `serve` would refuse, each with its key.
    pub errors: Vec<ConfigError>,
    /// What `serve` would start with but log as an error: stored
    /// notification templates that fail today's checks.
    pub warnings: Vec<ConfigError>,
}

/// Checks the stored configuration of `config.database_url` against
/// `config`. Without a database, checks what the first start creates: the
/// built-in default definition.
pub fn check(config: &Config) -> StoredCheck {
    let db = SqliteStore::path_of_url(&config.database_url);
    let exists = match db.try_exists() {
        Ok(exists) => exists,
        Err(e) => {
            return StoredCheck {
                summary: String::new(),
                errors: vec![ConfigError {
                    path: "database.url".into(),
                    message: format!(
                        "cannot look at {}: {e}; run the check as the gateway's user (the \
                         data directory is private to it)",
                        db.display()
                    ),
                }],
                warnings: Vec::new(),
            };
        }
    };
    if !exists {
        return StoredCheck {
            summary: format!(
                "no database yet at {}; stored configuration not checked beyond the \
                 definition {:?} the first start creates",
                db.display(),
                sealpost_policy::DEFAULT_DEFINITION_NAME
            ),
            errors: check_document(config, &fitted(config, first_start_document())),
            warnings: Vec::new(),
        };
    }
    match SqliteStore::read_config(&db) {
        Ok(StoredConfig::Current(document)) => StoredCheck {
            summary: format!(
                "{}: {} definition(s), {} policy(ies) checked",
                db.display(),
                document.definitions.len(),
                document.policies.len()
            ),
            errors: check_document(config, &fitted(config, document.clone())),
            warnings: template_warnings(config, &document),
        },
        Ok(StoredConfig::OtherSchema { found, expected }) if found < expected => StoredCheck {
            summary: schema_note(
                &db,
                found,
                expected,
                "too old to read its configuration; the next `serve` migrates it",
            ),
            errors: Vec::new(),
            warnings: Vec::new(),
        },
        Ok(StoredConfig::OtherSchema { found, expected }) => StoredCheck {
            summary: schema_note(
                &db,
                found,
                expected,
                "it was written by a newer sealpost; use that version",
            ),
            errors: Vec::new(),
            warnings: Vec::new(),
        },
        Err(e) => StoredCheck {
            summary: String::new(),
            errors: vec![ConfigError {
                path: "database.url".into(),
                message: format!(
                    "cannot read the stored configuration in {}: {e}",
                    db.display()
                ),
            }],
            warnings: Vec::new(),
        },
    }
}

fn schema_note(db: &Path, found: i64, expected: i64, what: &str) -> String {
    format!(
        "{} is at schema version {found}, this sealpost expects {expected} ({what}); \
         stored configuration not checked",
        db.display()
    )
}

/// For `serve`, before it loads the stored configuration: refuses to start
/// on what [`check_document`] finds, naming the keys.
///
/// # Errors
/// The store's failure, or every conflict, one per line.
pub async fn refuse_conflicts(config: &Config, store: &dyn AdminStore) -> anyhow::Result<()> {
    let errors = check_document(config, &store.load_config().await?);
    if errors.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
    anyhow::bail!(
        "the configuration does not fit the stored configuration ({} error(s); \
         `sealpost config check` lists the same):\n{}",
        errors.len(),
        lines.join("\n")
    )
}

/// The change that fits the default definition to `vault.retention` when
/// nobody has touched it: a gateway whose retention is shorter than the
/// built-in 30 days would otherwise refuse to start (or, on a new
/// database, never start) over a definition the operator never wrote.
/// An edited default definition is the operator's, and is left for them
/// (the error says how).
pub fn untouched_default_fit(
    config: &Config,
    document: &PolicyDocument,
) -> Option<(DefinitionId, DefinitionDraft)> {
    let retention = config.vault.retention_days();
    let entry = document.definitions.iter().find(|d| d.is_default)?;
    if entry.definition != DefinitionDraft::default_definition()
        || entry.definition.expiry_days? <= retention
    {
        return None;
    }
    let mut fitted = entry.definition.clone();
    fitted.expiry_days = Some(retention);
    Some((entry.id, fitted))
}

/// `document` as `serve` will have it after [`fit_untouched_default`].
fn fitted(config: &Config, mut document: PolicyDocument) -> PolicyDocument {
    if let Some((id, draft)) = untouched_default_fit(config, &document)
        && let Some(entry) = document.definitions.iter_mut().find(|d| d.id == id)
    {
        entry.definition = draft;
    }
    document
}

/// Applies [`untouched_default_fit`] to the store, audited as the system
/// and logged, before `serve` checks the stored configuration.
///
/// # Errors
/// The store's failure, or the fitted configuration failing its check.
pub async fn fit_untouched_default(config: &Config, store: &dyn AdminStore) -> anyhow::Result<()> {
    let Some((id, draft)) = untouched_default_fit(config, &store.load_config().await?) else {
        return Ok(());
    };
    let days = draft.expiry_days.unwrap_or_default();
    let internal: Vec<DomainPattern> = config.internal_domains.iter().cloned().collect();
    let check: sealpost_store::ConfigCheck =
        Box::new(move |document: &PolicyDocument| document.compile(&internal, days));
    store
        .change_config(
            sealpost_store::ConfigChange::UpdateDefinition(id, draft),
            check,
            sealpost_store::audit::Actor::system("vault.retention"),
        )
        .await?;
    tracing::info!(
        definition = id.0,
        expiry_days = days,
        "the untouched default definition's expiry lowered to vault.retention"
    );
    Ok(())
}

/// The stored configuration of a new database: the default definition
/// alone (the store creates it, id 1, on first open).
fn first_start_document() -> PolicyDocument {
    PolicyDocument {
        definitions: vec![DefinitionEntry {
            id: DefinitionId(1),
            is_default: true,
            definition: DefinitionDraft::default_definition(),
        }],
        ..PolicyDocument::default()
    }
}

/// Checks a stored policy document against `config` as `serve` does: the
/// definitions' expiry against `vault.retention`, the document compiled
/// with `domains.internal`, and the definition the subject tag applies
/// (templates are [`template_warnings`]).
pub fn check_document(config: &Config, document: &PolicyDocument) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let retention_days = config.vault.retention_days();
    for entry in &document.definitions {
        if let Some(days) = entry.definition.expiry_days
            && days > retention_days
        {
            errors.push(ConfigError {
                path: "vault.retention".into(),
                message: format!(
                    "{} is shorter than definition {:?} (id {}) expiry_days = {days}; raise \
                     vault.retention, or lower the definition's expiry first (through the API, \
                     while the gateway runs with the old retention)",
                    show_days(config),
                    entry.definition.name.trim(),
                    entry.id.0
                ),
            });
        }
    }
    let file_domains: Vec<DomainPattern> = config.internal_domains.iter().cloned().collect();
    // With expiry conflicts reported above, the rest is checked as if
    // retention allowed them, so one run reports everything.
    let bound = if errors.is_empty() {
        retention_days
    } else {
        u32::MAX
    };
    let set = match document.compile(&file_domains, bound) {
        Ok(set) => set,
        Err(e) => {
            errors.push(stored(e));
            return errors;
        }
    };
    if let Err(e) = sealpost_secure::plan::check_subject_tag(
        &set,
        &config.secure.subject_tag,
        config.secure.subject_tag_definition.as_deref(),
    ) {
        errors.push(subject_tag(config, e));
    }
    errors
}

/// `vault.retention` as the operator likely wrote it.
fn show_days(config: &Config) -> String {
    let secs = config.vault.retention.as_secs();
    if secs.is_multiple_of(86400) {
        format!("{}d", secs / 86400)
    } else {
        humantime::format_duration(config.vault.retention).to_string()
    }
}

/// A stored object that does not validate on its own.
fn stored(e: Invalid) -> ConfigError {
    ConfigError {
        path: e.field,
        message: format!(
            "{} (in the stored configuration; fix it through the API)",
            e.message
        ),
    }
}

/// Stored notification templates that fail today's checks: `serve` starts
/// and logs them (each notification a template fails goes out with the
/// built-in one); the API refuses saving a template that fails them.
pub fn template_warnings(config: &Config, document: &PolicyDocument) -> Vec<ConfigError> {
    let file_domains: Vec<DomainPattern> = config.internal_domains.iter().cloned().collect();
    let Ok(set) = document.compile(&file_domains, u32::MAX) else {
        return Vec::new();
    };
    sealpost_web::template_problems(&set)
        .into_iter()
        .map(|e| ConfigError {
            path: e.field,
            message: format!(
                "{} (serve starts, but notifications this template fails for use the built-in \
                 one; fix it through the API)",
                e.message
            ),
        })
        .collect()
}

/// The subject tag's problem under the key that chose the definition.
fn subject_tag(config: &Config, e: Invalid) -> ConfigError {
    let key = if config.secure.subject_tag_definition.is_some() {
        "secure.subject_tag_definition"
    } else {
        "secure.subject_tag"
    };
    let message = match e.message.strip_prefix(key) {
        Some(rest) => rest.trim_start().to_owned(),
        None => format!("{} ({})", e.message, e.field),
    };
    ConfigError {
        path: key.into(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(env: &[(&str, &str)]) -> Config {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        crate::config::load(None, env).unwrap()
    }

    fn with_legal(expiry_days: u32, manual_use: bool) -> PolicyDocument {
        let mut document = first_start_document();
        let mut legal = DefinitionDraft::default_definition();
        legal.name = "Legal".into();
        legal.expiry_days = Some(expiry_days);
        legal.manual_use = manual_use;
        document.definitions[0].definition.expiry_days = Some(7);
        document.definitions.push(DefinitionEntry {
            id: DefinitionId(3),
            is_default: false,
            definition: legal,
        });
        document
    }

    fn shown(errors: &[ConfigError]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn retention_shorter_than_an_expiry_names_both() {
        let e = shown(&check_document(
            &config(&[("SEALPOST_VAULT_RETENTION", "10d")]),
            &with_legal(30, true),
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with(
                "vault.retention: 10d is shorter than definition \"Legal\" (id 3) expiry_days = 30"
            ),
            "{e:?}"
        );
        let ok = config(&[("SEALPOST_VAULT_RETENTION", "30d")]);
        assert!(check_document(&ok, &with_legal(30, true)).is_empty());
    }

    #[test]
    fn the_untouched_default_definition_is_fitted_to_a_short_retention() {
        let short = config(&[("SEALPOST_VAULT_RETENTION", "10d")]);
        // As the first start creates it: fitted, so nothing to refuse.
        let (id, draft) = untouched_default_fit(&short, &first_start_document()).unwrap();
        assert_eq!((id, draft.expiry_days), (DefinitionId(1), Some(10)));
        assert!(check_document(&short, &fitted(&short, first_start_document())).is_empty());
        // Long enough already: nothing to do.
        assert_eq!(
            untouched_default_fit(&config(&[]), &first_start_document()),
            None
        );
        // Edited by the operator (here: allowed to forward): theirs, so
        // the conflict is reported, not fixed behind their back.
        let mut edited = first_start_document();
        edited.definitions[0].definition.allow_forward = true;
        assert_eq!(untouched_default_fit(&short, &edited), None);
        let e = shown(&check_document(&short, &fitted(&short, edited)));
        assert!(e.len() == 1 && e[0].contains("\"Default\" (id 1)"), "{e:?}");
    }

    #[test]
    fn the_subject_tag_definition_must_exist_and_allow_manual_use() {
        let e = shown(&check_document(
            &config(&[("SEALPOST_SECURE_SUBJECT_TAG_DEFINITION", "NoSuch")]),
            &with_legal(30, true),
        ));
        assert!(
            e.len() == 1 && e[0].starts_with("secure.subject_tag_definition: names \"NoSuch\""),
            "{e:?}"
        );
        let legal = config(&[("SEALPOST_SECURE_SUBJECT_TAG_DEFINITION", "Legal")]);
        assert!(check_document(&legal, &with_legal(30, true)).is_empty());
        let e = shown(&check_document(&legal, &with_legal(30, false)));
        assert!(
            e.len() == 1
                && e[0].starts_with(
                    "secure.subject_tag_definition: definition \"Legal\" must allow manual use"
                )
                && e[0].contains("definitions[id=3].manual_use"),
            "{e:?}"
        );
        // A tag turned off applies no definition.
        let off = config(&[
            ("SEALPOST_SECURE_SUBJECT_TAG_DEFINITION", "NoSuch"),
            ("SEALPOST_SECURE_SUBJECT_TAG", "\"\""),
        ]);
        assert!(check_document(&off, &with_legal(30, true)).is_empty());
    }

    #[test]
    fn a_broken_template_is_a_warning_named_by_its_definition() {
        let mut document = with_legal(30, true);
        document.definitions[1].definition.notification_template =
            Some(sealpost_policy::TemplateDraft {
                text: Some("{{ unclosed".into()),
                ..Default::default()
            });
        assert!(
            check_document(&config(&[]), &document).is_empty(),
            "serve starts"
        );
        let e = shown(&template_warnings(&config(&[]), &document));
        assert!(
            e.len() == 1 && e[0].starts_with("definitions[id=3].notification_template.text:"),
            "{e:?}"
        );
    }
}
