//! The policy bundle aggregate: one per bundle name; each publication is the next version.
//! A bundle that does not compile or whose tests fail is refused here, before anything is
//! appended, so the version in force stays.

use accord_events::catalogue::PolicyBundlePublished;
use accord_events::{Digest, Event};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use crate::bundle::{Bundle, BundleError};

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PolicyBundle {
    pub version: u64,
    pub digest: Option<Digest>,
}

#[derive(Debug, Clone)]
pub enum PolicyCommand {
    /// Publish these files as the bundle's next version (nothing, when they are the current one).
    Publish(Bundle),
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("bundle refused: {0}")]
    Refused(#[from] BundleError),
    #[error("bundle name {0:?} differs from the aggregate's")]
    WrongName(String),
}

impl Aggregate for PolicyBundle {
    const TYPE: &'static str = "policy";
    type Command = PolicyCommand;
    type Event = Event;
    type Error = PolicyError;
    type Services = ();

    async fn handle(
        &mut self,
        command: PolicyCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), PolicyError> {
        match command {
            PolicyCommand::Publish(bundle) => {
                let digest = bundle.digest();
                if self.digest.as_ref() == Some(&digest) {
                    return Ok(()); // already the version in force
                }
                bundle.check()?;
                let event = Event::PolicyBundlePublished(PolicyBundlePublished {
                    bundle: bundle.name.clone(),
                    version: self.version + 1,
                    digest,
                    files: bundle.files,
                });
                sink.write(event, self).await;
                Ok(())
            }
        }
    }

    fn apply(&mut self, event: Event) {
        if let Event::PolicyBundlePublished(p) = event {
            self.version = p.version;
            self.digest = Some(p.digest);
        }
    }
}
