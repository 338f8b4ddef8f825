//! Package URLs (purl-spec, ECMA-427), read as far as deny-list matching needs them: type,
//! namespace, name and version, percent-decoded; qualifiers and subpath are noticed but not
//! kept (a package is the same package whatever file or arch of it is named).
//!
//! Matching compares type, namespace and name after the normalization the purl type
//! definitions prescribe. Only the types whose definitions say "not case sensitive and must
//! be lowercased" are lowercased ([`CASE_INSENSITIVE`]); every other type, `huggingface`
//! (case-sensitive repositories) and `mlflow` (depends on the server) among them, is compared
//! exactly as written. `pypi` names are normalized per PEP 503, which the current `pypi`
//! type definition adopts: lowercase, and each run of `-`, `_`, `.` becomes one `-`
//! (`Lang_Tool`, `lang.tool` and `lang-tool` are one project; `langtool` is another).

/// Types whose namespace and name are case-insensitive and lowercased by their definition.
const CASE_INSENSITIVE: &[&str] = &[
    "alpm",
    "apk",
    "bitbucket",
    "composer",
    "deb",
    "github",
    "golang",
    "hex",
    "npm",
    "pypi",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Purl {
    /// Lowercase.
    pub(super) ty: String,
    /// Decoded segments joined by `/`, normalized per type; empty when absent.
    pub(super) namespace: String,
    /// Decoded, normalized per type.
    pub(super) name: String,
    /// Decoded, as written.
    pub(super) version: Option<String>,
    /// The purl had qualifiers or a subpath (ignored for matching).
    pub(super) qualified: bool,
}

impl Purl {
    /// Same type, namespace and name: the same package, whatever the version.
    pub(super) fn same_package(&self, other: &Purl) -> bool {
        self.ty == other.ty && self.namespace == other.namespace && self.name == other.name
    }
}

/// Parses a purl following the spec's parsing steps (subpath and qualifiers split from the
/// right, then scheme, type, version from the right, name from the right, namespace).
pub(super) fn parse(s: &str) -> Result<Purl, String> {
    let (rest, subpath) = match s.rsplit_once('#') {
        Some((r, _)) => (r, true),
        None => (s, false),
    };
    let (rest, qualifiers) = match rest.rsplit_once('?') {
        Some((r, _)) => (r, true),
        None => (rest, false),
    };
    let (scheme, rest) = rest.split_once(':').ok_or("no pkg: scheme")?;
    if !scheme.eq_ignore_ascii_case("pkg") {
        return Err("the scheme is not pkg".into());
    }
    let (ty, rest) = rest
        .trim_start_matches('/')
        .split_once('/')
        .ok_or("no type/name")?;
    let mut chars = ty.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-'))
    {
        return Err("the type is not a purl type".into());
    }
    let ty = ty.to_ascii_lowercase();
    let rest = rest.trim_matches('/');
    let (rest, version) = match rest.rsplit_once('@') {
        Some((r, v)) => {
            let v = decode(v)?;
            if v.is_empty() {
                return Err("empty version".into());
            }
            // an unencoded '@' in the namespace (`pkg:npm/@scope/name`) would read as a
            // version holding '/': refused rather than guessed at
            if v.contains('/') {
                return Err("the version holds '/' (percent-encode '@' in names)".into());
            }
            (r, Some(v))
        }
        None => (rest, None),
    };
    let (namespace, name) = match rest.rsplit_once('/') {
        Some((ns, n)) => (ns, n),
        None => ("", rest),
    };
    let mut name = decode(name)?;
    if name.is_empty() {
        return Err("empty name".into());
    }
    let mut namespace = namespace
        .split('/')
        .filter(|seg| !seg.is_empty())
        .map(decode)
        .collect::<Result<Vec<_>, _>>()?
        .join("/");
    if CASE_INSENSITIVE.contains(&ty.as_str()) {
        namespace = namespace.to_lowercase();
        name = name.to_lowercase();
    }
    if ty == "pypi" {
        name = pep503(&name);
    }
    Ok(Purl {
        ty,
        namespace,
        name,
        version,
        qualified: subpath || qualifiers,
    })
}

/// PEP 503 normalized name: lowercase, runs of `-`, `_`, `.` as one `-`.
fn pep503(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_run {
                out.push('-');
            }
            in_run = true;
        } else {
            out.extend(c.to_lowercase());
            in_run = false;
        }
    }
    out
}

/// Percent-decoding (`%` and two hex digits), to UTF-8.
fn decode(s: &str) -> Result<String, String> {
    let hex = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let pair = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            );
            let (Some(hi), Some(lo)) = pair else {
                return Err("bad percent-encoding".into());
            };
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent-encoding that is not UTF-8".to_owned())
}
