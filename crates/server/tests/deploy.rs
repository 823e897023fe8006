//! The deployment files under `deploy/` (Dockerfile, Compose, Kubernetes) and the README's
//! configuration table, checked against the server's real settings so that neither can drift
//! from the code; and `rkflow serve` refusing invalid settings with a message naming them.
//!
//! No container engine or cluster runs here: the files are parsed and their parts compared.

use clap::CommandFactory as _;
use rkflow_server::config::Cli;
use serde::Deserialize as _;
use serde_yaml::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rkflow");

/// Settings read with `std::env::var` (not through clap); the source scan must find them.
const DIRECT_SETTINGS: [&str; 3] = ["RKFLOW_LOG", "RKFLOW_LOG_FORMAT", "RKFLOW_ADMIN_PASSWORD"];

/// The crates that make up the product (where settings may be read).
const PRODUCT_SOURCES: [&str; 5] = [
    "crates/server/src",
    "crates/api/src",
    "crates/store/src",
    "crates/domain/src",
    "migrations/src",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

/// Files under `dir` (relative to the repository root), recursively, sorted.
fn files_under(dir: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir)
            .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root().join(dir), &mut out);
    out.sort();
    out
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned()
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|ext| ext.to_str()),
        Some("yaml" | "yml")
    )
}

// ---------------------------------------------------------------------------------------------
// The real settings
// ---------------------------------------------------------------------------------------------

/// A setting clap knows: its flag and its default.
#[derive(Debug, Clone)]
struct ClapSetting {
    long: Option<String>,
    default: Option<String>,
}

/// Every environment variable clap reads, over all subcommands.
fn clap_settings() -> BTreeMap<String, ClapSetting> {
    fn walk(command: &clap::Command, out: &mut BTreeMap<String, ClapSetting>) {
        for arg in command.get_arguments() {
            if let Some(env) = arg.get_env() {
                out.insert(
                    env.to_string_lossy().into_owned(),
                    ClapSetting {
                        long: arg.get_long().map(str::to_string),
                        default: arg
                            .get_default_values()
                            .first()
                            .map(|value| value.to_string_lossy().into_owned()),
                    },
                );
            }
        }
        for sub in command.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out = BTreeMap::new();
    walk(&Cli::command(), &mut out);
    assert!(
        out.contains_key("RKFLOW_DATABASE_URL") && out.contains_key("RKFLOW_LISTEN"),
        "the clap walk found too little: {out:?}"
    );
    out
}

/// The environment variables of `serve` (clap), with their flags.
fn serve_settings() -> BTreeMap<String, ClapSetting> {
    let command = Cli::command();
    let serve = command
        .get_subcommands()
        .find(|sub| sub.get_name() == "serve")
        .expect("a serve command");
    serve
        .get_arguments()
        .filter_map(|arg| {
            let env = arg.get_env()?.to_string_lossy().into_owned();
            Some((
                env,
                ClapSetting {
                    long: arg.get_long().map(str::to_string),
                    default: None,
                },
            ))
        })
        .collect()
}

/// `RKFLOW_*` names the product reads directly from the environment (`env::var`,
/// `env::var_os`, tracing's `try_from_env`), found in its sources.
fn direct_settings() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for dir in PRODUCT_SOURCES {
        for path in files_under(dir) {
            if path.extension().and_then(|ext| ext.to_str()) != Some("rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a source file");
            for call in ["env::var(\"", "env::var_os(\"", "from_env(\""] {
                for (at, _) in text.match_indices(call) {
                    let rest = &text[at + call.len()..];
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    if name.starts_with("RKFLOW_") && !name.starts_with("RKFLOW_TEST_") {
                        found.insert(name);
                    }
                }
            }
        }
    }
    for name in DIRECT_SETTINGS {
        assert!(
            found.contains(name),
            "{name} is no longer read with env::var; update DIRECT_SETTINGS (found {found:?})"
        );
    }
    found
}

/// Every real setting: clap's and the directly read ones.
fn all_settings() -> BTreeSet<String> {
    let mut all: BTreeSet<String> = clap_settings().into_keys().collect();
    all.extend(direct_settings());
    all
}

/// The `RKFLOW_*` names a text mentions (a bare prefix such as `RKFLOW_*` is not a name).
fn names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("RKFLOW_") {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if !name.ends_with('_') {
            names.insert(name);
        }
    }
    names
}

/// Fails listing every name of `names` that is not a real setting.
fn assert_real(names: &BTreeSet<String>, settings: &BTreeSet<String>, source: &str) {
    let unknown: Vec<&String> = names.difference(settings).collect();
    assert!(
        unknown.is_empty(),
        "{source} uses {unknown:?}, which the server does not read; real settings: {settings:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// YAML helpers
// ---------------------------------------------------------------------------------------------

/// Every document of a YAML file (a file may hold several, separated by `---`).
fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| {
            Value::deserialize(document)
                .unwrap_or_else(|err| panic!("{} is not valid YAML: {err}", path.display()))
        })
        .filter(|document| !document.is_null())
        .collect()
}

