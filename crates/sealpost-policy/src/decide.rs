//! The routing decision for one recipient of one message.
//!
//! The SMTP path calls [`decide`] once per accepted recipient and stores the
//! returned [`Decision`] with the recipient, so the tracking record can name
//! the policy that decided it.

use std::{net::IpAddr, time::SystemTime};

use crate::{address::EmailAddress, domains::InternalDomains};

/// Identifies a stored policy; lower ids are older (the final tie-break).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyId(pub i64);

/// Where one recipient's copy goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Normal delivery: the relay queue hands it to the next hop.
    Relay,
    /// Secure delivery under the named Secure Messaging definition.
    Secure { definition: String },
}

/// The outcome of [`decide`]: the route, and the policy that chose it
/// (`None` when no policy matched).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub route: Route,
    pub policy: Option<PolicyId>,
}

/// Everything a decision depends on, for one recipient.
#[derive(Debug, Clone, Copy)]
pub struct DecisionInput<'a> {
    /// Envelope sender; `None` for the null sender `<>`.
    pub envelope_from: Option<&'a EmailAddress>,
    /// The header From address, when known (not at RCPT time).
    pub header_from: Option<&'a EmailAddress>,
    pub recipient: &'a EmailAddress,
    /// The connecting client, or the address XFORWARD named.
    pub client_ip: IpAddr,
    pub now: SystemTime,
}

/// An immutable snapshot of everything policy selection reads. The gateway
/// swaps in a new snapshot when an administrator saves a change, so the next
/// message sees it.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    pub internal_domains: InternalDomains,
}

/// Decides the route of one recipient.
///
/// With no Secure Messaging policies defined (the policy engine arrives in
/// its own issue) every recipient is relayed and no policy is named.
pub fn decide(policies: &PolicySet, input: &DecisionInput<'_>) -> Decision {
    let _ = (&policies.internal_domains, input);
    Decision {
        route: Route::Relay,
        policy: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relays_everyone_without_policies() {
        let to = EmailAddress::parse("x@external.example").unwrap();
        let d = decide(
            &PolicySet::default(),
            &DecisionInput {
                envelope_from: None,
                header_from: None,
                recipient: &to,
                client_ip: "127.0.0.1".parse().unwrap(),
                now: SystemTime::now(),
            },
        );
        assert_eq!(d.route, Route::Relay);
        assert_eq!(d.policy, None);
    }
}
