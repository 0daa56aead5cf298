//! The SQL of the recipient portal ([`PortalStore`]): accounts and their
//! failure counters, sessions, one-time links, and an address's mailbox
//! (its secure recipients, found by match key).
//!
//! Each write is one job of the group-committing writer, so every check
//! and the change it guards (a link's single use, one account per address)
//! run in one transaction. A refusal is an `Ok` value of the job, never an
//! error, so it does not roll back the other jobs of its batch. The SQL is
//! in [`accounts`] and [`mailbox`]; here are the trait's wiring to the
//! writer and readers, and the migration step that fills match keys.

use std::time::{Duration, SystemTime};

use rusqlite::{Connection, params};

use sealpost_policy::EmailAddress;
use sealpost_vault::TokenHash;

mod accounts;
mod mailbox;

#[cfg(test)]
pub(super) use mailbox::mailbox_query_for_tests;

use super::{
    SqliteStore,
    sessions::{self, Realm},
};
use crate::{
    QueueId, StoreError,
    model::to_millis,
    portal::{
        Account, AccountKey, LinkPurpose, MailboxPage, MailboxQuery, MailboxRow, NewLink,
        NewSession, OneTimeLink, PasswordHash, PortalStore, Purged, Registration, RegistrationLink,
        RegistrationProof, Session, SessionHash, SessionLimits,
    },
};

/// The schema version that added the secure recipients' match keys; the
/// migration to it fills them for the rows already stored.
pub(super) const MATCH_KEYS_SINCE: usize = 6;

/// Fills the match key of every secure recipient stored without one. Run
/// by the migration to [`MATCH_KEYS_SINCE`], in its transaction: the key
/// folds case and IDNA the way [`EmailAddress::match_key`] does, which
/// SQL alone cannot.
pub(super) fn fill_match_keys(conn: &Connection) -> Result<usize, StoreError> {
    let rows: Vec<(String, i64, String)> = conn
        .prepare(
            "SELECT s.message_id, s.idx, r.address FROM secure_recipients s
             JOIN recipients r ON r.message_id = s.message_id AND r.idx = s.idx
             WHERE s.match_key = ''",
        )?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut update = conn.prepare(
        "UPDATE secure_recipients SET match_key = ?3 WHERE message_id = ?1 AND idx = ?2",
    )?;
    for (id, idx, address) in &rows {
        // Every stored address was parsed at acceptance; should one not
        // parse now, its lower-cased form is the nearest key.
        let key = EmailAddress::parse(address)
            .map(|a| a.match_key())
            .unwrap_or_else(|_| address.to_ascii_lowercase());
        update.execute(params![id, idx, key])?;
    }
    Ok(rows.len())
}

/// `now` less `span`, in the store's milliseconds.
pub(super) fn millis_before(now: SystemTime, span: Duration) -> i64 {
    to_millis(now).saturating_sub(i64::try_from(span.as_millis()).unwrap_or(i64::MAX))
}

fn queue_id(text: &str) -> Result<QueueId, StoreError> {
    QueueId::parse(text).ok_or_else(|| StoreError::Corrupt(format!("queue id {text:?}")))
}

#[async_trait::async_trait]
impl PortalStore for SqliteStore {
    async fn registration_link(
        &self,
        token: TokenHash,
    ) -> Result<Option<RegistrationLink>, StoreError> {
        self.readers
            .read(move |conn| accounts::registration_link(conn, &token))
            .await
    }

    async fn register(
        &self,
        proof: RegistrationProof,
        password: PasswordHash,
        link_ttl: Duration,
        now: SystemTime,
    ) -> Result<Registration, StoreError> {
        self.writer
            .write(true, move |conn, _| {
                accounts::register(conn, &proof, &password, link_ttl, now)
            })
            .await
    }

    async fn account(&self, account: &AccountKey) -> Result<Option<Account>, StoreError> {
        let key = account.clone();
        self.readers
            .read(move |conn| accounts::account(conn, &key))
            .await
    }

    async fn record_failed_sign_in(
        &self,
        account: &AccountKey,
        now: SystemTime,
    ) -> Result<Option<u32>, StoreError> {
        let key = account.clone();
        // Not durable: a power loss may forget the last few failures,
        // which costs an attacker's back-off a few steps, while an fsync
        // per guess would let a brute force load the disk.
        self.writer
            .write(false, move |conn, _| {
                sessions::record_failure(conn, Realm::Portal, key.as_str(), now)
            })
            .await
    }

    async fn create_session(&self, session: NewSession) -> Result<(), StoreError> {
        self.writer
            .write(true, move |conn, _| {
                let created = sessions::create(
                    conn,
                    Realm::Portal,
                    &sessions::NewRow {
                        id: &session.id,
                        account: session.account.as_str(),
                        csrf: &session.csrf,
                        client_ip: session.client_ip,
                        user_agent: &session.user_agent,
                        now: session.now,
                    },
                )?;
                Ok(if created {
                    super::dashboard::count_sign_in(conn, session.now)?;
                    Ok(())
                } else {
                    Err(StoreError::NoSuch(format!(
                        "portal account {}",
                        session.account
                    )))
                })
            })
            .await?
    }

