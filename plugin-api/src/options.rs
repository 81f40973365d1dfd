//! A plugin's options: the reference it declares (key, kind, default, meaning) and
//! the checked values it receives.
//!
//! The host hands options over as a TOML table: typed values from a config file's
//! `[mount.options]`, or strings from `fusehost mount -o key=value`. Both are accepted
//! for every kind, so `-o max_size=512MiB` and `max_size = "512MiB"` mean the same.
//! Keys the plugin did not declare are refused with the nearest declared key as a hint,
//! and every value is checked against its kind before the plugin sees it.

use std::path::PathBuf;

use toml::{Table, Value};

/// The kind of value an option takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionKind {
    String,
    Bool,
    Integer,
    /// A byte size: `4096`, `64KiB`, `512MiB`, `2GB`.
    Size,
    Path,
}

impl OptionKind {
    /// The name shown in option references.
    pub const fn name(self) -> &'static str {
        match self {
            OptionKind::String => "string",
            OptionKind::Bool => "bool",
            OptionKind::Integer => "integer",
            OptionKind::Size => "size",
            OptionKind::Path => "path",
        }
    }
}

/// One option a plugin accepts, as its reference shows it.
#[derive(Clone, Copy, Debug)]
pub struct OptionSpec {
    pub key: &'static str,
    pub kind: OptionKind,
    /// The default, written as a user would. Empty makes the option required, except
    /// for a `String` option, where it means the empty string.
    pub default: &'static str,
    pub help: &'static str,
}

impl OptionSpec {
    /// An option with a default (`""`: see [`OptionSpec::default`]).
    pub const fn new(key: &'static str, kind: OptionKind, default: &'static str, help: &'static str) -> Self {
        OptionSpec { key, kind, default, help }
    }
}

/// The checked options of one mount. Accessors return the given value or the declared
/// default, `None` when there is neither.
#[derive(Clone, Debug)]
pub struct Options {
    given: Table,
    specs: &'static [OptionSpec],
}

impl Options {
    /// Parses a TOML table and checks every key and value against `specs`.
    pub fn parse(toml_text: &str, specs: &'static [OptionSpec]) -> Result<Options, String> {
        let given: Table = toml_text
            .parse()
            .map_err(|error: toml::de::Error| format!("options are not a TOML table: {}", error.message()))?;
        for (key, value) in &given {
            let Some(spec) = specs.iter().find(|spec| spec.key == key) else {
                return Err(unknown_key_message(key, specs));
            };
            check_kind(spec, value)?;
        }
        for spec in specs.iter().filter(|spec| spec.default.is_empty()) {
            if spec.kind != OptionKind::String && !given.contains_key(spec.key) {
                return Err(format!("option `{}` is required: {}", spec.key, spec.help));
            }
        }
        Ok(Options { given, specs })
    }

    fn raw(&self, key: &str) -> Option<Value> {
        if let Some(value) = self.given.get(key) {
            return Some(value.clone());
        }
        let spec = self.specs.iter().find(|spec| spec.key == key)?;
        (!spec.default.is_empty()).then(|| Value::String(spec.default.to_owned()))
    }

    /// Whether the user gave `key` (rather than it taking its default).
    pub fn is_given(&self, key: &str) -> bool {
        self.given.contains_key(key)
    }

    pub fn string(&self, key: &str) -> Option<String> {
        match self.raw(key)? {
            Value::String(text) => Some(text),
            other => Some(other.to_string()),
        }
    }

    pub fn bool(&self, key: &str) -> Option<bool> {
        as_bool(&self.raw(key)?)
    }

    pub fn integer(&self, key: &str) -> Option<i64> {
        as_integer(&self.raw(key)?)
    }

    /// A size in bytes.
    pub fn size(&self, key: &str) -> Option<u64> {
        as_size(&self.raw(key)?)
    }

    pub fn path(&self, key: &str) -> Option<PathBuf> {
        self.string(key).map(PathBuf::from)
    }
}

