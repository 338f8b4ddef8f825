use proptest::prelude::*;

use super::*;

#[test]
fn domain_ids() {
    assert!(DomainId::parse("org-a").is_ok());
    assert!(DomainId::parse("a").is_ok());
    for bad in [
        "",
        "-a",
        "a-",
        "Org",
        "a.b",
        "a*",
        "a>",
        "a b",
        "a\t",
        &"a".repeat(64),
    ] {
        assert!(DomainId::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn trust_domains() {
    assert!(TrustDomain::parse("org-a.example").is_ok());
    for bad in ["", ".a", "a.", "a..b", "A.example", "a*.b", "a b"] {
        assert!(TrustDomain::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn spiffe_ids() {
    let td = TrustDomain::parse("org-a.example").unwrap();
    let agent = AgentId::new_v7();
    let id = SpiffeId::for_agent(&td, &agent);
    let parsed = SpiffeId::parse(id.as_str()).unwrap();
    assert_eq!(parsed, id);
    assert_eq!(parsed.trust_domain(), td);
    assert_eq!(parsed.agent_id(), Some(agent));
    for bad in [
        "https://org-a.example/agent/x",
        "spiffe://",
        "spiffe://Org/x",
        "spiffe://a/b//c",
        "spiffe://a/b/../c",
        "spiffe://a/b?x",
        "spiffe://a/b c",
    ] {
        assert!(SpiffeId::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn uuids_have_one_spelling() {
    let a = AgentId::new_v7();
    assert_eq!(AgentId::parse(&a.to_string()).unwrap(), a);
    assert!(AgentId::parse(&a.to_string().to_uppercase()).is_err());
    assert!(AgentId::parse(&a.as_uuid().simple().to_string()).is_err());
    // an agent id must be a UUIDv7
    assert!(AgentId::parse(&uuid::Uuid::new_v4().to_string()).is_err());
}

#[test]
fn event_ids_are_derived() {
    let c = CommandId::new_random();
    assert_eq!(EventId::derive(&c, 0), EventId::derive(&c, 0));
    assert_ne!(EventId::derive(&c, 0), EventId::derive(&c, 1));
    assert_ne!(
        EventId::derive(&c, 0),
        EventId::derive(&CommandId::new_random(), 0)
    );
}

#[test]
fn catalogue_names_are_event_type_names() {
    for d in crate::CATALOGUE {
        assert!(EventTypeName::parse(d.name).is_ok(), "{}", d.name);
    }
}

#[test]
fn serde_refuses_invalid_ids() {
    assert!(serde_json::from_str::<DomainId>("\"a.b\"").is_err());
    assert!(serde_json::from_str::<AggregateId>("\"x>\"").is_err());
    assert_eq!(
        serde_json::to_string(&DomainId::parse("org-a").unwrap()).unwrap(),
        "\"org-a\""
    );
}

const FORBIDDEN: [char; 6] = ['.', '*', '>', ' ', '\t', '\n'];

proptest! {
    #[test]
    fn aggregate_ids_round_trip(s in "[A-Za-z0-9_-]{1,128}") {
        let id = AggregateId::parse(&s).unwrap();
        prop_assert_eq!(id.as_str(), s.as_str());
        prop_assert_eq!(id.to_string().parse::<AggregateId>().unwrap(), id);
    }

    #[test]
    fn domain_ids_round_trip(s in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?") {
        let id = DomainId::parse(&s).unwrap();
        prop_assert_eq!(id.to_string(), s);
    }

    #[test]
    fn tokens_never_hold_wildcards(prefix in "[a-z0-9]{1,10}", c in prop::sample::select(FORBIDDEN.to_vec()), suffix in "[a-z0-9]{0,10}") {
        let s = format!("{prefix}{c}{suffix}");
        prop_assert!(DomainId::parse(&s).is_err());
        prop_assert!(AggregateId::parse(&s).is_err());
        let typed = format!("A{}", s);
        prop_assert!(EventTypeName::parse(&typed).is_err());
        prop_assert!(MaterialId::parse(&s).is_err());
        prop_assert!(Jti::parse(&s).is_err());
    }

    #[test]
    fn arbitrary_strings_never_panic(s in ".{0,300}") {
        let _ = DomainId::parse(&s);
        let _ = TrustDomain::parse(&s);
        let _ = SpiffeId::parse(&s);
        let _ = AgentId::parse(&s);
        let _ = KeyId::parse(&s);
        let _ = CredentialSerial::parse(&s);
    }
}
