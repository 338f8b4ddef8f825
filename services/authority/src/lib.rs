//! The Agent Credential Authority (draft §3.1, §3.2): the proof-of-possession check, key
//! custody behind a [`signer::Signer`], the credential profiles, issuance, revocation and the
//! CRL, and the enrollment API.

pub mod agent;
pub mod api;
pub mod ca;
pub mod callout;
pub mod checks;
pub mod crl;
pub mod csr;
pub mod der;
pub mod evidence;
pub mod feed;
pub mod feedctl;
pub mod grant;
pub mod http;
pub mod issue;
mod json;
pub mod jws;
pub mod lifecycle;
pub mod pkcs11;
pub mod profile;
pub mod proofs;
pub mod registrar;
pub mod signer;
pub mod svid;
#[cfg(any(test, feature = "test-support"))]
pub mod testkit;
pub mod trust;
pub mod validate;

pub use crl::CrlState;
pub use issue::{Authority, AuthorityConfig, IssueError, Presented};
