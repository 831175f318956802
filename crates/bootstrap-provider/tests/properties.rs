//! Property tests of the bootstrap provider's pure pipeline (issue #12): validate → render on
//! arbitrary `K0sWorkerConfig` specs, and shell quoting checked against real shells.
//!
//! - validate never panics; whatever it accepts renders (rendering is total), to the same bytes
//!   every time, and the document reads back to the files and commands it was built from;
//! - every word we quote reads back unchanged through [`shell::split_words`] and through real
//!   `sh` and `bash`; the rendered `k0s install worker` and download commands parse back, in a
//!   real shell, to exactly the argv they were built from;
//! - a sample of rendered documents passes `cloud-init schema`;
//! - Windows' PowerShell forms parse (PowerShell's grammar for tree-sitter), are XML-neutral
//!   ASCII, and the files they write read back byte for byte.
//!
//! Cases per property: `PROPTEST_CASES` (256 by default); the properties that start a shell
//! per case run a 25th of that (at least 256). The full run is `make proptest` (docs/security.md, "Property tests").

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::process::Command;

use bootstrap_provider::cloudinit::CloudConfig;
use bootstrap_provider::commands::{self, Download, InstallArgs, InstallCommand};
use bootstrap_provider::powershell;
use bootstrap_provider::render::{Format, recover_join_token};
use bootstrap_provider::shell;
use bootstrap_provider::validate::{self, ContentRef, OwnerInfo, Resolved};
use k0smotron_api::bootstrap::v1beta2::{
    ContentSource, ContentSourceRef, File, K0sWorkerConfigSpec, Platform, ProvisionerType,
};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{FileFailurePersistence, TestRunner};
use serde_json::{Value, json};

mod common;

fn config() -> ProptestConfig {
    // `default()` reads PROPTEST_CASES; failures are saved next to this file and replayed.
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

/// Properties that start a process per case run fewer cases.
fn shell_config() -> ProptestConfig {
    let base = config();
    ProptestConfig {
        cases: (base.cases / 25).max(256),
        ..base
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Strings meant to hurt a shell or a YAML writer.
fn nasty() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "",
        " ",
        "'",
        "\"",
        "'\\''",
        "\\",
        "$(touch /tmp/pwned)",
        "`id`",
        "${HOME}",
        "$HOME",
        "a;b|c&d>e<f",
        "* ? [a]",
        "!bang",
        "~root",
        "#comment",
        "line\nbreak",
        "tab\there",
        "cr\rhere",
        "ünïcødé 名前 🚀",
        "\u{202e}rtl",
        "- item",
        ": colon",
        "key: value",
        "{a: b}",
        "[1, 2]",
        "null",
        "yes",
        "no",
        "0644",
        "0x1F",
        "1e3",
        "&anchor",
        "*alias",
        "!!binary",
        "%TAG",
        "---",
        "...",
        "|",
        ">",
        "\u{feff}bom",
        "\u{85}nel",
        "\u{2028}ls",
    ])
    .prop_map(String::from)
}

/// Any string without NUL (which no argv, file name or YAML scalar can hold as is... except
/// YAML; NUL is covered by [`any_text`]).
fn text_no_nul() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "\\PC{0,24}",
        2 => any::<String>().prop_map(|s| s.replace('\0', "")),
        3 => nasty(),
        2 => vec(nasty(), 1..4).prop_map(|parts| parts.concat()),
    ]
}

/// Any string at all.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![5 => text_no_nul(), 1 => any::<String>()]
}

fn abs_path() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "/[a-z0-9][-a-z0-9_./]{0,30}",
        2 => text_no_nul().prop_map(|s| format!("/{s}")),
        1 => any_text(),
    ]
}

fn version() -> impl Strategy<Value = Option<String>> {
    option::of(prop_oneof![
        8 => (1u32..3, 0u32..40, 0u32..20, option::of(0u32..4)).prop_map(|(a, b, c, k)| match k {
            Some(k) => format!("v{a}.{b}.{c}+k0s.{k}"),
            None => format!("v{a}.{b}.{c}"),
        }),
        1 => Just("v1.30.0-k0s.0".to_string()),
        1 => "v[0-9]{1,25}\\.[0-9]{1,3}\\.[0-9]{1,3}",
        1 => any_text(),
    ])
}

