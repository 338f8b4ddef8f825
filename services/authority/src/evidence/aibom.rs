//! The AI bill of materials an agent presents (issue 6; CycloneDX 1.6 ML-BOM, standards.md
//! §10): read within bounds, checked for the parts the ACA demands, then screened against the
//! domain's deny-list. Anything that cannot be evaluated fails closed. The SHA-256 of the
//! exact bytes received goes into the credential.
//!
//! What is demanded: `bomFormat` `CycloneDX`, `specVersion` `1.6` (any other is unsupported);
//! `metadata.component` (the agent, with `name` and `version`); `components`, each with a
//! `type` from the 1.6 enum and a `name`, nested `components` included; every
//! `machine-learning-model`, `data` and `library` component identified by a `purl` or a
//! hash; well-formed `hashes`; unique `bom-ref`s; and a complete `dependencies` graph (every
//! `ref`, `dependsOn` and `provides` names a `bom-ref` of the BOM, and every `bom-ref` appears
//! as a `ref`). A model's `modelCard.modelParameters.datasets` are inline `componentData` or
//! `{"ref"}` to a `data` component of the BOM.
//!
//! Deny matching runs over every component, nested ones and the agent included: by hash
//! (same algorithm, same digest, case-insensitive), or by package URL (see [`purl`] for the
//! normalization) with an optional `vers:` range (see [`vers`]). A range is evaluated on
//! every version the component states (its purl's `@version` and its `version` field, both
//! when both are given and differ); a component whose version is missing or not SemVer, or a
//! range in another scheme than `semver`, makes a matching package unevaluable, never clean.
//!
//! Not checked here: the BOM's authenticity and its binding to the request (the endorsement
//! and the CSR's `ai_sbom_ref` do that), embedded VEX, CPE matching, `pedigree` components.

mod deny;
use crate::json;
mod purl;
mod vers;

use std::collections::{BTreeMap, BTreeSet};

use accord_events::Digest;
use accord_events::catalogue::AibomDenyListSet;
use serde_json::{Map, Value};

use purl::Purl;
use vers::Range;

/// Largest AIBOM read, bytes.
pub const MAX_AIBOM_BYTES: usize = 256 * 1024;
/// Deepest JSON nesting read (the outermost object counts as one).
pub const MAX_DEPTH: usize = 32;
/// Most components (nested ones included) and services in one AIBOM.
pub const MAX_COMPONENTS: usize = 2_000;

/// An AIBOM that passed: its digest and what the report and the credential need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedAibom {
    /// SHA-256 of the exact bytes received.
    pub digest: Digest,
    /// `metadata.component.name`.
    pub agent_name: String,
    /// `metadata.component.version`.
    pub agent_version: String,
    /// `machine-learning-model` components.
    pub models: usize,
    /// `data` components and inline `componentData` datasets of model cards.
    pub datasets: usize,
    /// Every component under `components` (and the agent's own `components`), nested ones
    /// included; the agent itself is not counted.
    pub components: usize,
}

/// Why an AIBOM (or a deny-list) was refused; each variant names one check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AibomError {
    #[error("AIBOM is {0} bytes, more than {MAX_AIBOM_BYTES}")]
    TooLarge(usize),
    #[error("AIBOM nests deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("AIBOM lists {0} components and services, more than {MAX_COMPONENTS}")]
    TooManyComponents(usize),
    #[error("AIBOM repeats the member name {0:?}")]
    DuplicateMember(String),
    #[error("AIBOM is malformed: {0}")]
    Malformed(String),
    #[error("AIBOM is unsupported: {0}")]
    Unsupported(String),
    #[error("AIBOM is incomplete: {0}")]
    Incomplete(String),
    #[error("component {component} is denied by deny-list entry {entry}: {reason}")]
    Denied {
        entry: String,
        component: String,
        reason: String,
    },
    #[error("deny-list entry {entry} cannot be evaluated for component {component}: {why}")]
    Unevaluable {
        entry: String,
        component: String,
        why: String,
    },
    #[error("deny-list: {0}")]
    BadDenyList(String),
}

