//! Self-managed infrastructure: an infrastructure cluster object the user annotated
//! `cluster.x-k8s.io/managed-by: k0smotron` has no infrastructure provider acting on it (the
//! control plane runs as pods, so there is nothing to provision but the endpoint). This provider
//! then marks it provisioned once the control-plane endpoint is known, in the status field of the
//! CAPI contract its CRD declares, so the Cluster reports its infrastructure provisioned and CAPI
//! goes on to create worker Machines.
//!
//! Pure: resolving the contract from CRD labels, the status body, and the checks. The reconciler
//! does the reads and the one write. Nothing here may touch an object without the annotation, or
//! any field but the provisioned status.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k0smotron_api::names::{MANAGED_BY_ANNOTATION, MANAGED_BY_K0SMOTRON};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

/// Field manager owning only the provisioned status of self-managed infrastructure objects.
pub const INFRA_MANAGER: &str = "k0smotron-controlplane-infrastructure";

/// The CAPI contract an infrastructure kind implements, which decides where "provisioned" lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contract {
    /// `status.ready`.
    V1Beta1,
    /// `status.initialization.provisioned`.
    V1Beta2,
}

impl Contract {
    /// The contract label on a provider's CRD (`cluster.x-k8s.io/<contract>`).
    pub fn label(self) -> &'static str {
        match self {
            Self::V1Beta1 => "cluster.x-k8s.io/v1beta1",
            Self::V1Beta2 => "cluster.x-k8s.io/v1beta2",
        }
    }

    /// The status that says "provisioned" under this contract.
    pub fn provisioned_status(self) -> Value {
        match self {
            Self::V1Beta1 => json!({ "ready": true }),
            Self::V1Beta2 => json!({ "initialization": { "provisioned": true } }),
        }
    }

    /// Whether `object` (the whole object as JSON) is marked provisioned under this contract.
    pub fn is_provisioned(self, object: &Value) -> bool {
        let field = match self {
            Self::V1Beta1 => &object["status"]["ready"],
            Self::V1Beta2 => &object["status"]["initialization"]["provisioned"],
        };
        field.as_bool() == Some(true)
    }
}

/// The newest contract a CRD declares and the API version to use for it, from the CRD's labels
/// (`cluster.x-k8s.io/v1beta2: v1alpha1_v1beta1` lists the API versions implementing that
/// contract; the most stable, newest one is used, as CAPI core does). `None` when the CRD carries
/// no contract label CAPI v1beta2 understands.
pub fn contract_from_crd_labels(labels: &BTreeMap<String, String>) -> Option<(Contract, String)> {
    [Contract::V1Beta2, Contract::V1Beta1]
        .into_iter()
        .find_map(|contract| {
            let versions = labels.get(contract.label())?;
            let newest = versions
                .split('_')
                .filter(|v| !v.is_empty())
                .max_by(|a, b| version_priority(a, b))?;
            Some((contract, newest.to_owned()))
        })
}

/// Kubernetes API version priority: GA over beta over alpha, then higher major, then higher
/// minor (`v2` > `v1` > `v1beta2` > `v1beta1` > `v1alpha1`); names that are not Kubernetes
/// versions sort below all that are, alphabetically.
fn version_priority(a: &str, b: &str) -> Ordering {
    match (parse_version(a), parse_version(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (None, None) => b.cmp(a),
    }
}

/// `(stability, major, minor)` with stability 0 alpha, 1 beta, 2 GA.
fn parse_version(v: &str) -> Option<(u8, u32, u32)> {
    let rest = v.strip_prefix('v')?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let major: u32 = rest[..digits].parse().ok()?;
    let tail = &rest[digits..];
    if tail.is_empty() {
        return Some((2, major, 0));
    }
    let (stability, minor) = if let Some(m) = tail.strip_prefix("beta") {
        (1, m)
    } else if let Some(m) = tail.strip_prefix("alpha") {
        (0, m)
    } else {
        return None;
    };
    Some((stability, major, minor.parse().ok()?))
}

/// Whether the user handed this infrastructure object to this provider.
pub fn managed_by_us(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(MANAGED_BY_ANNOTATION))
        .is_some_and(|v| v == MANAGED_BY_K0SMOTRON)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn newest_contract_and_most_stable_version_win() {
        // CAPD's DevCluster: one version for the v1beta2 contract.
        assert_eq!(
            contract_from_crd_labels(&labels(&[("cluster.x-k8s.io/v1beta2", "v1beta2")])),
            Some((Contract::V1Beta2, "v1beta2".into()))
        );
        // CAPA's AWSCluster: v1beta1 contract only, two versions listed.
        assert_eq!(
            contract_from_crd_labels(&labels(&[("cluster.x-k8s.io/v1beta1", "v1beta1_v1beta2")])),
            Some((Contract::V1Beta1, "v1beta2".into()))
        );
        // Both contracts: v1beta2 is read.
        assert_eq!(
            contract_from_crd_labels(&labels(&[
                ("cluster.x-k8s.io/v1beta1", "v1alpha4_v1beta1"),
                ("cluster.x-k8s.io/v1beta2", "v1alpha1_v1_v1beta3"),
            ])),
            Some((Contract::V1Beta2, "v1".into()))
        );
        assert_eq!(
            contract_from_crd_labels(&labels(&[("cluster.x-k8s.io/v1alpha4", "v1alpha4")])),
            None
        );
        assert_eq!(
            contract_from_crd_labels(&labels(&[("cluster.x-k8s.io/v1beta2", "")])),
            None
        );
    }

    #[test]
    fn version_order() {
        let mut v = vec![
            "v1alpha1", "v2", "v1beta2", "bogus", "v1", "v1beta10", "v1alpha3",
        ];
        v.sort_by(|a, b| version_priority(a, b));
        assert_eq!(
            v,
            [
                "bogus", "v1alpha1", "v1alpha3", "v1beta2", "v1beta10", "v1", "v2"
            ]
        );
    }

    #[test]
    fn provisioned_field_per_contract() {
        for contract in [Contract::V1Beta1, Contract::V1Beta2] {
            let object = json!({ "status": contract.provisioned_status() });
            assert!(contract.is_provisioned(&object));
            assert!(!contract.is_provisioned(&json!({ "status": {} })));
        }
        // The other contract's field does not count.
        let v1beta1 = json!({ "status": Contract::V1Beta1.provisioned_status() });
        assert!(!Contract::V1Beta2.is_provisioned(&v1beta1));
    }

    #[test]
    fn only_our_annotation_value_hands_the_object_over() {
        let meta = |v: &str| ObjectMeta {
            annotations: Some(BTreeMap::from([(
                MANAGED_BY_ANNOTATION.to_owned(),
                v.to_owned(),
            )])),
            ..ObjectMeta::default()
        };
        assert!(managed_by_us(&meta("k0smotron")));
        assert!(!managed_by_us(&meta("")));
        assert!(!managed_by_us(&meta("someone-else")));
        assert!(!managed_by_us(&ObjectMeta::default()));
    }
}