/// The value at a dotted path (`spec.template.spec.containers.0.ports`), if any.
fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |value, key| match value {
        Value::Sequence(items) => items.get(key.parse::<usize>().ok()?),
        Value::Mapping(_) => value.get(key),
        _ => None,
    })
}

/// A scalar at a path as text (strings, numbers and booleans alike).
fn text_at(value: &Value, path: &str) -> Option<String> {
    match at(value, path)? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn seq_at<'a>(value: &'a Value, path: &str) -> &'a [Value] {
    at(value, path)
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// A mapping of scalars as text (labels, ConfigMap data, Compose environment as a mapping or
/// a list of `NAME=value`).
fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    let scalar = |value: &Value| match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Null => String::new(),
        other => panic!("not a scalar: {other:?}"),
    };
    match value {
        Some(Value::Mapping(mapping)) => mapping
            .iter()
            .map(|(key, value)| (scalar(key), scalar(value)))
            .collect(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|item| {
                let item = scalar(item);
                match item.split_once('=') {
                    Some((name, value)) => (name.to_string(), value.to_string()),
                    None => (item, String::new()),
                }
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// A list of strings (a command), or one string as a one-element list.
fn string_list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                other => panic!("not a string: {other:?}"),
            })
            .collect(),
        Some(Value::String(text)) => text.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// The port of a listen address (`0.0.0.0:8080` → 8080), checking that it is an address on
/// every interface (a container must not listen on its loopback only).
fn listen_port(listen: &str, source: &str) -> u16 {
    let address: std::net::SocketAddr = listen
        .parse()
        .unwrap_or_else(|err| panic!("{source}: RKFLOW_LISTEN `{listen}` is no address: {err}"));
    assert!(
        address.ip().is_unspecified(),
        "{source}: RKFLOW_LISTEN `{listen}` must listen on every interface (0.0.0.0 or [::]) in a container"
    );
    address.port()
}

// ---------------------------------------------------------------------------------------------
// Every YAML file parses; every RKFLOW_* name in deploy/ is real
// ---------------------------------------------------------------------------------------------

#[test]
fn every_yaml_file_under_deploy_parses() {
    let files: Vec<PathBuf> = files_under("deploy")
        .into_iter()
        .filter(|path| is_yaml(path))
        .collect();
    assert!(
        files.len() >= 8,
        "expected compose.yaml and the Kubernetes manifests, found {files:?}"
    );
    for path in files {
        let documents = yaml_documents(&path);
        assert!(!documents.is_empty(), "{} is empty", path.display());
        for document in &documents {
            assert!(
                document.is_mapping(),
                "{}: a document is not a mapping",
                path.display()
            );
        }
    }
}

#[test]
fn every_setting_named_in_deploy_is_real() {
    let settings = all_settings();
    let mut checked = 0;
    for path in files_under("deploy") {
        let name = file_name(&path);
        if !(is_yaml(&path) || name == "Dockerfile" || name == "README.md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a deploy file");
        assert_real(&names_in(&text), &settings, &path.display().to_string());
        checked += 1;
    }
    assert!(checked >= 10, "too few deploy files checked: {checked}");
}

// ---------------------------------------------------------------------------------------------
// Kubernetes
// ---------------------------------------------------------------------------------------------

/// The manifests of deploy/k8s: file name → documents.
fn manifests() -> BTreeMap<String, Vec<Value>> {
    files_under("deploy/k8s")
        .into_iter()
        .filter(|path| is_yaml(path))
        .map(|path| (file_name(&path), yaml_documents(&path)))
        .collect()
}

/// The one document of this kind among the manifests, and its file.
fn one_of_kind<'a>(
    manifests: &'a BTreeMap<String, Vec<Value>>,
    kind: &str,
) -> (&'a str, &'a Value) {
    let found: Vec<(&str, &Value)> = manifests
        .iter()
        .flat_map(|(file, documents)| documents.iter().map(move |doc| (file.as_str(), doc)))
        .filter(|(_, doc)| text_at(doc, "kind").as_deref() == Some(kind))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {kind} in deploy/k8s, found {}",
        found.len()
    );
    found[0]
}

fn name_of(document: &Value) -> String {
    text_at(document, "metadata.name").expect("metadata.name")
}

/// Whether every label of `selector` is among `labels` (and the selector selects something).
fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty()
        && selector
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
}