impl AibomError {
    /// A stable name for reports, events and problem details.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TooLarge(_) => "aibom-too-large",
            Self::TooDeep => "aibom-too-deep",
            Self::TooManyComponents(_) => "aibom-too-many-components",
            Self::DuplicateMember(_) => "aibom-duplicate-member",
            Self::Malformed(_) => "aibom-malformed",
            Self::Unsupported(_) => "aibom-unsupported",
            Self::Incomplete(_) => "aibom-incomplete",
            Self::Denied { .. } => "aibom-denied",
            Self::Unevaluable { .. } => "aibom-unevaluable",
            Self::BadDenyList(_) => "aibom-bad-deny-list",
        }
    }
}

/// Checks an AIBOM (CycloneDX 1.6 JSON) against the domain's deny-list.
pub fn check(bytes: &[u8], deny: &AibomDenyListSet) -> Result<CheckedAibom, AibomError> {
    if bytes.len() > MAX_AIBOM_BYTES {
        return Err(AibomError::TooLarge(bytes.len()));
    }
    let entries = deny::entries(deny)?;
    let doc = json::parse(bytes, MAX_DEPTH).map_err(|r| match r {
        json::Refused::TooDeep => AibomError::TooDeep,
        json::Refused::Duplicate(name) => AibomError::DuplicateMember(clip(&name).to_owned()),
        json::Refused::Malformed(why) => AibomError::Malformed(why),
    })?;
    let bom = doc
        .as_object()
        .ok_or_else(|| malformed("not a JSON object"))?;
    match str_member(bom, "bomFormat", "the BOM")? {
        Some("CycloneDX") => {}
        Some(other) => return Err(unsupported(format!("bomFormat {:?}", clip(other)))),
        None => return Err(malformed("bomFormat is missing")),
    }
    match str_member(bom, "specVersion", "the BOM")? {
        Some("1.6") => {}
        Some(other) => {
            return Err(unsupported(format!(
                "specVersion {:?} (only 1.6)",
                clip(other)
            )));
        }
        None => return Err(malformed("specVersion is missing")),
    }

    // every component and service, within the count limit before anything else is read
    let agent = obj_member(bom, "metadata", "the BOM")?
        .map(|m| obj_member(m, "component", "metadata"))
        .transpose()?
        .flatten()
        .ok_or_else(|| incomplete("metadata.component (the agent) is missing"))?;
    let listed = array_member(bom, "components", "the BOM")?
        .ok_or_else(|| incomplete("components is missing"))?;
    let services = array_member(bom, "services", "the BOM")?.unwrap_or_default();
    let agent_nested = array_member(agent, "components", "metadata.component")?;
    let total = count(listed, "components")
        + count(agent_nested.unwrap_or_default(), "components")
        + count(services, "services");
    if total > MAX_COMPONENTS {
        return Err(AibomError::TooManyComponents(total));
    }
    let agent = component(agent, "metadata.component".into())?;
    let agent_version = agent
        .version
        .filter(|v| !v.is_empty())
        .ok_or_else(|| incomplete("metadata.component (the agent) has no version"))?;
    let mut all = Vec::new();
    components(listed, "components", &mut all)?;
    if let Some(nested) = agent_nested {
        components(nested, "metadata.component.components", &mut all)?;
    }

    // bom-refs: unique, then the graph over them
    let mut refs: BTreeMap<&str, &str> = BTreeMap::new();
    let named = std::iter::once(&agent)
        .chain(&all)
        .filter_map(|c| c.bom_ref.map(|r| (r, c.ty)));
    let services = service_refs(services, "services")?;
    for (r, kind) in named.chain(services.into_iter().map(|r| (r, "service"))) {
        if refs.insert(r, kind).is_some() {
            return Err(malformed(format!("bom-ref {:?} is used twice", clip(r))));
        }
    }
    graph(bom, &refs)?;

    // what each component must carry, and the datasets of model cards
    let mut inline_datasets = 0;
    for c in std::iter::once(&agent).chain(&all) {
        if matches!(c.ty, "machine-learning-model" | "data" | "library")
            && c.purl.is_none()
            && c.hashes.is_empty()
        {
            return Err(incomplete(format!(
                "{} has neither a purl nor a hash",
                c.describe()
            )));
        }
        inline_datasets += model_datasets(c, &refs)?;
        if let Some(data) = array_member(c.obj, "data", &c.at)? {
            for (i, d) in data.iter().enumerate() {
                component_data(d, &format!("{}.data[{i}]", c.at))?;
            }
        }
    }

    for c in std::iter::once(&agent).chain(&all) {
        for e in &entries {
            deny::screen(c, e)?;
        }
    }

    let of_type = |t: &str| all.iter().filter(|c| c.ty == t).count();
    Ok(CheckedAibom {
        digest: Digest::sha256(bytes),
        agent_name: agent.name.to_owned(),
        agent_version: agent_version.to_owned(),
        models: of_type("machine-learning-model"),
        datasets: of_type("data") + inline_datasets,
        components: all.len(),
    })
}

