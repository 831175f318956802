//! k0s version strings: parsing `vX.Y.Z[-pre.N][+|-]k0s.N`, the two spellings k0s uses (`+k0s.N`
//! for releases and binaries, `-k0s.N` for image tags), ordering, and the one-minor upgrade rule.
//! Pure functions only.

use std::{cmp::Ordering, fmt, str::FromStr};

/// Why a version string or a version change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The string is not `vX.Y.Z`, optionally followed by `-alpha.N|-beta.N|-rc.N` and by
    /// `+k0s.N` or `-k0s.N`.
    #[error("invalid k0s version {version:?}: expected vX.Y.Z with an optional +k0s.N suffix")]
    Invalid {
        /// The rejected input.
        version: String,
    },
    /// An upgrade that skips at least one minor release (k0s and Kubernetes support one minor at a
    /// time).
    #[error(
        "upgrading from {from} to {to} skips a minor release; upgrade one minor version at a time"
    )]
    MinorSkip {
        /// The current version.
        from: String,
        /// The requested version.
        to: String,
    },
    /// A change of the major version.
    #[error("changing the major version from {from} to {to} is not supported")]
    MajorChange {
        /// The current version.
        from: String,
        /// The requested version.
        to: String,
    },
}

/// Kind of a pre-release; orders alpha < beta < rc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PreReleaseKind {
    /// `-alpha.N`
    Alpha,
    /// `-beta.N`
    Beta,
    /// `-rc.N`
    Rc,
}

impl PreReleaseKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Alpha => "alpha",
            Self::Beta => "beta",
            Self::Rc => "rc",
        }
    }
}

/// A pre-release tag such as `rc.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PreRelease {
    /// alpha, beta or rc.
    pub kind: PreReleaseKind,
    /// The number after the dot.
    pub number: u64,
}

/// A parsed k0s version. Orders by Kubernetes version (a pre-release sorts before its release),
/// then by k0s build number; a missing build number counts as 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct K0sVersion {
    /// Kubernetes major version.
    pub major: u64,
    /// Kubernetes minor version.
    pub minor: u64,
    /// Kubernetes patch version.
    pub patch: u64,
    /// Kubernetes pre-release, if any.
    pub pre: Option<PreRelease>,
    /// The `k0s.N` build number, if the string had one.
    pub k0s: Option<u64>,
}

/// Parses a run of ASCII digits without a sign; leading zeros are tolerated as Go's k0sproject
/// version parser tolerates them.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl K0sVersion {
    /// Parses `vX.Y.Z`, `vX.Y.Z+k0s.N`, `vX.Y.Z-k0s.N` and the same with a `-alpha.N`, `-beta.N`
    /// or `-rc.N` pre-release before the k0s suffix. The leading `v` is optional on input.
    pub fn parse(input: &str) -> Result<Self, VersionError> {
        let invalid = || VersionError::Invalid {
            version: input.to_owned(),
        };
        let s = input.strip_prefix('v').unwrap_or(input);

        // Split off the k0s build suffix (`+k0s.N` or `-k0s.N`).
        let (rest, k0s) = match s.find("+k0s.").or_else(|| s.find("-k0s.")) {
            Some(i) => (&s[..i], Some(number(&s[i + 5..]).ok_or_else(invalid)?)),
            None => (s, None),
        };
        // Split off a pre-release (`-rc.1`).
        let (core, pre) = match rest.split_once('-') {
            Some((core, pre)) => {
                let (kind, n) = pre.split_once('.').ok_or_else(invalid)?;
                let kind = match kind {
                    "alpha" => PreReleaseKind::Alpha,
                    "beta" => PreReleaseKind::Beta,
                    "rc" => PreReleaseKind::Rc,
                    _ => return Err(invalid()),
                };
                let number = number(n).ok_or_else(invalid)?;
                (core, Some(PreRelease { kind, number }))
            }
            None => (rest, None),
        };
        let mut parts = core.split('.');
        let (Some(major), Some(minor), Some(patch), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        Ok(Self {
            major: number(major).ok_or_else(invalid)?,
            minor: number(minor).ok_or_else(invalid)?,
            patch: number(patch).ok_or_else(invalid)?,
            pre,
            k0s,
        })
    }

    /// The Kubernetes version without the k0s suffix, e.g. `v1.35.7` (or `v1.36.0-rc.1`).
    pub fn kubernetes_version(&self) -> String {
        let mut s = format!("v{}.{}.{}", self.major, self.minor, self.patch);
        if let Some(pre) = self.pre {
            s.push_str(&format!("-{}.{}", pre.kind.as_str(), pre.number));
        }
        s
    }

    /// The release spelling, `vX.Y.Z+k0s.N`, used for k0s binaries, the bootstrap provider and
    /// `status.version`. A missing build number becomes `k0s.0`, as upstream does.
    pub fn release_form(&self) -> String {
        format!(
            "{}+k0s.{}",
            self.kubernetes_version(),
            self.k0s.unwrap_or(0)
        )
    }

    /// The image-tag spelling, `vX.Y.Z-k0s.N` (OCI tags may not contain `+`). A missing build
    /// number becomes `k0s.0`.
    pub fn image_tag(&self) -> String {
        format!(
            "{}-k0s.{}",
            self.kubernetes_version(),
            self.k0s.unwrap_or(0)
        )
    }

    /// True when both name the same Kubernetes release (ignoring the k0s build number).
    pub fn same_kubernetes_version(&self, other: &Self) -> bool {
        (self.major, self.minor, self.patch, self.pre)
            == (other.major, other.minor, other.patch, other.pre)
    }
}

