//! Plain types parsed at the edge. This module knows nothing of the database,
//! SMTP or HTTP: a value of these types has been validated once and can be
//! trusted everywhere else.

pub mod country;
pub mod email;
pub mod kinds;
pub mod segment;

pub use country::{CountryCode, CountryError};
pub use email::{EmailAddress, EmailError};
pub use kinds::{
    CampaignState, ContactStatus, DeliveryStatus, Language, LanguageError, OrgKind, Relationship,
    TimeZone, TimeZoneError, UnknownWord,
};
