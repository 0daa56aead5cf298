//! Policy selection (SPEC §3): the route of one recipient of one message,
//! and the explanation of it.
//!
//! The SMTP path calls [`decide`] once per accepted recipient and stores the
//! returned [`Decision`] with the recipient, so the tracking record can name
//! the policy that decided it. [`explain`] applies the same rules to every
//! policy and says, for each, why it matched or the first reason it did not;
//! its winner is by construction the one [`decide`] picks.
//!
//! The rules, in the order they apply:
//! 1. Secure delivery is for internal → external mail only: a null or
//!    external envelope sender, or an internal recipient, is relayed and no
//!    policy is consulted.
//! 2. Candidates: enabled policies whose date range contains *now*, whose
//!    source IP ranges (if any) contain the client IP (the XFORWARD address
//!    when one was trusted), whose Emails From matches the sender and whose
//!    Emails To matches the recipient.
//! 3. If any candidate has *policy override*, only those remain.
//! 4. The most specific wins: recipient specificity first, then sender
//!    specificity; then a policy with source IP ranges beats one without, a
//!    dated one beats an always-on one, and finally the lower id wins.
//! 5. The winner's action applies: a definition means secure delivery,
//!    *take no action* means normal delivery. No candidate: normal delivery.

use std::{cmp::Reverse, fmt, net::IpAddr, time::SystemTime};

use serde::Serialize;

use crate::{
    address::EmailAddress,
    definitions::DefinitionId,
    policy::{Action, AddressBasis, Policy},
    set::{PolicySet, Subject},
};

/// Identifies a stored policy; lower ids are older (the final tie-break).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct PolicyId(pub i64);

/// Where one recipient's copy goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Normal delivery: the relay queue hands it to the next hop.
    Relay,
    /// Secure delivery under a Secure Messaging definition.
    Secure { definition: DefinitionId },
}

/// The outcome of [`decide`]: the route, and the policy that chose it
/// (`None` when no policy matched). A *take no action* winner gives
/// [`Route::Relay`] with its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub route: Route,
    pub policy: Option<PolicyId>,
}

impl Decision {
    /// Normal delivery, no policy involved.
    pub const RELAY: Decision = Decision {
        route: Route::Relay,
        policy: None,
    };
}

/// Everything a decision depends on, for one recipient.
#[derive(Debug, Clone, Copy)]
pub struct DecisionInput<'a> {
    /// Envelope sender; `None` for the null sender `<>`.
    pub envelope_from: Option<&'a EmailAddress>,
    /// The header From address, when known.
    pub header_from: Option<&'a EmailAddress>,
    pub recipient: &'a EmailAddress,
    /// The connecting client, or the address XFORWARD named.
    pub client_ip: IpAddr,
    pub now: SystemTime,
}

/// Decides the route of one recipient.
///
/// The policies filed under what the recipient and sender are come in
/// lists each ordered best first (see the index in `set.rs`), so each list
/// is read only until its first match, or until its policies rank below
/// the best match found so far: the winner is the same as
/// [`decide_by_scan`]'s, and thousands of policies aimed at one group cost
/// a handful of checks.
pub fn decide(set: &PolicySet, input: &DecisionInput<'_>) -> Decision {
    let Some(ctx) = Context::new(set, input) else {
        return Decision::RELAY;
    };
    let mut lists: Vec<&[u32]> = Vec::with_capacity(8);
    set.index.to.collect(&ctx.recipient, &mut lists);
    set.index.from.collect(&ctx.envelope, &mut lists);
    if let Some(header) = &ctx.header {
        set.index.from.collect(header, &mut lists);
    }
    lists.push(&set.index.broad);
    let mut winner: Option<(&Policy, RankKey)> = None;
    for list in lists {
        for &pos in list {
            let p = &set.policies[pos as usize];
            let key = rank(p);
            if winner.as_ref().is_some_and(|(_, best)| key <= *best) {
                break;
            }
            if ctx.failure(p).is_none() {
                winner = Some((p, key));
                break;
            }
        }
    }
    ctx.decision(winner.map(|(p, _)| p))
}

/// Whether `policy` selects this recipient: the direction is internal →
/// external and every condition of the policy holds. A recipient that
/// neither version of an edited policy selects keeps its route whatever
/// the edit, which is what lets an impact preview skip deciding it.
pub fn selects(set: &PolicySet, policy: &Policy, input: &DecisionInput<'_>) -> bool {
    Context::new(set, input).is_some_and(|ctx| ctx.failure(policy).is_none())
}

