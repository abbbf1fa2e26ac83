//! OpenAPI path templates (`/orders/{id}`, `/files/{name}.{ext}`): a
//! parameter matches one or more characters within one segment.

use std::collections::BTreeMap;

use crate::params::decode;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Param(String),
}

/// A compiled template.
#[derive(Debug, Clone)]
pub struct Template {
    segments: Vec<Vec<Piece>>,
    /// Literal characters, for "the most concrete template wins".
    literal_len: usize,
    params: usize,
}

impl Template {
    pub fn parse(path: &str) -> Result<Template, String> {
        if !path.starts_with('/') {
            return Err(format!("path `{path}` must start with `/`"));
        }
        let mut segments = Vec::new();
        let (mut literal_len, mut params) = (0, 0);
        for segment in path[1..].split('/') {
            let mut pieces = Vec::new();
            let mut rest = segment;
            while !rest.is_empty() {
                if let Some(after) = rest.strip_prefix('{') {
                    let end = after
                        .find('}')
                        .ok_or_else(|| format!("path `{path}`: unclosed `{{`"))?;
                    let name = &after[..end];
                    if name.is_empty() || matches!(pieces.last(), Some(Piece::Param(_))) {
                        return Err(format!(
                            "path `{path}`: a parameter needs a name and a literal before the next"
                        ));
                    }
                    pieces.push(Piece::Param(name.to_string()));
                    params += 1;
                    rest = &after[end + 1..];
                } else {
                    let end = rest.find('{').unwrap_or(rest.len());
                    pieces.push(Piece::Literal(rest[..end].to_string()));
                    literal_len += end;
                    rest = &rest[end..];
                }
            }
            segments.push(pieces);
        }
        Ok(Template {
            segments,
            literal_len,
            params,
        })
    }

    /// How concrete it is: fewer parameters, then more literal text, wins.
    pub fn rank(&self) -> (usize, std::cmp::Reverse<usize>) {
        (self.params, std::cmp::Reverse(self.literal_len))
    }

    /// The captures (decoded) when `path` matches.
    pub fn matches(&self, path: &str) -> Option<BTreeMap<String, Vec<String>>> {
        let parts: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut captures = BTreeMap::new();
        for (pieces, text) in self.segments.iter().zip(parts) {
            if !match_pieces(pieces, text, &mut captures) {
                return None;
            }
        }
        Some(captures)
    }
}

/// Match one segment, backtracking over where each parameter ends.
fn match_pieces(
    pieces: &[Piece],
    text: &str,
    captures: &mut BTreeMap<String, Vec<String>>,
) -> bool {
    match pieces.split_first() {
        None => text.is_empty(),
        Some((Piece::Literal(lit), rest)) => text
            .strip_prefix(lit.as_str())
            .is_some_and(|t| match_pieces(rest, t, captures)),
        Some((Piece::Param(name), rest)) => {
            for (end, _) in text.char_indices().skip(1).chain([(text.len(), ' ')]) {
                if end == 0 {
                    continue;
                }
                if match_pieces(rest, &text[end..], captures) {
                    captures.insert(name.clone(), vec![decode_path(&text[..end])]);
                    return true;
                }
            }
            false
        }
    }
}

/// Path segments are percent-decoded, but `+` stays a plus.
fn decode_path(text: &str) -> String {
    decode(&text.replace('+', "%2B"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(t: &str, path: &str) -> Option<Vec<(String, String)>> {
        Template::parse(t)
            .unwrap()
            .matches(path)
            .map(|c| c.into_iter().map(|(k, mut v)| (k, v.remove(0))).collect())
    }

    fn pair(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    #[test]
    fn templates_match_whole_segments() {
        assert_eq!(caps("/orders", "/orders"), Some(vec![]));
        assert_eq!(
            caps("/orders/{id}", "/orders/7"),
            Some(vec![pair("id", "7")])
        );
        assert_eq!(caps("/orders/{id}", "/orders/7/x"), None);
        assert_eq!(caps("/orders/{id}", "/orders/"), None);
        assert_eq!(caps("/", "/"), Some(vec![]));
        assert_eq!(
            caps("/files/{name}.{ext}", "/files/a.b.json"),
            Some(vec![pair("ext", "b.json"), pair("name", "a")])
        );
        assert_eq!(caps("/{id}.json", "/7.json"), Some(vec![pair("id", "7")]));
        assert_eq!(
            caps("/u/{name}", "/u/a%20b+c"),
            Some(vec![pair("name", "a b+c")])
        );
    }

    #[test]
    fn concrete_templates_rank_first() {
        let mine = Template::parse("/pets/mine").unwrap();
        let any = Template::parse("/pets/{id}").unwrap();
        assert!(mine.rank() < any.rank());
    }

    #[test]
    fn bad_templates_are_refused() {
        assert!(Template::parse("orders").is_err());
        assert!(Template::parse("/a/{id").is_err());
        assert!(Template::parse("/a/{}").is_err());
        assert!(Template::parse("/a/{x}{y}").is_err());
    }
}
