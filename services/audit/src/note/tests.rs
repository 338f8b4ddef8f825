use super::*;

fn body(size: u64) -> CheckpointBody {
    CheckpointBody {
        origin: "org-a.example/accord/events".into(),
        size,
        root: Hash([7; 32]),
        domain: DomainId::parse("org-a").expect("domain"),
        trust_domain: TrustDomain::parse("org-a.example").expect("trust domain"),
        time: Timestamp::parse("2026-11-26T18:00:00.000000Z").expect("time"),
    }
}

fn key(seed: u8) -> Ed25519Key {
    Ed25519Key::from_seed(&[seed; 32]).expect("key")
}

#[test]
fn a_signed_checkpoint_opens_with_its_key() {
    let k = key(1);
    let note = sign_checkpoint(&k, &body(42)).expect("sign");
    let lines: Vec<&str> = note.lines().collect();
    assert_eq!(lines[0], "org-a.example/accord/events");
    assert_eq!(lines[1], "42");
    assert_eq!(lines[2], b64(&Hash([7; 32])));
    assert_eq!(lines[3], "domain org-a org-a.example");
    assert_eq!(lines[4], "time 2026-11-26T18:00:00.000000Z");
    assert_eq!(lines[5], "");
    assert!(lines[6].starts_with("\u{2014} org-a.example/accord/events "));
    let nk = NoteKey::new("org-a.example/accord/events", k.public()).expect("note key");
    let opened = open_checkpoint(&note, "org-a.example/accord/events", &[nk]).expect("opens");
    assert_eq!(opened.size, 42);
    assert_eq!(opened.root, Hash([7; 32]));
    assert_eq!(opened.time.as_deref(), Some("2026-11-26T18:00:00.000000Z"));
    assert_eq!(&opened.signed_by, k.kid());
}

#[test]
fn other_keys_altered_text_and_other_origins_are_refused() {
    let origin = "org-a.example/accord/events";
    let note = sign_checkpoint(&key(1), &body(42)).expect("sign");
    let other = NoteKey::new(origin, key(2).public()).expect("note key");
    assert_eq!(
        open_checkpoint(&note, origin, std::slice::from_ref(&other)),
        Err(NoteProblem::NoKnownSignature)
    );
    let right = NoteKey::new(origin, key(1).public()).expect("note key");
    let altered = note.replacen("\n42\n", "\n43\n", 1);
    assert!(matches!(
        open_checkpoint(&altered, origin, std::slice::from_ref(&right)),
        Err(NoteProblem::BadSignature(_))
    ));
    assert!(matches!(
        open_checkpoint(
            &note,
            "org-b.example/accord/events",
            std::slice::from_ref(&right)
        ),
        Err(NoteProblem::WrongOrigin { .. })
    ));
    assert!(matches!(
        open_checkpoint("not a note", origin, std::slice::from_ref(&right)),
        Err(NoteProblem::Malformed(_))
    ));
    let huge = "x".repeat(MAX_NOTE_BYTES + 1);
    assert!(matches!(
        open_checkpoint(&huge, origin, &[right]),
        Err(NoteProblem::Malformed(_))
    ));
}

#[test]
fn vkey_is_the_go_note_verifier_form() {
    let nk = NoteKey::new("org-a.example/accord/events", key(1).public()).expect("note key");
    let v = nk.vkey();
    let parts: Vec<&str> = v.split('+').collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[1].len(), 8);
    // the library's own parser of verifier keys agrees on the id
    signed_note::StandardVerifier::new(&v).expect("a valid verifier key");
}