/// Why a policy did not match, the first reason found in the order the
/// issue lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Mismatch {
    Disabled,
    /// The date range has not started or has ended.
    OutsideDates,
    /// Source IP ranges are set and the client IP is in none of them.
    SourceIpNotInRanges,
    /// Emails From does not match the sender.
    Sender {
        expected: String,
    },
    /// Emails To does not match the recipient.
    Recipient {
        expected: String,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Disabled => f.write_str("disabled"),
            Mismatch::OutsideDates => f.write_str("outside its dates"),
            Mismatch::SourceIpNotInRanges => f.write_str("client IP not in its source IP ranges"),
            Mismatch::Sender { expected } => write!(f, "sender is not {expected}"),
            Mismatch::Recipient { expected } => write!(f, "recipient is not {expected}"),
        }
    }
}

/// Whether selection applies to this sender/recipient pair at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Internal sender, external recipient: policies apply.
    InternalToExternal,
    /// The null sender `<>` (a bounce): always relayed.
    NullSender,
    /// The envelope sender is external: always relayed.
    ExternalSender,
    /// The recipient is internal: always relayed.
    InternalRecipient,
}

/// One policy's verdict in an [`Explanation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Verdict {
    pub policy: PolicyId,
    pub matched: bool,
    /// Why not, when it did not match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mismatch: Option<Mismatch>,
}

/// Every policy's verdict, the ranking of the candidates and the winner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Explanation {
    pub direction: Direction,
    /// One per policy, in id order.
    pub verdicts: Vec<Verdict>,
    /// Whether an override candidate narrowed the field (step 3).
    pub override_applied: bool,
    /// The candidates that survived step 3, best first.
    pub ranking: Vec<PolicyId>,
    pub winner: Option<PolicyId>,
    /// `secure` or `relay`.
    pub route: &'static str,
    /// The definition applied, for a secure route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub definition: Option<DefinitionId>,
}

/// Applies every rule to every policy and reports what happened.
pub fn explain(set: &PolicySet, input: &DecisionInput<'_>) -> Explanation {
    let direction = direction(set, input);
    let ctx = Context::new(set, input);
    let verdicts: Vec<Verdict> = set
        .policies
        .iter()
        .map(|p| {
            let mismatch = match &ctx {
                Some(ctx) => ctx.mismatch(p),
                // Selection does not apply, but the verdicts still say
                // which conditions would hold, evaluated on a context made
                // regardless of direction.
                None => Context::unchecked(set, input).mismatch(p),
            };
            Verdict {
                policy: p.id,
                matched: mismatch.is_none(),
                mismatch,
            }
        })
        .collect();
    let mut candidates: Vec<&Policy> = set
        .policies
        .iter()
        .zip(&verdicts)
        .filter(|(_, v)| v.matched)
        .map(|(p, _)| p)
        .collect();
    let override_applied = candidates.iter().any(|p| p.override_);
    if override_applied {
        candidates.retain(|p| p.override_);
    }
    candidates.sort_by_key(|p| Reverse(rank(p)));
    let ranking: Vec<PolicyId> = candidates.iter().map(|p| p.id).collect();
    let decision = match &ctx {
        Some(ctx) => ctx.decision(candidates.first().copied()),
        None => Decision::RELAY,
    };
    Explanation {
        direction,
        verdicts,
        override_applied,
        ranking: if ctx.is_some() { ranking } else { Vec::new() },
        winner: decision.policy,
        route: match decision.route {
            Route::Relay => "relay",
            Route::Secure { .. } => "secure",
        },
        definition: match decision.route {
            Route::Secure { definition } => Some(definition),
            Route::Relay => None,
        },
    }
}

fn direction(set: &PolicySet, input: &DecisionInput<'_>) -> Direction {
    match input.envelope_from {
        None => Direction::NullSender,
        Some(s) if !set.is_internal(s) => Direction::ExternalSender,
        Some(_) if set.is_internal(input.recipient) => Direction::InternalRecipient,
        Some(_) => Direction::InternalToExternal,
    }
}

/// The ranking key of a policy: larger is better.
pub(crate) type RankKey = (bool, u8, u8, bool, bool, Reverse<PolicyId>);

/// The ranking key: larger is better (SPEC §3 steps 3 and 4). Override
/// comes first, so the best candidate is also the best after step 3.
pub(crate) fn rank(p: &Policy) -> RankKey {
    (
        p.override_,
        p.to.specificity(),
        p.from.specificity(),
        !p.source_ips.is_empty(),
        !p.validity.is_eternal(),
        Reverse(p.id),
    )
}

