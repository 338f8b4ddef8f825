//! The audit log of a domain (design §6, ADR 0011).
//!
//! - [`tree`]: the RFC 6962 Merkle tree over the stream (leaf = a message's exact bytes), its
//!   stored hashes, inclusion and consistency proofs;
//! - [`note`]: checkpoints as C2SP signed notes under the domain's audit key;
//! - [`log`]: the live log (follows the stream, persists the tree, signs checkpoints as
//!   `CheckpointSigned` events at a cadence, serves proofs) and [`http`], its routes;
//! - [`verify`]: the auditor's verification of a whole history; [`export`], the history as a
//!   file; [`rebuild`], projections rebuilt from a verified history; [`asof`], a credential's
//!   state at a sequence or a time.

pub mod asof;
pub mod export;
pub mod http;
pub mod log;
pub mod note;
pub mod rebuild;
pub mod tree;
pub mod verify;

pub use log::{AuditLog, CheckpointCadence, LogIdentity};
pub use verify::{Auditor, FailureKind, Report, VerifyOptions};
