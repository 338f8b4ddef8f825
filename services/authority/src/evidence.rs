//! The evidence an agent brings to its credential request (draft §3.1), each checked by a
//! small module of its own: the environment's identity certificate (initial trust), the
//! attestation evidence (EAT), the AI bill of materials, the provider's endorsement and the
//! owner binding.

pub mod aibom;
pub mod eat;
pub mod endorsement;
pub mod initial_trust;
pub mod material;
pub mod nonce;
pub mod owner;
