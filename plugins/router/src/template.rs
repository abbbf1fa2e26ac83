//! Path templates (`/users/{id}/files/{*rest}`) and rewrite templates
//! (`/v2/users/{id}`).

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Must equal this text.
    Literal(String),
    /// Any one non-empty segment, captured under this name.
    Param(String),
    /// The rest of the path (possibly empty), captured under this name.
    CatchAll(String),
}

/// Split a path into segments: `/a/b` → `["a", "b"]`, `/` → `[""]`.
pub fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.strip_prefix('/').unwrap_or(path).split('/')
}

/// Whether `path` has `{...}` placeholders.
pub fn is_template(path: &str) -> bool {
    path.contains('{')
}

/// Parse a path template.
pub fn parse(template: &str) -> Result<Vec<Segment>, String> {
    if !template.starts_with('/') {
        return Err(format!("path `{template}` must start with `/`"));
    }
    let parts: Vec<&str> = segments(template).collect();
    let mut out = Vec::with_capacity(parts.len());
    let mut names: Vec<&str> = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let segment = if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}'))
        {
            let (catch_all, name) = match inner.strip_prefix('*') {
                Some(name) => (true, name),
                None => (false, inner),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "`{{{inner}}}` in `{template}` is not a valid parameter name"
                ));
            }
            if names.contains(&name) {
                return Err(format!("parameter `{name}` appears twice in `{template}`"));
            }
            names.push(name);
            if catch_all {
                if i + 1 != parts.len() {
                    return Err(format!(
                        "`{{*{name}}}` must be the last segment of `{template}`"
                    ));
                }
                Segment::CatchAll(name.to_string())
            } else {
                Segment::Param(name.to_string())
            }
        } else if part.contains('{') || part.contains('}') {
            return Err(format!(
                "segment `{part}` of `{template}`: a parameter must be a whole segment"
            ));
        } else {
            Segment::Literal((*part).to_string())
        };
        out.push(segment);
    }
    Ok(out)
}

/// A rewrite template split into text and references to captures.
#[derive(Debug, Clone)]
pub struct Rewrite {
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Capture(String),
}

impl Rewrite {
    /// Parse `template`; every `{name}` must be in `available`.
    pub fn parse(template: &str, available: &[String]) -> Result<Rewrite, String> {
        if !template.starts_with('/') {
            return Err(format!("rewrite `{template}` must start with `/`"));
        }
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in rewrite `{template}`"))?;
            let name = rest[open + 1..open + close].trim_start_matches('*');
            if !available.iter().any(|a| a == name) {
                return Err(format!(
                    "rewrite `{template}` uses `{{{name}}}`, which the match does not capture (captures: {})",
                    if available.is_empty() {
                        "none".to_string()
                    } else {
                        available.join(", ")
                    }
                ));
            }
            parts.push(Part::Capture(name.to_string()));
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Rewrite { parts })
    }

    /// Fill in the captures.
    pub fn render(&self, captures: &[(String, String)]) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Capture(name) => {
                    if let Some((_, value)) = captures.iter().find(|(n, _)| n == name) {
                        out.push_str(value);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_templates() {
        assert_eq!(
            parse("/users/{id}/files/{*rest}").unwrap(),
            vec![
                Segment::Literal("users".into()),
                Segment::Param("id".into()),
                Segment::Literal("files".into()),
                Segment::CatchAll("rest".into()),
            ]
        );
        assert!(parse("/a/{*rest}/b").is_err());
        assert!(parse("/a/{id}/{id}").is_err());
        assert!(parse("/a/x{id}").is_err());
        assert!(parse("/a/{}").is_err());
        assert!(parse("a/{id}").is_err());
    }

    #[test]
    fn rewrites_fill_captures() {
        let names = vec!["id".to_string(), "rest".to_string()];
        let r = Rewrite::parse("/v2/users/{id}/{*rest}", &names).unwrap();
        let caps = vec![
            ("id".to_string(), "7".to_string()),
            ("rest".to_string(), "a/b".to_string()),
        ];
        assert_eq!(r.render(&caps), "/v2/users/7/a/b");
        assert!(
            Rewrite::parse("/v2/{missing}", &names)
                .unwrap_err()
                .contains("missing")
        );
        assert!(Rewrite::parse("/v2/{id", &names).is_err());
    }
}
