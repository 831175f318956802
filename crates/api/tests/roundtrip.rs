//! Upstream-shaped v1beta2 manifests survive a deserialise/serialise round trip through our
//! types: nothing is lost, and the only additions are the schema defaults the API server would
//! fill in anyway.

#![allow(clippy::expect_used, clippy::panic)]

mod common;

use k0smotron_api::{
    bootstrap::v1beta2::{K0sWorkerConfig, K0sWorkerConfigTemplate},
    controlplane::v1beta2::{K0smotronControlPlane, K0smotronControlPlaneTemplate},
    crds,
};
use pretty_assertions::assert_eq;
use serde_json::Value;

/// Deserialises `value` into `T` and serialises it back.
fn round_trip<T>(value: &Value) -> Value
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let typed: T = serde_json::from_value(value.clone()).expect("fixture deserialises");
    serde_json::to_value(&typed).expect("serialises")
}

#[test]
fn fixtures_round_trip_losing_nothing_and_adding_only_schema_defaults() {
    let crds = crds::all();
    let mut seen = Vec::new();
    for (file, fixture) in common::fixtures() {
        let kind = fixture["kind"].as_str().expect("kind").to_owned();
        let crd = crds
            .iter()
            .find(|c| c.spec.names.kind == kind)
            .unwrap_or_else(|| panic!("{file}: no CRD for kind {kind}"));
        let output = match kind.as_str() {
            "K0smotronControlPlane" => round_trip::<K0smotronControlPlane>(&fixture),
            "K0smotronControlPlaneTemplate" => {
                round_trip::<K0smotronControlPlaneTemplate>(&fixture)
            }
            "K0sWorkerConfig" => round_trip::<K0sWorkerConfig>(&fixture),
            "K0sWorkerConfigTemplate" => round_trip::<K0sWorkerConfigTemplate>(&fixture),
            other => panic!("{file}: unexpected kind {other}"),
        };
        let mut expected = fixture.clone();
        common::apply_defaults(&common::schema_of(crd), &mut expected);
        assert_eq!(output, expected, "{file}");
        seen.push(kind);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 4, "every kind has a fixture: {seen:?}");
}

#[test]
fn typed_values_of_the_etcd_fixture() {
    use k0smotron_api::controlplane::v1beta2::{
        CertificateType, PatchType, PersistenceType, ServiceType, StorageType,
    };
    let (_, fixture) = common::fixtures()
        .into_iter()
        .find(|(f, _)| f == "k0smotroncontrolplane-etcd.yaml")
        .expect("fixture");
    let kcp: K0smotronControlPlane = serde_json::from_value(fixture).expect("kcp");
    let spec = &kcp.spec;
    assert_eq!(spec.replicas, 3);
    assert_eq!(spec.service.type_, ServiceType::LoadBalancer);
    assert_eq!(spec.service.api_port, 6443);
    assert_eq!(spec.persistence.type_, PersistenceType::Pvc);
    assert!(spec.persistence.auto_delete_pvcs);
    assert_eq!(spec.storage.type_, StorageType::Etcd);
    assert_eq!(spec.storage.etcd.persistence.size.0, "5Gi");
    assert_eq!(spec.certificate_refs[1].type_, CertificateType::Sa);
    assert_eq!(spec.patches[1].patch.type_, PatchType::Json);
    assert_eq!(spec.mounts.len(), 2);
    assert!(spec.mounts[0].read_only);
    let volume = spec.mounts[1].to_volume("audit").expect("volume");
    assert_eq!(
        volume.host_path.map(|h| h.path).as_deref(),
        Some("/var/log/k0smotron-audit")
    );
    assert_eq!(
        spec.k0s_config.as_ref().expect("k0sConfig")["spec"]["network"]["provider"],
        "calico"
    );
}
