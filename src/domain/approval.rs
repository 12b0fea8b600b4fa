//! The two-person rule for campaigns, as pure logic.
//!
//! A campaign may start only when a person approved the exact issue
//! revision and segment it will send (with `newsletter.require_approval`,
//! the default). The approver must be allowed to approve (operator or
//! admin) and be neither the campaign's creator nor the author of that
//! revision. A new revision or another segment voids an approval: the
//! approval names what it approved, and it is compared with what would be
//! sent now.

use super::actor::Actor;
use super::permission::Action;

/// An approval as recorded: what was approved, and by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub revision: i64,
    pub segment: String,
    /// The approver's label (`user:…`), for messages.
    pub actor: String,
}

/// Whether a campaign may start, as far as approval goes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// `newsletter.require_approval` is off.
    NotRequired,
    /// Approved for what would be sent now.
    Approved { by: String, revision: i64 },
    /// No approval of what would be sent now. `void` explains an earlier
    /// approval that no longer holds.
    Missing { revision: i64, void: Option<String> },
}

impl ApprovalStatus {
    pub fn allows_start(&self) -> bool {
        !matches!(self, ApprovalStatus::Missing { .. })
    }
}

/// The status of a campaign that would send `revision` to `segment`, given
/// its approvals (oldest first).
pub fn status(
    required: bool,
    revision: i64,
    segment: &str,
    approvals: &[Approval],
) -> ApprovalStatus {
    if !required {
        return ApprovalStatus::NotRequired;
    }
    let segment = segment.trim();
    if let Some(a) = approvals
        .iter()
        .rev()
        .find(|a| a.revision == revision && a.segment.trim() == segment)
    {
        return ApprovalStatus::Approved {
            by: a.actor.clone(),
            revision,
        };
    }
    let void = approvals.last().map(|a| {
        if a.revision != revision {
            format!(
                "{} approved revision {}; the issue is now at revision {revision}",
                a.actor, a.revision
            )
        } else {
            format!(
                "{} approved the segment {:?}; the campaign's segment is now {segment:?}",
                a.actor, a.segment
            )
        }
    });
    ApprovalStatus::Missing { revision, void }
}

/// A campaign may not start: what would be sent has no approval.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("campaign {campaign} is not approved for revision {revision} of its issue and its segment{}: \
         a second person (operator or admin) must approve it (`whatsup campaigns approve {campaign} --as EMAIL`)",
        .void.as_ref().map(|v| format!(" ({v})")).unwrap_or_default())]
pub struct NotApproved {
    pub campaign: i64,
    pub revision: i64,
    pub void: Option<String>,
}

impl NotApproved {
    /// The refusal for `status`, if it refuses.
    pub fn check(campaign: i64, status: &ApprovalStatus) -> Result<(), NotApproved> {
        match status {
            ApprovalStatus::Missing { revision, void } => Err(NotApproved {
                campaign,
                revision: *revision,
                void: void.clone(),
            }),
            _ => Ok(()),
        }
    }
}

/// Why someone may not approve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApproverRefusal {
    #[error("approving needs an account: run the CLI with --as EMAIL")]
    NoAccount,
    #[error("only an operator or an admin may approve a campaign")]
    Role,
    #[error("the campaign's creator cannot approve it: a second person must")]
    Creator,
    #[error("the author of revision {0} of the issue cannot approve it: a second person must")]
    Author(i64),
}

/// Whether `actor` may approve a campaign created by `creator` whose issue
/// revision `revision` was written by `author` (principals, see
/// [`Actor::principal`]).
pub fn check_approver(
    actor: &Actor,
    creator: &str,
    author: &str,
    revision: i64,
) -> Result<(), ApproverRefusal> {
    if actor.account().is_none() {
        return Err(ApproverRefusal::NoAccount);
    }
    if !actor.may(Action::CampaignsApprove) {
        return Err(ApproverRefusal::Role);
    }
    let me = actor.principal();
    if me == creator {
        return Err(ApproverRefusal::Creator);
    }
    if me == author {
        return Err(ApproverRefusal::Author(revision));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Account, Role};

    fn user(id: i64, role: Role) -> Actor {
        Actor::User {
            account: Account {
                id,
                email: format!("u{id}@example.org"),
                role,
            },
            ip: None,
        }
    }

    fn approval(revision: i64, segment: &str) -> Approval {
        Approval {
            revision,
            segment: segment.into(),
            actor: "user:u2@example.org".into(),
        }
    }

    #[test]
    fn an_approval_holds_only_for_the_revision_and_segment_it_named() {
        let approved = [approval(3, "kind = embassy")];
        assert!(status(true, 3, "kind = embassy", &approved).allows_start());
        let later = status(true, 4, "kind = embassy", &approved);
        assert!(!later.allows_start());
        assert!(format!("{later:?}").contains("revision 3"), "{later:?}");
        let other = status(true, 3, "kind = city", &approved);
        assert!(!other.allows_start());
        assert!(format!("{other:?}").contains("segment"), "{other:?}");
        assert!(!status(true, 1, "", &[]).allows_start());
        assert_eq!(status(false, 1, "", &[]), ApprovalStatus::NotRequired);
    }

    #[test]
    fn neither_the_creator_nor_the_author_nor_an_editor_may_approve() {
        let op = user(2, Role::Operator);
        assert_eq!(
            check_approver(&op, "user:2", "user:9", 1),
            Err(ApproverRefusal::Creator)
        );
        assert_eq!(
            check_approver(&op, "user:9", "user:2", 1),
            Err(ApproverRefusal::Author(1))
        );
        assert_eq!(
            check_approver(&user(3, Role::Editor), "user:9", "user:8", 1),
            Err(ApproverRefusal::Role)
        );
        assert_eq!(
            check_approver(&Actor::cli(None), "user:9", "user:8", 1),
            Err(ApproverRefusal::NoAccount)
        );
        assert_eq!(check_approver(&op, "user:9", "user:8", 1), Ok(()));
        assert_eq!(
            check_approver(&user(4, Role::Admin), "user:9", "user:8", 1),
            Ok(())
        );
    }
}
