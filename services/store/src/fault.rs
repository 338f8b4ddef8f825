//! Crash points for tests (feature `fault-injection`): `ACCORD_FAULT_KILL=<point>:<name>:<n>`
//! makes the process SIGKILL itself at that point, so a test can kill a real process exactly
//! where it wants instead of racing it with a timer. Points:
//!
//! - `projection:<projection>:<seq>`: after the projection applied the event at stream
//!   sequence `seq`, before its batch commits.
//!
//! `ACCORD_FAULT_STALL=projection:<projection>:<seq>` makes every batch of that projection
//! that holds the event at `seq` or a later one fail before it commits: a projection stuck at
//! `seq - 1` and reporting an error, as after a poisoned log or a lost database.
//!
//! Without the feature these are empty functions.

#[cfg(feature = "fault-injection")]
type Spec = Option<(String, String, u64)>;

#[cfg(feature = "fault-injection")]
fn spec(var: &str) -> Spec {
    let v = std::env::var(var).ok()?;
    let mut parts = v.splitn(3, ':');
    let point = parts.next()?.to_owned();
    let name = parts.next()?.to_owned();
    let n = parts.next()?.parse().ok()?;
    Some((point, name, n))
}

#[cfg(feature = "fault-injection")]
fn armed() -> Option<&'static (String, String, u64)> {
    static SPEC: std::sync::OnceLock<Spec> = std::sync::OnceLock::new();
    SPEC.get_or_init(|| spec("ACCORD_FAULT_KILL")).as_ref()
}

/// Whether the projection's batch must fail before applying the event at `seq`.
#[inline]
pub(crate) fn stalled(_projection: &str, _seq: u64) -> bool {
    #[cfg(feature = "fault-injection")]
    {
        static SPEC: std::sync::OnceLock<Spec> = std::sync::OnceLock::new();
        if let Some((point, name, n)) = SPEC.get_or_init(|| spec("ACCORD_FAULT_STALL"))
            && point == "projection"
            && name == _projection
            && _seq >= *n
        {
            return true;
        }
    }
    false
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
