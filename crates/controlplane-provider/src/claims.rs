//! Growing the volume claims a StatefulSet already made: a StatefulSet's claim templates only
//! shape new claims, so when `persistence.persistentVolumeClaim` or the etcd storage asks for
//! more than an existing claim has, the claim itself must be asked to grow (the storage class
//! must allow expansion; Kubernetes never shrinks a claim, and neither do we).
//!
//! Pure: which claims to grow and to what. The reconciler lists the claims and patches them.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive as _;

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
/// down; `None` for what is not a quantity, is negative, or does not fit.
///
/// The number is read by `rust_decimal` and scaled with checked arithmetic, so an absurd size
/// (`99999999999999999999Ei`) is refused instead of wrapping around to a small one.
pub fn quantity_bytes(quantity: &str) -> Option<u128> {
    quantity_value(quantity)?.floor().to_u128()
}

/// The exact value of a non-negative Kubernetes quantity (`500m` is 0.5, `1Ki` is 1024); `None`
/// for what is not one or does not fit.
pub fn quantity_value(quantity: &str) -> Option<Decimal> {
    let q = quantity.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    // A claim size is never negative; `Decimal` would also take a sign, exponent or spaces.
    if number.is_empty() || number == "." {
        return None;
    }
    let value = Decimal::from_str_exact(number).ok()?;
    let binary = |power: u32| Some(Decimal::from(1u64 << power));
    let decimal = |exponent: u32| Some(Decimal::from(10u64.checked_pow(exponent)?));
    let factor = match suffix {
        "" => Some(Decimal::ONE),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        "m" => Some(Decimal::new(1, 3)),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        s if s.starts_with(['e', 'E']) => {
            let exponent: i64 = s[1..].parse().ok()?;
            Decimal::from_scientific(&format!("1e{exponent}")).ok()
        }
        _ => None,
    }?;
    value.checked_mul(factor)
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
        for bad in [
            "", "Gi", "1GB", "-1Gi", "1..2Gi", "abc", "1 Gi", "+1Gi", ".Gi", "1e",
        ] {
            assert_eq!(quantity_bytes(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn huge_quantities_do_not_wrap_around() {
        // 2^68 Ei is 2^128 bytes: one more than u128 holds. A shift would wrap it to 0.
        assert_eq!(quantity_bytes("295147905179352825856Ei"), None);
        assert_eq!(
            quantity_bytes("340282366920938463463374607431768211456Ki"),
            None
        );
        assert_eq!(quantity_bytes("1e400"), None);
        // Large but representable sizes still compare correctly.
        assert_eq!(quantity_bytes("1000000Ei"), Some(1_000_000u128 << 60));
        assert!(quantity_bytes("8Ei") > quantity_bytes("7Ei"));
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
