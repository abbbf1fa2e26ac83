//! SRV records (RFC 2782) as the balancer needs them: grouped by priority,
//! lowest first, without the "no service here" record (target `.`).
//! Each group becomes a fallback tier of targets; weights inside a group
//! become target weights (`set.rs` turns them into shares within the tier,
//! giving weight 0 a very small one).

/// One SRV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    /// Lower is preferred.
    pub priority: u16,
    /// Share within the priority.
    pub weight: u16,
    /// The port the target listens on.
    pub port: u16,
    /// The target host, lower case, without the trailing dot.
    pub target: String,
}

/// The records grouped by priority, lowest value first: the order of the
/// fallback tiers.
pub fn by_priority(mut records: Vec<SrvRecord>) -> Vec<Vec<SrvRecord>> {
    // RFC 2782: a lone "." target means the service is decidedly not
    // available at this name.
    records.retain(|r| !r.target.is_empty() && r.target != ".");
    records.sort_by(|a, b| (a.priority, &a.target, a.port).cmp(&(b.priority, &b.target, b.port)));
    records.dedup();
    let mut groups: Vec<Vec<SrvRecord>> = Vec::new();
    for record in records {
        match groups.last_mut() {
            Some(group) if group.first().is_some_and(|r| r.priority == record.priority) => {
                group.push(record);
            }
            _ => groups.push(vec![record]),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(priority: u16, weight: u16, port: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port,
            target: target.into(),
        }
    }

    #[test]
    fn groups_by_priority_lowest_first_and_drops_dot() {
        let groups = by_priority(vec![
            srv(20, 1, 3, "c"),
            srv(10, 3, 1, "a"),
            srv(10, 1, 2, "b"),
            srv(5, 0, 9, "."),
            srv(10, 3, 1, "a"),
        ]);
        assert_eq!(
            groups,
            vec![
                vec![srv(10, 3, 1, "a"), srv(10, 1, 2, "b")],
                vec![srv(20, 1, 3, "c")],
            ]
        );
        assert!(by_priority(vec![srv(0, 0, 0, ".")]).is_empty());
    }
}
