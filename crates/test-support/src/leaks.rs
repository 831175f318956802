//! Finding secret material where it must not be: the needles a Secret's key material yields
//! (private-key PEM lines, kubeconfig client keys and tokens, bootstrap-token secrets), and a
//! search of log lines, condition messages and events for them.

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use k8s_openapi::api::core::v1::Secret;

/// Shortest needle: shorter strings would match by chance.
const MIN_NEEDLE: usize = 16;

/// Strings that would show up if any key material of `secret` leaked: each line of each PEM
/// private key (also inside kubeconfigs, as `client-key-data`), kubeconfig user tokens,
/// `token-secret` of bootstrap-token Secrets, and the start of each such value's base64 (how it
/// would appear in a dumped object).
pub fn secret_needles(secret: &Secret) -> Vec<String> {
    let mut needles = Vec::new();
    for (key, value) in secret.data.iter().flatten() {
        let bytes = &value.0;
        if key == "token-secret" {
            needles.push(String::from_utf8_lossy(bytes).into_owned());
            continue;
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            continue;
        };
        let before = needles.len();
        private_key_lines(text, &mut needles);
        kubeconfig_credentials(text, &mut needles);
        if needles.len() > before {
            needles.push(BASE64_STANDARD.encode(bytes).chars().take(48).collect());
        }
    }
    needles.retain(|n| n.len() >= MIN_NEEDLE);
    needles.sort();
    needles.dedup();
    needles
}

/// Base64 body lines of every `PRIVATE KEY` block in `text`.
fn private_key_lines(text: &str, out: &mut Vec<String>) {
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with("-----BEGIN") && line.contains("PRIVATE KEY") {
            inside = true;
        } else if line.starts_with("-----END") {
            inside = false;
        } else if inside {
            out.push(line.to_owned());
        }
    }
}

/// `client-key-data` (and the key inside it) and `token` of every kubeconfig user.
fn kubeconfig_credentials(text: &str, out: &mut Vec<String>) {
    let Ok(doc) = serde_saphyr::from_str::<serde_json::Value>(text) else {
        return;
    };
    for user in doc
        .get("users")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
    {
        let user = &user["user"];
        if let Some(token) = user["token"].as_str() {
            out.push(token.to_owned());
        }
        if let Some(key) = user["client-key-data"].as_str() {
            out.push(key.chars().take(48).collect());
            if let Ok(pem) = BASE64_STANDARD.decode(key) {
                private_key_lines(&String::from_utf8_lossy(&pem), out);
            }
        }
    }
}

/// Each `(where, needle)` such that `needle` occurs in a haystack; `where` is the haystack's
/// label. Empty when nothing leaked.
pub fn find_leaks(
    haystacks: impl IntoIterator<Item = (String, String)>,
    needles: &[String],
) -> Vec<(String, &str)> {
    let mut found = Vec::new();
    for (label, text) in haystacks {
        for needle in needles {
            if text.contains(needle.as_str()) {
                found.push((label.clone(), needle.as_str()));
            }
        }
    }
    found
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn secret(entries: &[(&str, &str)]) -> Secret {
        Secret {
            data: Some(
                entries
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn needles_of_keys_kubeconfigs_and_tokens() {
        let key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n";
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token: abcdef.0123456789abcdef\n    client-key-data: {}\n",
            BASE64_STANDARD.encode(key)
        );
        let needles = secret_needles(&secret(&[
            ("tls.key", key),
            (
                "tls.crt",
                "-----BEGIN CERTIFICATE-----\nMIIBpublicpublicpublic\n-----END CERTIFICATE-----\n",
            ),
            ("value", &kubeconfig),
            ("token-secret", "0123456789abcdef"),
        ]));
        assert!(needles.contains(&"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC".to_owned()));
        assert!(needles.contains(&"abcdef.0123456789abcdef".to_owned()));
        assert!(needles.contains(&"0123456789abcdef".to_owned()));
        assert!(!needles.iter().any(|n| n.contains("public")), "{needles:?}");
        let leaks = find_leaks(
            [
                ("log".to_owned(), "token=abcdef.0123456789abcdef".to_owned()),
                ("event".to_owned(), "all fine".to_owned()),
            ],
            &needles,
        );
        assert_eq!(leaks.len(), 2, "{leaks:?}"); // the token and its secret half
        assert!(leaks.iter().all(|(at, _)| at == "log"));
    }
}
