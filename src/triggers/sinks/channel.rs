//! In-process sinks: a channel the retraining side reads, or a callback.

use super::EventSink;
use crate::triggers::RetrainEvent;

/// Sends events into a channel (the retraining loop's side reads it).
pub struct ChannelSink(pub crossbeam_channel::Sender<RetrainEvent>);

impl EventSink for ChannelSink {
    fn name(&self) -> String {
        "channel".into()
    }

    fn deliver(&self, event: &RetrainEvent, _now_ms: i64) -> Result<String, String> {
        self.0.send(event.clone()).map(|()| "sent".into()).map_err(|_| "receiver gone".into())
    }
}

/// A function that takes an event (an error is a failed attempt, retried).
pub type Callback = Box<dyn Fn(&RetrainEvent) -> Result<(), String> + Send + Sync>;

/// Calls a function with each event.
pub struct CallbackSink(pub Callback);

impl EventSink for CallbackSink {
    fn name(&self) -> String {
        "callback".into()
    }

    fn deliver(&self, event: &RetrainEvent, _now_ms: i64) -> Result<String, String> {
        (self.0)(event).map(|()| "ok".into())
    }
}
