//! Feature gates of the bootstrap provider (`--feature-gates`, `K0SMOTRON_FEATURE_GATES`), in
//! upstream's `Name=bool,Name=bool` form. Only upstream's `CloudInitVars` exists; an unknown
//! name or a value other than `true`/`false` stops the provider at start with that name, rather
//! than being ignored.

/// The gates in effect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gates {
    /// `CloudInitVars`: custom user data is a Jinja template that gets our commands and files as
    /// variables (`crate::jinja`) instead of being merged into our cloud-config.
    pub cloud_init_vars: bool,
}

impl std::str::FromStr for Gates {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut gates = Self::default();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, value) = entry
                .split_once('=')
                .ok_or_else(|| format!("feature gate {entry:?} is not Name=true or Name=false"))?;
            let on = match value.trim() {
                "true" => true,
                "false" => false,
                other => {
                    return Err(format!(
                        "feature gate {name}: {other:?} is neither true nor false"
                    ));
                }
            };
            match name.trim() {
                "CloudInitVars" => gates.cloud_init_vars = on,
                other => {
                    return Err(format!(
                        "unknown feature gate {other:?} (known: CloudInitVars)"
                    ));
                }
            }
        }
        Ok(gates)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn upstream_form_is_read_and_mistakes_are_refused() {
        assert_eq!("".parse::<Gates>().unwrap(), Gates::default());
        assert!(
            "CloudInitVars=true"
                .parse::<Gates>()
                .unwrap()
                .cloud_init_vars
        );
        assert!(
            !" CloudInitVars=true, CloudInitVars=false "
                .parse::<Gates>()
                .unwrap()
                .cloud_init_vars
        );
        for bad in ["CloudInitVars", "CloudInitVars=yes", "CloudInitVar=true"] {
            assert!(bad.parse::<Gates>().is_err(), "{bad}");
        }
    }
}
