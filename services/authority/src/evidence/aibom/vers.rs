//! Version range specifiers (`vers:`, purl-spec VERSION-RANGE-SPEC) for the `semver` scheme:
//! parsing with the spec's validation (sorted, unique versions, `*` alone, comparators
//! alternating), and the spec's containment check (as implemented by univers and versatile).
//! Versions compare by SemVer precedence: build metadata is ignored, so `1.3.0+local` is
//! `1.3.0` and cannot slip past `=1.3.0`.
//!
//! One rule is added to the spec's: a range of only `!=` constraints (which the spec's
//! algorithm reads as containing no version, while a reader may take it for "all but") is
//! refused as ambiguous in a deny-list.

use std::cmp::Ordering;

use semver::Version;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Range {
    /// `vers:<any scheme>/*`: every version, nothing to compare.
    All,
    /// `vers:semver/...`, sorted by version.
    Semver(Vec<Constraint>),
    /// Another scheme: well-formed, but its versions cannot be compared here.
    Other(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Constraint {
    pub(super) op: Op,
    pub(super) version: Version,
}

impl Op {
    fn is_lower_bound(self) -> bool {
        matches!(self, Op::Gt | Op::Ge)
    }
    fn is_upper_bound(self) -> bool {
        matches!(self, Op::Lt | Op::Le)
    }
}

/// A component's version as SemVer: a leading `v` is dropped (`v1.2.3`), nothing else is
/// forgiven (`1.3` is not SemVer).
pub(super) fn version(s: &str) -> Option<Version> {
    Version::parse(s.strip_prefix('v').unwrap_or(s)).ok()
}

/// Parses and validates a `vers:` string.
pub(super) fn parse(s: &str) -> Result<Range, String> {
    let s: String = s.chars().filter(|c| !matches!(c, ' ' | '\t')).collect();
    let rest = s.strip_prefix("vers:").ok_or("does not start with vers:")?;
    let (scheme, constraints) = rest.split_once('/').ok_or("no versioning scheme")?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '+' | '-'))
    {
        return Err(format!("versioning scheme {scheme:?} is not lowercase"));
    }
    if constraints == "*" {
        return Ok(Range::All);
    }
    if constraints.trim_matches('|').is_empty() {
        return Err("no constraints".into());
    }
    if scheme != "semver" {
        return Ok(Range::Other(scheme.to_owned()));
    }
    let mut list = Vec::new();
    for c in constraints.split('|').filter(|c| !c.is_empty()) {
        let (op, v) = [
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
            ("=", Op::Eq),
        ]
        .into_iter()
        .find_map(|(p, op)| c.strip_prefix(p).map(|v| (op, v)))
        .unwrap_or((Op::Eq, c));
        let version = version(v).ok_or_else(|| format!("{v:?} is not a SemVer version"))?;
        list.push(Constraint { op, version });
    }
    list.sort_by(|a, b| a.version.cmp_precedence(&b.version));
    validate(&list)?;
    Ok(Range::Semver(list))
}

fn validate(list: &[Constraint]) -> Result<(), String> {
    for w in list.windows(2) {
        if let [a, b] = w
            && a.version.cmp_precedence(&b.version) == Ordering::Equal
        {
            return Err(format!("version {} appears twice", b.version));
        }
    }
    if list.iter().all(|c| c.op == Op::Ne) {
        return Err("only != constraints: the range is ambiguous".into());
    }
    // ignoring !=, an = is followed only by =, > or >=
    let no_ne: Vec<Op> = list.iter().map(|c| c.op).filter(|&o| o != Op::Ne).collect();
    for w in no_ne.windows(2) {
        if let [Op::Eq, next] = w
            && !matches!(next, Op::Eq | Op::Gt | Op::Ge)
        {
            return Err("= followed by < or <=".into());
        }
    }
    // ignoring = and !=, lower and upper bounds alternate
    let bounds: Vec<Op> = no_ne.into_iter().filter(|&o| o != Op::Eq).collect();
    for w in bounds.windows(2) {
        if let [a, b] = w
            && a.is_lower_bound() == b.is_lower_bound()
        {
            return Err("bounds do not alternate (> then <, < then >)".into());
        }
    }
    Ok(())
}

/// Whether `v` is in the range of the sorted, validated `list` (the spec's algorithm).
pub(super) fn contains(list: &[Constraint], v: &Version) -> bool {
    let cmp = |c: &Constraint| v.cmp_precedence(&c.version);
    for c in list {
        if cmp(c) == Ordering::Equal {
            match c.op {
                Op::Eq | Op::Le | Op::Ge => return true,
                Op::Ne => return false,
                Op::Lt | Op::Gt => {}
            }
        }
    }
    let bounds: Vec<&Constraint> = list
        .iter()
        .filter(|c| !matches!(c.op, Op::Eq | Op::Ne))
        .collect();
    let (Some(first), Some(last)) = (bounds.first(), bounds.last()) else {
        return false;
    };
    // below the first upper bound, or above the last lower bound
    if first.op.is_upper_bound() && cmp(first) == Ordering::Less {
        return true;
    }
    if last.op.is_lower_bound() && cmp(last) == Ordering::Greater {
        return true;
    }
    // strictly between a lower bound and the upper bound that follows it
    bounds.windows(2).any(|w| match w {
        [lo, hi] => {
            lo.op.is_lower_bound()
                && hi.op.is_upper_bound()
                && cmp(lo) == Ordering::Greater
                && cmp(hi) == Ordering::Less
        }
        _ => false,
    })
}
