//! ferrolb's CRDs against MetalLB's (vendored in `tests/reference/metallb-crds/`, see its
//! README): the same kinds, versions and printer columns, and, field by field, the same
//! schema; then a corpus of realistic objects that both schemas accept and the Rust types read,
//! and a few that both schemas reject.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use ferrolb_api::{v1beta1, v1beta2};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Loading

fn test_data(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(relative)
}

fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap_or_else(|error| panic!("parsing {}: {error}", path.display()))
        .into_iter()
        .filter(|document| !document.is_null())
        .collect()
}

fn yaml_files(directory: &str) -> Vec<PathBuf> {
    let directory = test_data(directory);
    let mut files: Vec<_> = fs::read_dir(&directory)
        .unwrap_or_else(|error| panic!("listing {}: {error}", directory.display()))
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "yaml")
        })
        .collect();
    files.sort();
    files
}

/// MetalLB's CRDs by name (the conversion patch is not a CRD and is checked on its own).
fn reference_crds() -> BTreeMap<String, Value> {
    yaml_files("reference/metallb-crds")
        .iter()
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("metallb.io_"))
        })
        .flat_map(|path| yaml_documents(path))
        .map(|crd| (crd_name(&crd), crd))
        .collect()
}

fn our_crds() -> BTreeMap<String, Value> {
    ferrolb_api::crds()
        .into_iter()
        .map(|crd| serde_json::to_value(crd).expect("a CRD serializes"))
        .map(|crd| (crd_name(&crd), crd))
        .collect()
}

fn crd_name(crd: &Value) -> String {
    crd["metadata"]["name"]
        .as_str()
        .expect("a CRD has a name")
        .to_owned()
}

fn version<'a>(crd: &'a Value, name: &str) -> Option<&'a Value> {
    crd["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|version| version["name"] == name)
}

fn version_names(crd: &Value) -> BTreeSet<String> {
    crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|version| version["name"].as_str().map(str::to_owned))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Schema comparison

/// One way in which our CRD differs from MetalLB's.
#[derive(Debug)]
struct Difference {
    crd: String,
    /// A version name, or `*` for what is common to all versions.
    version: String,
    /// Dotted field path (`[]` is an array's items, `{}` a map's values, empty for the schema
    /// root), or a JSON pointer into the CRD for what is not schema.
    path: String,
    what: String,
}

/// A deliberate difference, and why it is harmless. `*` matches any CRD or version.
struct Allowed {
    crd: &'static str,
    version: &'static str,
    path: &'static str,
    what: &'static str,
    reason: &'static str,
}

impl Allowed {
    fn covers(&self, difference: &Difference) -> bool {
        (self.crd == "*" || self.crd == difference.crd)
            && (self.version == "*" || self.version == difference.version)
            && self.path == difference.path
            && self.what == difference.what
    }
}

const IMPLICIT_ROOT_FIELD: &str = "the apiserver defines and validates apiVersion, kind and \
    metadata of every custom resource itself; controller-gen spells them out, kube-derive does not";

const PEER_STATUS: &str = "MetalLB's BGPPeer status is an empty object; ferrolb's speakers list \
    their sessions there (an addition: MetalLB's own objects still validate, and a MetalLB \
    reading the object ignores the field)";

const ALLOWED_DIFFERENCES: &[Allowed] = &[
    Allowed {
        crd: "bgppeers.metallb.io",
        version: "*",
        path: "status.nodes",
        what: "not in MetalLB's schema",
        reason: PEER_STATUS,
    },
    Allowed {
        crd: "*",
        version: "*",
        path: "apiVersion",
        what: "missing",
        reason: IMPLICIT_ROOT_FIELD,
    },
    Allowed {
        crd: "*",
        version: "*",
        path: "kind",
        what: "missing",
        reason: IMPLICIT_ROOT_FIELD,
    },
    Allowed {
        crd: "*",
        version: "*",
        path: "metadata",
        what: "missing",
        reason: IMPLICIT_ROOT_FIELD,
    },
];

/// Keywords whose values must be equal (numbers compared by value: `16384` == `16384.0`).
const SAME_VALUE_KEYWORDS: &[&str] = &[
    "type",
    "format",
    "pattern",
    "default",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "nullable",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-embedded-resource",
];

/// Keywords whose values are sets.
const SAME_SET_KEYWORDS: &[&str] = &["enum", "required"];