fn content_source() -> impl Strategy<Value = ContentSource> {
    let r = ("[a-z]{1,8}", "[a-z.]{1,8}").prop_map(|(name, key)| ContentSourceRef { name, key });
    prop_oneof![
        4 => r.clone().prop_map(|r| ContentSource { secret_ref: Some(r), config_map_ref: None }),
        4 => r.clone().prop_map(|r| ContentSource { secret_ref: None, config_map_ref: Some(r) }),
        1 => Just(ContentSource::default()),
        1 => (r.clone(), r).prop_map(|(a, b)| ContentSource { secret_ref: Some(a), config_map_ref: Some(b) }),
    ]
}

fn file() -> impl Strategy<Value = File> {
    (
        abs_path(),
        prop_oneof![
            8 => any_text().prop_map(|c| (Some(c), None)),
            4 => content_source().prop_map(|s| (None, Some(s))),
            1 => Just((None, None)),
        ],
        option::of(prop_oneof![
            6 => "0?[0-7]{3,4}",
            1 => any_text(),
        ]),
    )
        .prop_map(|(path, (content, content_from), permissions)| File {
            path,
            content,
            permissions,
            content_from,
        })
}

/// A kubelet or k0s argument entry, as a user writes it (quotes included).
fn arg_entry() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "--[a-z][-a-z]{0,12}(=[-a-z0-9,.]{0,10})?",
        2 => text_no_nul().prop_map(|v| format!("--kubelet-extra-args={}", shell::quote(&v))),
        1 => Just("--kubelet-extra-args".to_string()),
        1 => vec(text_no_nul(), 0..4).prop_map(|ws| ws.iter().map(|w| shell::quote(w)).collect::<Vec<_>>().join(" ")),
        1 => any_text(),
    ]
}

fn download_url() -> impl Strategy<Value = Option<String>> {
    option::of(prop_oneof![
        Just("https://get.k0s.sh".to_string()),
        "https://[a-z]{1,10}\\.example\\.com/[a-z0-9/._-]{0,20}",
        "oci://registry\\.example\\.com/[a-z]{1,8}@sha256:[0-9a-f]{8}",
        text_no_nul().prop_map(|s| format!("https://h/{s}")),
        any_text(),
    ])
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any_text().prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..3).prop_map(Value::Array),
            btree_map(any_text(), inner, 0..3).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// `provisioner.customUserDataRef` content: cloud-config documents of many shapes, and garbage.
fn custom_user_data() -> impl Strategy<Value = Vec<u8>> {
    let file = || {
        (abs_path(), any_text(), option::of("0[0-7]{3}")).prop_map(
            |(path, content, permissions)| {
                let mut f = json!({"path": path, "content": content});
                if let Some(p) = permissions {
                    f["permissions"] = json!(p);
                }
                f
            },
        )
    };
    let command = || {
        prop_oneof![
            any_text().prop_map(Value::String),
            vec(text_no_nul(), 1..4).prop_map(|argv| json!(argv)),
        ]
    };
    let document = || {
        (
            vec(file(), 0..3),
            vec(command(), 0..3),
            btree_map(
                prop::sample::select(vec![
                    "packages", "users", "bootcmd", "ntp", "hostname", "timezone",
                ])
                .prop_map(String::from),
                json_value(),
                0..2,
            ),
        )
            .prop_map(|(write_files, runcmd, other)| {
                let mut doc: serde_json::Map<String, Value> = other.into_iter().collect();
                if !write_files.is_empty() {
                    doc.insert("write_files".into(), json!(write_files));
                }
                if !runcmd.is_empty() {
                    doc.insert("runcmd".into(), json!(runcmd));
                }
                Value::Object(doc)
            })
    };
    prop_oneof![
        6 => document().prop_filter_map("YAML", |d| serde_saphyr::to_string(&d).ok().map(|y| format!("#cloud-config\n{y}").into_bytes())),
        2 => document().prop_map(|d| d.to_string().into_bytes()),
        1 => any_text().prop_map(String::into_bytes),
        1 => any::<Vec<u8>>(),
    ]
}

