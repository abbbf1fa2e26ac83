//! Records that outlive pipelines: one [`Health`] per plugin file version
//! (name and SHA-256), so a reload of unchanged files keeps quarantines,
//! rolled-back canaries and the counts they are judged by, and a changed
//! file starts afresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::health::{Health, QuarantineConfig};

/// A version's record and the quarantine settings it was made with.
type Entry = (Option<QuarantineConfig>, Arc<Health>);

/// The records, by `name@sha256`.
#[derive(Debug, Default)]
pub struct Registry {
    versions: Mutex<HashMap<String, Entry>>,
}

impl Registry {
    /// The record of `name` at `sha256`, made when new (or when its
    /// quarantine settings changed).
    pub fn health(
        &self,
        name: &str,
        sha256: &str,
        config: Option<&QuarantineConfig>,
    ) -> Arc<Health> {
        let mut versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        let key = format!("{name}@{sha256}");
        match versions.get(&key) {
            Some((known, health)) if known.as_ref() == config => health.clone(),
            _ => {
                let health = Arc::new(Health::new(name, config.cloned()));
                versions.insert(key, (config.cloned(), health.clone()));
                health
            }
        }
    }

    /// Forget every version but `kept` (`name@sha256` keys), once a new
    /// pipeline is built. The pipeline still serving keeps its own handles.
    pub fn retain(&self, kept: &[String]) {
        let mut versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        versions.retain(|key, _| kept.contains(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_keeps_its_record_until_it_changes() {
        let registry = Registry::default();
        let first = registry.health("auth", "aa", None);
        first.force();
        assert!(Arc::ptr_eq(&first, &registry.health("auth", "aa", None)));
        assert!(!registry.health("auth", "bb", None).quarantined());
        let tuned = QuarantineConfig::default();
        assert!(!Arc::ptr_eq(
            &first,
            &registry.health("auth", "aa", Some(&tuned))
        ));
        registry.retain(&[]);
        assert!(!registry.health("auth", "aa", Some(&tuned)).quarantined());
    }
}
