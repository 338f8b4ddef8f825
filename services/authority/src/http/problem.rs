//! The problem document (RFC 9457) of each ACA error: one type per kind, internals never in
//! the detail of a 5xx.

use accord_web::Problem;
use axum::http::StatusCode;

use crate::agent::AgentError;
use crate::issue::IssueError;

/// The problem document of an ACA error.
pub fn problem(e: &IssueError) -> Problem {
    let p = |status, kind, title| Problem::new(status, kind, title, e.to_string());
    match e {
        IssueError::BadRequest(_) => p(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "The request is not acceptable",
        ),
        IssueError::Csr(c) => Problem::new(
            StatusCode::BAD_REQUEST,
            c.kind(),
            "The certificate request is refused",
            c.to_string(),
        )
        .with(
            "check",
            if matches!(c, crate::csr::CsrError::BadSignature) {
                "proof_of_possession"
            } else {
                "csr_profile"
            },
        ),
        IssueError::UnknownAgent => p(StatusCode::NOT_FOUND, "unknown-agent", "No such agent"),
        IssueError::UnknownCredential => p(
            StatusCode::NOT_FOUND,
            "unknown-credential",
            "No such credential",
        ),
        IssueError::Unauthorized(_) => p(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Not authorised for a credential",
        ),
        IssueError::Agent(AgentError::AlreadyEnrolled) => p(
            StatusCode::CONFLICT,
            "already-enrolled",
            "The enrollment token was already used",
        ),
        IssueError::Agent(AgentError::NothingToRevoke) => p(
            StatusCode::CONFLICT,
            "nothing-to-revoke",
            "Nothing to revoke",
        ),
        IssueError::Agent(AgentError::AlreadyRenewed(_)) => p(
            StatusCode::FORBIDDEN,
            "already-renewed",
            "The credential was already renewed",
        ),
        IssueError::Agent(AgentError::RotatedOut(_)) => p(
            StatusCode::FORBIDDEN,
            "rotated-out",
            "The credential was rotated out",
        ),
        IssueError::Agent(
            AgentError::Revoked(_) | AgentError::Expired(_) | AgentError::UnknownCredential(_),
        ) => p(
            StatusCode::FORBIDDEN,
            "credential-not-renewable",
            "The credential cannot be renewed",
        ),
        IssueError::Agent(AgentError::Retired(_)) => p(
            StatusCode::FORBIDDEN,
            "agent-retired",
            "The agent is retired",
        ),
        IssueError::Agent(AgentError::NoOwner) => p(
            StatusCode::CONFLICT,
            "no-owner",
            "The agent has no owner binding",
        ),
        IssueError::Agent(_) => p(
            StatusCode::CONFLICT,
            "conflict",
            "The agent's state does not allow it",
        ),
        IssueError::Denied(reasons) => p(
            StatusCode::FORBIDDEN,
            "issuance-denied",
            "The issuance policy denied the credential",
        )
        .with("reasons", reasons.clone()),
        IssueError::Evidence(ev) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ev.kind,
            "The evidence is refused",
            ev.detail.clone(),
        )
        .with(
            "check",
            serde_json::to_value(ev.check).unwrap_or(serde_json::Value::Null),
        ),
        IssueError::Trust(t) => p(
            StatusCode::CONFLICT,
            "trust-conflict",
            "The trust material does not allow it",
        )
        .with("reason", t.to_string()),
        IssueError::Validation(v) => {
            tracing::error!(error = %v, "a signed certificate failed its re-validation; nothing was recorded");
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "output-revalidation-failed",
                "The signed credential failed its check",
                "nothing was recorded; see the server log",
            )
        }
        IssueError::Signing(d) => {
            tracing::error!(error = %d, "signing failed");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "signer-unavailable",
                "The CA key is unavailable",
                "retry later",
            )
        }
        IssueError::Unavailable(d) => {
            tracing::warn!(error = %d, "dependency unavailable");
            Problem::unavailable()
        }
        IssueError::Unsupported(_) => p(
            StatusCode::CONFLICT,
            "unsupported",
            "The domain is not configured for this",
        ),
    }
}
