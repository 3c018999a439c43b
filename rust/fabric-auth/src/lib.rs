//! Authentication and authorisation logic shared by the zone backend, the zones and the gateway.
//!
//! Everything here is pure: no sockets, no files, no clock. Time comes in as an argument
//! (`now_unix_s`), keys come in as values, relationship tuples come from a caller-supplied
//! [`rebac::TupleSource`]. That lets a zone verify a join token offline with nothing but the
//! backend's public key, and lets tests pin every decision without waiting.
//!
//! - [`keys`]: Ed25519 key encoding (base64url) and key ids.
//! - [`token`]: the join-token format, issuance ([`token::JoinTokenIssuer`]) and verification
//!   ([`token::JoinTokenVerifier`]).
//! - [`link_credential`]: link credentials and proofs: a zone proves it is zone k of fabric F
//!   to a neighbour (zone links).
//! - [`follow_ticket`]: follow tickets: a player takes its avatar back in the zone it was
//!   handed to.
//! - [`rebac`]: relationship tuples, the schema of relations, and the permission check.
//! - [`cache`]: a per-session decision cache a zone can drop on `relationship_changed`.
#![warn(missing_docs)]

pub mod cache;
pub mod follow_ticket;
pub mod keys;
pub mod link_credential;
pub mod rebac;
pub mod token;

pub use keys::KeyError;
pub use link_credential::{
    LinkClaims, LinkCredentialError, LinkCredentialIssuer, LinkCredentialVerifier, LinkProof,
};
pub use rebac::{ObjectRef, RebacError, Schema, Subject, Tuple, TupleSource};
pub use token::{JoinClaims, JoinTokenIssuer, JoinTokenVerifier, TokenError};
