//! JWT-SVIDs (SPIFFE JWT-SVID profile) for the holder of a live credential, so that the
//! sidecar's Workload API can hand them to workloads that know only SPIFFE (issue 15, item 5;
//! ADR 0015). The caller proves itself as for a nonce: its credential's WIT with a fresh proof
//! by its key for this URL, spent once. The token is signed by the domain's token key (whose
//! `kid` the domain's JWKS publishes), lives at most [`JWT_SVID_SECS`] and never past the
//! credential, names the audiences asked for and nothing else, and is recorded as a
//! `TokenIssued` fact before it is returned: an issued JWT-SVID is in the log (its digest, never
//! the token).

use std::collections::BTreeSet;

use accord_events::catalogue::TokenIssued;
use accord_events::{
    Actor, AgentId, AggregateId, AuthMethod, CallerType, CommandId, Digest, Event, Jti, Metadata,
    SpiffeId, Timestamp, TraceParent,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::issue::{Authority, IssueError};
use crate::jws;

/// Longest life of a JWT-SVID, seconds (SPIRE's default).
pub const JWT_SVID_SECS: i64 = 300;
/// Most audiences one JWT-SVID may name (SPIFFE: one is strongly recommended).
pub const MAX_AUDIENCES: usize = 8;
/// Longest audience, bytes.
pub const MAX_AUDIENCE_LEN: usize = 256;
/// The `typ` of a JWT-SVID (the profile allows `JWT` or `JOSE`).
pub const TYP_JWT_SVID: &str = "JWT";
/// The RFC 8693 type URI recorded for a JWT-SVID.
pub const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

/// `POST /v1/agents/{id}/jwt-svids`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSvidRequest {
    pub audience: Vec<String>,
}

/// A JWT-SVID and what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtSvidResponse {
    pub spiffe_id: SpiffeId,
    /// JWS compact serialization.
    pub token: String,
    /// Unix seconds.
    pub expires_at: i64,
}

impl JwtSvidRequest {
    /// The audiences, checked: 1 to [`MAX_AUDIENCES`], each 1 to [`MAX_AUDIENCE_LEN`] bytes of
    /// visible ASCII, duplicates removed.
    pub fn audiences(&self) -> Result<BTreeSet<String>, IssueError> {
        let bad = |m: String| IssueError::BadRequest(m);
        if self.audience.is_empty() || self.audience.len() > MAX_AUDIENCES {
            return Err(bad(format!(
                "audience: {} values (1 to {MAX_AUDIENCES})",
                self.audience.len()
            )));
        }
        for a in &self.audience {
            if a.is_empty()
                || a.len() > MAX_AUDIENCE_LEN
                || !a.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(bad(format!(
                    "audience: each value is 1 to {MAX_AUDIENCE_LEN} visible ASCII characters"
                )));
            }
        }
        Ok(self.audience.iter().cloned().collect())
    }
}

impl Authority {
    /// The URL a JWT-SVID is asked at (the `aud` of its proof token).
    pub fn jwt_svid_url(&self, agent: &AgentId) -> String {
        format!("{}/v1/agents/{agent}/jwt-svids", self.cfg.public_url)
    }