fn resolved() -> impl Strategy<Value = Resolved> {
    prop_oneof![
        8 => prop_oneof![any_text().prop_map(String::into_bytes), any::<Vec<u8>>()].prop_map(Resolved::Found),
        1 => Just(Resolved::ObjectMissing),
        1 => Just(Resolved::KeyMissing),
    ]
}

fn spec() -> impl Strategy<Value = K0sWorkerConfigSpec> {
    let provisioner = (
        prop_oneof![
            20 => Just(ProvisionerType::CloudConfig),
            1 => Just(ProvisionerType::Ignition),
            2 => Just(ProvisionerType::Powershell),
            2 => Just(ProvisionerType::PowershellXml)
        ],
        prop_oneof![20 => Just(Platform::Linux), 1 => Just(Platform::Windows)],
        option::weighted(0.3, content_source()),
        // The PowerShell formats go with Windows but for a few mismatches (refused).
        prop::bool::weighted(0.9),
    );
    (
        provisioner,
        prop_oneof![6 => Just("/usr/local/bin".to_string()), 2 => abs_path(), 1 => Just(String::new())],
        version(),
        any::<bool>(),
        vec(file(), 0..4),
        vec(arg_entry(), 0..4),
        vec(any_text(), 0..4),
        vec(any_text(), 0..4),
        prop::bool::weighted(0.1),
        download_url(),
        option::of(prop_oneof![3 => abs_path(), 1 => Just(String::new())]),
    )
        .prop_map(
            |(
                (type_, platform, custom, suit_platform),
                k0s_install_dir,
                version,
                use_system_hostname,
                files,
                args,
                pre_k0s_commands,
                post_k0s_commands,
                pre_installed_k0s,
                download_url,
                working_dir,
            )| {
                let mut spec = K0sWorkerConfigSpec {
                    k0s_install_dir,
                    version,
                    use_system_hostname,
                    files,
                    args,
                    pre_k0s_commands,
                    post_k0s_commands,
                    pre_installed_k0s,
                    download_url,
                    working_dir,
                    ..K0sWorkerConfigSpec::default()
                };
                spec.provisioner.type_ = type_;
                spec.provisioner.platform = platform;
                if suit_platform
                    && matches!(type_, ProvisionerType::Powershell | ProvisionerType::PowershellXml)
                {
                    spec.provisioner.platform = Platform::Windows;
                }
                spec.provisioner.custom_user_data_ref = custom;
                spec
            },
        )
}

/// A whole case: the spec, the owner, what `contentFrom` and the custom user data resolve to,
/// and the join token.
#[derive(Debug, Clone)]
struct Case {
    spec: K0sWorkerConfigSpec,
    owner_name: String,
    owner_version: Option<String>,
    is_pool: bool,
    contents: BTreeMap<ContentRef, Resolved>,
    fallback: Resolved,
    custom: Option<Vec<u8>>,
    token: String,
}

impl Case {
    fn resolve(&self, r: &ContentRef) -> Resolved {
        let custom = self
            .spec
            .provisioner
            .custom_user_data_ref
            .as_ref()
            .and_then(ContentRef::from_source);
        if custom.as_ref() == Some(r)
            && let Some(bytes) = &self.custom
        {
            return Resolved::Found(bytes.clone());
        }
        self.contents
            .get(r)
            .cloned()
            .unwrap_or_else(|| self.fallback.clone())
    }

    fn validate(
        &self,
    ) -> Result<bootstrap_provider::render::WorkerBootstrap, validate::ValidationError> {
        let owner = OwnerInfo {
            name: &self.owner_name,
            version: self.owner_version.as_deref(),
            is_pool: self.is_pool,
        };
        validate::validate(&self.spec, &owner, |r| self.resolve(r))
    }
}

