//! The shipped policy library (`services/policy/library`), compiled into the binary: the
//! default bundle every domain starts with.

/// (path, content) of every file of the library bundle.
pub const FILES: &[(&str, &str)] = &[
    (
        "accord/abac.rego",
        include_str!("../library/accord/abac.rego"),
    ),
    (
        "accord/abac_test.rego",
        include_str!("../library/accord/abac_test.rego"),
    ),
    (
        "accord/discovery.rego",
        include_str!("../library/accord/discovery.rego"),
    ),
    (
        "accord/discovery_filter.rego",
        include_str!("../library/accord/discovery_filter.rego"),
    ),
    (
        "accord/discovery_test.rego",
        include_str!("../library/accord/discovery_test.rego"),
    ),
    (
        "accord/issuance.rego",
        include_str!("../library/accord/issuance.rego"),
    ),
    (
        "accord/issuance_test.rego",
        include_str!("../library/accord/issuance_test.rego"),
    ),
    (
        "accord/rbac.rego",
        include_str!("../library/accord/rbac.rego"),
    ),
    (
        "accord/rbac_test.rego",
        include_str!("../library/accord/rbac_test.rego"),
    ),
    (
        "accord/rebac.rego",
        include_str!("../library/accord/rebac.rego"),
    ),
    (
        "accord/rebac_test.rego",
        include_str!("../library/accord/rebac_test.rego"),
    ),
    ("data.json", include_str!("../library/data.json")),
];
