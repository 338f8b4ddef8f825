use proptest::prelude::*;

use super::*;

fn sample() -> Subject {
    Subject::new(
        DomainId::parse("org-a").unwrap(),
        AggregateKind::Agent,
        AggregateId::parse("0193a4d2-7c1e-7b3a-9f00-0123456789ab").unwrap(),
        EventTypeName::parse("CredentialIssued").unwrap(),
    )
}

#[test]
fn renders_and_parses() {
    let s = sample();
    let text = s.to_string();
    assert_eq!(
        text,
        "accord.evt.org-a.agent.0193a4d2-7c1e-7b3a-9f00-0123456789ab.CredentialIssued"
    );
    assert_eq!(Subject::parse(&text).unwrap(), s);
    assert_eq!(
        s.aggregate_filter(),
        "accord.evt.org-a.agent.0193a4d2-7c1e-7b3a-9f00-0123456789ab.*"
    );
}

#[test]
fn rejects_wildcards_and_shape_errors() {
    for bad in [
        "accord.evt.org-a.agent.*.CredentialIssued",
        "accord.evt.org-a.agent.x.>",
        "accord.evt.>",
        "accord.evt.org-a.agent.x",
        "accord.evt.org-a.agent.x.Y.Z",
        "accord.evt.org-a.nosuch.x.Y",
        "other.evt.org-a.agent.x.Y",
        "accord.evt.org-a.agent..Y",
        "accord.evt.org-a.agent.x.credentialIssued",
        "accord.evtx.org-a.agent.x.Y",
    ] {
        assert!(Subject::parse(bad).is_err(), "{bad}");
    }
}

fn kind() -> impl Strategy<Value = AggregateKind> {
    prop::sample::select(AggregateKind::ALL.to_vec())
}

proptest! {
    #[test]
    fn round_trips(d in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", k in kind(), id in "[A-Za-z0-9_-]{1,64}", t in "[A-Z][A-Za-z0-9]{0,40}") {
        let s = Subject::new(
            DomainId::parse(&d).unwrap(),
            k,
            AggregateId::parse(&id).unwrap(),
            EventTypeName::parse(&t).unwrap(),
        );
        let text = s.to_string();
        prop_assert!(!text.contains('*') && !text.contains('>') && !text.contains(' '));
        prop_assert_eq!(text.split('.').count(), 6);
        prop_assert_eq!(Subject::parse(&text).unwrap(), s);
    }

    #[test]
    fn a_wildcard_anywhere_is_refused(tokens in prop::collection::vec("[a-zA-Z0-9-]{1,8}", 4), pos in 0usize..4, w in prop::sample::select(vec!["*", ">", "a*", "b>", " ", "x y"])) {
        let mut tokens = tokens;
        tokens[pos] = w.to_string();
        let text = format!("accord.evt.{}", tokens.join("."));
        prop_assert!(Subject::parse(&text).is_err());
    }

    #[test]
    fn arbitrary_input_never_panics(s in ".{0,200}") {
        let _ = Subject::parse(&s);
    }
}