/// Keywords that hold subschemas, walked into.
const NESTING_KEYWORDS: &[&str] = &["properties", "items", "additionalProperties"];

/// Keywords that only document.
const DOCUMENTATION_KEYWORDS: &[&str] = &["description", "title"];

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(key, a)| b.get(key).is_some_and(|b| same(a, b)))
        }
        (a, b) => a == b,
    }
}

fn as_set(value: Option<&Value>) -> BTreeSet<String> {
    value
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(Value::to_string)
        .collect()
}

fn show(value: Option<&Value>) -> String {
    value.map_or_else(|| "unset".to_owned(), Value::to_string)
}

fn child(path: &str, segment: &str) -> String {
    if path.is_empty() {
        segment.to_owned()
    } else {
        format!("{path}.{segment}")
    }
}

/// Collects the differences between one CRD of MetalLB's and ours.
struct Comparison {
    crd: String,
    differences: Vec<Difference>,
}

impl Comparison {
    fn differ(&mut self, version: &str, path: &str, what: String) {
        self.differences.push(Difference {
            crd: self.crd.clone(),
            version: version.to_owned(),
            path: path.to_owned(),
            what,
        });
    }

    /// Names, scope, versions and their flags, printer columns, subresources, and the schemas.
    fn definitions(&mut self, reference: &Value, ours: &Value) {
        for pointer in [
            "/spec/group",
            "/spec/scope",
            "/spec/names/kind",
            "/spec/names/plural",
            "/spec/names/singular",
            "/spec/names/shortNames",
            "/spec/names/categories",
        ] {
            let (expected, actual) = (reference.pointer(pointer), ours.pointer(pointer));
            if expected != actual {
                self.differ(
                    "*",
                    pointer,
                    format!("MetalLB {}, ferrolb {}", show(expected), show(actual)),
                );
            }
        }
        let (expected_versions, our_versions) = (version_names(reference), version_names(ours));
        if expected_versions != our_versions {
            self.differ(
                "*",
                "/spec/versions",
                format!("MetalLB {expected_versions:?}, ferrolb {our_versions:?}"),
            );
        }
        for name in &expected_versions {
            let (Some(expected), Some(actual)) = (version(reference, name), version(ours, name))
            else {
                continue;
            };
            for key in [
                "served",
                "storage",
                "deprecated",
                "deprecationWarning",
                "subresources",
                "additionalPrinterColumns",
                "selectableFields",
            ] {
                if expected.get(key) != actual.get(key) {
                    let what = format!(
                        "MetalLB {}, ferrolb {}",
                        show(expected.get(key)),
                        show(actual.get(key))
                    );
                    self.differ(name, key, what);
                }
            }
            let schema = |version: &Value| version["schema"]["openAPIV3Schema"].clone();
            self.schemas(name, "", &schema(expected), &schema(actual));
        }
    }

