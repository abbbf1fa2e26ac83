//! Carrying discovery across a reload. Each pipeline has its own discovery
//! task, but a new one starts from the answers of the upstream of the same
//! name in the pipeline it replaces, source by source, and asks DNS again
//! in the background. So a reload while DNS is down keeps the last good
//! targets, and requests right after a reload do not wait for DNS.
//! Targets are reused too (health, ejection and in-flight count carry over)
//! when nothing that shapes them changed: connection slots and health
//! checks.

use std::sync::Arc;
use std::time::SystemTime;

use super::task::{Discovery, merge};
use super::{Answers, Source, endpoints};
use crate::upstream::target::Target;

/// The upstream of the same name in the pipeline being replaced.
pub struct Previous<'a> {
    /// Its discovery (none if it had no names).
    pub discovery: Option<&'a Discovery>,
    /// Its current targets, when they may be reused as they are.
    pub reusable: Vec<Arc<Target>>,
}

/// What a new upstream's discovery starts from.
pub struct Start {
    /// The previous answers for its sources.
    pub answers: Answers,
    /// When they were last resolved.
    pub last_resolved: Option<SystemTime>,
    /// Its first set: the fixed targets and one per previous endpoint.
    pub targets: Vec<Arc<Target>>,
}

/// The start of an upstream with `sources` and `fixed` targets, from
/// `previous` when there is one.
pub fn start(
    sources: &[Source],
    fixed: &[Arc<Target>],
    previous: Option<Previous<'_>>,
    slots: usize,
) -> Start {
    let Some((discovery, reusable)) = previous.and_then(|p| Some((p.discovery?, p.reusable)))
    else {
        return Start {
            answers: Vec::new(),
            last_resolved: None,
            targets: fixed.to_vec(),
        };
    };
    let old = discovery.answers();
    // Only sources still configured, each as it is written now.
    let answers: Answers = sources
        .iter()
        .map(|source| (source.clone(), endpoints(&old, source)))
        .filter(|(_, endpoints)| !endpoints.is_empty())
        .collect();
    let targets = merge(fixed, answers.iter().flat_map(|(_, e)| e), &reusable, slots);
    Start {
        answers,
        last_resolved: discovery.status().last_resolved,
        targets,
    }
}