    async fn session(
        &self,
        id: SessionHash,
        limits: SessionLimits,
        now: SystemTime,
    ) -> Result<Option<Session>, StoreError> {
        let row = self
            .readers
            .read_point(move |conn| sessions::find(conn, Realm::Portal, &id, limits, now))
            .await?;
        Ok(row.map(|r| Session {
            account: AccountKey::stored(r.account),
            csrf: r.csrf,
            client_ip: r.client_ip,
            user_agent: r.user_agent,
            created_at: r.created_at,
            last_seen_at: r.last_seen_at,
        }))
    }

    async fn touch_session(
        &self,
        id: SessionHash,
        limits: SessionLimits,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        // Not durable: a lost touch only makes a session look idle a
        // minute or so early.
        self.writer
            .write(false, move |conn, _| {
                sessions::touch(conn, Realm::Portal, &id, limits, now)
            })
            .await
    }

    async fn end_session(&self, id: SessionHash) -> Result<bool, StoreError> {
        self.writer
            .write(true, move |conn, _| sessions::end(conn, Realm::Portal, &id))
            .await
    }

    async fn end_other_sessions(
        &self,
        account: &AccountKey,
        keep: Option<SessionHash>,
    ) -> Result<usize, StoreError> {
        let key = account.clone();
        self.writer
            .write(true, move |conn, _| {
                accounts::end_sessions(conn, &key, keep.as_ref())
            })
            .await
    }

    async fn create_link(&self, link: NewLink, now: SystemTime) -> Result<bool, StoreError> {
        self.writer
            .write(true, move |conn, _| accounts::create_link(conn, &link, now))
            .await
    }

    async fn link(
        &self,
        token: TokenHash,
        now: SystemTime,
    ) -> Result<Option<OneTimeLink>, StoreError> {
        self.readers
            .read(move |conn| accounts::link(conn, &token, now))
            .await
    }

    async fn consume_link(
        &self,
        token: TokenHash,
        purpose: LinkPurpose,
        now: SystemTime,
    ) -> Result<Option<AccountKey>, StoreError> {
        self.writer
            .write(true, move |conn, _| {
                accounts::consume_link(conn, &token, purpose, now)
            })
            .await
    }

    async fn reset_password(
        &self,
        token: TokenHash,
        password: PasswordHash,
        now: SystemTime,
    ) -> Result<Option<AccountKey>, StoreError> {
        self.writer
            .write(true, move |conn, _| {
                accounts::reset_password(conn, &token, &password, now)
            })
            .await
    }

    async fn purge_expired(
        &self,
        limits: SessionLimits,
        now: SystemTime,
    ) -> Result<Purged, StoreError> {
        self.writer
            .write(false, move |conn, _| {
                accounts::purge_expired(conn, limits, now)
            })
            .await
    }

    async fn mailbox(
        &self,
        account: &AccountKey,
        query: MailboxQuery,
        now: SystemTime,
    ) -> Result<MailboxPage, StoreError> {
        let key = account.clone();
        self.readers
            .read(move |conn| mailbox::mailbox(conn, &key, &query, now))
            .await
    }

    async fn mailbox_message(
        &self,
        account: &AccountKey,
        id: &QueueId,
        idx: u32,
        now: SystemTime,
    ) -> Result<MailboxRow, StoreError> {
        let (key, id) = (account.clone(), id.clone());
        self.readers
            .read_point(move |conn| mailbox::mailbox_message(conn, &key, &id, idx, now))
            .await
    }

    async fn sent_message(
        &self,
        account: &AccountKey,
        id: &QueueId,
    ) -> Result<MailboxRow, StoreError> {
        let (key, id) = (account.clone(), id.clone());
        self.readers
            .read_point(move |conn| mailbox::sent_message(conn, &key, &id))
            .await
    }

    async fn mark_read(
        &self,
        account: &AccountKey,
        id: &QueueId,
        idx: u32,
        read: bool,
    ) -> Result<(), StoreError> {
        let (key, id) = (account.clone(), id.clone());
        self.writer
            .write(false, move |conn, _| {
                mailbox::update_own(
                    conn,
                    mailbox::SET_READ,
                    &key,
                    &id,
                    idx,
                    Some(i64::from(read)),
                )
            })
            .await?
    }

    async fn delete_message(
        &self,
        account: &AccountKey,
        id: &QueueId,
        idx: u32,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let (key, id) = (account.clone(), id.clone());
        self.writer
            .write(false, move |conn, _| {
                mailbox::update_own(conn, mailbox::DELETE, &key, &id, idx, Some(to_millis(now)))
            })
            .await?
    }

    async fn restore_message(
        &self,
        account: &AccountKey,
        id: &QueueId,
        idx: u32,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let (key, id) = (account.clone(), id.clone());
        self.writer
            .write(false, move |conn, _| {
                mailbox::restore_message(conn, &key, &id, idx, now)
            })
            .await?
    }
}
