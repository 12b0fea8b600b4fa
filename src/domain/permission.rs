//! Roles and the one permission table.
//!
//! Every front end asks [`allowed`] before it acts: the CLI (when it acts
//! for a named account), the REST API (its route table names one
//! [`Action`] per endpoint) and the admin pages. The tests read the same
//! table, so a new action or endpoint cannot be forgotten.
//!
//! The roles are cumulative: a viewer reads everything; an editor also
//! writes, checks, previews and test-sends issues and asks for approval;
//! an operator also changes contacts, organisations, imports and
//! campaigns, and approves them; an admin also manages users, tokens and
//! settings.

use std::fmt;

use super::kinds::UnknownWord;

word_enum!(
    /// What an account may do: each role includes the ones before it.
    Role, "role", {
        Viewer => "viewer",
        Editor => "editor",
        Operator => "operator",
        Admin => "admin",
    }
);

/// Defines [`Action`] with its word, its description and the least role
/// that may take it: the permission table itself.
macro_rules! actions {
    ($($variant:ident => $word:literal, $role:ident, $doc:literal;)+) => {
        /// Something an actor may be allowed to do.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        pub enum Action { $(#[doc = $doc] $variant),+ }

        impl Action {
            /// Every action, in table order.
            pub const ALL: &'static [Action] = &[$(Action::$variant),+];

            /// The dotted name used in logs, problems and the OpenAPI document.
            pub fn as_str(&self) -> &'static str {
                match self { $(Action::$variant => $word),+ }
            }

            /// The least role allowed to take this action.
            pub fn least_role(&self) -> Role {
                match self { $(Action::$variant => Role::$role),+ }
            }

            /// What the action covers, in a few words.
            pub fn describe(&self) -> &'static str {
                match self { $(Action::$variant => $doc),+ }
            }
        }
    };
}

actions! {
    ContactsRead => "contacts.read", Viewer, "list and read contacts, organisations, tags and segments";
    ContactsWrite => "contacts.write", Operator, "add, edit, delete contacts and change their status";
    OrgsWrite => "organisations.write", Operator, "add and edit organisations";
    ImportsRun => "imports.run", Operator, "import contacts from CSV";
    JobsRead => "jobs.read", Viewer, "follow imports and sends";
    IssuesRead => "issues.read", Viewer, "list issues and read their revisions";
    IssuesWrite => "issues.write", Editor, "save a new revision of an issue";
    IssuesPreview => "issues.preview", Editor, "check an issue and preview it for a contact";
    IssuesTestSend => "issues.test_send", Editor, "send one test message of an issue";
    CampaignsRead => "campaigns.read", Viewer, "list campaigns, their counts, deliveries and approvals";
    CampaignsRequestApproval => "campaigns.request_approval", Editor, "ask for a campaign's approval";
    CampaignsWrite => "campaigns.write", Operator, "create campaigns and change drafts";
    CampaignsControl => "campaigns.control", Operator, "schedule, start, pause, resume, cancel, retry";
    CampaignsApprove => "campaigns.approve", Operator, "approve another person's campaign";
    BouncesRead => "bounces.read", Viewer, "list bounces and their report";
    StatsRead => "stats.read", Viewer, "campaign statistics";
    AuditRead => "audit.read", Viewer, "read the audit trail";
    UsersManage => "users.manage", Admin, "list, add, change and disable accounts";
    TokensManage => "tokens.manage", Admin, "create, list and revoke API tokens";
    SettingsShow => "settings.show", Admin, "see the effective settings";
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The permission table's answer: may `role` take `action`?
pub fn allowed(role: Role, action: Action) -> bool {
    role >= action.least_role()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_includes_the_rights_of_the_roles_before_it() {
        for action in Action::ALL {
            for pair in Role::ALL.windows(2) {
                if allowed(pair[0], *action) {
                    assert!(allowed(pair[1], *action), "{} {action}", pair[1]);
                }
            }
        }
    }

    #[test]
    fn a_viewer_only_reads_and_only_an_admin_manages_accounts() {
        for action in Action::ALL {
            let reads = action.as_str().ends_with(".read");
            assert_eq!(allowed(Role::Viewer, *action), reads, "{action}");
        }
        assert!(!allowed(Role::Operator, Action::UsersManage));
        assert!(!allowed(Role::Operator, Action::TokensManage));
        assert!(allowed(Role::Admin, Action::UsersManage));
        assert!(allowed(Role::Editor, Action::IssuesWrite));
        assert!(!allowed(Role::Editor, Action::CampaignsApprove));
        assert!(allowed(Role::Operator, Action::CampaignsApprove));
    }

    #[test]
    fn action_names_are_unique() {
        let mut names: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Action::ALL.len());
    }
}