impl Ord for K0sVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.pre, other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => a.cmp(&b),
            })
            .then_with(|| self.k0s.unwrap_or(0).cmp(&other.k0s.unwrap_or(0)))
    }
}

impl PartialOrd for K0sVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl FromStr for K0sVersion {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Displays the release form (`vX.Y.Z+k0s.N`).
impl fmt::Display for K0sVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.release_form())
    }
}

/// Normalises any accepted spelling to the release form `vX.Y.Z+k0s.N`.
pub fn to_release_form(version: &str) -> Result<String, VersionError> {
    K0sVersion::parse(version).map(|v| v.release_form())
}

/// Normalises any accepted spelling to the image-tag form `vX.Y.Z-k0s.N`.
pub fn to_image_tag(version: &str) -> Result<String, VersionError> {
    K0sVersion::parse(version).map(|v| v.image_tag())
}

/// Checks that changing the version from `old` to `new` is a supported step: same major, and the
/// minor moves forward by at most one. Downgrades are not refused here, as upstream does not refuse
/// them (a failed upgrade can be rolled back); the same rule is a CEL transition rule in the
/// `K0smotronControlPlane` CRD, so this check is for the controller's defence in depth and for
/// versions that come from elsewhere (Machine, MachinePool).
pub fn check_upgrade(old: &str, new: &str) -> Result<(), VersionError> {
    let from = K0sVersion::parse(old)?;
    let to = K0sVersion::parse(new)?;
    if from.major != to.major {
        return Err(VersionError::MajorChange {
            from: old.to_owned(),
            to: new.to_owned(),
        });
    }
    // Checked: a minor parsed from user input may be u64::MAX, and `+ 1` would overflow.
    if from
        .minor
        .checked_add(1)
        .is_some_and(|next| to.minor > next)
    {
        return Err(VersionError::MinorSkip {
            from: old.to_owned(),
            to: new.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;

    fn v(s: &str) -> K0sVersion {
        match K0sVersion::parse(s) {
            Ok(v) => v,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn parses_every_spelling() {
        let plus = v("v1.35.7+k0s.0");
        assert_eq!(
            (plus.major, plus.minor, plus.patch, plus.k0s),
            (1, 35, 7, Some(0))
        );
        assert_eq!(v("v1.35.7-k0s.0"), plus);
        assert_eq!(v("1.35.7+k0s.0"), plus);
        let bare = v("v1.35.7");
        assert_eq!(bare.k0s, None);
        let rc = v("v1.36.0-rc.1+k0s.0");
        assert_eq!(
            rc.pre,
            Some(PreRelease {
                kind: PreReleaseKind::Rc,
                number: 1
            })
        );
        assert_eq!(rc.k0s, Some(0));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "v",
            "latest",
            "v1.35",
            "v1.35.7.1",
            "v1.35.x",
            "v1.35.7+k0s.",
            "v1.35.7+k0s.a",
            "v1.35.7-foo.1",
            "v1.35.7-rc",
            "v-1.35.7",
            "v1.35.7+k3s.1",
        ] {
            assert!(K0sVersion::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn normalises_both_ways() -> Result<(), VersionError> {
        assert_eq!(to_release_form("v1.35.7-k0s.1")?, "v1.35.7+k0s.1");
        assert_eq!(to_release_form("v1.35.7")?, "v1.35.7+k0s.0");
        assert_eq!(to_image_tag("v1.35.7+k0s.1")?, "v1.35.7-k0s.1");
        assert_eq!(to_image_tag("v1.35.7")?, "v1.35.7-k0s.0");
        assert_eq!(to_image_tag("v1.36.0-rc.1+k0s.0")?, "v1.36.0-rc.1-k0s.0");
        assert_eq!(v("v1.35.7+k0s.1").kubernetes_version(), "v1.35.7");
        assert_eq!(v("v1.35.7-k0s.2").to_string(), "v1.35.7+k0s.2");
        Ok(())
    }

    #[test]
    fn orders_like_semver_then_build() {
        assert!(v("v1.35.7+k0s.0") < v("v1.35.7+k0s.1"));
        assert!(v("v1.35.7+k0s.9") < v("v1.35.8+k0s.0"));
        assert!(v("v1.35.10+k0s.0") > v("v1.35.9+k0s.0"));
        assert!(v("v1.36.0-rc.1+k0s.0") < v("v1.36.0+k0s.0"));
        assert!(v("v1.36.0-alpha.3") < v("v1.36.0-beta.0"));
        assert_eq!(v("v1.35.7").cmp(&v("v1.35.7+k0s.0")), Ordering::Equal);
        assert!(v("v1.35.7+k0s.0").same_kubernetes_version(&v("v1.35.7-k0s.3")));
        assert!(!v("v1.35.7").same_kubernetes_version(&v("v1.35.8")));
    }

    #[test]
    fn upgrade_rule() {
        assert_eq!(check_upgrade("v1.34.1+k0s.0", "v1.35.7+k0s.0"), Ok(()));
        assert_eq!(check_upgrade("v1.35.1+k0s.0", "v1.35.7+k0s.0"), Ok(()));
        assert_eq!(check_upgrade("v1.35.7+k0s.0", "v1.35.7-k0s.1"), Ok(()));
        // Downgrades are left to the user (upstream does the same).
        assert_eq!(check_upgrade("v1.35.7+k0s.0", "v1.33.0+k0s.0"), Ok(()));
        assert!(matches!(
            check_upgrade("v1.33.1+k0s.0", "v1.35.7+k0s.0"),
            Err(VersionError::MinorSkip { .. })
        ));
        assert!(matches!(
            check_upgrade("v1.35.7+k0s.0", "v2.0.0+k0s.0"),
            Err(VersionError::MajorChange { .. })
        ));
        // Numbers at the edge of u64 compare without overflowing.
        let max = u64::MAX;
        assert_eq!(
            check_upgrade(&format!("v1.{max}.0"), "v1.35.7+k0s.0"),
            Ok(())
        );
        assert_eq!(
            check_upgrade(&format!("v1.{max}.0"), &format!("v1.{max}.1")),
            Ok(())
        );
        assert!(matches!(
            check_upgrade("v1.35.7+k0s.0", &format!("v1.{max}.0")),
            Err(VersionError::MinorSkip { .. })
        ));
        assert!(matches!(
            check_upgrade("nope", "v1.35.7+k0s.0"),
            Err(VersionError::Invalid { .. })
        ));
    }
}