    /// Walks both schemas from MetalLB's side. Our extra properties are differences too:
    /// MetalLB's apiserver would prune them. So are keywords this comparison does not know,
    /// on either side, so that nothing goes unchecked.
    fn schemas(&mut self, version: &str, path: &str, reference: &Value, ours: &Value) {
        for &keyword in SAME_VALUE_KEYWORDS {
            let (expected, actual) = (reference.get(keyword), ours.get(keyword));
            let equal = match (expected, actual) {
                (Some(expected), Some(actual)) => same(expected, actual),
                (expected, actual) => expected == actual,
            };
            if !equal {
                self.differ(
                    version,
                    path,
                    format!(
                        "{keyword}: MetalLB {}, ferrolb {}",
                        show(expected),
                        show(actual)
                    ),
                );
            }
        }
        for &keyword in SAME_SET_KEYWORDS {
            let (expected, actual) = (as_set(reference.get(keyword)), as_set(ours.get(keyword)));
            if expected != actual {
                self.differ(
                    version,
                    path,
                    format!("{keyword}: MetalLB {expected:?}, ferrolb {actual:?}"),
                );
            }
        }
        for (side, schema) in [("MetalLB", reference), ("ferrolb", ours)] {
            let known = [
                SAME_VALUE_KEYWORDS,
                SAME_SET_KEYWORDS,
                NESTING_KEYWORDS,
                DOCUMENTATION_KEYWORDS,
            ]
            .concat();
            for keyword in schema
                .as_object()
                .into_iter()
                .flat_map(|schema| schema.keys())
            {
                if !known.contains(&keyword.as_str()) {
                    self.differ(
                        version,
                        path,
                        format!("{side} uses {keyword:?}, which this test does not compare"),
                    );
                }
            }
        }

        let no_properties = serde_json::Map::new();
        let reference_properties = reference["properties"]
            .as_object()
            .unwrap_or(&no_properties);
        let our_properties = ours["properties"].as_object().unwrap_or(&no_properties);
        for (name, expected) in reference_properties {
            match our_properties.get(name) {
                Some(actual) => self.schemas(version, &child(path, name), expected, actual),
                None => self.differ(version, &child(path, name), "missing".to_owned()),
            }
        }
        for name in our_properties
            .keys()
            .filter(|name| !reference_properties.contains_key(*name))
        {
            self.differ(
                version,
                &child(path, name),
                "not in MetalLB's schema".to_owned(),
            );
        }

        for (keyword, segment) in [("items", "[]"), ("additionalProperties", "{}")] {
            match (reference.get(keyword), ours.get(keyword)) {
                (Some(expected), Some(actual)) if expected.is_object() && actual.is_object() => {
                    self.schemas(version, &child(path, segment), expected, actual)
                }
                (expected, actual) if expected != actual => self.differ(
                    version,
                    path,
                    format!(
                        "{keyword}: MetalLB {}, ferrolb {}",
                        show(expected),
                        show(actual)
                    ),
                ),
                _ => {}
            }
        }
    }
}

#[test]
fn every_reference_crd_has_an_identical_ferrolb_crd() {
    let (reference, ours) = (reference_crds(), our_crds());
    assert_eq!(
        reference.keys().collect::<Vec<_>>(),
        ours.keys().collect::<Vec<_>>(),
        "ferrolb must define exactly MetalLB's CRDs"
    );
    let mut differences = Vec::new();
    for (name, crd) in &reference {
        let mut comparison = Comparison {
            crd: name.clone(),
            differences: Vec::new(),
        };
        comparison.definitions(crd, &ours[name]);
        differences.append(&mut comparison.differences);
    }

    let unexpected: Vec<String> = differences
        .iter()
        .filter(|difference| {
            !ALLOWED_DIFFERENCES
                .iter()
                .any(|allowed| allowed.covers(difference))
        })
        .map(|d| format!("{} {} {}: {}", d.crd, d.version, d.path, d.what))
        .collect();
    assert!(
        unexpected.is_empty(),
        "ferrolb's CRDs differ from MetalLB's:\n{}",
        unexpected.join("\n")
    );

    let stale: Vec<String> = ALLOWED_DIFFERENCES
        .iter()
        .filter(|allowed| {
            !differences
                .iter()
                .any(|difference| allowed.covers(difference))
        })
        .map(|allowed| {
            let Allowed {
                crd,
                version,
                path,
                what,
                reason,
            } = allowed;
            format!("{crd} {version} {path}: {what} (allowed because {reason})")
        })
        .collect();
    assert!(
        stale.is_empty(),
        "allowed differences that no longer occur, remove them:\n{}",
        stale.join("\n")
    );
}

#[test]
fn bgppeer_is_converted_by_a_webhook_as_in_the_reference_patch() {
    let patch = yaml_documents(&test_data(
        "reference/metallb-crds/patch-conversion-bgppeers.yaml",
    ));
    let reference_conversion = &patch[0]["spec"]["conversion"];
    let ours = &our_crds()["bgppeers.metallb.io"];
    let conversion = &ours["spec"]["conversion"];
    assert_eq!(conversion["strategy"], reference_conversion["strategy"]);
    assert_eq!(
        conversion["webhook"]["clientConfig"]["service"]["path"],
        reference_conversion["webhook"]["clientConfig"]["service"]["path"]
    );
    assert_eq!(
        conversion["webhook"]["clientConfig"]["service"],
        json!({"name": "ferrolb-webhook-service", "namespace": "metallb-system", "path": "/convert", "port": 443})
    );
    assert_eq!(
        conversion["webhook"]["conversionReviewVersions"],
        json!(["v1"])
    );
    assert_eq!(version(ours, "v1beta2").expect("v1beta2")["storage"], true);
    assert_eq!(version(ours, "v1beta1").expect("v1beta1")["storage"], false);
}

