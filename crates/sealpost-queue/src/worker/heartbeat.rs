//! Keeps a delivery's leases alive while it runs.
//!
//! A lease that ran out while its delivery still ran would let a worker
//! (this one included) lease the recipients again and send a second copy.
//! Instead of a lease longer than the slowest next hop could ever be, the
//! worker renews its leases every third of `lease_duration` while the SMTP
//! conversation goes on, so only a worker that stopped (crashed, or lost
//! its store) lets them run out. Renewal also says which leases were lost
//! anyway (the store was unreachable for a whole lease): the outcomes of
//! those are not recorded over the new holder's claim.

use std::{collections::HashSet, future::Future, time::Duration};

use sealpost_store::{QueueId, Store};

/// A leased recipient: its message and index.
pub(super) type LeaseKey = (QueueId, u32);

/// Shortest time between two renewals, whatever the lease length.
const MIN_PERIOD: Duration = Duration::from_millis(100);

/// Runs `work` while renewing `owner`'s leases on `keys` every third of
/// `lease`, and once more when it is done if the last renewal (or the
/// start) is a third of a lease ago, so the outcome's commit always has at
/// least two thirds of a lease ahead of it. A delivery that ends sooner (the
/// usual case) costs no store write here: nobody could have taken a lease
/// that never ran out. Returns the work's output and the keys whose lease
/// another owner took meanwhile.
pub(super) async fn while_renewing<F: Future>(
    store: &dyn Store,
    owner: &str,
    keys: &[LeaseKey],
    lease: Duration,
    work: F,
) -> (F::Output, HashSet<LeaseKey>) {
    let mut lost = HashSet::new();
    if keys.is_empty() {
        return (work.await, lost);
    }
    let period = (lease / 3).max(MIN_PERIOD);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut work = std::pin::pin!(work);
    let mut renewed = tokio::time::Instant::now();
    let output = loop {
        tokio::select! {
            output = &mut work => break output,
            _ = ticks.tick() => {
                renew(store, owner, keys, lease, &mut lost).await;
                renewed = tokio::time::Instant::now();
            }
        }
    };
    if renewed.elapsed() >= period {
        renew(store, owner, keys, lease, &mut lost).await;
    }
    (output, lost)
}

/// One renewal until now + `lease`; what it finds lost is added to `lost`.
/// A store error is logged and changes nothing: the lease may still be
/// live, and the next renewal (or the outcome's commit) tries again.
async fn renew(
    store: &dyn Store,
    owner: &str,
    keys: &[LeaseKey],
    lease: Duration,
    lost: &mut HashSet<LeaseKey>,
) {
    let until = std::time::SystemTime::now() + lease;
    match store.renew_leases(owner, keys.to_vec(), until).await {
        Ok(gone) => {
            for (id, idx) in &gone {
                if !lost.contains(&(id.clone(), *idx)) {
                    tracing::warn!(queue_id = %id, idx, "lease lost to another worker during delivery; its attempt decides this recipient");
                }
            }
            lost.extend(gone);
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not renew delivery leases; retrying at the next renewal");
        }
    }
}
