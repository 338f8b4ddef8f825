//! The deny-list, read once per check: entries validated (a malformed entry is an error,
//! never a silent non-match), then each component screened against each entry.

use std::collections::BTreeSet;

use accord_events::catalogue::{AibomDenyListSet, AibomMatcher};

use super::purl::{self, Purl};
use super::vers::{self, Range};
use super::{AibomError, Component, clip, hash};

/// A deny-list entry, read.
pub(super) struct Entry<'a> {
    pub(super) id: &'a str,
    reason: &'a str,
    pub(super) matcher: Matcher,
}

pub(super) enum Matcher {
    Hash { alg: &'static str, content: String },
    Purl { purl: Purl, range: Option<Range> },
}

pub(super) fn entries(list: &AibomDenyListSet) -> Result<Vec<Entry<'_>>, AibomError> {
    let mut ids = BTreeSet::new();
    let mut out = Vec::with_capacity(list.entries.len());
    for (i, e) in list.entries.iter().enumerate() {
        let bad = |why: String| AibomError::BadDenyList(format!("entry {:?}: {why}", e.id));
        if e.id.trim().is_empty() {
            return Err(AibomError::BadDenyList(format!("entry {i} has no id")));
        }
        if !ids.insert(e.id.as_str()) {
            return Err(bad("the id is used twice".into()));
        }
        let matcher = match &e.matcher {
            AibomMatcher::Hash { alg, content } => {
                let (alg, content) = hash(alg, content).map_err(bad)?;
                Matcher::Hash { alg, content }
            }
            AibomMatcher::Purl { purl, vers } => {
                let p = purl::parse(purl).map_err(|w| bad(format!("purl {purl:?}: {w}")))?;
                if p.version.is_some() || p.qualified {
                    return Err(bad(format!(
                        "purl {purl:?} must name a package only (versions go in vers)"
                    )));
                }
                let range = vers
                    .as_deref()
                    .map(|v| vers::parse(v).map_err(|w| bad(format!("vers {v:?}: {w}"))))
                    .transpose()?;
                Matcher::Purl { purl: p, range }
            }
        };
        out.push(Entry {
            id: &e.id,
            reason: &e.reason,
            matcher,
        });
    }
    Ok(out)
}

/// Screens one component against one entry.
pub(super) fn screen(c: &Component<'_>, e: &Entry<'_>) -> Result<(), AibomError> {
    let denied = || AibomError::Denied {
        entry: e.id.to_owned(),
        component: c.label(),
        reason: e.reason.to_owned(),
    };
    let unevaluable = |why: String| AibomError::Unevaluable {
        entry: e.id.to_owned(),
        component: c.label(),
        why,
    };
    match &e.matcher {
        Matcher::Hash { alg, content } => {
            if c.hashes.iter().any(|(a, h)| a == alg && h == content) {
                return Err(denied());
            }
            Ok(())
        }
        Matcher::Purl { purl, range } => {
            let Some(p) = c.purl.as_ref().filter(|p| p.same_package(purl)) else {
                return Ok(());
            };
            let constraints = match range {
                None | Some(Range::All) => return Err(denied()),
                Some(Range::Other(scheme)) => {
                    return Err(unevaluable(format!(
                        "versioning scheme {scheme:?} is not supported (semver only)"
                    )));
                }
                Some(Range::Semver(list)) => list,
            };
            let mut stated: Vec<&str> = p.version.as_deref().into_iter().collect();
            if let Some(v) = c.version
                && !stated.contains(&v)
            {
                stated.push(v);
            }
            if stated.is_empty() {
                return Err(unevaluable("the component states no version".into()));
            }
            let mut not_semver = None;
            for v in stated {
                match vers::version(v) {
                    Some(parsed) if vers::contains(constraints, &parsed) => return Err(denied()),
                    Some(_) => {}
                    None => not_semver = Some(v),
                }
            }
            match not_semver {
                Some(v) => Err(unevaluable(format!("version {:?} is not SemVer", clip(v)))),
                None => Ok(()),
            }
        }
    }
}