// ---------------------------------------------------------------------------------------------
// Validation with a JSON Schema validator

/// Turns a CRD's structural OpenAPI v3 schema into a JSON Schema (draft 4, whose keywords
/// OpenAPI v3.0 shares, e.g. boolean `exclusiveMaximum`) that accepts what the apiserver with
/// kubectl's default strict field validation accepts:
/// - `nullable: true` becomes `null` among the allowed types (JSON Schema has no `nullable`);
/// - objects with `properties` get `additionalProperties: false` unless they preserve unknown
///   fields: the apiserver prunes unknown fields and strict validation reports them, so a typo
///   is an error;
/// - the root gets `apiVersion`, `kind` and `metadata`, which the apiserver always allows;
/// - the other `x-kubernetes-*` extensions are left in place and ignored as unknown keywords;
///   that includes the CEL rules of `x-kubernetes-validations`, which no JSON Schema validator
///   evaluates (the comparison above checks that both CRDs carry the same rules).
fn json_schema(openapi: &Value) -> Value {
    fn translate(schema: &Value) -> Value {
        let Value::Object(openapi) = schema else {
            return schema.clone();
        };
        let mut translated = serde_json::Map::new();
        for (keyword, value) in openapi {
            let value = match keyword.as_str() {
                "properties" => Value::Object(
                    value
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(name, schema)| (name.clone(), translate(schema)))
                        .collect(),
                ),
                "items" | "additionalProperties" => translate(value),
                "nullable" => continue,
                _ => value.clone(),
            };
            translated.insert(keyword.clone(), value);
        }
        if openapi.get("nullable") == Some(&Value::Bool(true))
            && let Some(Value::String(kind)) = openapi.get("type")
        {
            translated.insert("type".into(), json!([kind, "null"]));
        }
        let preserves_unknown =
            openapi.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        if openapi.contains_key("properties")
            && !openapi.contains_key("additionalProperties")
            && !preserves_unknown
        {
            translated.insert("additionalProperties".into(), Value::Bool(false));
        }
        Value::Object(translated)
    }
    let mut root = translate(openapi);
    let properties = root["properties"]
        .as_object_mut()
        .expect("a CRD root schema has properties");
    for (name, schema) in [
        ("apiVersion", json!({"type": "string"})),
        ("kind", json!({"type": "string"})),
        ("metadata", json!({"type": "object"})),
    ] {
        properties.entry(name).or_insert(schema);
    }
    root
}

struct Validators {
    /// By (apiVersion, kind).
    reference: BTreeMap<(String, String), jsonschema::Validator>,
    ours: BTreeMap<(String, String), jsonschema::Validator>,
}

fn validators(crds: &BTreeMap<String, Value>) -> BTreeMap<(String, String), jsonschema::Validator> {
    let mut validators = BTreeMap::new();
    for crd in crds.values() {
        let group = crd["spec"]["group"].as_str().expect("group");
        let kind = crd["spec"]["names"]["kind"].as_str().expect("kind");
        for version in crd["spec"]["versions"].as_array().expect("versions") {
            let name = version["name"].as_str().expect("version name");
            let schema = json_schema(&version["schema"]["openAPIV3Schema"]);
            let validator = jsonschema::draft4::new(&schema)
                .unwrap_or_else(|error| panic!("{kind} {name}: not a valid JSON Schema: {error}"));
            validators.insert((format!("{group}/{name}"), kind.to_owned()), validator);
        }
    }
    validators
}

impl Validators {
    fn new() -> Self {
        Self {
            reference: validators(&reference_crds()),
            ours: validators(&our_crds()),
        }
    }
}

fn errors(
    validators: &BTreeMap<(String, String), jsonschema::Validator>,
    object: &Value,
) -> Vec<String> {
    let key = (
        object["apiVersion"].as_str().unwrap_or_default().to_owned(),
        object["kind"].as_str().unwrap_or_default().to_owned(),
    );
    match validators.get(&key) {
        Some(validator) => validator
            .iter_errors(object)
            .map(|error| format!("{}: {error}", error.instance_path()))
            .collect(),
        None => vec![format!("no CRD for {key:?}")],
    }
}

