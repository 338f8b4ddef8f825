//! What an agent sends the ACA for its feed, and what the agent library reads off a delivery:
//! the strict request body, the agent named by the request subject, the consumer and sequences
//! of a `$JS.ACK` reply subject. Any input must give a typed answer, never a panic.
#![no_main]

use accord_authority::feedctl::{agent_of, delivery, parse_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_request(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = agent_of(text);
        if let Some(d) = delivery(text) {
            assert!(!d.stream.is_empty() || text.contains(".."));
        }
    }
});
