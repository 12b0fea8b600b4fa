//! [`AppError`]: the failures a front end answers differently. The API maps
//! them to RFC 9457 problems (422, 404, 409, 403, 429, 500; the send gate's
//! refusals with their findings); the CLI prints their message.

use crate::domain::approval::{ApproverRefusal, NotApproved};
use crate::send::gate::Refusal;
use crate::store::StoreError;

/// One thing wrong with the input, where it is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// The input field (`segment`, `password`…).
    pub field: Option<String>,
    /// For text inputs of several lines (a CSV file, an issue's source).
    pub line: Option<u64>,
    /// 1-based column within the field or line.
    pub column: Option<u64>,
    pub detail: String,
}

/// Why a service call failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The input is invalid: each error says where.
    #[error("{}", .0.iter().map(|e| match &e.field {
        Some(f) => format!("{f}: {}", e.detail),
        None => e.detail.clone(),
    }).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The actor may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The send gate's preflight refused the issue revision the campaign
    /// would send: each failure with its file, line and column.
    #[error("{0}")]
    Refused(Refusal),
    /// A start the send gate refused: the campaign is now `blocked` with
    /// the reason (and the preflight's failures when those were the cause);
    /// nothing was sent.
    #[error("campaign {id} is blocked; nothing was sent.\n{reason}")]
    Blocked {
        id: i64,
        reason: String,
        refusal: Option<Refusal>,
    },
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl AppError {
    /// An invalid field with a message.
    pub fn field(field: &str, detail: impl Into<String>) -> AppError {
        AppError::Invalid(vec![FieldError {
            field: Some(field.into()),
            line: None,
            column: None,
            detail: detail.into(),
        }])
    }

    /// An invalid field with the 1-based column of the error.
    pub fn at_column(field: &str, column: u64, detail: impl Into<String>) -> AppError {
        AppError::Invalid(vec![FieldError {
            field: Some(field.into()),
            line: None,
            column: Some(column),
            detail: detail.into(),
        }])
    }
}

impl From<anyhow::Error> for AppError {
    fn from(e: anyhow::Error) -> AppError {
        if let Some(s) = e.downcast_ref::<StoreError>() {
            return match s {
                StoreError::NotFound(m) => AppError::NotFound(m.clone()),
                StoreError::Conflict(m) => AppError::Conflict(m.clone()),
            };
        }
        if let Some(n) = e.downcast_ref::<NotApproved>() {
            return AppError::Conflict(n.to_string());
        }
        if crate::store::users::is_unique_violation(&e) {
            return AppError::Conflict(format!("{e:#}"));
        }
        AppError::Internal(e)
    }
}

impl From<ApproverRefusal> for AppError {
    fn from(e: ApproverRefusal) -> AppError {
        AppError::Forbidden(e.to_string())
    }
}
