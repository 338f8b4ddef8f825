//! The log's stream, `ACCORD_EVENTS`: created with the invariants of design §3, or checked.

use std::time::Duration;

use accord_events::DomainId;
use accord_events::subject::domain_filter;
use async_nats::jetstream::{self, stream};

use crate::error::StoreError;

/// The name of the log's stream.
pub const EVENTS_STREAM: &str = "ACCORD_EVENTS";

/// How the log's stream is configured.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    pub name: String,
    pub domain: DomainId,
    /// 1 on a laptop, 3 in a cluster.
    pub replicas: usize,
    /// Window in which JetStream recognises a repeated `Nats-Msg-Id`.
    pub duplicate_window: Duration,
    /// Largest event message, bytes.
    pub max_msg_size: i32,
}

impl StreamSettings {
    pub fn new(domain: DomainId) -> Self {
        Self {
            name: EVENTS_STREAM.to_owned(),
            domain,
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            max_msg_size: 1024 * 1024,
        }
    }

    /// The configuration the stream must have.
    pub fn config(&self) -> stream::Config {
        stream::Config {
            name: self.name.clone(),
            description: Some(format!(
                "Accord event log of domain {} (append-only)",
                self.domain
            )),
            subjects: vec![domain_filter(&self.domain)],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            max_age: Duration::ZERO,
            max_messages: -1,
            max_bytes: -1,
            max_messages_per_subject: -1,
            max_message_size: self.max_msg_size,
            discard: stream::DiscardPolicy::New,
            duplicate_window: self.duplicate_window,
            deny_delete: true,
            deny_purge: true,
            allow_rollup: false,
            allow_direct: true,
            allow_atomic_publish: true,
            ..Default::default()
        }
    }
}

/// Creates the stream if it does not exist; otherwise checks that its configuration keeps the
/// log's invariants and reports the first that it breaks. Never edits an existing stream.
pub async fn ensure_stream(
    js: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<stream::Info, StoreError> {
    match js.get_stream(&settings.name).await {
        Ok(mut s) => {
            let info = s
                .info()
                .await
                .map_err(|e| StoreError::nats("stream info", e))?
                .clone();
            check(settings, &info.config)?;
            wait_for_leader(js, settings, info).await
        }
        Err(e)
            if matches!(
                e.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(ref je)
                    if je.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
            ) =>
        {
            let info = js
                .create_stream(settings.config())
                .await
                .map_err(|e| StoreError::nats("create stream", e))?;
            wait_for_leader(js, settings, info.cached_info().clone()).await
        }
        Err(e) => Err(StoreError::nats("get stream", e)),
    }
}

/// How long a replicated stream may go without a leader when the store opens.
const LEADER_WAIT: Duration = Duration::from_secs(30);

/// A replicated stream that was just created (or whose leader just went away) answers
/// publishes with "no responders" until its replicas elect a leader: wait for one, so that the
/// store's first append does not fail on a healthy cluster.
async fn wait_for_leader(
    js: &jetstream::Context,
    settings: &StreamSettings,
    mut info: stream::Info,
) -> Result<stream::Info, StoreError> {
    if settings.replicas <= 1 {
        return Ok(info);
    }
    let has_leader = |i: &stream::Info| i.cluster.as_ref().is_none_or(|c| c.leader.is_some());
    let deadline = tokio::time::Instant::now() + LEADER_WAIT;
    while !has_leader(&info) {
        if tokio::time::Instant::now() >= deadline {
            return Err(StoreError::Nats {
                op: "stream leader",
                detail: format!(
                    "stream {} elected no leader within {LEADER_WAIT:?}",
                    settings.name
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        // during the election the info request itself may go unanswered: try again
        if let Ok(mut s) = js.get_stream(&settings.name).await
            && let Ok(i) = s.info().await
        {
            info = i.clone();
        }
    }
    Ok(info)
}

fn check(want: &StreamSettings, have: &stream::Config) -> Result<(), StoreError> {
    let bad = |problem: String| {
        Err(StoreError::StreamMisconfigured {
            stream: want.name.clone(),
            problem,
        })
    };
    let filter = domain_filter(&want.domain);
    // exactly the domain's subjects: another subject (with a transform into the domain's, or
    // not) would let whoever publishes there write the log (security review 2026-12, 7)
    if have.subjects != [filter.clone()] {
        return bad(format!(
            "subjects {:?} are not exactly [{filter}]",
            have.subjects
        ));
    }
    // whatever else puts messages into a stream or changes them on the way in or out
    if have.mirror.is_some() || have.sources.as_ref().is_some_and(|s| !s.is_empty()) {
        return bad(
            "the stream has a mirror or sources (messages not appended by the services)".into(),
        );
    }
    if have.subject_transform.is_some() || have.republish.is_some() {
        return bad("the stream transforms or republishes subjects".into());
    }
    if have.sealed {
        return bad("the stream is sealed: nothing can be appended".into());
    }
    if have.allow_message_ttl
        || have.subject_delete_marker_ttl.is_some()
        || have.allow_message_schedules
        || have.allow_message_counter
    {
        return bad("per-message TTLs, schedules or counters are allowed (events that expire or are written by the server)".into());
    }
    if have.discard != stream::DiscardPolicy::New || have.discard_new_per_subject {
        return bad("the discard policy is not new".into());
    }
    if have.no_ack {
        return bad("appends are not acknowledged".into());
    }
    if have.max_message_size != want.max_msg_size {
        return bad(format!(
            "largest message {} bytes, configured {}",
            have.max_message_size, want.max_msg_size
        ));
    }
    if have.storage != stream::StorageType::File {
        return bad("storage is not file".into());
    }
    if !have.deny_delete || !have.deny_purge {
        return bad("delete or purge is allowed".into());
    }
    if have.allow_rollup {
        return bad("rollup is allowed (it would purge history)".into());
    }
    if !have.allow_atomic_publish {
        return bad("atomic publish is not allowed".into());
    }
    if !have.allow_direct {
        return bad("direct get is not allowed".into());
    }
    if have.max_age != Duration::ZERO
        || have.max_messages != -1
        || have.max_bytes != -1
        || have.max_messages_per_subject > 0
    {
        return bad("the stream has limits that would drop events".into());
    }
    if have.retention != stream::RetentionPolicy::Limits {
        return bad("retention is not limits (events would be removed once consumed)".into());
    }
    if have.num_replicas != want.replicas {
        return bad(format!(
            "{} replicas, configured {}",
            have.num_replicas, want.replicas
        ));
    }
    if have.duplicate_window < want.duplicate_window {
        return bad(format!(
            "duplicate window {:?} is shorter than {:?}",
            have.duplicate_window, want.duplicate_window
        ));
    }
    Ok(())
}
