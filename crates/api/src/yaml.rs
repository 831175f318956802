//! YAML errors without content. serde-saphyr's messages quote the input around the error (a
//! snippet, or the offending value in a type error); for custom user data, cloud-init data and
//! kubeconfigs that input is secret material, and messages end up in conditions, events and logs.
//! [`YamlError`] keeps only where the error is. Pure; parses nothing itself.

use std::fmt;

/// A YAML parse failure reduced to its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub struct YamlError {
    /// 1-based line of the error, when the parser knows it.
    pub line: Option<u64>,
    /// 1-based column of the error, when the parser knows it.
    pub column: Option<u64>,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => {
                write!(f, "invalid YAML at line {line}, column {column}")
            }
            (Some(line), None) => write!(f, "invalid YAML at line {line}"),
            _ => f.write_str("invalid YAML (or a value of the wrong type)"),
        }
    }
}

impl From<&serde_saphyr::Error> for YamlError {
    fn from(err: &serde_saphyr::Error) -> Self {
        let location = err.location();
        // serde-saphyr reports 0 for an unknown position.
        let known = |n: u64| (n > 0).then_some(n);
        Self {
            line: location.and_then(|l| known(l.line())),
            column: location.and_then(|l| known(l.column())),
        }
    }
}

impl From<serde_saphyr::Error> for YamlError {
    fn from(err: serde_saphyr::Error) -> Self {
        Self::from(&err)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SECRET: &str = "hunter2-s3cr3t-value";

    fn parse(text: &str) -> serde_saphyr::Error {
        serde_saphyr::from_str::<serde_json::Value>(text).unwrap_err()
    }

    #[test]
    fn syntax_errors_keep_the_position_and_drop_the_text() {
        let raw = parse(&format!("a: 1\ntoken: [{SECRET}\nb: {{"));
        // What this type is for: the parser's own message shows the input.
        assert!(raw.to_string().contains(SECRET));
        let redacted = YamlError::from(&raw);
        let message = redacted.to_string();
        assert!(!message.contains(SECRET), "{message}");
        assert!(message.starts_with("invalid YAML at line "), "{message}");
        assert!(redacted.line.is_some());
    }

    #[test]
    fn type_errors_drop_the_offending_value() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Doc {
            files: Vec<String>,
        }
        let raw = serde_saphyr::from_str::<Doc>(&format!("files: {SECRET}\n")).unwrap_err();
        assert!(raw.to_string().contains(SECRET));
        let message = YamlError::from(&raw).to_string();
        assert!(!message.contains(SECRET), "{message}");
        assert!(message.starts_with("invalid YAML"), "{message}");
    }
}