fn case() -> impl Strategy<Value = Case> {
    (
        spec(),
        prop_oneof![4 => "[a-z][-a-z0-9]{0,30}", 1 => text_no_nul()],
        version(),
        any::<bool>(),
        btree_map(
            prop_oneof![
                ("[a-z]{1,8}", "[a-z.]{1,8}")
                    .prop_map(|(name, key)| ContentRef::Secret { name, key }),
                ("[a-z]{1,8}", "[a-z.]{1,8}")
                    .prop_map(|(name, key)| ContentRef::ConfigMap { name, key }),
            ],
            resolved(),
            0..3,
        ),
        prop_oneof![6 => any_text().prop_map(|s| Resolved::Found(s.into_bytes())), 1 => resolved()],
        option::weighted(0.9, custom_user_data()),
        prop_oneof![4 => "[A-Za-z0-9+/]{20,80}={0,2}", 1 => any_text()],
    )
        .prop_map(
            |(spec, owner_name, owner_version, is_pool, contents, fallback, custom, token)| Case {
                spec,
                owner_name,
                owner_version,
                is_pool,
                contents,
                fallback,
                custom,
                token,
            },
        )
}

// ---------------------------------------------------------------------------------------------
// Shell helpers
// ---------------------------------------------------------------------------------------------

/// The words `shell` receives for `printf '%s\0' <line>`.
fn argv_through(shell: &str, line: &str) -> Vec<String> {
    let out = Command::new(shell)
        .arg("-c")
        .arg(format!("printf '%s\\0' {line}"))
        .output()
        .unwrap_or_else(|e| panic!("run {shell}: {e}"));
    assert!(out.status.success(), "{shell} failed on {line:?}: {out:?}");
    let mut words: Vec<String> = String::from_utf8(out.stdout)
        .expect("printf echoes the UTF-8 it was given")
        .split('\0')
        .map(str::to_string)
        .collect();
    // After the last NUL.
    words.pop();
    words
}

