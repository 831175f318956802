//! Condition types and reasons the providers set, using the CAPI v1beta2 names where CAPI defines
//! them (core mirrors `Available`, `ScalingUp`, `ScalingDown`, `RollingOut` and `Ready` into the
//! `Cluster` and `Machine` conditions). Constants only.

// ---------------------------------------------------------------------------------------------
// Condition types
// ---------------------------------------------------------------------------------------------

/// Control plane: the API server of the workload cluster answers and enough replicas are ready.
/// Mirrored by CAPI into `Cluster` `ControlPlaneAvailable`.
pub const AVAILABLE: &str = "Available";
/// The object (or its Cluster) is paused; reconciliation is skipped.
pub const PAUSED: &str = "Paused";
/// Control plane: more replicas are desired than exist.
pub const SCALING_UP: &str = "ScalingUp";
/// Control plane: fewer replicas are desired than exist.
pub const SCALING_DOWN: &str = "ScalingDown";
/// Control plane: some replicas do not run the desired spec yet.
pub const ROLLING_OUT: &str = "RollingOut";
/// Control plane: the cluster certificates exist (generated or user-provided).
pub const CERTIFICATES_AVAILABLE: &str = "CertificatesAvailable";
/// Control plane: the `<cluster>-kubeconfig` Secret exists and is current.
pub const KUBECONFIG_SECRET_AVAILABLE: &str = "KubeconfigSecretAvailable";
/// Control plane: the managed etcd cluster is available.
pub const ETCD_CLUSTER_AVAILABLE: &str = "EtcdClusterAvailable";
/// Control plane: the hosted cluster's `clusterconfigs.k0s.k0sproject.io` `kube-system/k0s`
/// holds the cluster-wide part of the k0s config (dynamic config); False with the API server's
/// message when it refused it.
pub const DYNAMIC_CONFIG_APPLIED: &str = "DynamicConfigApplied";
/// Control plane: the control plane is being deleted.
pub const DELETING: &str = "Deleting";
/// Bootstrap: the data Secret exists. Summarised into [`READY`].
pub const DATA_SECRET_AVAILABLE: &str = "DataSecretAvailable";
/// Bootstrap: summary condition, mirrored by CAPI into `Machine` `BootstrapConfigReady`.
pub const READY: &str = "Ready";
/// Bootstrap: the bootstrap token in the workload cluster is usable (True) or was deleted because
/// the Node joined (False, reason [`NODE_JOINED_REASON`]).
pub const BOOTSTRAP_TOKEN_AVAILABLE: &str = "BootstrapTokenAvailable";

// ---------------------------------------------------------------------------------------------
// Reasons (CamelCase, as metav1.Condition requires)
// ---------------------------------------------------------------------------------------------

/// Generic positive reason for a True summary condition.
pub const READY_REASON: &str = "Ready";
/// Generic negative reason for a False summary condition.
pub const NOT_READY_REASON: &str = "NotReady";
/// The state could not be determined yet.
pub const READY_UNKNOWN_REASON: &str = "ReadyUnknown";
/// `Available` is True.
pub const AVAILABLE_REASON: &str = "Available";
/// `Available` is False.
pub const NOT_AVAILABLE_REASON: &str = "NotAvailable";
/// Reconciliation is paused (`Paused` True).
pub const PAUSED_REASON: &str = "Paused";
/// Reconciliation is not paused (`Paused` False).
pub const NOT_PAUSED_REASON: &str = "NotPaused";
/// `ScalingUp` is True.
pub const SCALING_UP_REASON: &str = "ScalingUp";
/// `ScalingUp` is False.
pub const NOT_SCALING_UP_REASON: &str = "NotScalingUp";
/// `ScalingDown` is True.
pub const SCALING_DOWN_REASON: &str = "ScalingDown";
/// `ScalingDown` is False.
pub const NOT_SCALING_DOWN_REASON: &str = "NotScalingDown";
/// `RollingOut` is True.
pub const ROLLING_OUT_REASON: &str = "RollingOut";
/// `RollingOut` is False.
pub const NOT_ROLLING_OUT_REASON: &str = "NotRollingOut";
/// Waiting for the Cluster's infrastructure to be provisioned.
pub const WAITING_FOR_INFRASTRUCTURE_REASON: &str = "WaitingForInfrastructure";
/// Waiting for the control plane to be initialized or to publish its endpoint (workers join only
/// afterwards). Upstream k0smotron's string, so alerts written for it keep matching.
pub const WAITING_FOR_CONTROL_PLANE_INITIALIZATION_REASON: &str =
    "WaitingForControlPlaneInitialization";