/// Reads the object into its Rust type, and writes it back.
fn through_rust_type(object: &Value) -> Result<Value, String> {
    fn round_trip<K: serde::de::DeserializeOwned + serde::Serialize>(
        object: &Value,
    ) -> Result<Value, String> {
        let typed: K = serde_json::from_value(object.clone()).map_err(|error| error.to_string())?;
        serde_json::to_value(typed).map_err(|error| error.to_string())
    }
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    match (api_version, kind) {
        ("metallb.io/v1beta1", "IPAddressPool") => round_trip::<v1beta1::IPAddressPool>(object),
        ("metallb.io/v1beta1", "L2Advertisement") => round_trip::<v1beta1::L2Advertisement>(object),
        ("metallb.io/v1beta1", "BGPAdvertisement") => {
            round_trip::<v1beta1::BGPAdvertisement>(object)
        }
        ("metallb.io/v1beta1", "BGPPeer") => round_trip::<v1beta1::BGPPeer>(object),
        ("metallb.io/v1beta2", "BGPPeer") => round_trip::<v1beta2::BGPPeer>(object),
        ("metallb.io/v1beta1", "BFDProfile") => round_trip::<v1beta1::BFDProfile>(object),
        ("metallb.io/v1beta1", "Community") => round_trip::<v1beta1::Community>(object),
        ("metallb.io/v1beta1", "ServiceL2Status") => round_trip::<v1beta1::ServiceL2Status>(object),
        ("metallb.io/v1beta1", "ServiceBGPStatus") => {
            round_trip::<v1beta1::ServiceBGPStatus>(object)
        }
        ("metallb.io/v1beta1", "ConfigurationState") => {
            round_trip::<v1beta1::ConfigurationState>(object)
        }
        _ => Err(format!("no Rust type for {api_version} {kind}")),
    }
}

fn describe(object: &Value) -> String {
    let field = |pointer| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("?")
    };
    format!(
        "{} {} {}/{}",
        field("/apiVersion"),
        field("/kind"),
        field("/metadata/namespace"),
        field("/metadata/name")
    )
}

#[test]
fn every_corpus_object_is_accepted_by_both_schemas_and_read_by_the_rust_types() {
    let validators = Validators::new();
    let mut problems = Vec::new();
    let mut kinds_seen = BTreeSet::new();
    for file in yaml_files("corpus") {
        for object in yaml_documents(&file) {
            let name = format!(
                "{}: {}",
                file.file_name().expect("file name").to_string_lossy(),
                describe(&object)
            );
            kinds_seen.insert((object["apiVersion"].to_string(), object["kind"].to_string()));
            for error in errors(&validators.reference, &object) {
                problems.push(format!(
                    "{name}: MetalLB's schema rejects it (so it is not a valid example): {error}"
                ));
            }
            for error in errors(&validators.ours, &object) {
                problems.push(format!("{name}: ferrolb's schema rejects it: {error}"));
            }
            match through_rust_type(&object) {
                Ok(written) => {
                    for error in errors(&validators.reference, &written) {
                        problems.push(format!("{name}: written back by the Rust type, MetalLB's schema rejects it: {error}"));
                    }
                }
                Err(error) => {
                    problems.push(format!("{name}: the Rust type cannot read it: {error}"))
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(
        kinds_seen.len(),
        validators.reference.len(),
        "the corpus should hold every kind and version; it has {kinds_seen:?}"
    );
}

/// Each object in `tests/corpus/rejected/` says in the annotation `test.ferrolb.io/rejected`
/// why MetalLB's schema rejects it.
#[test]
fn objects_the_reference_rejects_are_rejected_by_ferrolb() {
    let validators = Validators::new();
    let mut problems = Vec::new();
    let mut count = 0;
    for file in yaml_files("corpus/rejected") {
        for object in yaml_documents(&file) {
            count += 1;
            let reason = object["metadata"]["annotations"]["test.ferrolb.io/rejected"]
                .as_str()
                .unwrap_or("no reason given");
            let name = format!("{} ({reason})", describe(&object));
            if errors(&validators.reference, &object).is_empty() {
                problems.push(format!(
                    "{name}: MetalLB's schema accepts it, so it does not belong here"
                ));
            }
            if errors(&validators.ours, &object).is_empty() {
                problems.push(format!("{name}: ferrolb's schema accepts it"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        count >= 5,
        "expected a handful of rejected objects, found {count}"
    );
}
