//! Where Weir's data lives in Redis: key names, and on a Redis Cluster the
//! hash tags that keep each script's keys in one slot.
//!
//! On one Redis (`backend = "redis"`) the keys are as they always were:
//! `weir:rate:<ns>/<key>`, `weir:kv:<ns>/<key>` and
//! `weir:kvq:<ns>:{index,sizes,bytes}`. On a cluster (`redis_cluster`) the
//! namespace of a `kv` key is its hash tag (`weir:kv:{<ns>}/<key>`,
//! `weir:kvq:{<ns>}:index`, …), so one plugin's values and its quota
//! bookkeeping share one slot and the quota scripts stay atomic; and each
//! rate key is tagged by itself (`weir:rate:{<ns>/<key>}`), which spreads
//! the rate keys over the masters.

use redis::cluster_routing::Slot;

/// Key prefixes, so Weir's keys are easy to find and cannot collide with
/// other data in the same database.
const RATE_PREFIX: &str = "weir:rate:";
const KV_PREFIX: &str = "weir:kv:";
const KV_QUOTA_PREFIX: &str = "weir:kvq:";

/// Which key layout a store uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    /// One Redis: plain keys.
    Single,
    /// A Redis Cluster: hash-tagged keys.
    Cluster,
}

impl Layout {
    /// `part` as the hash tag of a key on a cluster, as itself otherwise.
    fn tag(self, part: &str) -> String {
        match self {
            Layout::Single => part.to_string(),
            Layout::Cluster => format!("{{{part}}}"),
        }
    }

    /// The Redis key of the (namespaced) rate key `key`.
    pub(super) fn rate_key(self, key: &str) -> String {
        format!("{RATE_PREFIX}{}", self.tag(key))
    }

    /// The Redis keys of one `kv` entry: value, index, sizes, total.
    pub(super) fn kv_keys(self, ns: &str, key: &str) -> [String; 4] {
        let ns = self.tag(ns);
        [
            format!("{KV_PREFIX}{ns}/{key}"),
            format!("{KV_QUOTA_PREFIX}{ns}:index"),
            format!("{KV_QUOTA_PREFIX}{ns}:sizes"),
            format!("{KV_QUOTA_PREFIX}{ns}:bytes"),
        ]
    }

    /// What every value key of `ns` starts with.
    pub(super) fn kv_prefix(self, ns: &str) -> String {
        format!("{KV_PREFIX}{}/", self.tag(ns))
    }

    /// On a cluster, the slot holding everything of `ns`.
    pub(super) fn kv_slot(self, ns: &str) -> Option<Slot> {
        match self {
            Layout::Single => None,
            Layout::Cluster => {
                let [_, index, ..] = self.kv_keys(ns, "");
                Some(Slot::for_key(index))
            }
        }
    }

    /// The positions of `keys` in groups that one script may touch
    /// together: everything on one Redis; one group per hash slot on a
    /// cluster, in the order the slots first appear, each group in the
    /// keys' order.
    pub(super) fn script_groups(self, keys: &[String]) -> Vec<Vec<usize>> {
        match self {
            Layout::Single => vec![(0..keys.len()).collect()],
            Layout::Cluster => {
                let mut groups: Vec<(Slot, Vec<usize>)> = Vec::new();
                for (i, key) in keys.iter().enumerate() {
                    let slot = Slot::for_key(key);
                    match groups.iter_mut().find(|(s, _)| *s == slot) {
                        Some((_, group)) => group.push(i),
                        None => groups.push((slot, vec![i])),
                    }
                }
                groups.into_iter().map(|(_, group)| group).collect()
            }
        }
    }
}

/// `text` with Redis glob metacharacters other than `*` escaped.
pub(super) fn redis_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_redis_keys_are_unchanged_so_existing_data_survives_an_upgrade() {
        let l = Layout::Single;
        assert_eq!(
            l.rate_key("70-rate-limit/api"),
            "weir:rate:70-rate-limit/api"
        );
        assert_eq!(
            l.kv_keys("75-cache", "k"),
            [
                "weir:kv:75-cache/k",
                "weir:kvq:75-cache:index",
                "weir:kvq:75-cache:sizes",
                "weir:kvq:75-cache:bytes",
            ]
        );
        assert_eq!(l.kv_prefix("75-cache"), "weir:kv:75-cache/");
        assert_eq!(l.kv_slot("75-cache"), None);
        let keys: Vec<String> = ["a", "b", "c"].iter().map(|k| l.rate_key(k)).collect();
        assert_eq!(l.script_groups(&keys), vec![vec![0, 1, 2]]);
    }

    #[test]
    fn cluster_kv_keys_of_one_namespace_share_one_slot() {
        let l = Layout::Cluster;
        let keys = l.kv_keys("75-cache", "GET:/some/path?x=1");
        assert_eq!(keys[0], "weir:kv:{75-cache}/GET:/some/path?x=1");
        assert_eq!(keys[1], "weir:kvq:{75-cache}:index");
        let slot = Slot::for_key(&keys[0]);
        assert!(keys.iter().all(|k| Slot::for_key(k) == slot), "{keys:?}");
        assert_eq!(l.kv_slot("75-cache"), Some(slot));
        // The hash tag is what counts: the slot of the bare namespace.
        assert_eq!(slot, Slot::for_key("75-cache"));
        // A key with braces of its own stays in its namespace's slot.
        assert_eq!(Slot::for_key(&l.kv_keys("75-cache", "{x}")[0]), slot);
        assert_eq!(l.kv_prefix("75-cache"), "weir:kv:{75-cache}/");
    }

    #[test]
    fn cluster_rate_keys_are_tagged_by_themselves_and_grouped_by_slot() {
        let l = Layout::Cluster;
        assert_eq!(l.rate_key("p/api"), "weir:rate:{p/api}");
        assert_eq!(Slot::for_key(l.rate_key("p/api")), Slot::for_key("p/api"));
        // Find keys in distinct slots (and a repeat) to group.
        let names: Vec<String> = (0..40).map(|i| format!("p/k{i}")).collect();
        let keys: Vec<String> = names.iter().map(|n| l.rate_key(n)).collect();
        let a = keys[0].clone();
        let b = keys
            .iter()
            .find(|k| Slot::for_key(k) != Slot::for_key(&a))
            .unwrap()
            .clone();
        let batch = vec![a.clone(), b.clone(), a.clone(), b.clone(), a];
        assert_eq!(l.script_groups(&batch), vec![vec![0, 2, 4], vec![1, 3]]);
        // One slot: one group, so the batch stays one atomic script.
        assert_eq!(l.script_groups(&[b.clone(), b]), vec![vec![0, 1]]);
        // Every key lands in exactly one group.
        let groups = l.script_groups(&keys);
        let mut seen: Vec<usize> = groups.concat();
        seen.sort_unstable();
        assert_eq!(seen, (0..keys.len()).collect::<Vec<_>>());
        assert!(groups.len() > 1);
    }

    #[test]
    fn globs_escape_redis_metacharacters_but_stars() {
        assert_eq!(redis_glob("a?[b]\\*"), "a\\?\\[b\\]\\\\*");
    }
}