/// Checks a pod's environment: every name a real setting, every ConfigMap and Secret reference
/// to the ConfigMap and Secret of deploy/k8s (and keys they have), the database URL from the
/// Secret. Returns the names the pod gets.
fn check_pod_environment(
    pod: &Value,
    source: &str,
    configmap: &Value,
    secret: &Value,
    settings: &BTreeSet<String>,
) -> BTreeSet<String> {
    let configmap_name = name_of(configmap);
    let configmap_data = string_map(at(configmap, "data"));
    let secret_name = name_of(secret);
    let mut secret_keys = string_map(at(secret, "stringData"));
    secret_keys.extend(string_map(at(secret, "data")));
    let mut names = BTreeSet::new();
    let containers = seq_at(pod, "containers");
    assert!(!containers.is_empty(), "{source}: no containers");
    for container in containers {
        for from in seq_at(container, "envFrom") {
            if let Some(name) = text_at(from, "configMapRef.name") {
                assert_eq!(
                    name, configmap_name,
                    "{source}: envFrom an unknown ConfigMap"
                );
                names.extend(configmap_data.keys().cloned());
            }
            if let Some(name) = text_at(from, "secretRef.name") {
                assert_eq!(name, secret_name, "{source}: envFrom an unknown Secret");
                names.extend(secret_keys.keys().cloned());
            }
        }
        for variable in seq_at(container, "env") {
            let name = text_at(variable, "name").expect("env name");
            if let Some(reference) = at(variable, "valueFrom.secretKeyRef") {
                assert_eq!(
                    text_at(reference, "name"),
                    Some(secret_name.clone()),
                    "{source}: {name} refers to an unknown Secret"
                );
                let key = text_at(reference, "key").expect("secretKeyRef.key");
                assert!(
                    secret_keys.contains_key(&key),
                    "{source}: the Secret {secret_name} has no key {key}"
                );
            }
            if let Some(reference) = at(variable, "valueFrom.configMapKeyRef") {
                assert_eq!(
                    text_at(reference, "name"),
                    Some(configmap_name.clone()),
                    "{source}: {name} refers to an unknown ConfigMap"
                );
                let key = text_at(reference, "key").expect("configMapKeyRef.key");
                assert!(
                    configmap_data.contains_key(&key),
                    "{source}: the ConfigMap {configmap_name} has no key {key}"
                );
            }
            names.insert(name);
        }
        let database = seq_at(container, "env")
            .iter()
            .find(|variable| text_at(variable, "name").as_deref() == Some("RKFLOW_DATABASE_URL"))
            .unwrap_or_else(|| panic!("{source}: RKFLOW_DATABASE_URL is not set"));
        assert_eq!(
            text_at(database, "valueFrom.secretKeyRef.name"),
            Some(secret_name.clone()),
            "{source}: RKFLOW_DATABASE_URL must come from the Secret (it holds the password)"
        );
    }
    let rkflow_names: BTreeSet<String> = names
        .iter()
        .filter(|name| name.starts_with("RKFLOW_"))
        .cloned()
        .collect();
    assert_real(&rkflow_names, settings, source);
    names
}

/// Checks a container's or pod's security context for a non-root, locked-down process;
/// returns the pod's runAsUser if set.
fn check_security(pod: &Value, source: &str) -> Option<u64> {
    assert_eq!(
        at(pod, "securityContext.runAsNonRoot").and_then(Value::as_bool),
        Some(true),
        "{source}: the pod must set runAsNonRoot"
    );
    let user = at(pod, "securityContext.runAsUser").and_then(Value::as_u64);
    assert_ne!(user, Some(0), "{source}: runAsUser 0 is root");
    for container in seq_at(pod, "containers") {
        assert_eq!(
            at(container, "securityContext.allowPrivilegeEscalation").and_then(Value::as_bool),
            Some(false),
            "{source}: allowPrivilegeEscalation must be false"
        );
        assert_eq!(
            at(container, "securityContext.readOnlyRootFilesystem").and_then(Value::as_bool),
            Some(true),
            "{source}: readOnlyRootFilesystem must be true"
        );
        assert_ne!(
            at(container, "securityContext.runAsUser").and_then(Value::as_u64),
            Some(0),
            "{source}: runAsUser 0 is root"
        );
    }
    user
}

/// A Kubernetes quantity of seconds for the preStop `sleep` (exec or sleep action), else 0.
fn pre_stop_seconds(container: &Value) -> u64 {
    if let Some(seconds) = at(container, "lifecycle.preStop.sleep.seconds").and_then(Value::as_u64)
    {
        return seconds;
    }
    let command = string_list(at(container, "lifecycle.preStop.exec.command"));
    match command.as_slice() {
        [sleep, seconds] if sleep.ends_with("sleep") => seconds.parse().unwrap_or(0),
        _ => 0,
    }
}