/// Which condition failed, in the order [`Mismatch`] lists them.
#[derive(Debug, Clone, Copy)]
enum Failure {
    Disabled,
    OutsideDates,
    SourceIp,
    Sender,
    Recipient,
}

/// The addresses of one decision, resolved once.
struct Context<'a> {
    envelope: Subject<'a>,
    header: Option<Subject<'a>>,
    recipient: Subject<'a>,
    client_ip: IpAddr,
    now: SystemTime,
}

impl<'a> Context<'a> {
    /// `None` when selection does not apply (rule 1).
    fn new(set: &'a PolicySet, input: &DecisionInput<'_>) -> Option<Self> {
        let sender = input.envelope_from?;
        let envelope = Subject::new(set, sender);
        if !envelope.internal {
            return None;
        }
        let recipient = Subject::new(set, input.recipient);
        if recipient.internal {
            return None;
        }
        Some(Context {
            envelope,
            header: input.header_from.map(|h| Subject::new(set, h)),
            recipient,
            client_ip: input.client_ip,
            now: input.now,
        })
    }

    /// A context whatever the direction, for explaining conditions. A null
    /// sender is evaluated as the (impossible) empty address: it matches
    /// only "everyone" and "external".
    fn unchecked(set: &'a PolicySet, input: &DecisionInput<'_>) -> Self {
        let null = EmailAddress::parse("MAILER-DAEMON@invalid").expect("a valid address");
        Context {
            envelope: Subject::new(set, input.envelope_from.unwrap_or(&null)),
            header: input.header_from.map(|h| Subject::new(set, h)),
            recipient: Subject::new(set, input.recipient),
            client_ip: input.client_ip,
            now: input.now,
        }
    }

    /// The first reason `p` does not match, or `None` when it does, with
    /// the text [`explain`] shows.
    fn mismatch(&self, p: &Policy) -> Option<Mismatch> {
        Some(match self.failure(p)? {
            Failure::Disabled => Mismatch::Disabled,
            Failure::OutsideDates => Mismatch::OutsideDates,
            Failure::SourceIp => Mismatch::SourceIpNotInRanges,
            Failure::Sender => Mismatch::Sender {
                expected: p.from.describe(Some(p.from_basis)),
            },
            Failure::Recipient => Mismatch::Recipient {
                expected: p.to.describe(None),
            },
        })
    }

    /// The first condition of `p` that fails, without building any text:
    /// what [`decide`] runs for every policy it checks, and what
    /// [`Context::mismatch`] describes, so the two cannot disagree.
    fn failure(&self, p: &Policy) -> Option<Failure> {
        if !p.enabled {
            return Some(Failure::Disabled);
        }
        if !p.validity.contains(self.now) {
            return Some(Failure::OutsideDates);
        }
        if !p.source_ips.is_empty() && !p.source_ips.contains(self.client_ip) {
            return Some(Failure::SourceIp);
        }
        let sender_ok = match p.from_basis {
            AddressBasis::Envelope => self.envelope.is(&p.from),
            AddressBasis::Header => self.header.as_ref().is_some_and(|h| h.is(&p.from)),
            AddressBasis::Both => {
                self.envelope.is(&p.from) || self.header.as_ref().is_some_and(|h| h.is(&p.from))
            }
        };
        if !sender_ok {
            return Some(Failure::Sender);
        }
        if !self.recipient.is(&p.to) {
            return Some(Failure::Recipient);
        }
        None
    }

    fn decision(&self, winner: Option<&Policy>) -> Decision {
        match winner {
            None => Decision::RELAY,
            Some(p) => Decision {
                route: match p.action {
                    Action::ApplyDefinition(definition) => Route::Secure { definition },
                    Action::NoAction => Route::Relay,
                },
                policy: Some(p.id),
            },
        }
    }
}

/// The naive baseline: every policy checked, no index. Kept public (and
/// hidden) for the benchmark and the property tests, which compare it with
/// [`decide`].
#[doc(hidden)]
pub fn decide_by_scan(set: &PolicySet, input: &DecisionInput<'_>) -> Decision {
    let Some(ctx) = Context::new(set, input) else {
        return Decision::RELAY;
    };
    let winner = set
        .policies
        .iter()
        .filter(|p| ctx.failure(p).is_none())
        .max_by_key(|p| rank(p));
    ctx.decision(winner)
}
