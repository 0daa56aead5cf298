//! Administrators made outside the console: by `sealpost admin create`
//! and `admin reset-password`, and the first one at the first start. Each
//! gets a one-time password, printed once, that the console makes them
//! replace at the first sign-in (issue 16, item 1).

use std::time::SystemTime;

use sealpost_store::{
    ConsoleStore, Role, StoreError,
    audit::Actor,
    console::{AdminName, NewAdministrator},
    portal::PasswordHash,
};
use sealpost_web::auth::password::{self, Password};

/// The first start's administrator.
pub const FIRST_ADMIN: &str = "admin";

/// Why an administrator could not be made or reset.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("there is already an administrator named {0}")]
    Taken(AdminName),
    #[error("there is no administrator named {0} (see `sealpost admin list`)")]
    NoSuch(AdminName),
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

async fn one_time_hash() -> Result<(Password, PasswordHash), AdminError> {
    let (password, hashed) = password::one_time_with_hash()
        .await
        .map_err(|e| AdminError::Hash(e.to_string()))?;
    Ok((password, PasswordHash::new(hashed.as_phc().to_owned())))
}

/// Creates an administrator with a one-time password, which it returns.
///
/// # Errors
/// [`AdminError::Taken`] for a name in use; store and hashing failures.
pub async fn create(
    store: &dyn ConsoleStore,
    name: AdminName,
    role: Role,
    actor: Actor,
) -> Result<Password, AdminError> {
    let (password, hash) = one_time_hash().await?;
    let created = store
        .create_administrator(
            NewAdministrator {
                name: name.clone(),
                role,
                password: hash,
                must_change_password: true,
                now: SystemTime::now(),
            },
            actor,
        )
        .await?;
    if created {
        Ok(password)
    } else {
        Err(AdminError::Taken(name))
    }
}

/// Gives an administrator a new one-time password (and ends their
/// sessions); returns it.
///
/// # Errors
/// [`AdminError::NoSuch`] for an unknown name; store and hashing failures.
pub async fn reset_password(
    store: &dyn ConsoleStore,
    name: AdminName,
    actor: Actor,
) -> Result<Password, AdminError> {
    let (password, hash) = one_time_hash().await?;
    if store
        .set_administrator_password(&name, hash, true, None, SystemTime::now(), actor)
        .await?
    {
        Ok(password)
    } else {
        Err(AdminError::NoSuch(name))
    }
}

/// At a first start (no administrator at all), creates [`FIRST_ADMIN`],
/// a super admin, and returns its name and one-time password.
///
/// # Errors
/// Store and hashing failures.
pub async fn ensure_first(
    store: &dyn ConsoleStore,
) -> Result<Option<(AdminName, Password)>, AdminError> {
    if !store.administrators().await?.is_empty() {
        return Ok(None);
    }
    let name = AdminName::parse(FIRST_ADMIN).expect("a valid name");
    match create(
        store,
        name.clone(),
        Role::SuperAdmin,
        Actor::system("first start"),
    )
    .await
    {
        Ok(password) => Ok(Some((name, password))),
        // Another node made it first.
        Err(AdminError::Taken(_)) => Ok(None),
        Err(e) => Err(e),
    }
}
