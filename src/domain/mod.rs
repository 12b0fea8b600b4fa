//! Plain types parsed at the edge. This module knows nothing of the database,
//! SMTP or HTTP: a value of these types has been validated once and can be
//! trusted everywhere else.

pub mod actor;
pub mod approval;
pub mod country;
pub mod email;
#[macro_use]
pub mod kinds;
pub mod permission;
pub mod segment;

pub use actor::{Account, Actor};
pub use country::{CountryCode, CountryError};
pub use email::{EmailAddress, EmailError};
pub use kinds::{
    CampaignState, ContactStatus, DeliveryStatus, Language, LanguageError, OrgKind, Relationship,
    TimeZone, TimeZoneError, UnknownWord,
};
pub use permission::{allowed, Action, Role};
