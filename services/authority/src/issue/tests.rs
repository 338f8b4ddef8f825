use super::*;

/// Finding 16: a requested lifetime is checked as a whole number of seconds in 60 ..= the
/// domain's maximum, in Rust, before the policy sees it; one beyond `i64` does not wrap into a
/// negative value that passes.
#[test]
fn a_lifetime_outside_the_range_is_a_bad_request() {
    let max = Duration::hours(1);
    assert_eq!(requested_lifetime(None, max).unwrap(), max);
    assert_eq!(
        requested_lifetime(Some(60), max).unwrap(),
        Duration::seconds(60)
    );
    assert_eq!(requested_lifetime(Some(3600), max).unwrap(), max);
    for s in [
        0,
        59,
        3601,
        i64::MAX as u64,
        1u64 << 63,
        (1u64 << 63) + 60,
        u64::MAX - 1,
        u64::MAX,
    ] {
        assert!(
            matches!(
                requested_lifetime(Some(s), max),
                Err(IssueError::BadRequest(_))
            ),
            "{s}"
        );
    }
}
