//! Renderers that print events: JSON lines and the terminal view, run on one thread of their own.
//!
//! The core never prints. Events go over a channel to a renderer thread, so a stdout that blocks (a full
//! pipe, a stalled log driver) delays output, never the run. The HTTP sink is fed separately (see
//! [`crate::http`]) so that a blocked stdout cannot hold it back either.

use std::io::Write;
use std::sync::mpsc;
use std::sync::Arc;

use crate::Event;

/// One way of showing events.
pub(crate) trait Renderer: Send {
    /// Shows one event; `line` is its serialized form (without newline).
    fn event(&mut self, event: &Event, line: &str);
    /// A memory reading for a gauge, between events.
    fn memory(&mut self, _used: u64, _limit: u64) {}
    /// Called when no more messages are waiting: push buffered output out.
    fn flush(&mut self) {}
    /// The run is over: print what is left and leave the terminal clean.
    fn finish(&mut self);
}

pub(crate) enum RenderMsg {
    Event(Box<Event>, Arc<str>),
    Memory(u64, u64),
    Finish(tokio::sync::oneshot::Sender<()>),
}

/// Runs `renderer` on its own thread until [`RenderMsg::Finish`] or until every sender is gone.
pub(crate) fn spawn(mut renderer: Box<dyn Renderer>) -> std::io::Result<mpsc::Sender<RenderMsg>> {
    let (tx, rx) = mpsc::channel::<RenderMsg>();
    std::thread::Builder::new()
        .name("genrun-progress".into())
        .spawn(move || {
            while let Ok(msg) = rx.recv() {
                let mut next = Some(msg);
                while let Some(msg) = next.take() {
                    match msg {
                        RenderMsg::Event(event, line) => renderer.event(&event, &line),
                        RenderMsg::Memory(used, limit) => renderer.memory(used, limit),
                        RenderMsg::Finish(done) => {
                            renderer.finish();
                            let _ = done.send(());
                            return;
                        }
                    }
                    next = rx.try_recv().ok();
                }
                renderer.flush();
            }
            renderer.finish();
        })?;
    Ok(tx)
}

/// JSON lines: one event per line, exactly as documented on [`Event`]. For ECS/awslogs and anything else
/// that reads stdout line by line.
pub(crate) struct JsonRenderer {
    out: std::io::BufWriter<Box<dyn Write + Send>>,
}

impl JsonRenderer {
    pub(crate) fn new(out: Box<dyn Write + Send>) -> JsonRenderer {
        JsonRenderer {
            out: std::io::BufWriter::new(out),
        }
    }
}

impl Renderer for JsonRenderer {
    fn event(&mut self, _event: &Event, line: &str) {
        // A closed stdout must not end the run; there is nowhere to report it either.
        let _ = self.out.write_all(line.as_bytes());
        let _ = self.out.write_all(b"\n");
    }

    fn flush(&mut self) {
        let _ = self.out.flush();
    }

    fn finish(&mut self) {
        let _ = self.out.flush();
    }
}