    /// A JWT-SVID for `agent`, whose live, never renewed credential's WIT and a proof by its
    /// key for [`Authority::jwt_svid_url`] the caller presents.
    pub async fn jwt_svid(
        &self,
        agent: &AgentId,
        wit: &str,
        wpt: &str,
        req: &JwtSvidRequest,
        trace: Option<TraceParent>,
    ) -> Result<JwtSvidResponse, IssueError> {
        let audience = req.audiences()?;
        let alg = self.token_signer.algorithm().jws_alg();
        if !matches!(alg, "ES256" | "ES384" | "ES512" | "RS256" | "PS256") {
            return Err(IssueError::Unsupported(format!(
                "the domain's token key signs {alg}, which the JWT-SVID profile does not allow"
            )));
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let spiffe_id = SpiffeId::for_agent(&self.cfg.trust_domain, agent);
        // 1. who asks, before anything is read
        let proof = self.verify_workload(
            wit,
            wpt,
            &spiffe_id,
            &self.jwt_svid_url(agent),
            crate::proofs::Purpose::JwtSvid,
            now,
        )?;
        // 2. its credential is live and current (a refusal is final on a history just read)
        let store = self.exec.store();
        let id = AggregateId::parse(&agent.to_string())
            .map_err(|e| IssueError::BadRequest(e.to_string()))?;
        let unavailable = |e: accord_store::StoreError| IssueError::Unavailable(e.to_string());
        let (mut ctx, mut fresh) = store.load_context_cached(&id).await.map_err(unavailable)?;
        let not_after = loop {
            let held = ctx
                .aggregate
                .check_renewable(&proof.serial, Timestamp::now())
                .map_err(IssueError::Agent)
                .and_then(|c| {
                    if c.wit_jti == proof.wit_jti {
                        Ok(c.not_after)
                    } else {
                        Err(IssueError::Unauthorized(
                            "workload identity token is not the one issued with that credential"
                                .into(),
                        ))
                    }
                });
            match held {
                Ok(t) => break t,
                Err(_) if !fresh => {
                    ctx = store.load_context(&id).await.map_err(unavailable)?;
                    fresh = true;
                }
                Err(e) => return Err(e),
            }
        };
        if let Some(why) = &ctx.aggregate.retired {
            return Err(IssueError::Agent(crate::agent::AgentError::Retired(
                why.clone(),
            )));
        }
        self.spend_proof(&proof).await?;
        // 3. the token, recorded before it is returned
        let exp = (now + JWT_SVID_SECS).min(not_after.datetime().unix_timestamp());
        let jti = jws::random_jti();
        let aud: Vec<&String> = audience.iter().collect();
        let token = jws::sign(
            &*self.token_signer,
            TYP_JWT_SVID,
            &json!({
                "iss": self.cfg.issuer(),
                "sub": spiffe_id.as_str(),
                "aud": aud,
                "iat": now,
                "exp": exp,
                "jti": jti,
            }),
        )
        .map_err(|e| IssueError::Signing(e.to_string()))?;
        let ts = |t: i64| {
            Timestamp::from_unix_micros(t.saturating_mul(1_000_000))
                .ok_or_else(|| IssueError::Signing(format!("time {t} out of range")))
        };
        let fact = Event::TokenIssued(TokenIssued {
            jti: Jti::parse(&jti).map_err(|e| IssueError::Signing(e.to_string()))?,
            token_digest: Digest::sha256(token.as_bytes()),
            token_type: TOKEN_TYPE_JWT.into(),
            subject: spiffe_id.to_string(),
            client_id: spiffe_id.to_string(),
            audience,
            scope: BTreeSet::new(),
            issued_at: ts(now)?,
            expires_at: ts(exp)?,
        });
        let mut meta = Metadata::new(
            CommandId::new_random(),
            Actor {
                subject: spiffe_id.to_string(),
                caller_type: CallerType::Agent,
                auth_methods: vec![AuthMethod::JwtAssertion],
            },
            Timestamp::now(),
        );
        meta.traceparent = trace;
        store
            .event_store()
            .append_fact(jti.as_bytes(), &meta, &fact)
            .await
            .map_err(unavailable)?
            .acknowledged()
            .await
            .map_err(unavailable)?;
        Ok(JwtSvidResponse {
            spiffe_id,
            token,
            expires_at: exp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_are_bounded_and_visible() {
        let r = |a: &[&str]| JwtSvidRequest {
            audience: a.iter().map(|s| (*s).to_owned()).collect(),
        };
        assert_eq!(r(&["b", "a", "b"]).audiences().unwrap().len(), 2);
        assert!(r(&[]).audiences().is_err());
        assert!(r(&[""]).audiences().is_err());
        assert!(r(&["a b"]).audiences().is_err());
        assert!(r(&["a\u{e9}"]).audiences().is_err());
        assert!(r(&[&"x".repeat(MAX_AUDIENCE_LEN + 1)]).audiences().is_err());
        let many: Vec<String> = (0..=MAX_AUDIENCES).map(|i| i.to_string()).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(r(&many).audiences().is_err());
    }
}
