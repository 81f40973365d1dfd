//! The object store behind a mount: an OpenDAL operator built from the plugin's
//! options, every call bounded by the mount's timeout, and errors turned into errnos
//! with one log line per failure streak (not one per request).

use std::collections::HashMap;
use std::future::IntoFuture;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fusehost_plugin_api::{tracing, Errno, Options, SetupError};
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::{ErrorKind, Operator};

/// Where the store is and how to reach it, from the plugin's options.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub service: String,
    /// OpenDAL's settings for the service (endpoint, bucket, region, root, keys, ...).
    settings: Vec<(String, String)>,
    pub timeout: Duration,
    pub retries: usize,
    /// What the mount shows in messages: `s3://bucket/prefix at endpoint`.
    pub describe: String,
}

impl StoreConfig {
    pub fn from_options(options: &Options) -> Result<StoreConfig, SetupError> {
        let service = options.string("service").unwrap_or_else(|| "s3".to_owned());
        let bucket = options.string("bucket").unwrap_or_default();
        let endpoint = options.string("endpoint").unwrap_or_default();
        let prefix = options.string("prefix").unwrap_or_default();
        let mut settings: Vec<(String, String)> = Vec::new();
        if service == "s3" {
            if bucket.is_empty() {
                return Err(SetupError::new("option `bucket` is required for service = \"s3\": the bucket to mount"));
            }
            settings.push(("bucket".to_owned(), bucket.clone()));
            settings.push(("region".to_owned(), options.string("region").unwrap_or_else(|| "us-east-1".to_owned())));
            if !endpoint.is_empty() {
                settings.push(("endpoint".to_owned(), endpoint.clone()));
            }
        }
        settings.push(("root".to_owned(), format!("/{}", prefix.trim_matches('/'))));
        if let Some(file) = options.string("credentials_file").filter(|file| !file.is_empty()) {
            let file = Path::new(&file);
            let profile = options.string("profile").unwrap_or_else(|| "default".to_owned());
            let (key_id, secret) = read_credentials(file, &profile)?;
            settings.push(("access_key_id".to_owned(), key_id));
            settings.push(("secret_access_key".to_owned(), secret));
        } else if let (Ok(key_id), Ok(secret)) =
            (std::env::var("AWS_ACCESS_KEY_ID"), std::env::var("AWS_SECRET_ACCESS_KEY"))
        {
            settings.push(("access_key_id".to_owned(), key_id));
            settings.push(("secret_access_key".to_owned(), secret));
        } else if service == "s3" && !options.string("settings").unwrap_or_default().contains("allow_anonymous") {
            return Err(SetupError::new(
                "no credentials for the store: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in fusehost's \
                 environment, or option credentials_file (or settings = \"allow_anonymous=true\" for a public bucket)",
            ));
        }
        for pair in options.string("settings").unwrap_or_default().split(',').filter(|pair| !pair.trim().is_empty()) {
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                SetupError::new(format!("option `settings` holds key=value pairs separated by commas, not `{pair}`"))
            })?;
            settings.push((key.trim().to_owned(), value.trim().to_owned()));
        }
        let timeout = humantime::parse_duration(&options.string("timeout").unwrap_or_else(|| "30s".to_owned()))
            .map_err(|error| {
                SetupError::new(format!("option `timeout` is a duration such as 30s or 500ms: {error}"))
            })?;
        if timeout.is_zero() {
            return Err(SetupError::new("option `timeout` must be longer than zero"));
        }
        let retries = options.integer("retries").unwrap_or(2).clamp(0, 10) as usize;
        let place = if bucket.is_empty() { service.clone() } else { format!("{service}://{bucket}/{prefix}") };
        let describe = if endpoint.is_empty() { place } else { format!("{place} at {endpoint}") };
        Ok(StoreConfig { service, settings, timeout, retries, describe })
    }

    /// The operator, with retries for transient errors and the timeout on each attempt.
    pub fn operator(&self) -> Result<Operator, SetupError> {
        opendal::init_default_registry();
        let operator = Operator::via_iter(&self.service, self.settings.iter().cloned()).map_err(|error| {
            if error.kind() == ErrorKind::Unsupported {
                SetupError::new(format!(
                    "service `{0}` is not built into this plugin (it has s3 and memory): build it with \
                     `cargo build --release -p fusehost-objectstore --features opendal/services-{0}`",
                    self.service
                ))
            } else {
                SetupError::new(format!("service `{}`: {}", self.service, explain(&error)))
            }
        })?;
        Ok(operator
            .layer(TimeoutLayer::new().with_timeout(self.timeout).with_io_timeout(self.timeout))
            .layer(RetryLayer::new().with_max_times(self.retries).with_min_delay(Duration::from_millis(100))))
    }
}