/// Checks a deny-list before it is set: every entry well-formed, and every range one this
/// module can evaluate (`vers:semver/...` or `*`).
pub fn check_deny_list(list: &AibomDenyListSet) -> Result<(), AibomError> {
    for e in deny::entries(list)? {
        if let deny::Matcher::Purl {
            range: Some(Range::Other(scheme)),
            ..
        } = &e.matcher
        {
            return Err(AibomError::BadDenyList(format!(
                "entry {:?}: versioning scheme {scheme:?} cannot be evaluated (semver only)",
                e.id
            )));
        }
    }
    Ok(())
}

/// The component types of CycloneDX 1.6.
const COMPONENT_TYPES: &[&str] = &[
    "application",
    "framework",
    "library",
    "container",
    "platform",
    "operating-system",
    "device",
    "device-driver",
    "firmware",
    "file",
    "machine-learning-model",
    "data",
    "cryptographic-asset",
];

/// The `componentData` types of CycloneDX 1.6.
const COMPONENT_DATA_TYPES: &[&str] = &[
    "source-code",
    "configuration",
    "dataset",
    "definition",
    "other",
];

/// CycloneDX 1.6 hash algorithms and the hex lengths of their digests (BLAKE3 has a
/// variable output: any length the schema's pattern allows).
const HASH_ALGS: &[(&str, &[usize])] = &[
    ("MD5", &[32]),
    ("SHA-1", &[40]),
    ("SHA-256", &[64]),
    ("SHA-384", &[96]),
    ("SHA-512", &[128]),
    ("SHA3-256", &[64]),
    ("SHA3-384", &[96]),
    ("SHA3-512", &[128]),
    ("BLAKE2b-256", &[64]),
    ("BLAKE2b-384", &[96]),
    ("BLAKE2b-512", &[128]),
    ("BLAKE3", &[32, 40, 64, 96, 128]),
];

/// A hash entry: the algorithm's canonical name (matched case-insensitively) and the digest
/// in lowercase hex of the algorithm's length.
fn hash(alg: &str, content: &str) -> Result<(&'static str, String), String> {
    let (name, lengths) = HASH_ALGS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(alg))
        .ok_or_else(|| format!("hash algorithm {:?} is not a CycloneDX one", clip(alg)))?;
    if !lengths.contains(&content.len()) || !content.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{name} digest is not {lengths:?} hex digits"));
    }
    Ok((name, content.to_ascii_lowercase()))
}

/// One component, read.
struct Component<'a> {
    /// Where it sits (`components[2].components[0]`).
    at: String,
    obj: &'a Map<String, Value>,
    ty: &'a str,
    name: &'a str,
    bom_ref: Option<&'a str>,
    version: Option<&'a str>,
    purl: Option<Purl>,
    hashes: Vec<(&'static str, String)>,
}

impl Component<'_> {
    /// How reports name it: its `bom-ref`, else its name.
    fn label(&self) -> String {
        clip(self.bom_ref.unwrap_or(self.name)).to_owned()
    }
    fn describe(&self) -> String {
        format!("{} ({:?})", self.at, self.label())
    }
}

