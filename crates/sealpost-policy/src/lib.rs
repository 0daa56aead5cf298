//! The sealpost policy engine: a pure library.
//!
//! It owns the domain types every edge parses input into once
//! ([`EmailAddress`], [`Domain`], [`DomainPattern`], [`IpRange`]) and the
//! administrator's objects ([`DirectoryUser`], [`Group`], [`Definition`],
//! [`Policy`]), each validated from its submitted draft with errors that
//! name the field ([`Invalid`]). [`PolicySet::compile`] checks a whole
//! configuration and indexes it; [`decide`] picks the route of one
//! recipient (SPEC §3) and [`explain`] says why.
//!
//! No I/O, no async, no clock: the caller passes the client IP and `now`, so
//! every decision is reproducible and can be explained.

mod address;
mod decide;
mod definitions;
mod directory;
mod document;
mod domains;
mod groups;
mod invalid;
mod net;
mod policy;
mod set;
pub mod text;

pub use address::{AddressError, Domain, EmailAddress};
pub use decide::{
    Decision, DecisionInput, Direction, Explanation, Mismatch, PolicyId, Route, Verdict, decide,
    decide_by_scan, explain, selects,
};
pub use definitions::{
    DEFAULT_DEFINITION_NAME, Definition, DefinitionDraft, DefinitionId, SecureDelivery,
    TemplateDraft,
};
pub use directory::{DirectoryUser, UserDraft, attribute_name};
pub use document::{DefinitionEntry, GroupEntry, PolicyDocument, PolicyEntry};
pub use domains::{DomainPattern, InternalDomains};
pub use groups::{Group, GroupDraft, GroupId, Membership};
pub use invalid::Invalid;
pub use net::{IpRange, IpRangeError, IpRanges};
pub use policy::{
    Action, ActionKind, AddressBasis, Party, PartyDraft, PartyKind, Policy, PolicyDraft,
    PolicyStatus, PolicyType, Validity,
};
pub use set::{PolicyConfig, PolicySet};