fn unknown_key_message(key: &str, specs: &[OptionSpec]) -> String {
    let nearest = specs
        .iter()
        .map(|spec| (strsim::levenshtein(key, spec.key), spec.key))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 3))
        .min();
    let known: Vec<&str> = specs.iter().map(|spec| spec.key).collect();
    match (nearest, known.is_empty()) {
        (Some((_, candidate)), _) => format!("unknown option `{key}`: did you mean `{candidate}`?"),
        (None, true) => format!("unknown option `{key}`: this plugin takes no options"),
        (None, false) => format!("unknown option `{key}`: the options are {}", known.join(", ")),
    }
}

fn check_kind(spec: &OptionSpec, value: &Value) -> Result<(), String> {
    let fits = match spec.kind {
        OptionKind::String | OptionKind::Path => matches!(value, Value::String(_)),
        OptionKind::Bool => as_bool(value).is_some(),
        OptionKind::Integer => as_integer(value).is_some(),
        OptionKind::Size => as_size(value).is_some(),
    };
    if fits {
        return Ok(());
    }
    let example = match spec.kind {
        OptionKind::String | OptionKind::Path => "a quoted string",
        OptionKind::Bool => "true or false",
        OptionKind::Integer => "a whole number",
        OptionKind::Size => "a size such as 4096 or 512MiB",
    };
    Err(format!("option `{}` takes {example}, not {value}", spec.key))
}

fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Boolean(flag) => Some(*flag),
        Value::String(text) => match text.as_str() {
            "true" | "yes" | "on" | "1" | "" => Some(true),
            "false" | "no" | "off" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn as_integer(value: &Value) -> Option<i64> {
    match value {
        Value::Integer(number) => Some(*number),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

fn as_size(value: &Value) -> Option<u64> {
    match value {
        Value::Integer(number) => u64::try_from(*number).ok(),
        Value::String(text) => text.trim().parse::<bytesize::ByteSize>().ok().map(|size| size.as_u64()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[OptionSpec] = &[
        OptionSpec::new("greeting", OptionKind::String, "Hello", "what to say"),
        OptionSpec::new("max_size", OptionKind::Size, "1MiB", "capacity"),
        OptionSpec::new("verbose", OptionKind::Bool, "false", "talk more"),
        OptionSpec::new("count", OptionKind::Integer, "3", "how many"),
    ];

    #[test]
    fn typed_and_string_values_mean_the_same() {
        let typed = Options::parse("max_size = 2048\nverbose = true\ncount = 7", SPECS).unwrap();
        let strings = Options::parse("max_size = \"2KiB\"\nverbose = \"yes\"\ncount = \"7\"", SPECS).unwrap();
        for options in [typed, strings] {
            assert_eq!(options.size("max_size"), Some(2048));
            assert_eq!(options.bool("verbose"), Some(true));
            assert_eq!(options.integer("count"), Some(7));
        }
    }

    #[test]
    fn absent_keys_take_their_declared_default() {
        let options = Options::parse("", SPECS).unwrap();
        assert_eq!(options.string("greeting").as_deref(), Some("Hello"));
        assert_eq!(options.size("max_size"), Some(1024 * 1024));
        assert!(!options.is_given("greeting"));
    }

    #[test]
    fn a_typo_names_the_nearest_key() {
        let error = Options::parse("gretting = \"hi\"", SPECS).unwrap_err();
        assert_eq!(error, "unknown option `gretting`: did you mean `greeting`?");
        let error = Options::parse("zzzzzzzz = 1", SPECS).unwrap_err();
        assert!(error.contains("the options are greeting, max_size"), "{error}");
    }

    #[test]
    fn a_value_of_the_wrong_kind_is_refused() {
        let error = Options::parse("max_size = \"lots\"", SPECS).unwrap_err();
        assert!(error.contains("`max_size` takes a size"), "{error}");
    }
}
