//! What a gateway's connections and requests share across listeners and
//! workers, below both the gateway and the listeners: the drain that lets
//! in-flight work finish at shutdown (`drain.rs`) and the cap on open
//! connections (`slots.rs`), and which worker thread a task runs on
//! (`affinity.rs`). None of them knows HTTP; the gateway holds them and
//! the listeners (`server/`) and the admin listener consult them.

pub mod affinity;
pub mod drain;
pub mod slots;

pub use drain::Drain;
pub use slots::Slots;