/// The key id and secret of `profile` in an AWS-style credentials file
/// (`[default]`, `aws_access_key_id = ...`, `aws_secret_access_key = ...`).
fn read_credentials(file: &Path, profile: &str) -> Result<(String, String), SetupError> {
    let text = std::fs::read_to_string(file)
        .map_err(|error| SetupError::new(format!("credentials_file {}: {error}", file.display())))?;
    let mut section = String::new();
    let mut found: HashMap<&str, String> = HashMap::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
            section = name.trim().trim_start_matches("profile ").to_owned();
        } else if section == profile {
            if let Some((key, value)) = line.split_once('=') {
                match key.trim() {
                    "aws_access_key_id" => found.insert("id", value.trim().to_owned()),
                    "aws_secret_access_key" => found.insert("secret", value.trim().to_owned()),
                    _ => None,
                };
            }
        }
    }
    match (found.remove("id"), found.remove("secret")) {
        (Some(id), Some(secret)) => Ok((id, secret)),
        _ => Err(SetupError::new(format!(
            "credentials_file {} has no aws_access_key_id and aws_secret_access_key under [{profile}]",
            file.display()
        ))),
    }
}

/// An OpenDAL error in a few words: what the store said (`NoSuchBucket: Bucket not
/// found`), that it could not be reached, or the error's kind and message, without
/// the request dump OpenDAL's own text carries.
pub fn explain(error: &opendal::Error) -> String {
    let text = error.to_string();
    let quoted = |field: &str| {
        let start = text.find(field)? + field.len();
        let end = text[start..].find('"')?;
        Some(text[start..start + end].to_owned())
    };
    if let (Some(code), Some(message)) = (quoted("code: \""), quoted("message: \"")) {
        return format!("the store answered {code}: {message}");
    }
    if text.contains("error sending request") || text.contains("send http request") {
        return "the endpoint cannot be reached".to_owned();
    }
    let message = error.message();
    format!("{} ({})", if message.is_empty() { "failed" } else { message }, error.kind())
}

/// The errno an OpenDAL error stands for.
pub fn errno_of(kind: ErrorKind) -> Errno {
    match kind {
        ErrorKind::NotFound => Errno::ENOENT,
        ErrorKind::PermissionDenied => Errno::EACCES,
        ErrorKind::AlreadyExists => Errno::EEXIST,
        ErrorKind::IsADirectory => Errno::EISDIR,
        ErrorKind::NotADirectory => Errno::ENOTDIR,
        ErrorKind::Unsupported => Errno::EOPNOTSUPP,
        _ => Errno::EIO,
    }
}

/// One mount's store: the operator, its timeout, and whether it is failing now.
pub struct Store {
    pub operator: Operator,
    timeout: Duration,
    describe: String,
    failing: AtomicBool,
}

impl Store {
    pub fn new(config: &StoreConfig) -> Result<Store, SetupError> {
        Ok(Store {
            operator: config.operator()?,
            timeout: config.timeout,
            describe: config.describe.clone(),
            failing: AtomicBool::new(false),
        })
    }

    /// Runs one store call within the timeout. "Not found" is an answer, not a
    /// failure; a failure is `EIO` (`ETIMEDOUT` past the timeout), logged once when a
    /// streak of failures starts and once when the store answers again.
    pub async fn call<T>(&self, what: &str, call: impl IntoFuture<Output = opendal::Result<T>>) -> Result<T, Errno> {
        let outcome = match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) if matches!(error.kind(), ErrorKind::NotFound | ErrorKind::AlreadyExists) => {
                self.answered();
                return Err(errno_of(error.kind()));
            }
            Ok(Err(error)) => Err((errno_of(error.kind()), explain(&error))),
            Err(_) => Err((Errno::ETIMEDOUT, format!("no answer within {:?}", self.timeout))),
        };
        match outcome {
            Ok(value) => {
                self.answered();
                Ok(value)
            }
            Err((errno, message)) => {
                if errno == Errno::EIO || errno == Errno::ETIMEDOUT {
                    if !self.failing.swap(true, Ordering::Relaxed) {
                        tracing::error!(
                            store = %self.describe,
                            "{what} failed: {message}; requests fail until the store answers again"
                        );
                    }
                } else {
                    tracing::debug!(store = %self.describe, "{what}: {message}");
                }
                Err(errno)
            }
        }
    }

    fn answered(&self) {
        if self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!(store = %self.describe, "the store answers again");
        }
    }
}