/// The environment `VARS...` assignments give a command, through `shell`.
fn env_through(shell: &str, assignments: &str) -> BTreeMap<String, String> {
    let out = Command::new(shell)
        .arg("-c")
        .arg(format!("{assignments} env -0"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap_or_else(|e| panic!("run {shell}: {e}"));
    assert!(
        out.status.success(),
        "{shell} failed on {assignments:?}: {out:?}"
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .split('\0')
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

const SHELLS: [&str; 2] = ["sh", "bash"];

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// validate never panics; what it accepts renders (rendering cannot fail), deterministically;
    /// the join token reads back out of the data; without custom user data the document parses
    /// back to exactly the files and commands it was rendered from.
    #[test]
    fn validate_and_render_are_total_deterministic_and_read_back(case in case()) {
        let Ok(bootstrap) = case.validate() else { return Ok(()) };
        let first = bootstrap.render(&case.token);
        prop_assert!(first.is_ok(), "validated bootstrap failed to render: {:?}", first.as_ref().err());
        let first = first.unwrap();
        prop_assert_eq!(&first, &bootstrap.render(&case.token).unwrap());
        prop_assert_eq!(&first, &case.validate().unwrap().render(&case.token).unwrap());
        prop_assert_eq!(recover_join_token(&first, &bootstrap.token_path).unwrap(), case.token.clone());
        if matches!(bootstrap.format, Format::PowerShell | Format::PowerShellXml) {
            let script = first
                .strip_prefix("<powershell>")
                .and_then(|s| s.strip_suffix("</powershell>\n"))
                .unwrap_or(&first);
            prop_assert!(powershell::is_literal_safe(script), "not XML-neutral ASCII:\n{}", script);
            prop_assert_eq!(common::powershell_syntax_error(script), None);
            let ours = bootstrap.cloud_config(&case.token).write_files;
            let files = CloudConfig::files_in_user_data(&first).unwrap();
            prop_assert_eq!(files.len(), ours.len());
            for (back, ours) in files.iter().zip(&ours) {
                prop_assert_eq!(&back.path, &ours.path);
                prop_assert_eq!(back.decoded_content().unwrap(), ours.decoded_content().unwrap());
            }
            let install = String::from_utf8(files.last().unwrap().decoded_content().unwrap()).unwrap();
            prop_assert_eq!(common::powershell_syntax_error(&install), None);
        } else if bootstrap.custom_user_data.is_none() {
            prop_assert_eq!(CloudConfig::from_user_data(&first).unwrap(), bootstrap.cloud_config(&case.token));
        } else {
            // Our files come first, byte for byte; our last command (the CAPI sentinel, on
            // Windows the install script that writes it) is still the last.
            let files = CloudConfig::files_in_user_data(&first).unwrap();
            let ours = bootstrap.cloud_config(&case.token).write_files;
            prop_assert!(files.len() >= ours.len());
            prop_assert_eq!(&files[..ours.len()], &ours[..]);
            let body: Value = serde_saphyr::from_str(first.strip_prefix("#cloud-config\n").unwrap()).unwrap();
            let last = body["runcmd"].as_array().and_then(|c| c.last()).cloned();
            let our_last = bootstrap.cloud_config(&case.token).runcmd.last().cloned();
            prop_assert_eq!(last, our_last.map(Value::String));
        }
    }

    /// Every quoted word splits back to itself with our own splitter (words of one line: no
    /// control characters but tab, which `split_words` refuses).
    #[test]
    fn quoted_words_split_back(words in vec(text_no_nul().prop_map(|w| w.chars().filter(|c| !c.is_control() || *c == '\t').collect::<String>()), 0..6)) {
        let line = words.iter().map(|w| shell::quote(w)).collect::<Vec<_>>().join(" ");
        prop_assert_eq!(shell::split_words(&line).unwrap(), words.clone());
        let line = words.iter().map(|w| shell::always_quote(w)).collect::<Vec<_>>().join(" ");
        prop_assert_eq!(shell::split_words(&line).unwrap(), words);
    }

    /// `split_install_args` never panics and keeps every word it does not merge.
    #[test]
    fn install_args_split_without_panic(entries in vec(arg_entry(), 0..5)) {
        if let Ok(args) = commands::split_install_args(&entries) {
            prop_assert!(args.args.iter().all(|a| a != "--kubelet-extra-args"));
        }
    }
}

proptest! {
    #![proptest_config(shell_config())]

    /// Real shells read every quoted word back unchanged.
    #[test]
    fn quoted_words_round_trip_through_real_shells(words in vec(text_no_nul(), 1..8)) {
        for sh in SHELLS {
            let quoted = words.iter().map(|w| shell::quote(w)).collect::<Vec<_>>().join(" ");
            prop_assert_eq!(&argv_through(sh, &quoted), &words, "{} with quote", sh);
            let quoted = words.iter().map(|w| shell::always_quote(w)).collect::<Vec<_>>().join(" ");
            prop_assert_eq!(&argv_through(sh, &quoted), &words, "{} with always_quote", sh);
        }
    }

    /// The rendered `k0s install worker` command is, to a real shell, exactly the argv it was
    /// built from, whatever the directory, token path, Machine name and arguments hold.
    #[test]
    fn install_command_parses_back_to_its_argv(
        install_dir in prop_oneof![Just("/usr/local/bin".to_string()), text_no_nul()],
        token_path in prop_oneof![Just("/etc/k0s.token".to_string()), text_no_nul()],
        machine_name in prop_oneof![2 => "[a-z][-a-z0-9]{0,20}", 1 => text_no_nul()],
        use_system_hostname: bool,
        args in vec(text_no_nul(), 0..4),
        kubelet_extra_args in vec(text_no_nul(), 0..3),
    ) {
        let install_args = InstallArgs { args: args.clone(), kubelet_extra_args: kubelet_extra_args.clone() };
        let line = InstallCommand {
            install_dir: &install_dir,
            token_path: &token_path,
            machine_name: &machine_name,
            use_system_hostname,
            args: &install_args,
        }
        .render();
        let mut expected = vec![
            commands::join_path(&install_dir, "k0s"),
            "install".into(),
            "worker".into(),
            "--token-file".into(),
            token_path.clone(),
            format!("--labels={}={machine_name}", commands::MACHINE_NAME_NODE_LABEL),
        ];
        expected.extend(args);
        let mut kubelet = Vec::new();
        if !use_system_hostname {
            kubelet.push(format!("--hostname-override={machine_name}"));
        }
        kubelet.extend(kubelet_extra_args);
        if !kubelet.is_empty() {
            expected.push(format!("--kubelet-extra-args={}", kubelet.join(" ")));
        }
        for sh in SHELLS {
            prop_assert_eq!(&argv_through(sh, &line), &expected, "{}: {}", sh, line);
        }
    }

    /// The download commands pass the URL, the reference, the install directory and the version
    /// to the shell as the exact strings they were built from.
    #[test]
    fn download_commands_parse_back(
        install_dir in prop_oneof![Just("/usr/local/bin".to_string()), text_no_nul()],
        url_tail in text_no_nul(),
        version in option::of(text_no_nul()),
    ) {
        let binary = commands::join_path(&install_dir, "k0s");
        let url = format!("https://h/{url_tail}");
        let http = commands::download_commands(&Download::Http { url: url.clone() }, &install_dir);
        let oci = commands::download_commands(&Download::Oci { reference: url_tail.clone() }, &install_dir);
        let script = commands::download_commands(&Download::Script { version: version.clone() }, &install_dir);
        let prefix = format!("curl -sSfL --retry 5 {} | ", commands::GET_K0S_SCRIPT_URL);
        let assignments = script[0].strip_prefix(&prefix).and_then(|s| s.strip_suffix(" sh"));
        prop_assert!(assignments.is_some(), "unexpected script command {:?}", script[0]);
        for sh in SHELLS {
            let as_strings = |v: &[&str]| v.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
            prop_assert_eq!(argv_through(sh, &http[0]), as_strings(&["curl", "-sSfL", "--retry", "5", &url, "-o", &binary]));
            prop_assert_eq!(argv_through(sh, &http[1]), as_strings(&["chmod", "+x", &binary]));
            prop_assert_eq!(argv_through(sh, &oci[1]), as_strings(&["oras", "blob", "fetch", "--output", &binary, &url_tail]));
            let env = env_through(sh, assignments.unwrap());
            prop_assert_eq!(env.get("K0S_INSTALL_PATH"), Some(&install_dir));
            prop_assert_eq!(env.get("K0S_VERSION"), version.as_ref());
        }
    }
}

/// A sample of rendered documents passes `cloud-init schema` (`PROP_CLOUD_INIT_CASES`, 12 by
/// default: each check starts cloud-init, over a second).
#[test]
fn rendered_samples_pass_cloud_init_schema() {
    let total: usize = std::env::var("PROP_CLOUD_INIT_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let mut runner = TestRunner::deterministic();
    let strategy = case();
    let (mut checked, mut tried) = (0, 0);
    while checked < total {
        tried += 1;
        assert!(
            tried < total * 50,
            "only {checked} of {tried} generated configs validate"
        );
        let mut case = strategy.new_tree(&mut runner).unwrap().current();
        // The user's own cloud-config is passed through as written; only ours is checked here.
        case.spec.provisioner.custom_user_data_ref = None;
        let Ok(bootstrap) = case.validate() else {
            continue;
        };
        // The other formats have their own checks (Ignition's validator, PowerShell's grammar).
        if bootstrap.format != Format::CloudConfig {
            continue;
        }
        let data = bootstrap.render(&case.token).unwrap();
        common::assert_cloud_init_accepts(&format!("prop-{checked}"), &data);
        checked += 1;
    }
    eprintln!("{checked} rendered documents passed cloud-init schema ({tried} configs generated)");
}
