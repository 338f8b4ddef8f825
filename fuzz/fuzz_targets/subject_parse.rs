//! Subject and id parsing: never panics, and whatever parses renders back to the same text
//! with no wildcard in it.
#![no_main]

use accord_events::{AgentId, DomainId, SpiffeId, Subject, TrustDomain};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(subject) = Subject::parse(s) {
        let text = subject.to_string();
        assert_eq!(text, s);
        assert!(!text.contains('*') && !text.contains('>') && !text.contains(char::is_whitespace));
        assert_eq!(Subject::parse(&text).as_ref(), Ok(&subject));
    }
    if let Ok(id) = SpiffeId::parse(s) {
        assert_eq!(id.as_str(), s);
        let _ = id.trust_domain();
        let _ = id.agent_id();
    }
    let _ = DomainId::parse(s);
    let _ = TrustDomain::parse(s);
    let _ = AgentId::parse(s);
});