#[test]
fn kubernetes_manifests_fit_the_server() {
    let settings = all_settings();
    let clap = clap_settings();
    let manifests = manifests();

    // The kustomization lists every manifest but the example Secret.
    let (_, kustomization) = one_of_kind(&manifests, "Kustomization");
    let listed: BTreeSet<String> = string_list(at(kustomization, "resources"))
        .into_iter()
        .collect();
    let expected: BTreeSet<String> = manifests
        .keys()
        .filter(|file| *file != "kustomization.yaml" && !file.contains(".example."))
        .cloned()
        .collect();
    assert_eq!(
        listed, expected,
        "kustomization.yaml must list every manifest of deploy/k8s (and never the example Secret)"
    );
    for file in [
        "configmap.yaml",
        "secret.example.yaml",
        "migrate-job.yaml",
        "deployment.yaml",
        "service.yaml",
        "pdb.yaml",
    ] {
        assert!(manifests.contains_key(file), "deploy/k8s/{file} is missing");
    }

    // The ConfigMap: the production settings.
    let (_, configmap) = one_of_kind(&manifests, "ConfigMap");
    let config = string_map(at(configmap, "data"));
    assert_real(
        &config.keys().cloned().collect(),
        &settings,
        "the ConfigMap",
    );
    for (name, value) in [
        ("RKFLOW_LISTEN", "0.0.0.0:8080"),
        ("RKFLOW_TRUST_FORWARDED_FOR", "true"),
        ("RKFLOW_LOG_FORMAT", "json"),
        ("RKFLOW_GRAPHIQL", "false"),
        ("RKFLOW_INTROSPECTION", "false"),
    ] {
        assert_eq!(
            config.get(name).map(String::as_str),
            Some(value),
            "the ConfigMap's {name}"
        );
    }
    assert!(
        !config.contains_key("RKFLOW_DATABASE_URL")
            && !config.contains_key("RKFLOW_ADMIN_PASSWORD"),
        "secrets belong in the Secret, not the ConfigMap"
    );
    let port = listen_port(&config["RKFLOW_LISTEN"], "the ConfigMap");

    // The Secret (an example): the database URL only, a placeholder.
    let (secret_file, secret) = one_of_kind(&manifests, "Secret");
    assert_eq!(secret_file, "secret.example.yaml");
    let secret_data = string_map(at(secret, "stringData"));
    assert_real(
        &secret_data.keys().cloned().collect(),
        &settings,
        "the Secret",
    );
    assert!(
        secret_data
            .get("RKFLOW_DATABASE_URL")
            .is_some_and(|url| url.starts_with("postgres://")),
        "the example Secret holds a postgres:// RKFLOW_DATABASE_URL"
    );

    // The Deployment.
    let (_, deployment) = one_of_kind(&manifests, "Deployment");
    assert_eq!(
        at(deployment, "spec.replicas").and_then(Value::as_u64),
        Some(2),
        "replicas"
    );
    assert_eq!(
        text_at(deployment, "spec.strategy.type").as_deref(),
        Some("RollingUpdate"),
        "the Deployment rolls"
    );
    let selector = string_map(at(deployment, "spec.selector.matchLabels"));
    let pod_labels = string_map(at(deployment, "spec.template.metadata.labels"));
    assert!(
        selects(&selector, &pod_labels),
        "the Deployment's selector {selector:?} must match its pod labels {pod_labels:?}"
    );
    let pod = at(deployment, "spec.template.spec").expect("a pod template");
    let environment = check_pod_environment(pod, "the Deployment", configmap, secret, &settings);
    assert!(
        environment.contains("RKFLOW_LISTEN"),
        "the Deployment gets RKFLOW_LISTEN from the ConfigMap"
    );
    let pod_user = check_security(pod, "the Deployment");
    let containers = seq_at(pod, "containers");
    assert_eq!(containers.len(), 1, "one container");
    let container = &containers[0];
    let args = string_list(at(container, "args"));
    assert!(
        args.is_empty() || args == ["serve"],
        "the server container runs `serve` (the image's CMD): {args:?}"
    );
    assert!(
        at(container, "command").is_none(),
        "the image's ENTRYPOINT is kept"
    );
    let http = seq_at(container, "ports")
        .iter()
        .find(|p| text_at(p, "name").as_deref() == Some("http"))
        .expect("a container port named http");
    assert_eq!(
        at(http, "containerPort").and_then(Value::as_u64),
        Some(u64::from(port)),
        "the container port equals RKFLOW_LISTEN's port"
    );
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(
            text_at(container, &format!("{probe}.httpGet.path")).as_deref(),
            Some(path),
            "{probe} path"
        );
        assert_eq!(
            text_at(container, &format!("{probe}.httpGet.port")).as_deref(),
            Some("http"),
            "{probe} uses the named port"
        );
    }
    if at(container, "startupProbe").is_some() {
        assert_eq!(
            text_at(container, "startupProbe.httpGet.path").as_deref(),
            Some("/healthz")
        );
        assert_eq!(
            text_at(container, "startupProbe.httpGet.port").as_deref(),
            Some("http")
        );
    }
    for quantity in [
        "resources.requests.cpu",
        "resources.requests.memory",
        "resources.limits.memory",
    ] {
        assert!(
            text_at(container, quantity).is_some(),
            "the Deployment sets {quantity}"
        );
    }
    // The pod must outlive the server's drain: the preStop pause, then the shutdown grace
    // (the longest request when the server has no shutdown grace setting).
    let seconds = |name: &str| {
        config
            .get(name)
            .or(clap.get(name).and_then(|setting| setting.default.as_ref()))
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} has a value in seconds"))
    };
    let drain = if clap.contains_key("RKFLOW_SHUTDOWN_GRACE_SECONDS") {
        seconds("RKFLOW_SHUTDOWN_GRACE_SECONDS")
    } else {
        seconds("RKFLOW_REQUEST_TIMEOUT_SECONDS")
    };
    let grace = at(pod, "terminationGracePeriodSeconds")
        .and_then(Value::as_u64)
        .expect("terminationGracePeriodSeconds");
    let pause = pre_stop_seconds(container);
    assert!(
        grace > pause + drain,
        "terminationGracePeriodSeconds {grace} must exceed the preStop pause {pause} s plus the server's drain {drain} s"
    );

    // The migration Job: `rkflow migrate` with the same image, settings and Secret.
    let (_, job) = one_of_kind(&manifests, "Job");
    let job_pod = at(job, "spec.template.spec").expect("a Job pod template");
    check_pod_environment(job_pod, "the migration Job", configmap, secret, &settings);
    let job_user = check_security(job_pod, "the migration Job");
    assert_eq!(
        job_user, pod_user,
        "the Job and the Deployment run as the same user"
    );
    let job_container = &seq_at(job_pod, "containers")[0];
    let mut job_command = string_list(at(job_container, "command"));
    job_command.extend(string_list(at(job_container, "args")));
    assert!(
        job_command == ["migrate"] || job_command == ["rkflow", "migrate"],
        "the Job runs `rkflow migrate`: {job_command:?}"
    );
    assert!(
        matches!(
            text_at(job_pod, "restartPolicy").as_deref(),
            Some("Never" | "OnFailure")
        ),
        "a Job's pods do not restart forever"
    );
    assert_eq!(
        text_at(job_container, "image"),
        text_at(container, "image"),
        "the Job migrates with the server's image"
    );
    let job_labels = string_map(at(job, "spec.template.metadata.labels"));
    let images: Vec<String> = seq_at(kustomization, "images")
        .iter()
        .filter_map(|image| text_at(image, "name"))
        .collect();
    if !images.is_empty() {
        assert!(
            images.contains(&text_at(container, "image").expect("an image")),
            "kustomization.yaml's images must name the containers' image"
        );
    }

    // The Service and the PodDisruptionBudget select the server pods (and not the Job's).
    let (_, service) = one_of_kind(&manifests, "Service");
    let service_selector = string_map(at(service, "spec.selector"));
    assert!(
        selects(&service_selector, &pod_labels),
        "the Service's selector {service_selector:?} must match the pod labels {pod_labels:?}"
    );
    assert!(
        !selects(&service_selector, &job_labels),
        "the Service must not select the migration Job's pod"
    );
    let service_type = text_at(service, "spec.type").unwrap_or_else(|| "ClusterIP".to_string());
    assert_eq!(service_type, "ClusterIP");
    let service_port = &seq_at(service, "spec.ports")[0];
    assert_eq!(at(service_port, "port").and_then(Value::as_u64), Some(80));
    assert_eq!(text_at(service_port, "targetPort").as_deref(), Some("http"));

    let (_, pdb) = one_of_kind(&manifests, "PodDisruptionBudget");
    let pdb_selector = string_map(at(pdb, "spec.selector.matchLabels"));
    assert!(
        selects(&pdb_selector, &pod_labels),
        "the PodDisruptionBudget's selector {pdb_selector:?} must match the pod labels {pod_labels:?}"
    );
    assert!(
        !selects(&pdb_selector, &job_labels),
        "the PDB must not count the Job's pod"
    );
    assert_eq!(text_at(pdb, "spec.minAvailable").as_deref(), Some("1"));
}

