//! Growing the volume claims a StatefulSet already made: a StatefulSet's claim templates only
//! shape new claims, so when `persistence.persistentVolumeClaim` or the etcd storage asks for
//! more than an existing claim has, the claim itself must be asked to grow (the storage class
//! must allow expansion; Kubernetes never shrinks a claim, and neither do we).
//!
//! Pure: which claims to grow and to what. The reconciler lists the claims and patches them.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// One claim to grow.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimExpansion {
    /// The claim's name (`<template>-<statefulset>-<ordinal>`).
    pub name: String,
    /// Its current storage request.
    pub from: String,
    /// The storage request to set.
    pub to: Quantity,
}

/// The claims of `sts` (by its templates' naming rule) among `claims` whose storage request is
/// below their template's, oldest ordinal first.
pub fn expansions(sts: &StatefulSet, claims: &[PersistentVolumeClaim]) -> Vec<ClaimExpansion> {
    let Some(sts_name) = sts.metadata.name.as_deref() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for template in sts
        .spec
        .volume_claim_templates
        .as_ref()
        .into_iter()
        .flatten()
    {
        let Some(template_name) = template.metadata.name.as_deref() else {
            continue;
        };
        let Some(wanted) = storage_request(template) else {
            continue;
        };
        let Some(wanted_bytes) = quantity_bytes(&wanted.0) else {
            continue;
        };
        let prefix = format!("{template_name}-{sts_name}-");
        let mut mine: Vec<(u64, &PersistentVolumeClaim)> = claims
            .iter()
            .filter(|c| c.metadata.deletion_timestamp.is_none())
            .filter_map(|c| {
                let ordinal = c.metadata.name.as_deref()?.strip_prefix(&prefix)?;
                if ordinal.is_empty() || !ordinal.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                Some((ordinal.parse().ok()?, c))
            })
            .collect();
        mine.sort_by_key(|(ordinal, _)| *ordinal);
        for (_, claim) in mine {
            let Some(current) = storage_request(claim) else {
                continue;
            };
            // An unparsable current size is left alone rather than guessed at.
            if quantity_bytes(&current.0).is_some_and(|have| have < wanted_bytes) {
                out.push(ClaimExpansion {
                    name: claim.metadata.name.clone().unwrap_or_default(),
                    from: current.0.clone(),
                    to: wanted.clone(),
                });
            }
        }
    }
    out
}

fn storage_request(claim: &PersistentVolumeClaim) -> Option<&Quantity> {
    claim
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
}

/// The value of a Kubernetes quantity (`1Gi`, `500M`, `1.5Ti`, `1e9`, `1024`), in units, rounded
/// down; `None` for what is not a quantity or does not fit.
pub fn quantity_bytes(quantity: &str) -> Option<u128> {
    let q = quantity.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let (mantissa, scale): (&str, i32) = match suffix {
        "" => (number, 0),
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
            let power = match suffix {
                "Ki" => 10,
                "Mi" => 20,
                "Gi" => 30,
                "Ti" => 40,
                "Pi" => 50,
                _ => 60,
            };
            return split_decimal(number).map(|(whole, frac_num, frac_den)| {
                (whole << power) + ((frac_num << power) / frac_den)
            });
        }
        "m" => (number, -3),
        "k" => (number, 3),
        "M" => (number, 6),
        "G" => (number, 9),
        "T" => (number, 12),
        "P" => (number, 15),
        "E" => (number, 18),
        s if s.starts_with(['e', 'E']) => (number, s[1..].parse().ok()?),
        _ => return None,
    };
    let (whole, frac_num, frac_den) = split_decimal(mantissa)?;
    if scale >= 0 {
        let factor = 10u128.checked_pow(u32::try_from(scale).ok()?)?;
        whole
            .checked_mul(factor)?
            .checked_add(frac_num.checked_mul(factor)? / frac_den)
    } else {
        let divisor = 10u128.checked_pow(scale.unsigned_abs())?;
        Some(whole / divisor)
    }
}

/// `"12.5"` → `(12, 5, 10)`: whole part and the fraction as numerator/denominator. Refuses signs
/// (a claim size is never negative) and anything that is not digits with at most one dot.
fn split_decimal(number: &str) -> Option<(u128, u128, u128)> {
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(frac) {
        return None;
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let frac_den = 10u128.checked_pow(u32::try_from(frac.len()).ok()?)?;
    let frac_num: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    Some((whole, frac_num, frac_den))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::StatefulSetSpec;
    use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, VolumeResourceRequirements};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use std::collections::BTreeMap;

    fn claim(name: &str, size: &str) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([("storage".into(), Quantity(size.into()))])),
                    ..VolumeResourceRequirements::default()
                }),
                ..PersistentVolumeClaimSpec::default()
            }),
            ..PersistentVolumeClaim::default()
        }
    }

    fn sts(size: &str) -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta {
                name: Some("kmc-demo".into()),
                ..ObjectMeta::default()
            },
            spec: StatefulSetSpec {
                volume_claim_templates: Some(vec![claim("kmc-demo", size)]),
                ..StatefulSetSpec::default()
            },
            ..StatefulSet::default()
        }
    }

    #[test]
    fn quantities() {
        for (q, bytes) in [
            ("1Gi", 1u128 << 30),
            ("1.5Gi", 3 << 29),
            ("500M", 500_000_000),
            ("2G", 2_000_000_000),
            ("1024", 1024),
            ("1e3", 1000),
            ("1E9", 1_000_000_000),
            ("10k", 10_000),
            ("1500m", 1),
            (".5Ki", 512),
            ("4Ti", 4 << 40),
        ] {
            assert_eq!(quantity_bytes(q), Some(bytes), "{q}");
        }
        for bad in ["", "Gi", "1GB", "-1Gi", "1..2Gi", "abc", "1 Gi"] {
            assert_eq!(quantity_bytes(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_smaller_claims_of_this_statefulset_grow_in_ordinal_order() {
        let claims = [
            claim("kmc-demo-kmc-demo-10", "1Gi"),
            claim("kmc-demo-kmc-demo-0", "1Gi"),
            claim("kmc-demo-kmc-demo-1", "1024Mi"),
            claim("kmc-demo-kmc-demo-2", "4Gi"),
            claim("kmc-demo-kmc-demo-x", "1Gi"),
            claim("other-kmc-demo-0", "1Gi"),
            claim("kmc-demo-kmc-demo-etcd-0", "1Gi"),
        ];
        let grow = expansions(&sts("2Gi"), &claims);
        let names: Vec<&str> = grow.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "kmc-demo-kmc-demo-0",
                "kmc-demo-kmc-demo-1",
                "kmc-demo-kmc-demo-10"
            ]
        );
        assert_eq!(grow[1].from, "1024Mi");
        assert_eq!(grow[1].to, Quantity("2Gi".into()));
        // Equal (in other units) or larger: nothing; never shrink.
        assert!(expansions(&sts("1Gi"), &claims[1..3]).is_empty());
        assert!(expansions(&sts("1073741824"), &claims[1..3]).is_empty());
        // A claim being deleted is left to its fate.
        let mut deleting = claim("kmc-demo-kmc-demo-0", "1Gi");
        deleting.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        assert!(expansions(&sts("2Gi"), &[deleting]).is_empty());
    }
}
