//! Reading `/metrics` the way Prometheus does: the exposition is parsed by
//! the Prometheus client library's own OpenMetrics parser (Python
//! `prometheus_client`, installed by `tools/setup-plugin-toolchains`), so
//! a test fails on anything a real scraper would reject.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One sample of the exposition.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Sample {
    /// The sample's own name (with `_total`, `_bucket`, `_count`...).
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The samples of an exposition, parsed.
#[derive(Debug, Clone)]
pub struct Exposition(pub Vec<Sample>);

fn python() -> PathBuf {
    let local = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("target/tools/python/bin/python");
    if local.exists() {
        local
    } else {
        PathBuf::from("python3")
    }
}

impl Exposition {
    /// Parse `text` with `prometheus_client`'s OpenMetrics parser.
    pub fn parse(text: &str) -> Exposition {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/integration/support/openmetrics.py");
        let mut child = Command::new(python())
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 is needed to parse metrics");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "the OpenMetrics parser rejected the exposition (or prometheus_client is missing: \
             run tools/setup-plugin-toolchains): {}\n--- exposition ---\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        Exposition(serde_json::from_slice(&out.stdout).unwrap())
    }

    /// The value of the sample `name` whose labels include all of `labels`
    /// (summed over the samples that match).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// The samples `name` whose labels include all of `labels`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.0.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// How many samples are called `name`.
    pub fn series(&self, name: &str) -> usize {
        self.0.iter().filter(|s| s.name == name).count()
    }
}
