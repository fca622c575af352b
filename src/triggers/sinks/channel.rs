//! In-process sinks: a channel the retraining side reads, or a callback.

use super::{Delivery, EventSink};
use crate::triggers::RetrainEvent;

/// Sends events into a channel (the retraining loop's side reads it).
pub struct ChannelSink(pub crossbeam_channel::Sender<RetrainEvent>);

impl EventSink for ChannelSink {
    fn deliver(&self, event: &RetrainEvent) -> Delivery {
        let ok = self.0.send(event.clone()).is_ok();
        Delivery {
            sink: "channel".into(),
            ok,
            detail: if ok { "sent".into() } else { "receiver gone".into() },
        }
    }
}

/// A function that takes an event (an error is recorded as a failed delivery).
pub type Callback = Box<dyn Fn(&RetrainEvent) -> Result<(), String> + Send + Sync>;

/// Calls a function with each event.
pub struct CallbackSink(pub Callback);

impl EventSink for CallbackSink {
    fn deliver(&self, event: &RetrainEvent) -> Delivery {
        match (self.0)(event) {
            Ok(()) => Delivery { sink: "callback".into(), ok: true, detail: "ok".into() },
            Err(e) => Delivery { sink: "callback".into(), ok: false, detail: e },
        }
    }
}