/// `DataSecretAvailable` reason when a `contentFrom` Secret/ConfigMap or key does not exist.
pub const CONTENT_FROM_NOT_FOUND_REASON: &str = "ContentFromNotFound";
/// Waiting for `Cluster.spec.controlPlaneEndpoint`.
pub const WAITING_FOR_CONTROL_PLANE_ENDPOINT_REASON: &str = "WaitingForControlPlaneEndpoint";
/// Waiting for an owner (`Machine`, `MachinePool`, CAPI `Cluster`).
pub const WAITING_FOR_OWNER_REASON: &str = "WaitingForOwner";
/// The object's spec is invalid in a way the schema could not catch.
pub const INVALID_SPEC_REASON: &str = "InvalidSpec";
/// A Secret or ConfigMap the spec refers to does not exist or lacks the key.
pub const REFERENCE_NOT_FOUND_REASON: &str = "ReferenceNotFound";
/// The version change skips a minor release.
pub const UNSUPPORTED_UPGRADE_REASON: &str = "UnsupportedUpgrade";
/// The data Secret was created or updated.
pub const DATA_SECRET_CREATED_REASON: &str = "DataSecretCreated";
/// Generating the bootstrap data failed.
pub const DATA_SECRET_GENERATION_FAILED_REASON: &str = "DataSecretGenerationFailed";
/// `DataSecretAvailable` False: a Secret with the config's name exists but is not ours.
pub const DATA_SECRET_CONFLICT_REASON: &str = "DataSecretConflict";
/// `DataSecretAvailable` False: the data was generated once, and its Secret has since been
/// deleted; it is not generated again (that would issue a second token for one Machine).
pub const DATA_SECRET_DELETED_REASON: &str = "DataSecretDeleted";
/// [`BOOTSTRAP_TOKEN_AVAILABLE`] True: the token exists and is refreshed.
pub const TOKEN_VALID_REASON: &str = "TokenValid";
/// [`BOOTSTRAP_TOKEN_AVAILABLE`] False: the Machine's Node joined and the token was deleted.
pub const NODE_JOINED_REASON: &str = "NodeJoined";
/// [`BOOTSTRAP_TOKEN_AVAILABLE`] False: the token reached `--token-max-lifetime` and is no longer
/// refreshed; it expires (instances created after that cannot join with it).
pub const TOKEN_LIFETIME_EXCEEDED_REASON: &str = "TokenLifetimeExceeded";
/// Certificates were generated or found.
pub const CERTIFICATES_AVAILABLE_REASON: &str = "CertificatesAvailable";
/// Generating or reading certificates failed.
pub const CERTIFICATES_NOT_AVAILABLE_REASON: &str = "CertificatesNotAvailable";
/// Deletion is in progress.
pub const DELETING_REASON: &str = "Deleting";
/// The object is not being deleted.
pub const NOT_DELETING_REASON: &str = "NotDeleting";
/// The `<cluster>-kubeconfig` Secret holds a kubeconfig the provider refuses to use (a command,
/// a file path, a proxy, disabled TLS verification, or a server other than the control plane's
/// endpoint); see docs/security.md.
pub const KUBECONFIG_REFUSED_REASON: &str = "KubeconfigRefused";
/// The hosting cluster of a control plane with `spec.remoteHostCluster` did not answer or refused
/// a request (the message says which); tried again soon.
pub const REMOTE_HOST_UNAVAILABLE_REASON: &str = "RemoteHostUnavailable";
/// The CAPI Cluster this control plane belongs to does not refer to it in `spec.controlPlaneRef`.
pub const NOT_REFERENCED_BY_CLUSTER_REASON: &str = "NotReferencedByCluster";
/// A CA Secret of an initialized control plane is missing; a new CA is not generated.
pub const CA_MISSING_REASON: &str = "CertificateAuthorityMissing";
/// An unexpected error; details in the message.
pub const INTERNAL_ERROR_REASON: &str = "InternalError";
/// The object the condition reports on was created (the `<cluster>-kubeconfig` Secret, a join
/// token).
pub const CREATED_REASON: &str = "Created";
/// Reason of a failure condition when the spec asks for something the provider does not do.
pub const UNSUPPORTED_FEATURE_REASON: &str = "UnsupportedFeature";
/// Reason of a failure condition when the spec uses a field this installation does not allow (an
/// `--allow-*` flag of the provider is off; docs/security.md, "Multi-tenant installs").
pub const FIELD_NOT_ALLOWED_REASON: &str = "FieldNotAllowed";
/// Reason of a failure condition when a referenced Secret has unusable content.
pub const INVALID_SECRET_REASON: &str = "InvalidSecret";
/// Reason of a failure condition when a child's name is taken by an object another controller owns.
pub const OBJECT_OWNED_BY_OTHER_REASON: &str = "ObjectOwnedByOther";
/// The API server refused a generated object (`Available=False`; the message is the server's).
pub const OBJECT_REJECTED_REASON: &str = "ObjectRejected";
/// Reason of `Available` False when the kubeconfig cannot be turned into a client.
pub const CLIENT_CREATION_FAILED_REASON: &str = "ClusterClientCreationFailed";
/// Reason of `Available` False when the workload API server does not answer.
pub const KUBE_SYSTEM_NOT_ACCESSIBLE_REASON: &str = "KubeSystemNamespaceNotAccessible";
/// Reason of `Available` False while the endpoint or the exposure is not known yet.
pub const WAITING_FOR_ENDPOINT_REASON: &str = "WaitingForEndpoint";
/// `DynamicConfigApplied` is True: the hosted API server accepted the pushed config.
pub const DYNAMIC_CONFIG_ACCEPTED_REASON: &str = "Accepted";
/// `DynamicConfigApplied` is False: the hosted API server refused the pushed config (the message
/// is its answer, e.g. a field k0s's `ClusterConfig` schema does not allow).
pub const DYNAMIC_CONFIG_REJECTED_REASON: &str = "DynamicConfigRejected";
/// `DynamicConfigApplied` is False: the push did not reach the hosted API server or got no
/// answer; tried again soon.
pub const DYNAMIC_CONFIG_PUSH_FAILED_REASON: &str = "DynamicConfigPushFailed";
/// `DynamicConfigApplied` is False: k0s has not installed its `ClusterConfig` CRD in the hosted
/// cluster yet.
pub const WAITING_FOR_CLUSTER_CONFIG_CRD_REASON: &str = "WaitingForClusterConfigCRD";
/// `DynamicConfigApplied` is False: `controlPlaneFlags` turn dynamic config off, so k0s reads only
/// its config file and every config change restarts the pods.
pub const DYNAMIC_CONFIG_DISABLED_REASON: &str = "DynamicConfigDisabled";
/// `DynamicConfigApplied` is False: a patch of the config ConfigMap left a k0s config that cannot
/// be read, so nothing is pushed and every change of it restarts the pods.
pub const DYNAMIC_CONFIG_UNREADABLE_REASON: &str = "DynamicConfigUnreadable";