fn component(obj: &Map<String, Value>, at: String) -> Result<Component<'_>, AibomError> {
    let ty = str_member(obj, "type", &at)?.ok_or_else(|| malformed(format!("{at}: no type")))?;
    if !COMPONENT_TYPES.contains(&ty) {
        return Err(malformed(format!(
            "{at}: type {:?} is not a CycloneDX 1.6 one",
            clip(ty)
        )));
    }
    let name = str_member(obj, "name", &at)?
        .filter(|n| !n.is_empty())
        .ok_or_else(|| malformed(format!("{at}: no name")))?;
    let bom_ref = str_member(obj, "bom-ref", &at)?;
    if bom_ref == Some("") {
        return Err(malformed(format!("{at}: empty bom-ref")));
    }
    let purl = str_member(obj, "purl", &at)?
        .map(|p| purl::parse(p).map_err(|e| malformed(format!("{at}: purl {:?}: {e}", clip(p)))))
        .transpose()?;
    let mut hashes = Vec::new();
    for (i, h) in array_member(obj, "hashes", &at)?
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let hat = format!("{at}.hashes[{i}]");
        let h = h
            .as_object()
            .ok_or_else(|| malformed(format!("{hat}: not an object")))?;
        let alg = str_member(h, "alg", &hat)?.unwrap_or_default();
        let content = str_member(h, "content", &hat)?.unwrap_or_default();
        hashes.push(hash(alg, content).map_err(|e| malformed(format!("{hat}: {e}")))?);
    }
    let version = str_member(obj, "version", &at)?;
    Ok(Component {
        version,
        at,
        obj,
        ty,
        name,
        bom_ref,
        purl,
        hashes,
    })
}

/// Components and their nested `components`, depth first.
fn components<'a>(
    list: &'a [Value],
    at: &str,
    out: &mut Vec<Component<'a>>,
) -> Result<(), AibomError> {
    for (i, v) in list.iter().enumerate() {
        let at = format!("{at}[{i}]");
        let obj = v
            .as_object()
            .ok_or_else(|| malformed(format!("{at}: not an object")))?;
        let c = component(obj, at.clone())?;
        let nested = array_member(obj, "components", &at)?;
        out.push(c);
        if let Some(nested) = nested {
            components(nested, &format!("{at}.components"), out)?;
        }
    }
    Ok(())
}

/// Entries of `list` and their nested `key` lists (not read yet: anything not an object
/// counts as one).
fn count(list: &[Value], key: &str) -> usize {
    list.iter()
        .map(|v| {
            1 + v
                .get(key)
                .and_then(Value::as_array)
                .map_or(0, |l| count(l, key))
        })
        .sum()
}

/// The `bom-ref`s of services and their nested services (each must have a name).
fn service_refs<'a>(list: &'a [Value], at: &str) -> Result<Vec<&'a str>, AibomError> {
    let mut out = Vec::new();
    for (i, v) in list.iter().enumerate() {
        let at = format!("{at}[{i}]");
        let obj = v
            .as_object()
            .ok_or_else(|| malformed(format!("{at}: not an object")))?;
        if str_member(obj, "name", &at)?.is_none_or(str::is_empty) {
            return Err(malformed(format!("{at}: no name")));
        }
        match str_member(obj, "bom-ref", &at)? {
            Some("") => return Err(malformed(format!("{at}: empty bom-ref"))),
            Some(r) => out.push(r),
            None => {}
        }
        if let Some(nested) = array_member(obj, "services", &at)? {
            out.extend(service_refs(nested, &format!("{at}.services"))?);
        }
    }
    Ok(out)
}