// ---------------------------------------------------------------------------------------------
// Dockerfile and .dockerignore
// ---------------------------------------------------------------------------------------------

/// The Dockerfile's instructions (keyword in upper case, arguments), continuation lines joined
/// and comments dropped.
fn dockerfile() -> Vec<(String, String)> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in read("deploy/Dockerfile").lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (keyword, rest) = current
                    .split_once(char::is_whitespace)
                    .unwrap_or((&current, ""));
                instructions.push((keyword.to_ascii_uppercase(), rest.trim().to_string()));
                current.clear();
            }
        }
    }
    instructions
}

/// The workspace's `rust-version` (the builder image must be that toolchain).
fn rust_version() -> String {
    read("Cargo.toml")
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim() == "rust-version").then(|| value.trim().trim_matches('"').to_string())
        })
        .expect("rust-version in Cargo.toml")
}

/// The port of the ConfigMap's RKFLOW_LISTEN.
fn configmap_port() -> u16 {
    let manifests = manifests();
    let (_, configmap) = one_of_kind(&manifests, "ConfigMap");
    let listen = text_at(configmap, "data.RKFLOW_LISTEN").expect("RKFLOW_LISTEN in the ConfigMap");
    listen_port(&listen, "the ConfigMap")
}

#[test]
fn dockerfile_builds_a_small_non_root_image() {
    let instructions = dockerfile();
    let of = |keyword: &str| -> Vec<&str> {
        instructions
            .iter()
            .filter(|(k, _)| k == keyword)
            .map(|(_, rest)| rest.as_str())
            .collect()
    };
    let froms = of("FROM");
    assert!(froms.len() >= 2, "the Dockerfile is multi-stage: {froms:?}");
    let builder = froms[0].split_whitespace().next().expect("an image");
    let toolchain = rust_version();
    assert!(
        builder.starts_with(&format!("rust:{toolchain}")),
        "the builder image {builder} must be the workspace's rust-version {toolchain}"
    );
    let builds: Vec<&str> = of("RUN")
        .into_iter()
        .filter(|run| run.contains("cargo build"))
        .collect();
    assert_eq!(builds.len(), 1, "one cargo build: {builds:?}");
    for flag in ["--release", "--locked"] {
        assert!(
            builds[0].contains(flag),
            "cargo build without {flag}: {}",
            builds[0]
        );
    }
    assert!(
        builds[0].contains("-p rkflow") || builds[0].contains("--package rkflow"),
        "cargo build must build the rkflow package: {}",
        builds[0]
    );

    // The runtime stage: after the last FROM.
    let last_from = instructions
        .iter()
        .rposition(|(k, _)| k == "FROM")
        .expect("a FROM");
    let runtime = &instructions[last_from..];
    let runtime_image = runtime[0].1.split_whitespace().next().expect("an image");
    assert!(
        !runtime_image.starts_with("rust:"),
        "the runtime stage must not ship the toolchain ({runtime_image})"
    );
    let user = runtime
        .iter()
        .rev()
        .find(|(k, _)| k == "USER")
        .map(|(_, rest)| rest.clone())
        .expect("the runtime stage sets a USER");
    let uid = user.split(':').next().unwrap_or_default();
    assert!(
        uid.parse::<u32>().is_ok_and(|uid| uid != 0),
        "USER must be a numeric non-root uid (Kubernetes' runAsNonRoot can verify only that): {user}"
    );
    let manifests = manifests();
    let (_, deployment) = one_of_kind(&manifests, "Deployment");
    if let Some(pod_user) =
        at(deployment, "spec.template.spec.securityContext.runAsUser").and_then(Value::as_u64)
    {
        assert_eq!(
            uid,
            pod_user.to_string(),
            "the Deployment's runAsUser is the image's USER"
        );
    }
    let healthcheck = runtime
        .iter()
        .find(|(k, _)| k == "HEALTHCHECK")
        .map(|(_, rest)| rest.as_str())
        .expect("the runtime stage has a HEALTHCHECK");
    assert!(
        healthcheck.contains("/healthz") && !healthcheck.trim().eq_ignore_ascii_case("NONE"),
        "the HEALTHCHECK asks /healthz: {healthcheck}"
    );

    let port = configmap_port();
    let exposed: Vec<&str> = of("EXPOSE")
        .into_iter()
        .flat_map(str::split_whitespace)
        .collect();
    assert_eq!(
        exposed,
        [port.to_string()],
        "EXPOSE equals the ConfigMap's RKFLOW_LISTEN port"
    );
    let listen = of("ENV")
        .into_iter()
        .find_map(|env| {
            let rest = env.strip_prefix("RKFLOW_LISTEN")?;
            Some(
                rest.trim_start_matches(['=', ' '])
                    .trim_matches('"')
                    .to_string(),
            )
        })
        .expect("ENV RKFLOW_LISTEN in the Dockerfile");
    assert_eq!(
        listen_port(&listen, "the Dockerfile"),
        port,
        "the Dockerfile's RKFLOW_LISTEN"
    );

    let entrypoint = of("ENTRYPOINT");
    assert_eq!(entrypoint.len(), 1, "one ENTRYPOINT");
    let entrypoint: Vec<String> =
        serde_json::from_str(entrypoint[0]).expect("ENTRYPOINT in exec form");
    assert!(
        entrypoint
            .last()
            .is_some_and(|program| program.ends_with("rkflow")),
        "ENTRYPOINT runs rkflow: {entrypoint:?}"
    );
    let cmd = of("CMD");
    let cmd: Vec<String> =
        serde_json::from_str(cmd.last().expect("a CMD")).expect("CMD in exec form");
    assert_eq!(cmd, ["serve"], "CMD is serve");

    let ignore = read(".dockerignore");
    let patterns: BTreeSet<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| line.trim_start_matches('/').trim_end_matches('/'))
        .collect();
    for needed in [
        ["target", "**/target"],
        [".git", "**/.git"],
        ["*.db", "**/*.db"],
    ] {
        assert!(
            needed.iter().any(|pattern| patterns.contains(pattern)),
            ".dockerignore must exclude {}: {patterns:?}",
            needed[0]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Compose
// ---------------------------------------------------------------------------------------------

#[test]
fn compose_runs_postgres_then_migrate_then_the_server() {
    let settings = all_settings();
    let documents = yaml_documents(&root().join("deploy/compose.yaml"));
    assert_eq!(documents.len(), 1);
    let compose = &documents[0];
    let service = |name: &str| {
        at(compose, &format!("services.{name}"))
            .unwrap_or_else(|| panic!("compose.yaml has no service {name}"))
    };
    let postgres = service("postgres");
    let migrate = service("migrate");
    let server = service("rkflow");

    // PostgreSQL 16, healthy when it accepts connections, data in a named volume.
    let image = text_at(postgres, "image").expect("postgres image");
    assert!(image.starts_with("postgres:16"), "postgres image {image}");
    let test = string_list(at(postgres, "healthcheck.test")).join(" ");
    assert!(test.contains("pg_isready"), "postgres healthcheck: {test}");
    let volumes = string_list(at(postgres, "volumes"));
    assert!(!volumes.is_empty(), "postgres keeps its data in a volume");
    for volume in &volumes {
        let source = volume.split(':').next().expect("a volume source");
        if !source.starts_with(['.', '/']) {
            assert!(
                at(compose, &format!("volumes.{source}")).is_some(),
                "the named volume {source} is declared"
            );
        }
    }
    let postgres_env = string_map(at(postgres, "environment"));
    assert!(
        postgres_env.contains_key("POSTGRES_PASSWORD_FILE")
            || postgres_env
                .get("POSTGRES_PASSWORD")
                .is_some_and(|password| password.starts_with("${")),
        "the database password comes from the environment or a secret, not the file"
    );

    // Every environment variable of the rkflow services is a real setting; the database URL
    // carries no literal password.
    for (name, service) in [("migrate", migrate), ("rkflow", server)] {
        let environment = string_map(at(service, "environment"));
        let names: BTreeSet<String> = environment
            .keys()
            .filter(|key| key.starts_with("RKFLOW_"))
            .cloned()
            .collect();
        assert_real(&names, &settings, &format!("compose service {name}"));
        let url = environment
            .get("RKFLOW_DATABASE_URL")
            .unwrap_or_else(|| panic!("compose service {name} sets RKFLOW_DATABASE_URL"));
        let credentials = url
            .split_once("://")
            .and_then(|(_, rest)| rest.rsplit_once('@'))
            .map(|(credentials, _)| credentials)
            .unwrap_or_default();
        if let Some((_, password)) = credentials.split_once(':') {
            assert!(
                password.starts_with("${"),
                "compose service {name}: the password in RKFLOW_DATABASE_URL must come from the environment"
            );
        }
    }
    assert_eq!(
        text_at(migrate, "image"),
        text_at(server, "image"),
        "migrate runs the server's image"
    );

    // The order: postgres healthy → migrate succeeded → the server.
    assert_eq!(
        string_list(at(migrate, "command")),
        ["migrate"],
        "migrate runs `migrate`"
    );
    assert_eq!(
        text_at(migrate, "depends_on.postgres.condition").as_deref(),
        Some("service_healthy")
    );
    assert_eq!(
        text_at(server, "depends_on.migrate.condition").as_deref(),
        Some("service_completed_successfully")
    );
    let server_command = string_list(at(server, "command"));
    assert!(
        server_command.is_empty() || server_command == ["serve"],
        "the server runs `serve`: {server_command:?}"
    );

    // The port: published to the port the server listens on, with a health check on it.
    let environment = string_map(at(server, "environment"));
    let port = match environment.get("RKFLOW_LISTEN") {
        Some(listen) => listen_port(listen, "compose service rkflow"),
        None => configmap_port(),
    };
    let targets: Vec<String> = seq_at(server, "ports")
        .iter()
        .map(|mapping| match mapping {
            Value::String(short) => {
                let container = short.rsplit(':').next().expect("a port");
                container.split('/').next().expect("a port").to_string()
            }
            long => text_at(long, "target").expect("ports[].target"),
        })
        .collect();
    assert_eq!(
        targets,
        [port.to_string()],
        "compose publishes the listening port"
    );
    let health = string_list(at(server, "healthcheck.test")).join(" ");
    assert!(
        health.contains("/healthz") && health.contains(&port.to_string()),
        "the rkflow service's healthcheck asks /healthz on port {port}: {health}"
    );
}

// ---------------------------------------------------------------------------------------------
// README: the configuration table equals the settings
// ---------------------------------------------------------------------------------------------

/// The rows of the table under `## Configuration` in README.md, as cells.
fn readme_configuration_rows() -> Vec<Vec<String>> {
    let readme = read("README.md");
    let mut lines = readme
        .lines()
        .skip_while(|line| line.trim() != "## Configuration")
        .skip(1)
        .take_while(|line| !line.starts_with("## "))
        .skip_while(|line| !line.starts_with('|'));
    let header = lines.next().expect("a table under ## Configuration");
    assert!(header.contains("variable"), "the table's header: {header}");
    lines
        .take_while(|line| line.starts_with('|'))
        .filter(|line| !line.starts_with("|---") && !line.starts_with("| ---"))
        .map(|line| {
            line.trim()
                .trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_string())
                .collect()
        })
        .collect()
}

#[test]
fn readme_configuration_table_lists_exactly_the_settings() {
    let clap = clap_settings();
    let direct = direct_settings();
    let settings = all_settings();
    let rows = readme_configuration_rows();
    assert!(
        rows.len() >= 10,
        "too few rows in the configuration table: {rows:?}"
    );

    let mut problems = Vec::new();
    let mut documented: BTreeMap<String, String> = BTreeMap::new();
    for row in &rows {
        let variable = names_in(&row[0]);
        if variable.len() != 1 {
            problems.push(format!("a row names {variable:?} as its variable: {row:?}"));
            continue;
        }
        let variable = variable.into_iter().next().expect("one name");
        let flag = row.get(1).cloned().unwrap_or_default();
        if documented.insert(variable.clone(), flag).is_some() {
            problems.push(format!("{variable} has two rows"));
        }
        for name in names_in(&row.join(" ")) {
            if !settings.contains(&name) {
                problems.push(format!(
                    "the table names {name}, which the server does not read"
                ));
            }
        }
    }
    for name in &settings {
        match documented.get(name) {
            None => problems.push(format!("{name} is a setting but has no row in README.md")),
            Some(flag) => {
                let expected = clap.get(name).and_then(|setting| setting.long.clone());
                match expected {
                    Some(long) if !flag.contains(&format!("`--{long}`")) => problems.push(format!(
                        "the row of {name} must give its flag `--{long}` (has `{flag}`)"
                    )),
                    None if direct.contains(name) && flag.contains("--") => {
                        problems.push(format!("{name} has no flag, yet its row gives `{flag}`"))
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "README.md's configuration table has drifted from the server:\n  {}",
        problems.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// Start-up refuses invalid settings, naming them
// ---------------------------------------------------------------------------------------------

/// Runs `rkflow serve` with these settings (on a fresh SQLite file, an OS-chosen port unless
/// the case sets one) and returns its exit status and output once it exits (within a minute).
fn serve_with(settings: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let database = std::env::temp_dir().join(format!("rkflow-deploy-{}.db", uuid::Uuid::new_v4()));
    let mut command = Command::new(BIN);
    command
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, _) in std::env::vars() {
        if name.starts_with("RKFLOW_") {
            command.env_remove(name);
        }
    }
    command
        .env("RKFLOW_LOG", "warn")
        .env("RKFLOW_DATABASE_URL", &database)
        .env("RKFLOW_LISTEN", "127.0.0.1:0");
    for (name, value) in settings {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("the binary starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the binary") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "rkflow serve with {settings:?} did not stop within a minute: the setting was accepted"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().expect("the output");
    for suffix in ["", "-wal", "-shm"] {
        let mut path = database.clone().into_os_string();
        path.push(suffix);
        let _ = std::fs::remove_file(path);
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    (status, text)
}

#[test]
fn serve_refuses_invalid_settings_naming_them() {
    let serve = serve_settings();
    let cases: &[(&str, &str)] = &[
        ("RKFLOW_LISTEN", "nonsense"),
        ("RKFLOW_MANUAL_CLOCK", "yesterday"),
        ("RKFLOW_GRAPHIQL", "maybe"),
        ("RKFLOW_INTROSPECTION", "maybe"),
        ("RKFLOW_CORS_ORIGINS", "*"),
        ("RKFLOW_TRUST_FORWARDED_FOR", "maybe"),
        ("RKFLOW_SESSION_IDLE_MINUTES", "0"),
        ("RKFLOW_SESSION_IDLE_MINUTES", "an hour"),
        ("RKFLOW_SESSION_ABSOLUTE_HOURS", "0"),
        ("RKFLOW_LOGIN_MAX_FAILURES_PER_ACCOUNT", "0"),
        ("RKFLOW_LOGIN_MAX_FAILURES_PER_CLIENT", "0"),
        ("RKFLOW_LOGIN_THROTTLE_WINDOW_MINUTES", "0"),
        ("RKFLOW_ARGON2_MEMORY_KIB", "1024"),
        ("RKFLOW_ARGON2_ITERATIONS", "1"),
        // 12 MiB (the default) needs 3 iterations; 19 MiB with 2 would do.
        ("RKFLOW_ARGON2_ITERATIONS", "2"),
        ("RKFLOW_MAX_QUERY_DEPTH", "0"),
        ("RKFLOW_MAX_QUERY_COMPLEXITY", "10"),
        ("RKFLOW_MAX_ROOT_FIELDS", "0"),
        ("RKFLOW_MAX_ALIASES", "5000"),
        ("RKFLOW_MAX_FIELDS", "10"),
        ("RKFLOW_REQUEST_TIMEOUT_SECONDS", "0"),
        ("RKFLOW_DB_MAX_CONNECTIONS", "0"),
        ("RKFLOW_DB_MAX_CONNECTIONS", "many"),
        ("RKFLOW_SCHEDULER_INTERVAL_SECONDS", "0"),
        ("RKFLOW_REMINDER_DAYS", "x"),
        ("RKFLOW_REMINDER_DAYS", "7,0"),
        ("RKFLOW_EXTRA_HOLIDAYS", "2026-13-01"),
        ("RKFLOW_SHUTDOWN_GRACE_SECONDS", "0"),
        ("RKFLOW_METRICS", "maybe"),
        ("RKFLOW_METRICS_LISTEN", "nonsense"),
        ("RKFLOW_OTLP_ENDPOINT", "ftp://collector"),
    ];
    let mut problems = Vec::new();
    for (name, value) in cases {
        let setting = serve
            .get(*name)
            .unwrap_or_else(|| panic!("{name} is not a setting of `rkflow serve`"));
        let (status, output) = serve_with(&[(name, value)]);
        let flag = setting.long.as_ref().map(|long| format!("--{long}"));
        let named = output.contains(name)
            || flag
                .as_ref()
                .is_some_and(|flag| output.contains(flag.as_str()));
        if status.success() || !named || output.contains("panicked") {
            problems.push(format!(
                "{name}={value:?}: exit {:?}, output: {}",
                status.code(),
                output.trim()
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "invalid settings must stop `rkflow serve` with a message naming them:\n  {}",
        problems.join("\n  ")
    );
}
