//! `bootstrap.cluster.x-k8s.io`: `K0sWorkerConfig` and its template.

use super::{ConversionError, Versions};
use crate::bootstrap::{v1beta1, v1beta2};

/// v1beta2 → v1beta1 spec, as upstream: `ignition` only for the ignition format. Unlike
/// upstream, `customUserDataRef` is carried over (upstream drops it on the way to v1beta1,
/// although v1beta1 has the field). The platform and the PowerShell formats have no v1beta1
/// form: the conversion-data annotation carries them.
fn spec_to_spoke(hub: v1beta2::K0sWorkerConfigSpec) -> v1beta1::K0sWorkerConfigSpec {
    let v1beta2::K0sWorkerConfigSpec {
        provisioner,
        k0s_install_dir,
        version,
        use_system_hostname,
        files,
        args,
        pre_k0s_commands,
        post_k0s_commands,
        pre_installed_k0s,
        download_url,
        secret_metadata,
        working_dir,
    } = hub;
    v1beta1::K0sWorkerConfigSpec {
        ignition: match provisioner.type_ {
            v1beta2::ProvisionerType::Ignition => provisioner.ignition,
            _ => None,
        },
        k0s_install_dir,
        version,
        use_system_hostname,
        files,
        args,
        pre_start_commands: pre_k0s_commands,
        post_start_commands: post_k0s_commands,
        pre_installed_k0s,
        download_url,
        custom_user_data_ref: provisioner.custom_user_data_ref,
        secret_metadata,
        working_dir,
    }
}

/// v1beta1 → v1beta2 spec, as upstream: `ignition` set means the ignition format, otherwise
/// cloud-config; the platform is Linux.
fn spec_to_hub(spoke: v1beta1::K0sWorkerConfigSpec) -> v1beta2::K0sWorkerConfigSpec {
    let v1beta1::K0sWorkerConfigSpec {
        ignition,
        k0s_install_dir,
        version,
        use_system_hostname,
        files,
        args,
        pre_start_commands,
        post_start_commands,
        pre_installed_k0s,
        download_url,
        custom_user_data_ref,
        secret_metadata,
        working_dir,
    } = spoke;
    let type_ = match ignition {
        Some(_) => v1beta2::ProvisionerType::Ignition,
        None => v1beta2::ProvisionerType::CloudConfig,
    };
    v1beta2::K0sWorkerConfigSpec {
        provisioner: v1beta2::ProvisionerSpec {
            type_,
            platform: v1beta2::Platform::Linux,
            ignition,
            custom_user_data_ref,
        },
        k0s_install_dir,
        version,
        use_system_hostname,
        files,
        args,
        pre_k0s_commands: pre_start_commands,
        post_k0s_commands: post_start_commands,
        pre_installed_k0s,
        download_url,
        secret_metadata,
        working_dir,
    }
}

pub(crate) struct WorkerConfigVersions;

impl Versions for WorkerConfigVersions {
    const KIND: &'static str = "K0sWorkerConfig";
    type Hub = v1beta2::K0sWorkerConfig;
    type Spoke = v1beta1::K0sWorkerConfig;

    fn to_spoke(
        hub: v1beta2::K0sWorkerConfig,
    ) -> Result<v1beta1::K0sWorkerConfig, ConversionError> {
        // `observedGeneration` has no v1beta1 field: the conversion-data annotation carries it.
        let status = hub.status.map(|status| v1beta1::K0sWorkerConfigStatus {
            ready: status
                .initialization
                .and_then(|init| init.data_secret_created)
                .unwrap_or(false),
            data_secret_name: status.data_secret_name,
            conditions: status.conditions,
        });
        Ok(v1beta1::K0sWorkerConfig {
            metadata: hub.metadata,
            spec: spec_to_spoke(hub.spec),
            status,
        })
    }

    fn to_hub(
        spoke: v1beta1::K0sWorkerConfig,
    ) -> Result<v1beta2::K0sWorkerConfig, ConversionError> {
        let status = spoke.status.map(|status| v1beta2::K0sWorkerConfigStatus {
            data_secret_name: status.data_secret_name,
            initialization: Some(v1beta2::BootstrapInitialization {
                data_secret_created: Some(status.ready),
            }),
            conditions: status.conditions,
            observed_generation: None,
        });
        Ok(v1beta2::K0sWorkerConfig {
            metadata: spoke.metadata,
            spec: spec_to_hub(spoke.spec),
            status,
        })
    }
}

pub(crate) struct WorkerConfigTemplateVersions;

impl Versions for WorkerConfigTemplateVersions {
    const KIND: &'static str = "K0sWorkerConfigTemplate";
    type Hub = v1beta2::K0sWorkerConfigTemplate;
    type Spoke = v1beta1::K0sWorkerConfigTemplate;

    fn to_spoke(
        hub: v1beta2::K0sWorkerConfigTemplate,
    ) -> Result<v1beta1::K0sWorkerConfigTemplate, ConversionError> {
        let template = hub.spec.template;
        Ok(v1beta1::K0sWorkerConfigTemplate {
            metadata: hub.metadata,
            spec: v1beta1::K0sWorkerConfigTemplateSpec {
                template: v1beta1::K0sWorkerConfigTemplateResource {
                    metadata: template.metadata,
                    spec: spec_to_spoke(template.spec),
                },
            },
        })
    }

    fn to_hub(
        spoke: v1beta1::K0sWorkerConfigTemplate,
    ) -> Result<v1beta2::K0sWorkerConfigTemplate, ConversionError> {
        let template = spoke.spec.template;
        Ok(v1beta2::K0sWorkerConfigTemplate {
            metadata: spoke.metadata,
            spec: v1beta2::K0sWorkerConfigTemplateSpec {
                template: v1beta2::K0sWorkerConfigTemplateResource {
                    metadata: template.metadata,
                    spec: spec_to_hub(template.spec),
                },
            },
        })
    }
}
