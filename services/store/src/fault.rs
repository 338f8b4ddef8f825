//! Crash points for tests (feature `fault-injection`): `ACCORD_FAULT_KILL=<point>:<name>:<n>`
//! makes the process SIGKILL itself at that point, so a test can kill a real process exactly
//! where it wants instead of racing it with a timer. Points:
//!
//! - `projection:<projection>:<seq>`: after the projection applied the event at stream
//!   sequence `seq`, before its batch commits.
//!
//! Without the feature these are empty functions.

#[cfg(feature = "fault-injection")]
fn armed() -> Option<&'static (String, String, u64)> {
    use std::sync::OnceLock;
    static SPEC: OnceLock<Option<(String, String, u64)>> = OnceLock::new();
    SPEC.get_or_init(|| {
        let v = std::env::var("ACCORD_FAULT_KILL").ok()?;
        let mut parts = v.splitn(3, ':');
        let point = parts.next()?.to_owned();
        let name = parts.next()?.to_owned();
        let n = parts.next()?.parse().ok()?;
        Some((point, name, n))
    })
    .as_ref()
}

#[cfg(feature = "fault-injection")]
fn die() -> ! {
    tracing::warn!("fault injection: SIGKILL");
    let _ = std::process::Command::new("kill")
        .args(["-9", &std::process::id().to_string()])
        .status();
    // the signal is on its way; never return into the code being interrupted
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// Inside a projection batch, after applying the event at `seq` and before the commit.
#[inline]
pub(crate) fn mid_batch(_projection: &str, _seq: u64) {
    #[cfg(feature = "fault-injection")]
    if let Some((point, name, n)) = armed()
        && point == "projection"
        && name == _projection
        && *n == _seq
    {
        die();
    }
}