/// The `dependencies` graph is complete: every reference resolves, every `bom-ref` appears as
/// a `ref` exactly once.
fn graph(bom: &Map<String, Value>, refs: &BTreeMap<&str, &str>) -> Result<(), AibomError> {
    let deps = array_member(bom, "dependencies", "the BOM")?
        .ok_or_else(|| incomplete("no dependencies graph"))?;
    let mut seen = BTreeSet::new();
    for (i, d) in deps.iter().enumerate() {
        let at = format!("dependencies[{i}]");
        let d = d
            .as_object()
            .ok_or_else(|| malformed(format!("{at}: not an object")))?;
        if let Some(k) = d
            .keys()
            .find(|k| !matches!(k.as_str(), "ref" | "dependsOn" | "provides"))
        {
            return Err(malformed(format!(
                "{at}: member {:?} is not accepted",
                clip(k)
            )));
        }
        let r = str_member(d, "ref", &at)?.ok_or_else(|| malformed(format!("{at}: no ref")))?;
        if !refs.contains_key(r) {
            return Err(incomplete(format!(
                "{at}: ref {:?} names nothing in the BOM",
                clip(r)
            )));
        }
        if !seen.insert(r) {
            return Err(malformed(format!(
                "{at}: ref {:?} is listed twice",
                clip(r)
            )));
        }
        for key in ["dependsOn", "provides"] {
            let mut listed = BTreeSet::new();
            for t in array_member(d, key, &at)?.unwrap_or_default() {
                let t = t
                    .as_str()
                    .ok_or_else(|| malformed(format!("{at}.{key}: not a string")))?;
                if !refs.contains_key(t) {
                    return Err(incomplete(format!(
                        "{at}.{key}: {:?} names nothing in the BOM",
                        clip(t)
                    )));
                }
                if !listed.insert(t) {
                    return Err(malformed(format!(
                        "{at}.{key}: {:?} is listed twice",
                        clip(t)
                    )));
                }
            }
        }
    }
    match refs.keys().find(|r| !seen.contains(*r)) {
        Some(r) => Err(incomplete(format!(
            "{:?} is absent from the dependencies graph",
            clip(r)
        ))),
        None => Ok(()),
    }
}

/// Checks a model card's datasets; returns how many are inline (`componentData`).
fn model_datasets(c: &Component<'_>, refs: &BTreeMap<&str, &str>) -> Result<usize, AibomError> {
    let at = format!("{}.modelCard", c.at);
    let Some(card) = obj_member(c.obj, "modelCard", &c.at)? else {
        return Ok(0);
    };
    let Some(params) = obj_member(card, "modelParameters", &at)? else {
        return Ok(0);
    };
    let at = format!("{at}.modelParameters.datasets");
    let mut inline = 0;
    for (i, d) in array_member(params, "datasets", &at)?
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let dat = format!("{at}[{i}]");
        let obj = d
            .as_object()
            .ok_or_else(|| malformed(format!("{dat}: not an object")))?;
        let Some(r) = str_member(obj, "ref", &dat)? else {
            component_data(d, &dat)?;
            inline += 1;
            continue;
        };
        if obj.len() != 1 {
            return Err(malformed(format!("{dat}: a ref has no other members")));
        }
        match refs.get(r) {
            Some(&"data") => {}
            Some(kind) => {
                return Err(incomplete(format!(
                    "{dat}: {:?} is a {kind}, not a data component",
                    clip(r)
                )));
            }
            None => {
                return Err(incomplete(format!(
                    "{dat}: {:?} names nothing in the BOM",
                    clip(r)
                )));
            }
        }
    }
    Ok(inline)
}

/// A `componentData` object: `type` from the 1.6 enum.
fn component_data(d: &Value, at: &str) -> Result<(), AibomError> {
    let obj = d
        .as_object()
        .ok_or_else(|| malformed(format!("{at}: not an object")))?;
    match str_member(obj, "type", at)? {
        Some(t) if COMPONENT_DATA_TYPES.contains(&t) => Ok(()),
        Some(t) => Err(malformed(format!(
            "{at}: data type {:?} is not a CycloneDX one",
            clip(t)
        ))),
        None => Err(malformed(format!("{at}: no type"))),
    }
}

/// Outside input quoted in an error: at most 80 characters of it.
fn clip(s: &str) -> &str {
    match s.char_indices().nth(80) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn malformed(why: impl Into<String>) -> AibomError {
    AibomError::Malformed(why.into())
}
fn unsupported(why: impl Into<String>) -> AibomError {
    AibomError::Unsupported(why.into())
}
fn incomplete(why: impl Into<String>) -> AibomError {
    AibomError::Incomplete(why.into())
}

/// A member that must be a string when present.
fn str_member<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<Option<&'a str>, AibomError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(malformed(format!("{at}: {key} is not a string"))),
    }
}

/// A member that must be an array when present.
fn array_member<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<Option<&'a [Value]>, AibomError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(_) => Err(malformed(format!("{at}: {key} is not an array"))),
    }
}

/// A member that must be an object when present.
fn obj_member<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<Option<&'a Map<String, Value>>, AibomError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(malformed(format!("{at}: {key} is not an object"))),
    }
}

#[cfg(test)]
#[path = "aibom/tests.rs"]
mod tests;
